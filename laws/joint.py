"""Joint Chinchilla fits across families that share some parameters, with a joint bootstrap.

Families (data mixtures, architectures, tokenisers) often differ in how fast
loss falls but plausibly share the irreducible loss ``E`` -- or, for one
architecture on different data, the exponents.  Fitting them jointly with
those parameters tied borrows strength across families: a family with few
large runs gets its ``E`` pinned by the others.

Implementation: the families' runs are stacked into one problem whose
parameter vector is ``[shared..., family 1's own..., family 2's own...]``;
each family's Jacobian block is scattered into the stacked Jacobian, so the
batched Newton that polishes single fits applies, to every start at once.
Starts come from every family's own variable-projection grid (the start of
its single fit) -- each family's value of the shared parameters in turn,
plus their median -- so no single family decides where the search begins.

The joint bootstrap (:func:`bootstrap_joint`) resamples *within each member*:
a resample draws as many runs from every family as it has (whole runs when a
family is fitted on checkpoints, :mod:`laws.resample`), so no family's
evidence can vanish from a resample and the members keep their sizes.  All
resamples are refined together by the batched Newton of
:mod:`laws.optimize`, started from the full-data joint optimum, as single
fits' bootstraps are.

A member's joint fit is published under a law name of its own,
``<law>+joint:<group>`` (:func:`joint_law_name`), so it sits beside the
member's single-family fit; :func:`base_law_name` recovers the law.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from laws import chinchilla
from laws.intervals import DEFAULT_LEVEL, Samples, check_level
from laws.objectives import get_objective
from laws.optimize import Problem, newton
from laws.parameters import ParameterSpace
from laws.resample import resample_counts
from laws.types import JointFitResult

__all__ = [
    "JOINT_MARK",
    "JointBootstrapResult",
    "base_law_name",
    "bootstrap_joint",
    "fit_joint",
    "joint_law_name",
]

_STOPS = ("iteration limit", "step tolerance", "no descent step (kink minimum)")
#: What joins a law's name and a group's in the name of a member's joint fit.
JOINT_MARK = "+joint:"


def joint_law_name(law: str, group: str) -> str:
    """The law name a member's coefficients from ``group``'s joint fit are published under."""
    return f"{law}{JOINT_MARK}{group}"


def base_law_name(name: str) -> str:
    """The catalogue law behind a published law name (``chinchilla+joint:g`` -> ``chinchilla``)."""
    return name.split(JOINT_MARK, 1)[0]


@dataclass(frozen=True, eq=False)
class _Joint:
    """The stacked problem and where each family's parameters and runs sit in it."""

    problem: Problem
    families: tuple[str, ...]
    layout: np.ndarray  # (K, 5): index in the joint vector of each family's parameter
    offsets: np.ndarray  # (K + 1,): each family's slice of the stacked runs
    members: tuple[Problem, ...]
    starts: np.ndarray  # (K, 5): each member's own start
    shared: tuple[str, ...]
    shared_slots: np.ndarray  # (P,): which entries of the joint vector are shared


def _stack(
    datasets: Mapping[str, Mapping[str, np.ndarray]],
    shared: Sequence[str],
    options: chinchilla.ChinchillaOptions | Mapping[str, Any] | None,
) -> _Joint:
    """Check the request and stack the families into one :class:`~laws.optimize.Problem`."""
    law = chinchilla.CHINCHILLA
    opts = law.options(options)
    per_family = [k for k in ("fixed", "weights", "init") if getattr(opts, k) is not None]
    if per_family:
        raise ValueError(f"joint fits take no {per_family[0]!r} option: it would apply to every family")
    tie = bool(opts.tie_exponents)
    if tie and (("alpha" in shared) != ("beta" in shared)):
        raise ValueError("with tie_exponents (beta = alpha) share both alpha and beta, or neither")
    names = law.param_names
    shared = tuple(shared)
    bad = [s for s in shared if s not in names]
    if bad:
        raise ValueError(f"cannot share {bad}; choose from {list(names)}")
    if len(datasets) < 2:
        raise ValueError("a joint fit needs at least two families")
    fams = tuple(datasets)
    # members are built untied; a tie is a shared slot for alpha and beta in the joint vector
    problems = tuple(law.make_problem(datasets[f], replace(opts, tie_exponents=False)) for f in fams)
    # each member's best variable-projection grid point: a single fit's start, without its polish
    starts = np.array([chinchilla.varpro_starts(p, grid_size=opts.grid_size, n_starts=1)[0][0] for p in problems])

    # one slot per distinct parameter of the joint vector: shared slots first, then each family's own
    follow = {"beta": "alpha"} if tie else {}
    keys = [[("*", follow.get(n, n)) if n in shared else (f, follow.get(n, n)) for n in names] for f in fams]
    slots = list(dict.fromkeys([k for row in keys for k in row if k[0] == "*"] + [k for row in keys for k in row if k[0] != "*"]))
    layout = np.array([[slots.index(k) for k in row] for row in keys])
    P = len(slots)
    offsets = np.concatenate([[0], np.cumsum([p.loss.size for p in problems])])
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
    lower, upper = np.empty(P), np.empty(P)
    for k in range(len(fams)):
        lower[layout[k]] = lower1
        upper[layout[k]] = upper1
    # each family's E, A, B (own or shared) are optimised as logs, like a single fit's
    joint_names = tuple(name if owner == "*" else f"{name}[{owner}]" for owner, name in slots)
    joint_logs = frozenset(n for n in joint_names if n.split("[")[0] in law.log_params)
    problem = Problem(
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
    return _Joint(problem, fams, layout, offsets, problems, starts, shared, np.array([o == "*" for o, _ in slots]))


def _fit(joint: _Joint) -> tuple[JointFitResult, np.ndarray]:
    """The joint optimum as a result and as the internal vector."""
    started = time.perf_counter()
    law = chinchilla.CHINCHILLA
    names = law.param_names
    layout, fams, problem = joint.layout, joint.families, joint.problem
    thetas = joint.starts
    K, P = len(fams), problem.free.size

    def start(source: np.ndarray) -> np.ndarray:
        """A joint vector: each family's own slots from its start, shared ones from ``source`` (K,) weights."""
        total, count = np.zeros(P), np.zeros(P)
        for k in range(K):
            w = np.where(joint.shared_slots[layout[k]], source[k], 1.0)
            np.add.at(total, layout[k], w * thetas[k])
            np.add.at(count, layout[k], w)
        return problem.clip(total / count)

    # the shared values from each family in turn, then from all of them (averaged)
    starts = [start(np.eye(K)[k]) for k in range(K)] + [start(np.ones(K))]
    # the batched Newton polishes every start at once (L-BFGS-B, one start at a time, is ~10x slower here)
    polished = newton(problem, np.array(starts), max_iter=300)
    best = int(np.nanargmin(polished.objective))
    theta, fval = polished.theta[best], float(polished.objective[best])
    conv = bool(polished.converged[best])
    msg = f"Newton from {len(starts)} starts: {_STOPS[int(polished.status[best])]} ({int(polished.iterations[best])} it)"

    params: dict[str, dict[str, float]] = {}
    rmse: dict[str, float] = {}
    m_all, _ = problem.model(theta[None])
    for k, f in enumerate(fams):
        params[f] = {n: float(v) for n, v in zip(names, law.to_natural(theta[layout[k]]))}
        sl = slice(joint.offsets[k], joint.offsets[k + 1])
        res = np.log(joint.members[k].loss) - m_all[0, sl]
        w = joint.members[k].weights
        rmse[f] = float(np.sqrt((w * res**2).sum() / w.sum()))
    result = JointFitResult(
        law=law.name,
        shared=joint.shared,
        params=params,
        shared_params={s: params[fams[0]][s] for s in joint.shared},
        objective=fval,
        converged=conv,
        message=msg,
        n_runs={f: int(p.used.sum()) for f, p in zip(fams, joint.members)},
        seconds=time.perf_counter() - started,
        rmse_log=rmse,
        used={f: p.used.copy() for f, p in zip(fams, joint.members)},
    )
    return result, theta


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
    return _fit(_stack(datasets, shared, options))[0]


@dataclass(frozen=True, eq=False)
class JointBootstrapResult:
    """Bootstrap distribution of a joint fit, per member.

    Attributes:
        fit: the full-data joint fit the resamples were started from.
        samples: per family, its parameters (shared ones repeated) in every
            resample, natural scale (NaN rows for resamples that failed).
        ci: per family, the percentile interval of each parameter at ``level``.
        shared_ci: the intervals of the shared parameters alone.
        level: interval coverage.
        seed: seed of the resampling.
        n_resamples: ``B``.
        converged_fraction: share of resamples whose refinement met its tolerance.
        seconds: wall-clock time including the full-data fit.
        clustered: per family, whether resamples drew whole runs (checkpoints fitted).
    """

    fit: JointFitResult
    samples: dict[str, Samples]
    ci: dict[str, dict[str, tuple[float, float]]]
    shared_ci: dict[str, tuple[float, float]]
    level: float
    seed: int
    n_resamples: int
    converged_fraction: float
    seconds: float
    clustered: dict[str, bool]


def bootstrap_joint(
    datasets: Mapping[str, Mapping[str, np.ndarray]],
    shared: Sequence[str] = ("E",),
    options: chinchilla.ChinchillaOptions | Mapping[str, Any] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    groups: Mapping[str, Any] | None = None,
) -> JointBootstrapResult:
    """Fit jointly (:func:`fit_joint`) and bootstrap the fit by resampling runs within each member.

    Args:
        datasets, shared, options: as for :func:`fit_joint`.
        n_resamples: number of resamples ``B``.
        seed: seed of the draws; results are reproducible.
        level: coverage of the percentile intervals.
        groups: per family (any subset), one label per input observation naming its run:
            that family's resamples draw whole runs (checkpoints of one run are not
            independent evidence).  Other families resample observations.

    Returns:
        A :class:`JointBootstrapResult`.
    """
    started = time.perf_counter()
    check_level(level)
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    joint = _stack(datasets, shared, options)
    fit, theta_hat = _fit(joint)
    groups = groups or {}
    unknown = sorted(set(groups) - set(joint.families))
    if unknown:
        raise ValueError(f"groups name families not in the fit: {unknown}")
    rng = np.random.default_rng(seed)
    counts, clustered = [], {}
    for f, member in zip(joint.families, joint.members):
        labels = groups.get(f)
        used_labels = None if labels is None else np.asarray(labels)[member.used]
        counts.append(resample_counts(int(member.used.sum()), n_resamples, groups=used_labels, seed=rng))
        clustered[f] = used_labels is not None
    W = np.concatenate(counts, axis=1) * joint.problem.weights[None, :]
    refined = newton(joint.problem, np.tile(theta_hat, (n_resamples, 1)), weights=W, max_iter=100, xtol=1e-8)
    law = chinchilla.CHINCHILLA
    samples = {
        f: Samples(law.param_names, law.to_natural(refined.theta[:, joint.layout[k]]))
        for k, f in enumerate(joint.families)
    }
    ci = {f: s.interval(level) for f, s in samples.items()}
    first = joint.families[0]
    return JointBootstrapResult(
        fit=fit,
        samples=samples,
        ci=ci,
        shared_ci={s: ci[first][s] for s in joint.shared},
        level=level,
        seed=seed,
        n_resamples=n_resamples,
        converged_fraction=float(refined.converged.mean()),
        seconds=time.perf_counter() - started,
        clustered=clustered,
    )

