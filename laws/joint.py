"""Joint Chinchilla fits across families that share some parameters.

Families (data mixtures, architectures, tokenisers) often differ in how fast
loss falls but plausibly share the irreducible loss ``E`` -- or, for one
architecture on different data, the exponents.  Fitting them jointly with
those parameters tied borrows strength across families: a family with few
large runs gets its ``E`` pinned by the others.

Implementation: the families' runs are stacked into one problem whose
parameter vector is ``[shared..., family 1's own..., family 2's own...]``;
each family's Jacobian block is scattered into the stacked Jacobian, so the
same L-BFGS-B + Newton polish as single fits applies.  Starts come from every
family's own (variable-projection) fit -- each family's value of the shared
parameters in turn, plus their median -- so no single family decides where
the search begins.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from laws import chinchilla
from laws.objectives import get_objective
from laws.optimize import Problem, polish
from laws.parameters import ParameterSpace
from laws.types import FitResult, JointFitResult

__all__ = ["fit_joint"]


def fit_joint(
    datasets: Mapping[str, Mapping[str, np.ndarray]],
    shared: Sequence[str] = ("E",),
    options: chinchilla.ChinchillaOptions | Mapping[str, Any] | None = None,
) -> JointFitResult:
    """Fit the Chinchilla law to several families with ``shared`` parameters tied.

    Args:
        datasets: ``{family: {"params": N, "tokens": D, "loss": L}}``.
        shared: parameter names taking one value across families, from
            ("E", "A", "B", "alpha", "beta").
        options: Chinchilla fit options applied to every family
            (``objective``, ``huber_delta``, ``exclude_top_loss``, ``bounds``;
            ``fixed``, ``weights`` and ``init`` are per family and refused here).

    Returns:
        A :class:`~laws.types.JointFitResult`.
    """
    started = time.perf_counter()
    law = chinchilla.CHINCHILLA
    opts = law.options(options)
    per_family = [k for k in ("fixed", "weights", "init") if getattr(opts, k) is not None]
    if per_family:
        raise ValueError(f"joint fits take no {per_family[0]!r} option: it would apply to every family")
    names = law.param_names
    shared = tuple(shared)
    bad = [s for s in shared if s not in names]
    if bad:
        raise ValueError(f"cannot share {bad}; choose from {list(names)}")
    if len(datasets) < 2:
        raise ValueError("a joint fit needs at least two families")
    fams = list(datasets)

    problems: list[Problem] = []
    singles: list[FitResult] = []
    for f in fams:
        problems.append(law.make_problem(datasets[f], opts))
        singles.append(law.fit(datasets[f], opts))

    sh_idx = [names.index(s) for s in shared]
    own_idx = [i for i in range(len(names)) if i not in sh_idx]
    n_sh, n_own = len(sh_idx), len(own_idx)
    P = n_sh + n_own * len(fams)
    # where each family's 5 internal parameters live in the joint vector
    layout = np.empty((len(fams), len(names)), int)
    for k in range(len(fams)):
        layout[k, sh_idx] = np.arange(n_sh)
        layout[k, own_idx] = n_sh + k * n_own + np.arange(n_own)

    sizes = [p.loss.size for p in problems]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    n_total = int(offsets[-1])

    def model(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = np.atleast_2d(theta)
        m = np.empty((theta.shape[0], n_total))
        J = np.zeros((theta.shape[0], P, n_total))
        for k, p in enumerate(problems):
            mk, Jk = p.model(theta[:, layout[k]])
            sl = slice(offsets[k], offsets[k + 1])
            m[:, sl] = mk
            # shared parameters of different families map to one column: add
            for j in range(len(names)):
                J[:, layout[k, j], sl] += Jk[:, j]
        return m, J

    lower1, upper1, _, _ = law.space().resolve_bounds(opts.bounds, None)
    lower = np.empty(P)
    upper = np.empty(P)
    for k in range(len(fams)):
        lower[layout[k]] = lower1
        upper[layout[k]] = upper1

    # each family's E, A, B (own or shared) are optimised as logs, like a single fit's
    joint_names = tuple(names[j] if j in sh_idx else f"{names[j]}[{fams[k]}]" for k, j in _order(len(fams), sh_idx, own_idx))
    joint_logs = frozenset(n for n in joint_names if n.split("[")[0] in law.log_params)
    joint = Problem(
        law=law.name,
        space=ParameterSpace(joint_names, joint_logs),
        model=model,
        loss=np.concatenate([p.loss for p in problems]),
        weights=np.concatenate([p.weights for p in problems]),
        objective=get_objective(opts.objective),
        delta=float(opts.huber_delta),
        lower=lower,
        upper=upper,
        free=np.ones(P, bool),
        used=np.ones(n_total, bool),
    )

    thetas = np.array([s.extras["theta"] for s in singles])  # (K, 5)
    starts = []
    for shared_from in [*thetas[:, sh_idx], np.median(thetas[:, sh_idx], axis=0)]:
        st = np.empty(P)
        for k in range(len(fams)):
            st[layout[k, own_idx]] = thetas[k, own_idx]
        st[:n_sh] = shared_from
        starts.append(joint.clip(st))
    theta, fval, conv, msg, _ = polish(joint, np.array(starts))

    params: dict[str, dict[str, float]] = {}
    rmse: dict[str, float] = {}
    m_all, _ = model(theta[None])
    for k, f in enumerate(fams):
        nat = law.to_natural(theta[layout[k]])
        params[f] = {n: float(v) for n, v in zip(names, nat)}
        sl = slice(offsets[k], offsets[k + 1])
        res = np.log(problems[k].loss) - m_all[0, sl]
        w = problems[k].weights
        rmse[f] = float(np.sqrt((w * res**2).sum() / w.sum()))
    return JointFitResult(
        law=law.name,
        shared=shared,
        params=params,
        shared_params={s: params[fams[0]][s] for s in shared},
        objective=fval,
        converged=conv,
        message=msg,
        n_runs={f: int(p.used.sum()) for f, p in zip(fams, problems)},
        seconds=time.perf_counter() - started,
        rmse_log=rmse,
        used={f: p.used.copy() for f, p in zip(fams, problems)},
    )


def _order(n_fam: int, sh_idx: list[int], own_idx: list[int]) -> list[tuple[int, int]]:
    """(family, parameter) pairs in joint-vector order, for naming."""
    pairs = [(0, j) for j in sh_idx]
    for k in range(n_fam):
        pairs += [(k, j) for j in own_idx]
    return pairs
