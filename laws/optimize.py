"""Local optimisers shared by every parametric law.

A law describes itself as a :class:`Problem`: a model returning ``log L_hat``
and its Jacobian for a *batch* of parameter vectors, the observed losses, the
per-run weights and the objective.  Two optimisers work on it:

* :func:`lbfgsb` -- scipy's L-BFGS-B with the analytic gradient, the polish
  step the issue asks for (one parameter vector at a time);
* :func:`newton` -- a damped Newton / Gauss-Newton iteration vectorised over a
  batch of parameter vectors and weight vectors.  It is what makes the
  bootstrap fast: every resample is the same data with multinomial-count
  weights, so thousands of resamples advance together in a few array
  operations per step.  It also finishes the L-BFGS-B polish, because with a
  tiny Huber threshold the objective is nearly piecewise linear and L-BFGS-B
  stalls slightly short of the kink it is converging to.

The Newton curvature uses ``psi'`` (only runs inside the Huber threshold carry
curvature), damped towards the IRLS majoriser (every run, weight
``psi(r)/r``) Levenberg-Marquardt style; a step is accepted only if the true
objective does not increase, so each batch member descends monotonically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from laws.objectives import Objective, get_objective, majorizer_weight, psi, psi_prime, rho
from laws.options import FitOptions
from laws.parameters import Bounds, ParameterSpace
from laws.runs import select_runs
from laws.types import FitResult

__all__ = [
    "Problem",
    "NewtonResult",
    "residuals",
    "objective_values",
    "lbfgsb",
    "newton",
    "polish",
    "fit_result",
    "build_problem",
]

ModelFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class Problem:
    """Everything an optimiser needs to know about one fit.

    Attributes:
        law: catalogue name.
        space: the parameters, in ``theta`` order, and which are fitted as logs.
        model: ``theta (B, p) -> (log L_hat (B, n), d log L_hat / d theta (B, p, n))``
            evaluated on the used runs.  The Jacobian is parameter-major so
            each parameter's column is contiguous (the batched Newton is
            memory-bound).
        loss: observed losses of the used runs, shape ``(n,)``.
        weights: per-run weights of the used runs, shape ``(n,)``.
        objective: residual space and penalty.
        delta: Huber threshold (ignored by squared penalties).
        lower, upper: bounds on the internal parameters ``theta``.
        free: mask of parameters the optimiser may move (others are fixed).
        used: mask over the input runs of those that enter the objective.
        extras: law-specific data (e.g. arrays needed by a global search).
    """

    law: str
    space: ParameterSpace
    model: ModelFn
    loss: np.ndarray
    weights: np.ndarray
    objective: Objective
    delta: float
    lower: np.ndarray
    upper: np.ndarray
    free: np.ndarray
    used: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Natural parameter names, in ``theta`` order."""
        return self.space.names

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        """Internal ``theta (..., p)`` to natural parameters."""
        return self.space.to_natural(theta)

    def clip(self, theta: np.ndarray) -> np.ndarray:
        """Project ``theta`` onto the bounds."""
        return np.clip(theta, self.lower, self.upper)


def build_problem(
    law: str,
    space: ParameterSpace,
    log_model: Callable[..., tuple[np.ndarray, np.ndarray]],
    *,
    loss: np.ndarray,
    runs: Mapping[str, np.ndarray],
    options: FitOptions,
    default_bounds: Bounds | None = None,
    extras: Mapping[str, Any] | None = None,
) -> Problem:
    """The setup every parametric law's ``make_problem`` shares.

    The law validates its own input arrays (so that the messages name its
    inputs) and passes the losses and the per-run arrays its model needs.
    Here the options are checked, the runs selected
    (:func:`laws.runs.select_runs`: a law needs at least as many runs as free
    parameters), the bounds translated
    (:meth:`~laws.parameters.ParameterSpace.resolve_bounds`) and ``runs``
    restricted to the used runs, so that every law treats its options alike.

    Args:
        law, space: as in :class:`Problem`.
        log_model: ``log_model(theta, **runs)`` returning ``log L_hat`` and its
            Jacobian for a batch of ``theta`` (bind other arguments first).
        loss: validated losses of all runs.
        runs: validated per-run arrays over all runs, keyed by the name
            ``log_model`` takes them by; the used runs' arrays are kept in
            ``extras`` for the law's global search.
        options: the fit options (search settings such as ``n_starts`` are
            the law's business and ignored here).
        default_bounds: natural-scale bounds for parameters ``options.bounds`` omits.
        extras: further law-specific entries for :attr:`Problem.extras`, which
            also gets ``fixed_theta`` (see ``resolve_bounds``).
    """
    if not options.huber_delta > 0:
        raise ValueError(f"huber_delta must be > 0, got {options.huber_delta}")
    obj = get_objective(options.objective)
    n_free = len(space.names) - len(options.fixed or {})
    used, w = select_runs(loss, options.weights, options.exclude_top_loss, min_runs=max(n_free, 1))
    lower, upper, free, fixed_theta = space.resolve_bounds(options.bounds, options.fixed, default_bounds)
    used_runs = {k: v[used] for k, v in runs.items()}
    return Problem(
        law=law,
        space=space,
        model=lambda theta: log_model(theta, **used_runs),
        loss=loss[used],
        weights=w,
        objective=obj,
        delta=float(options.huber_delta),
        lower=lower,
        upper=upper,
        free=free,
        used=used,
        extras={**used_runs, **(extras or {}), "fixed_theta": fixed_theta},
    )


def residuals(problem: Problem, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residuals and the Jacobian of the prediction, for a batch of ``theta``.

    Returns:
        ``r (B, n)`` with ``r = target - prediction`` and
        ``G (B, p, n) = d prediction / d theta`` in the objective's space.
    """
    m, J = problem.model(theta)
    if problem.objective.log_space:
        return np.log(problem.loss) - m, J
    f = np.exp(m)
    return problem.loss - f, f[:, None, :] * J


def objective_values(
    problem: Problem, theta: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Summed objective for each row of ``theta`` (and of ``weights``, if 2-D)."""
    theta = np.atleast_2d(theta)
    r, _ = residuals(problem, theta)
    w = problem.weights if weights is None else weights
    return (w * rho(r, problem.delta, problem.objective.robust)).sum(axis=-1)


def lbfgsb(
    problem: Problem, theta0: np.ndarray, maxiter: int = 3000
) -> tuple[np.ndarray, float, bool, str, int]:
    """Polish one start with L-BFGS-B and the analytic gradient.

    Returns:
        ``(theta, objective, success, message, iterations)``.
    """
    free = problem.free
    theta = problem.clip(np.asarray(theta0, float)).copy()
    w = problem.weights
    obj = problem.objective

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        th = theta.copy()
        th[free] = x
        r, G = residuals(problem, th[None])
        r, G = r[0], G[0]
        f = float((w * rho(r, problem.delta, obj.robust)).sum())
        g = -(G[free] @ (w * psi(r, problem.delta, obj.robust)))
        if not np.isfinite(f):
            return np.inf, np.zeros_like(x)
        return f, g

    bnds = [
        (None if not np.isfinite(lo) else lo, None if not np.isfinite(hi) else hi)
        for lo, hi in zip(problem.lower[free], problem.upper[free])
    ]
    if not free.any():
        f, _ = fg(theta[free])
        return theta, f, True, "all parameters fixed", 0
    res = minimize(
        fg,
        theta[free],
        jac=True,
        method="L-BFGS-B",
        bounds=bnds,
        options={"maxiter": maxiter, "maxcor": 20, "ftol": 1e-15, "gtol": 1e-12},
    )
    out = theta.copy()
    out[free] = res.x
    return out, float(res.fun), bool(res.success), str(res.message), int(res.nit)


@dataclass(frozen=True, eq=False)
class NewtonResult:
    """Outcome of a batched Newton run.

    Attributes:
        theta: final parameters, ``(B, p)``.
        objective: final objective per batch member, ``(B,)``.
        status: 1 = step below tolerance, 2 = no descent step exists at this
            precision (a kink minimum), 0 = iteration limit reached.
        iterations: iterations used per member.
    """

    theta: np.ndarray
    objective: np.ndarray
    status: np.ndarray
    iterations: np.ndarray

    @property
    def converged(self) -> np.ndarray:
        """True where the member stopped at a (local) minimum."""
        return self.status > 0


def newton(
    problem: Problem,
    theta0: np.ndarray,
    weights: np.ndarray | None = None,
    max_iter: int = 100,
    xtol: float = 1e-9,
    chunk: int | None = None,
) -> NewtonResult:
    """Damped Newton iterations on a batch of fits sharing one data set.

    Args:
        problem: the fit.
        theta0: starting points, ``(B, p)`` (or ``(p,)`` for a single fit).
        weights: per-member run weights ``(B, n)``; defaults to the problem's.
            Bootstrap resamples pass multinomial counts times base weights here.
        max_iter: iteration cap per member.
        xtol: a member stops when an accepted step moves every parameter by
            less than ``xtol * (1 + |theta|)``.
        chunk: members advanced together.  The work is memory-bound, so
            blocks whose ``(chunk, n)`` arrays stay in cache run several times
            faster than one huge block; the default targets ~120k elements.
    """
    theta0 = problem.clip(np.atleast_2d(np.asarray(theta0, float)))
    B = theta0.shape[0]
    n = problem.loss.size
    W = np.broadcast_to(problem.weights if weights is None else weights, (B, n))
    if chunk is None:
        chunk = max(16, 120_000 // max(n, 1))
    parts = [
        _newton_block(problem, theta0[s : s + chunk], W[s : s + chunk], max_iter, xtol)
        for s in range(0, B, chunk)
    ]
    return NewtonResult(*(np.concatenate(x) for x in zip(*parts)))


def _newton_block(
    problem: Problem, theta: np.ndarray, W: np.ndarray, max_iter: int, xtol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One block of :func:`newton`; finished members are dropped as they stop."""
    B, p = theta.shape
    rob, delta = problem.objective.robust, problem.delta
    free = np.flatnonzero(problem.free)
    all_free = free.size == p
    k = free.size
    eye = np.eye(k)
    out_theta = theta.copy()
    iters = np.zeros(B, int)
    status = np.zeros(B, int)
    if k == 0:
        status[:] = 1
        return out_theta, objective_values(problem, theta, W), status, iters

    act = np.arange(B)
    th = theta.copy()
    r, G = residuals(problem, th)
    F = (W * rho(r, delta, rob)).sum(axis=1)
    out_F = F.copy()
    Wa = np.ascontiguousarray(W)
    lam = np.full(B, 1e-3)
    for _ in range(max_iter):
        if act.size == 0:
            break
        iters[act] += 1
        Gf = G if all_free else G[:, free]
        GfT = Gf.transpose(0, 2, 1)
        Hn = (Gf * (Wa * psi_prime(r, delta, rob))[:, None, :]) @ GfT
        Hm = (Gf * (Wa * majorizer_weight(r, delta, rob))[:, None, :]) @ GfT
        g = np.einsum("bkn,bn->bk", Gf, Wa * psi(r, delta, rob))
        dm = np.einsum("bkk->bk", Hm)
        scale = dm.mean(axis=1) * 1e-12 + 1e-300
        M = Hn + lam[:, None, None] * (Hm + dm[:, :, None] * eye) + scale[:, None, None] * eye
        step = np.linalg.solve(M, g[..., None])[..., 0]
        trial = th.copy()
        trial[:, free] += step
        trial = problem.clip(trial)
        rt, Gt = residuals(problem, trial)
        Ft = (Wa * rho(rt, delta, rob)).sum(axis=1)
        ok = np.isfinite(Ft) & (Ft <= F)
        small = np.abs(trial - th).max(axis=1) <= xtol * (1.0 + np.abs(th).max(axis=1))
        rej = ~ok
        if rej.any():
            trial[rej], Ft[rej], rt[rej], Gt[rej] = th[rej], F[rej], r[rej], G[rej]
        th, F, r, G = trial, Ft, rt, Gt
        lam = np.where(ok, np.maximum(lam * 0.2, 1e-9), lam * 8.0)
        done = ok & small
        stuck = rej & (lam > 1e12)
        fin = done | stuck
        if fin.any():
            out_theta[act[fin]] = th[fin]
            out_F[act[fin]] = F[fin]
            status[act[done]] = 1
            status[act[stuck]] = 2
            keep = ~fin
            act, th, F, r, G, Wa, lam = act[keep], th[keep], F[keep], r[keep], G[keep], Wa[keep], lam[keep]
    out_theta[act] = th
    out_F[act] = F
    return out_theta, out_F, status, iters


def polish(
    problem: Problem, starts: np.ndarray, newton_finish: bool = True
) -> tuple[np.ndarray, float, bool, str, dict[str, Any]]:
    """Polish every start with L-BFGS-B, finish with Newton, keep the best.

    Returns:
        ``(theta, objective, converged, message, details)``.
    """
    starts = np.atleast_2d(starts)
    results = [lbfgsb(problem, s) for s in starts]
    thetas = np.array([t for t, *_ in results])
    fs = np.array([f for _, f, *_ in results])
    msgs = [f"L-BFGS-B: {m} ({n} it)" for *_, m, n in results]
    conv = [bool(s) for *_, s, _, _ in results]
    if newton_finish:
        # Newton is a local finish: spend it only on the basin(s) that won.
        near = np.flatnonzero(fs <= np.nanmin(fs) * (1 + 1e-6) + 1e-300)
        nr = newton(problem, thetas[near], max_iter=200)
        better = nr.objective <= fs[near]
        thetas[near] = np.where(better[:, None], nr.theta, thetas[near])
        fs[near] = np.minimum(fs[near], nr.objective)
        status = {i: (int(s), int(it)) for i, s, it in zip(near, nr.status, nr.iterations)}
        stop = ["iteration limit", "step tolerance", "no descent step (kink minimum)"]
        conv = [conv[i] or (i in status and status[i][0] > 0) for i in range(len(fs))]
        msgs = [
            f"{m}; Newton: {stop[status[i][0]]} ({status[i][1]} it)" if i in status else m
            for i, m in enumerate(msgs)
        ]
    best = int(np.nanargmin(fs))
    details = {"start_objectives": fs, "starts": starts, "polished": thetas}
    return thetas[best], float(fs[best]), conv[best], msgs[best], details


def fit_result(
    problem: Problem,
    theta: np.ndarray,
    objective: float,
    converged: bool,
    message: str,
    started: float,
    extras: dict[str, Any] | None = None,
) -> FitResult:
    """Assemble a :class:`FitResult` from an optimum of ``problem``."""
    m, _ = problem.model(np.atleast_2d(theta))
    res_log = np.log(problem.loss) - m[0]
    w = problem.weights
    rmse = float(np.sqrt((w * res_log**2).sum() / w.sum())) if w.sum() > 0 else float("nan")
    natural = problem.to_natural(np.asarray(theta, float))
    ex = {"theta": np.asarray(theta, float).copy()}
    ex.update(extras or {})
    return FitResult(
        law=problem.law,
        params={n: float(v) for n, v in zip(problem.param_names, natural)},
        objective=float(objective),
        converged=bool(converged),
        message=message,
        n_runs=int(problem.used.sum()),
        seconds=time.perf_counter() - started,
        used=problem.used.copy(),
        rmse_log=rmse,
        objective_name=problem.objective.name,
        residuals_log=res_log,
        extras=ex,
    )
