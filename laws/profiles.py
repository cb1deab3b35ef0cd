"""Profile checks: do the runs pin down the compute-optimal allocation?

A Chinchilla-form fit can predict every observed loss well while its
allocation far above the runs is undetermined: with a narrow range of model
sizes the irreducible loss ``E`` trades off against ``A / N**alpha``, and the
allocation exponent ``a = beta / (alpha + beta)`` moves with it.  A bootstrap
does not reveal this reliably (every resample is refined from the same
optimum), but a *profile* does: hold one quantity fixed on a grid, refit
everything else, and watch how much the objective and the allocation move.
When the objective stays within a small relative tolerance of its minimum
over a range in which tokens per parameter at a budget lies more than a
factor away from the fit's own answer (``max(hi / estimate, estimate / lo)``),
the runs do not decide the allocation at that budget: an equally good fit
gives an answer that far from the published number.

Two profiles are computed, each with the fit's own objective, weights and
exclusions:

* over ``E``, from a small fraction of the lowest fitted loss up to just
  below it (``E`` cannot exceed the lowest loss when the other terms are
  positive);
* over ``a``.  The fit is reparameterised as ``alpha = (1 - a) s``,
  ``beta = a s`` with ``s = alpha + beta`` free.  This imposes the
  constraint exactly and keeps the constrained problem smooth in its four
  free parameters ``(log E, log A, log B, s)``, so the analytic Jacobian
  (by the chain rule through the law's model) and the batched Newton
  optimiser of :mod:`laws.optimize` serve it unchanged.  The alternative,
  fixing ``beta = a / (1 - a) * alpha`` through a 1-D inner search over
  ``alpha``, nests one optimiser in another, and its objective in ``a`` is
  only as smooth as the inner search is exact.

How each grid point is solved.  A profile is a *global* minimum at every grid
point: along the ``E`` profile of the Chinchilla points, for instance, low
``E`` has two branches (the constant absorbed by the ``N`` term or by the
``D`` term), and a continuation from the free optimum follows the wrong one.
So every grid point gets starts from a variable-projection grid (for fixed
exponents the law is linear in ``E, A, B``; the non-negative least-squares
solutions for a whole grid of exponents and every profiled value come from
shared Gram matrices in a few array operations), plus the free optimum.  All
starts of all grid points are refined in one batched Newton call; then every
point is restarted from both neighbours' solutions (a continuation in both
directions, one batched call per pass) and improvements kept.  Where few
points lie near the minimum a finer grid is laid over it.  The profiled
coordinate is carried as a column of ``theta`` that the optimiser does not
move (not free, unbounded), so one :class:`~laws.optimize.Problem` serves
every grid point.  A 20-point profile of ~250 runs takes about 0.1 s.  Each
start's refinement is capped, so a point far from the minimum (an objective
tens of percent above it, e.g. ``a`` near 0.1 or 0.9) may sit slightly above
its true constrained minimum; near the minimum, where verdicts are decided,
the points agree with independent refits (see the tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from laws.chinchilla import CHINCHILLA
from laws.optimize import Problem, newton
from laws.varpro import local_minima, nnls_gram

__all__ = ["PARAMETERS", "Profile", "ProfileCheck", "profile", "spread_around"]

NATURAL_NAMES: tuple[str, ...] = ("E", "A", "B", "alpha", "beta")
#: columns of ``theta = (log E, log A, log B, alpha, beta)``; the ``a`` profile uses
#: ``(log E, log A, log B, s, a)`` with ``s = alpha + beta`` in the alpha column
_E, _A, _B, _ALPHA, _BETA = range(5)
_S, _SHARE = _ALPHA, _BETA
#: exponents covered by the start grids (LM losses have exponents ~0.05-1)
EXPONENTS = (0.02, 2.5)
START_GRID = 32
STARTS_PER_POINT = 3
#: iterations each start gets before the best start per grid point is chosen
SCREEN_ITERATIONS = 20
#: neighbour-restart passes over the grid (one batched call each; stop when nothing improves)
MAX_PASSES = 3
#: the profile should hold at least MIN_NEAR points within HORIZON (relative
#: excess) of its minimum; otherwise ZOOM_POINTS more are laid there, up to MAX_ZOOMS times
HORIZON = 0.05
MIN_NEAR = 8
ZOOM_POINTS = 10
MAX_ZOOMS = 2


@dataclass(frozen=True)
class ProfileCheck:
    """Whether a profile pins down tokens per parameter at one budget.

    Attributes:
        parameter: the profiled quantity, "E" or "a".
        budget: training FLOPs.
        identified: False when, over the part of the profile within
            ``tolerance``, tokens per parameter lies more than ``factor`` away
            from ``estimate`` (:attr:`spread` > ``factor``).
        tolerance: relative objective excess counted as "as good as the optimum".
        factor: largest tolerated ratio to the estimate.
        value_range: lowest and highest profiled value within tolerance.
        tokens_per_param_range: lowest and highest tokens per parameter at
            ``budget`` over the grid points within tolerance.
        at_grid_edge: the within-tolerance region reaches an end of the grid,
            so both ranges are lower bounds on how much the runs leave open.
        estimate: the fit's own tokens per parameter at ``budget`` (the
            published answer the spread is measured against).
    """

    parameter: str
    budget: float
    identified: bool
    tolerance: float
    factor: float
    value_range: tuple[float, float]
    tokens_per_param_range: tuple[float, float]
    at_grid_edge: bool
    estimate: float

    @property
    def spread(self) -> float:
        """How far an equally good fit's tokens per parameter lies from the estimate: ``max(hi / est, est / lo)``."""
        return spread_around(self.estimate, self.tokens_per_param_range)


def spread_around(estimate: float, tokens_per_param_range: tuple[float, float]) -> float:
    """``max(hi / estimate, estimate / lo)``: how far the range reaches from the estimate (inf when undefined)."""
    lo, hi = tokens_per_param_range
    if not (np.isfinite(lo) and np.isfinite(hi) and lo > 0 and np.isfinite(estimate) and estimate > 0):
        return float("inf")
    return float(max(hi / estimate, estimate / lo))


@dataclass(frozen=True, eq=False)
class Profile:
    """The objective, and the allocation it implies, along one constrained parameter.

    Attributes:
        parameter: "E" (the irreducible loss) or "a" (the allocation exponent
            ``beta / (alpha + beta)``).
        grid: profiled values, ascending; includes the free fit's own value.
        objective: the minimised fit objective with the parameter held at each
            grid value (the fit's objective, weights and exclusions).
        params: natural parameters ``E, A, B, alpha, beta`` per grid point.
        budgets: training FLOPs at which the allocation was evaluated.
        tokens_per_param: ``(len(grid), len(budgets))`` compute-optimal tokens
            per parameter of each constrained fit.
        estimate: ``(len(budgets),)`` tokens per parameter of the free fit: the
            answer a check measures the spread against unless told otherwise.
        best_objective: the lowest objective seen (the free fit's, unless the
            profile found a lower one: then the free fit was a local optimum).
        best_value: the profiled quantity at the free fit.
        converged: per grid point, whether the refinement met its tolerance.
        fixed: the fit's options fix the parameter, so the profile is that one point.
        seconds: wall-clock time.
    """

    parameter: str
    grid: np.ndarray
    objective: np.ndarray
    params: dict[str, np.ndarray]
    budgets: np.ndarray
    tokens_per_param: np.ndarray
    estimate: np.ndarray
    best_objective: float
    best_value: float
    converged: np.ndarray
    fixed: bool
    seconds: float

    def excess(self) -> np.ndarray:
        """Relative objective excess over the best objective, per grid point."""
        if self.best_objective <= 0:  # an exact fit: any worse point is infinitely worse
            return np.where(self.objective <= 0, 0.0, np.inf)
        return self.objective / self.best_objective - 1.0

    def within(self, tolerance: float = 0.01) -> np.ndarray:
        """Mask of grid points whose objective is within ``tolerance`` (relative) of the best."""
        return self.excess() <= tolerance

    def _budget_index(self, budget: float) -> int:
        hit = np.flatnonzero(np.isclose(self.budgets, budget, rtol=1e-9, atol=0))
        if hit.size == 0:
            raise ValueError(f"budget {budget:.3g} was not profiled; budgets are {self.budgets.tolist()}")
        return int(hit[0])

    def tokens_per_param_at(self, budget: float) -> np.ndarray:
        """Tokens per parameter at ``budget`` (one of :attr:`budgets`) for every grid point."""
        return self.tokens_per_param[:, self._budget_index(budget)]

    def check(
        self, budget: float, *, tolerance: float = 0.01, factor: float = 2.0, estimate: float | None = None
    ) -> ProfileCheck:
        """Does tokens per parameter at ``budget`` lie more than ``factor`` from the estimate within ``tolerance``?

        ``estimate`` is the answer the fit publishes (default: the free fit's, :attr:`estimate`).
        """
        if not (tolerance >= 0 and factor >= 1):
            raise ValueError(f"need tolerance >= 0 and factor >= 1, got {tolerance} and {factor}")
        tpp = self.tokens_per_param_at(budget)
        answer = float(self.estimate[self._budget_index(budget)] if estimate is None else estimate)
        ok = np.isfinite(tpp) & (tpp > 0)
        excess = self.excess()
        inside = self.within(tolerance) & ok
        if not inside.any():  # no equally good fit gives a finite answer: nothing pins it down
            nothing = (float("nan"), float("nan"))
            return ProfileCheck(
                parameter=self.parameter, budget=float(budget), identified=False, tolerance=float(tolerance),
                factor=float(factor), value_range=nothing, tokens_per_param_range=nothing, at_grid_edge=False,
                estimate=answer,
            )
        values, log_tpp = list(self.grid[inside]), list(np.log(tpp[inside]))
        # where the tolerance is crossed between two grid points, interpolate the crossing
        # (so the ranges do not depend on where the grid happens to fall)
        for i in np.flatnonzero((inside[:-1] != inside[1:]) & ok[:-1] & ok[1:] & np.isfinite(excess[:-1] + excess[1:])):
            j, k = (i, i + 1) if inside[i] else (i + 1, i)
            t = (tolerance - excess[j]) / (excess[k] - excess[j])
            values.append(self.grid[j] + t * (self.grid[k] - self.grid[j]))
            log_tpp.append(np.log(tpp[j]) + t * (np.log(tpp[k]) - np.log(tpp[j])))
        lo, hi = float(np.exp(min(log_tpp))), float(np.exp(max(log_tpp)))
        idx = np.flatnonzero(inside)
        edge = not self.fixed and (idx[0] == 0 or idx[-1] == self.grid.size - 1)
        return ProfileCheck(
            parameter=self.parameter,
            budget=float(budget),
            identified=bool(spread_around(answer, (lo, hi)) <= factor),
            tolerance=float(tolerance),
            factor=float(factor),
            value_range=(float(min(values)), float(max(values))),
            tokens_per_param_range=(lo, hi),
            at_grid_edge=bool(edge),
            estimate=answer,
        )

    def identified(self, budget: float, *, tolerance: float = 0.01, factor: float = 2.0) -> bool:
        """True when the profile pins tokens per parameter at ``budget`` within ``factor`` of the free fit's."""
        return self.check(budget, tolerance=tolerance, factor=factor).identified


# -- the one place this module calls the Chinchilla law ----------------------------------
def _chinchilla(
    N: np.ndarray, D: np.ndarray, L: np.ndarray, options: Any, start: Mapping[str, float] | None
) -> tuple[Problem, np.ndarray, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """The fit's :class:`Problem`, its free optimum ``theta`` and its tokens-per-parameter rule.

    The rule maps natural parameters ``(G, 5)`` and budgets ``(K,)`` to ``(G, K)``.
    """
    data = {"params": N, "tokens": D, "loss": L}
    problem = CHINCHILLA.make_problem(data, options)
    if start is None:
        theta = CHINCHILLA.fit(data, options).extras["theta"]
    else:
        theta = problem.clip(CHINCHILLA.to_theta(start))

    def tokens_per_param(natural: np.ndarray, budgets: np.ndarray) -> np.ndarray:
        params = {name: natural[:, i : i + 1] for i, name in enumerate(NATURAL_NAMES)}
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            tpp = CHINCHILLA.allocate(params, budgets[None, :]).tokens_per_param
        return np.broadcast_to(tpp, (natural.shape[0], budgets.size)).copy()

    return problem, np.asarray(theta, float), tokens_per_param


# -- starts: variable projection over the exponents, for every profiled value at once ----
def _linear_fit(
    problem: Problem, alpha: np.ndarray, beta: np.ndarray, E: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``(E, A, B) >= 0`` for exponent arrays (and fixed ``E``), vectorised.

    ``alpha``, ``beta`` and ``E`` broadcast to one leading shape ``S``; arrays
    of shape ``S + (n,)`` are formed only for the factors that need them (the
    profiled values enter the normal equations through the target alone).
    Weights ``1 / L**2`` make squared error approximate squared log error.

    Returns:
        ``(coef S + (3,), rss S)``.
    """
    lN, lD, L = problem.extras["lN"], problem.extras["lD"], problem.loss
    w = problem.weights / L**2 if problem.objective.log_space else problem.weights
    X1 = np.exp(-np.asarray(alpha)[..., None] * lN)
    X2 = np.exp(-np.asarray(beta)[..., None] * lD)
    shape = np.broadcast_shapes(np.shape(alpha), np.shape(beta), () if E is None else np.shape(E))
    g11, g22, g12 = (X1 * X1) @ w, (X2 * X2) @ w, (X1 * X2) @ w
    if E is None:  # E is a free coefficient
        cols = (np.ones_like(lN), X1, X2)
        k = 3
        y = L
    else:
        cols = (X1, X2)
        k = 2
        y = L - np.asarray(E)[..., None]
    gram = np.empty(shape + (k, k))
    pairs = {(0, 0): w.sum(), (0, 1): X1 @ w, (0, 2): X2 @ w, (1, 1): g11, (2, 2): g22, (1, 2): g12}
    off = 3 - k  # without the constant column, indices start at X1
    for i in range(k):
        for j in range(i, k):
            gram[..., i, j] = gram[..., j, i] = np.broadcast_to(pairs[(i + off, j + off)], shape)
    rhs = np.stack([np.broadcast_to((c * y) @ w, shape) for c in cols], axis=-1)
    yy = np.broadcast_to((y * y) @ w, shape)
    x, rss = nnls_gram(gram, rhs, yy)
    coef = np.empty(shape + (3,))
    coef[..., 0] = np.broadcast_to(np.asarray(E), shape) if E is not None else x[..., 0]
    coef[..., 1:] = x[..., -2:]
    return coef, rss


def _theta_from(problem: Problem, coef: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``(log E, log A, log B, alpha, beta)`` from linear coefficients, scales floored above 0."""
    floor = 1e-8 * np.median(problem.loss)
    lN, lD = np.median(problem.extras["lN"]), np.median(problem.extras["lD"])
    with np.errstate(divide="ignore"):
        return np.stack(
            [
                np.log(np.maximum(coef[..., 0], floor)),
                np.log(np.maximum(coef[..., 1], floor * np.exp(alpha * lN))),
                np.log(np.maximum(coef[..., 2], floor * np.exp(beta * lD))),
                alpha,
                beta,
            ],
            axis=-1,
        )


def _E_starts(problem: Problem, log_E: np.ndarray) -> np.ndarray:
    """``(G, k, 5)`` starts for the E profile at ``exp(log_E)`` (on the grid's diagonal when beta is alpha)."""
    ex = np.geomspace(*EXPONENTS, START_GRID)
    if problem.space.ties:
        alpha = beta = ex[None, :]
    else:
        alpha, beta = ex[None, :, None], ex[None, None, :]
    per_value = (slice(None),) + (None,) * (alpha.ndim - 1)
    coef, rss = _linear_fit(problem, alpha, beta, np.exp(log_E)[per_value])
    theta = _theta_from(problem, coef, np.broadcast_to(alpha, rss.shape), np.broadcast_to(beta, rss.shape))
    theta[..., _E] = log_E[per_value]
    return _pick(theta, rss)


def _share_starts(problem: Problem, share: np.ndarray) -> np.ndarray:
    """``(G, k, 5)`` starts ``(log E, log A, log B, s, a)`` for the a profile."""
    s = np.geomspace(2 * EXPONENTS[0], 2 * EXPONENTS[1], 2 * START_GRID)[None, :]
    a = share[:, None]
    fixed_E = None if problem.free[_E] else np.exp(problem.lower[_E])
    coef, rss = _linear_fit(problem, (1 - a) * s, a * s, fixed_E)
    theta = _theta_from(problem, coef, np.broadcast_to((1 - a) * s, rss.shape), np.broadcast_to(a * s, rss.shape))
    theta[..., _S], theta[..., _SHARE] = np.broadcast_to(s, rss.shape), np.broadcast_to(a, rss.shape)
    return _pick(theta, rss)


def _pick(theta: np.ndarray, rss: np.ndarray) -> np.ndarray:
    """The ``STARTS_PER_POINT`` best basins per grid point (repeating the best if fewer)."""
    out = np.empty((theta.shape[0], STARTS_PER_POINT, theta.shape[-1]))
    for g, grid_rss in enumerate(rss):
        cells = local_minima(grid_rss, STARTS_PER_POINT) or [np.unravel_index(np.nanargmin(grid_rss), grid_rss.shape)]
        for j in range(STARTS_PER_POINT):
            out[g, j] = theta[(g, *cells[min(j, len(cells) - 1)])]
    return out


# -- the profile engine -----------------------------------------------------------------
@dataclass(frozen=True)
class _Axis:
    """How one profiled quantity sits in a problem.

    Attributes:
        parameter: reported name.
        problem: the fit with the profiled column not free and unbounded.
        column: the profiled column of ``theta``.
        theta_hat: the free optimum in this problem's coordinates.
        grid: internal values of the profiled column.
        starts: internal values ``(G,)`` to starts ``(G, k, 5)``.
        natural: ``theta (G, 5)`` to natural ``(E, A, B, alpha, beta)``.
        reported: internal values to reported values.
        fixed: the options fix the quantity (one-point profile).
    """

    parameter: str
    problem: Problem
    column: int
    theta_hat: np.ndarray
    grid: np.ndarray
    starts: Callable[[np.ndarray], np.ndarray]
    natural: Callable[[np.ndarray], np.ndarray]
    reported: Callable[[np.ndarray], np.ndarray]
    fixed: bool = False


class _Points(NamedTuple):
    """Solved grid points, ascending in the profiled (internal) value."""

    values: np.ndarray
    theta: np.ndarray
    objective: np.ndarray
    converged: np.ndarray

    def merged(self, other: _Points) -> _Points:
        order = np.argsort(np.concatenate([self.values, other.values]), kind="stable")
        return _Points(*(np.concatenate([a, b])[order] for a, b in zip(self, other)))


def _solve(problem: Problem, starts: np.ndarray, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # far starts may underflow a term
        res = newton(problem, starts, max_iter=max_iter, xtol=1e-6)
    return res.theta, res.objective, res.converged


def _with_value(theta: np.ndarray, column: int, values: np.ndarray) -> np.ndarray:
    out = np.array(theta, float, copy=True)
    out[..., column] = values
    return out


def _solve_points(axis: _Axis, values: np.ndarray, warm: np.ndarray) -> _Points:
    """Best of the grid-search starts and the warm start ``(G, 5)`` at each value.

    Every start gets :data:`SCREEN_ITERATIONS` (a start still far off by then is
    in a poor basin); the best per value is then refined to convergence.
    """
    G = values.size
    starts = np.concatenate([axis.starts(values), warm[:, None, :]], axis=1)  # (G, k+1, 5)
    starts = _with_value(starts, axis.column, values[:, None])
    k = starts.shape[1]
    t, f, _ = _solve(axis.problem, starts.reshape(G * k, -1), SCREEN_ITERATIONS)
    f = np.where(np.isfinite(f), f, np.inf).reshape(G, k)
    best = np.arange(G) * k + f.argmin(axis=1)
    return _Points(values, *_solve(axis.problem, t[best]))


def _restart_from_neighbours(axis: _Axis, points: _Points) -> _Points:
    """Restart every point from its better neighbour's solution; keep improvements.

    A continuation step in whichever direction the profile is lower, for all
    points in one batched call (screened like :func:`_solve_points`, then the
    restarts that beat the current solution are refined); repeated while
    anything improves.
    """
    values, theta, obj, conv = (np.array(x, copy=True) for x in points)
    idx = np.arange(values.size)
    for _ in range(MAX_PASSES):
        left, right = np.maximum(idx - 1, 0), np.minimum(idx + 1, values.size - 1)
        src = np.where(obj[left] <= obj[right], left, right)
        cand, f, _ = _solve(axis.problem, _with_value(theta[src], axis.column, values), SCREEN_ITERATIONS)
        better = np.flatnonzero(f < obj - 1e-12 * np.abs(obj))
        if better.size == 0:
            break
        cand, f, c = _solve(axis.problem, cand[better])
        keep = f < obj[better]
        i = better[keep]
        theta[i], obj[i], conv[i] = cand[keep], f[keep], c[keep]
        if i.size == 0:
            break
    return _Points(values, theta, obj, conv)


def _zoom(axis: _Axis, points: _Points) -> _Points:
    """Lay a finer grid over the minimum when fewer than :data:`MIN_NEAR` points lie near it."""
    for _ in range(MAX_ZOOMS):
        best = points.objective.min()
        if best <= 0:
            break
        near = np.flatnonzero(points.objective / best - 1.0 <= HORIZON)
        if near.size >= MIN_NEAR:
            break
        values = points.values
        lo, hi = max(near[0] - 1, 0), min(near[-1] + 1, values.size - 1)
        new = np.linspace(values[lo], values[hi], ZOOM_POINTS + 2)[1:-1]
        nearest = np.abs(values[None, :] - new[:, None]).argmin(axis=1)
        points = points.merged(_solve_points(axis, new, points.theta[nearest]))
    return points


def _profile(axis: _Axis, budgets: Sequence[float], tokens_per_param: Callable, started: float) -> Profile:
    hat, col = axis.theta_hat, axis.column
    free = _Points(hat[col : col + 1], *_solve(axis.problem, hat[None]))  # the free optimum, refined here
    if axis.fixed:
        points = free
    else:
        values = np.unique(np.append(axis.grid, free.theta[0, col]))
        points = _solve_points(axis, values, np.tile(free.theta[0], (values.size, 1)))
        points = _zoom(axis, _restart_from_neighbours(axis, points))
    nat = axis.natural(points.theta)
    budgets_arr = np.atleast_1d(np.asarray(budgets, float))
    return Profile(
        parameter=axis.parameter,
        grid=axis.reported(points.values),
        objective=points.objective,
        params={name: nat[:, i] for i, name in enumerate(NATURAL_NAMES)},
        budgets=budgets_arr,
        tokens_per_param=tokens_per_param(nat, budgets_arr),
        estimate=tokens_per_param(axis.natural(free.theta), budgets_arr)[0],
        best_objective=float(min(free.objective[0], points.objective.min())),
        best_value=float(axis.reported(free.values)[0]),
        converged=points.converged,
        fixed=axis.fixed,
        seconds=time.perf_counter() - started,
    )


def _unfix(problem: Problem, column: int) -> Problem:
    """The problem with ``column`` carried in ``theta`` but never moved by the optimiser."""
    lower, upper, free = problem.lower.copy(), problem.upper.copy(), problem.free.copy()
    lower[column], upper[column], free[column] = -np.inf, np.inf, False
    return replace(problem, lower=lower, upper=upper, free=free)


def _E_axis(problem: Problem, theta_hat: np.ndarray, n_grid: int, span: tuple[float, float]) -> _Axis:
    """Profiling ``E``: the grid spans fractions ``span`` of the lowest fitted loss."""
    fixed = not problem.free[_E]
    return _Axis(
        parameter="E",
        problem=problem if fixed else _unfix(problem, _E),
        column=_E,
        theta_hat=theta_hat,
        grid=np.log(problem.loss.min() * np.linspace(*span, n_grid)),
        starts=lambda log_E: _E_starts(problem, log_E),
        natural=problem.to_natural,
        reported=np.exp,
        fixed=fixed,
    )


def _share_problem(problem: Problem) -> Problem:
    """The fit in ``(log E, log A, log B, s, a)`` with ``alpha = (1 - a) s``, ``beta = a s``; ``a`` not moved."""
    if problem.space.ties:
        raise ValueError("with one shared exponent (beta = alpha) a is 0.5 by construction: there is no a to profile")
    if not (problem.free[_ALPHA] and problem.free[_BETA]):
        raise ValueError("the a profile needs alpha and beta free (a fixed exponent ties a to the other)")
    if np.isfinite(problem.lower[_ALPHA:]).any() or np.isfinite(problem.upper[_ALPHA:]).any():
        raise ValueError("the a profile does not support bounds on alpha or beta")
    base = problem.model

    def model(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = np.atleast_2d(theta)
        s, a = theta[:, _S : _S + 1], theta[:, _SHARE : _SHARE + 1]
        m, J = base(_unshare(theta))
        J_alpha, J_beta = J[:, _ALPHA].copy(), J[:, _BETA].copy()
        J[:, _S] = J_alpha * (1 - a) + J_beta * a
        J[:, _SHARE] = s * (J_beta - J_alpha)
        return m, J

    lower, upper, free = problem.lower.copy(), problem.upper.copy(), problem.free.copy()
    lower[_S], upper[_S], free[_S] = 0.0, np.inf, True
    lower[_SHARE], upper[_SHARE], free[_SHARE] = -np.inf, np.inf, False
    return replace(problem, model=model, lower=lower, upper=upper, free=free)


def _unshare(theta: np.ndarray) -> np.ndarray:
    """``(log E, log A, log B, s, a)`` to ``(log E, log A, log B, alpha, beta)``."""
    out = np.array(theta, float, copy=True)
    s, a = theta[..., _S], theta[..., _SHARE]
    out[..., _ALPHA], out[..., _BETA] = (1 - a) * s, a * s
    return out


def _a_axis(problem: Problem, theta_hat: np.ndarray, n_grid: int, span: tuple[float, float]) -> _Axis:
    """Profiling ``a``: the grid spans ``span`` evenly."""
    hat = theta_hat.copy()
    hat[_S] = theta_hat[_ALPHA] + theta_hat[_BETA]
    hat[_SHARE] = theta_hat[_BETA] / hat[_S]
    return _Axis(
        parameter="a",
        problem=_share_problem(problem),
        column=_SHARE,
        theta_hat=hat,
        grid=np.linspace(*span, n_grid),
        starts=lambda share: _share_starts(problem, share),
        natural=lambda t: problem.to_natural(_unshare(t)),
        reported=np.asarray,
    )


#: how each profiled quantity sits in the fit, and the span of its grid by default
_AXES = {"E": (_E_axis, (0.02, 0.995)), "a": (_a_axis, (0.1, 0.9))}
PARAMETERS: tuple[str, ...] = tuple(_AXES)


def profile(
    parameter: str,
    N: np.ndarray,
    D: np.ndarray,
    L: np.ndarray,
    *,
    budgets: Sequence[float],
    options: Any = None,
    start: Mapping[str, float] | None = None,
    n_grid: int = 20,
    span: tuple[float, float] | None = None,
) -> Profile:
    """Profile a Chinchilla fit's objective over ``E`` or over ``a = beta / (alpha + beta)``.

    Args:
        parameter: "E" or "a".
        N, D, L: parameters, tokens and loss per observation, as fitted.
        budgets: FLOPs at which tokens per parameter is recorded.
        options: the fit's options (a mapping or the law's options record),
            exactly as the fit was made.  A fixed ``E`` gives a one-point E
            profile (and is held in the a profile); A and B must be free, and
            for the a profile alpha and beta free, unbounded and not tied
            (with ``tie_exponents`` the E profile keeps beta = alpha).
        start: the free fit's natural parameters, if already fitted (saves a fit).
        n_grid: grid points, evenly spaced in the parameter.
        span: for "E", fractions of the lowest fitted loss (default 0.02 to
            0.995); for "a", the range of ``a`` (default 0.1 to 0.9).

    Returns:
        A :class:`Profile`.

    Raises:
        laws.errors.FitError: the runs cannot support the fit.
        ValueError: an unknown parameter, or options the profile does not support.
    """
    if parameter not in _AXES:
        raise ValueError(f"no profile over {parameter!r}; profiles exist for {list(PARAMETERS)}")
    started = time.perf_counter()
    problem, theta_hat, tokens_per_param = _chinchilla(N, D, L, options, start)
    if not (problem.free[_A] and problem.free[_B]):
        raise ValueError("profiles support fixing E only (A and B must be free)")
    make_axis, default_span = _AXES[parameter]
    axis = make_axis(problem, theta_hat, n_grid, span or default_span)
    return _profile(axis, budgets, tokens_per_param, started)
