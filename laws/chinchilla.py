"""Chinchilla Approach 3: ``L(N, D) = E + A / N**alpha + B / D**beta``.

Hoffmann et al. (2022) fit this surface by minimising a Huber loss on
``log L - log L_hat`` from a grid of L-BFGS starts; Besiroglu et al. (2024)
re-ran that procedure on points recovered from the paper's Figure 4.  The
multi-start procedure costs thousands of local optimisations and can still
return a local optimum, so here the global search is done by variable
projection instead:

1. for every ``(alpha, beta)`` on a dense grid the model is linear in
   ``(E, A, B)``; solve the non-negative least-squares problem (weights
   ``1/L**2`` make it approximate relative, i.e. log, error) for the whole grid
   at once from Gram matrices built with two matrix products;
2. take the best few basins of that profile (and of the true objective
   evaluated at the profiled coefficients) as starts;
3. polish the full 5-parameter objective in ``theta = (log E, log A, log B,
   alpha, beta)`` with L-BFGS-B and the analytic gradient, then finish with a
   few Newton steps (see :mod:`laws.optimize`).

The log-space parameterisation keeps E, A, B positive without bounds and
makes ``log L_hat`` a log-sum-exp, which is numerically stable for any N, D.

With ``tie_exponents`` the law has one exponent for N and D (Gadre et al.
2024: ``L = E + A N**-eta + B D**-eta``): ``beta`` is ``alpha``.  The fit
keeps the five columns of ``theta`` but moves only four (the ``beta`` column
follows ``alpha``, see :class:`~laws.parameters.ParameterSpace`), and the
global search covers the diagonal of the exponent grid.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from laws import allocation
from laws.law import ArrayFunctions, Law
from laws.objectives import rho
from laws.optimize import Problem, build_problem, fit_result, polish
from laws.options import FitOptions, Options
from laws.parameters import ParameterSpace
from laws.runs import positive_array
from laws.types import FitResult
from laws.varpro import local_minima, nnls_gram

__all__ = [
    "PARAM_NAMES",
    "LOG_PARAMS",
    "ChinchillaOptions",
    "predict",
    "log_model",
    "make_problem",
    "tied_log_model",
    "fit",
    "Chinchilla",
    "CHINCHILLA",
]

PARAM_NAMES: tuple[str, ...] = ("E", "A", "B", "alpha", "beta")
LOG_PARAMS = frozenset({"E", "A", "B"})
SPACE = ParameterSpace(PARAM_NAMES, LOG_PARAMS)
#: one exponent for N and D: beta is alpha
TIED_SPACE = ParameterSpace(PARAM_NAMES, LOG_PARAMS, ties=(("beta", "alpha"),))
#: exponent range covered by the grid when no bounds are given; LM losses have
#: exponents around 0.05-1, the reference multi-start grid spans 0-2.
EXPONENT_RANGE: tuple[float, float] = (0.02, 2.5)


@dataclass(frozen=True, eq=False)
class ChinchillaOptions(FitOptions):
    """:class:`~laws.options.FitOptions` plus the law's own settings.

    Attributes:
        grid_size: points per exponent axis of the variable-projection grid.
        tie_exponents: fit one exponent for N and D (``beta = alpha``), as
            Gadre et al. 2024 do; bounds and fixed values then name ``alpha``.
    """

    grid_size: int = 64
    tie_exponents: bool = False


def predict(params: Mapping[str, float], N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Loss predicted for models of ``N`` parameters trained on ``D`` tokens."""
    N = np.asarray(N, float)
    D = np.asarray(D, float)
    return params["E"] + params["A"] * N ** -params["alpha"] + params["B"] * D ** -params["beta"]


def log_model(theta: np.ndarray, lN: np.ndarray, lD: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log L_hat`` and its Jacobian for a batch of parameter vectors.

    ``log L_hat = LSE(e, a - alpha log N, b - beta log D)``; the Jacobian is
    the softmax weights of the three terms times the derivatives of the
    exponents, so it costs little beyond the prediction itself.

    Args:
        theta: ``(B, 5)`` internal parameters.
        lN, lD: ``(n,)`` logs of parameters and tokens.

    Returns:
        ``(m (B, n), J (B, 5, n))``.
    """
    theta = np.atleast_2d(theta)
    e, a, b, al, be = (theta[:, i : i + 1] for i in range(5))
    t1 = a - al * lN
    t2 = b - be * lD
    if max(e.max(), t1.max(), t2.max()) < 600:  # no overflow: skip the max-shift
        x0 = np.exp(e)
        x1 = np.exp(t1)
        x2 = np.exp(t2)
        s = x0 + x1 + x2
        m = np.log(s)
    else:
        mx = np.maximum(np.maximum(e, t1), t2)
        x0 = np.exp(e - mx)
        x1 = np.exp(t1 - mx)
        x2 = np.exp(t2 - mx)
        s = x0 + x1 + x2
        m = mx + np.log(s)
    J = np.empty((theta.shape[0], 5, lN.size))
    np.divide(x0, s, out=J[:, 0])
    np.divide(x1, s, out=J[:, 1])
    np.divide(x2, s, out=J[:, 2])
    np.multiply(J[:, 1], -lN, out=J[:, 3])
    np.multiply(J[:, 2], -lD, out=J[:, 4])
    return m, J


def tied_log_model(theta: np.ndarray, lN: np.ndarray, lD: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`log_model` with ``beta = alpha``: the ``beta`` column is read from ``alpha``,
    and ``alpha``'s derivative carries both terms (``beta``'s is zero)."""
    m, J = log_model(TIED_SPACE.tied(np.atleast_2d(theta)), lN, lD)
    J[:, 3] += J[:, 4]
    J[:, 4] = 0.0
    return m, J


def _tied(options: FitOptions) -> bool:
    return bool(getattr(options, "tie_exponents", False))


def make_problem(N: np.ndarray, D: np.ndarray, L: np.ndarray, options: FitOptions | None = None) -> Problem:
    """Validate the runs and describe the fit as a :class:`~laws.optimize.Problem`.

    ``extras`` holds ``lN``, ``lD`` (logs of the used runs' N and D, for the
    grid search) and ``fixed_theta``.
    """
    L = positive_array("loss", L)
    N = positive_array("params (N)", N, L.size)
    D = positive_array("tokens (D)", D, L.size)
    options = options or ChinchillaOptions()
    tied = _tied(options)
    return build_problem(
        "chinchilla", TIED_SPACE if tied else SPACE, tied_log_model if tied else log_model,
        loss=L, runs={"lN": np.log(N), "lD": np.log(D)}, options=options,
    )


def _exponent_grid(problem: Problem, j: int, size: int) -> np.ndarray:
    """Grid for exponent ``j`` (3 = alpha, 4 = beta) inside its bounds."""
    if not problem.free[j]:
        return np.array([problem.lower[j]])
    lo = max(problem.lower[j], EXPONENT_RANGE[0]) if np.isfinite(problem.lower[j]) else EXPONENT_RANGE[0]
    hi = min(problem.upper[j], EXPONENT_RANGE[1]) if np.isfinite(problem.upper[j]) else EXPONENT_RANGE[1]
    if hi <= lo:  # bounds outside the default range: honour the bounds
        lo, hi = problem.lower[j], problem.upper[j]
    if lo > 0:
        return np.geomspace(lo, hi, size)
    return np.linspace(lo, hi, size)


def varpro_starts(problem: Problem, grid_size: int = 64, n_starts: int = 4) -> tuple[np.ndarray, dict]:
    """Starting points from the variable-projection grid over ``(alpha, beta)``.

    With tied exponents the grid is its diagonal, ``beta = alpha``.

    Returns:
        ``(starts (K, 5), info)`` where ``info`` holds the grid and profile.
    """
    lN, lD = problem.extras["lN"], problem.extras["lD"]
    fixed_theta = problem.extras["fixed_theta"]
    L = problem.loss
    w = problem.weights / L**2 if problem.objective.log_space else problem.weights
    tied = bool(problem.space.ties)
    alphas = _exponent_grid(problem, 3, grid_size)
    betas = alphas if tied else _exponent_grid(problem, 4, grid_size)
    X1 = np.exp(-alphas[:, None] * lN[None, :])  # (na, n)
    X2 = np.exp(-betas[:, None] * lD[None, :])  # (nb, n)
    na, nb = alphas.size, betas.size
    if tied:  # grid point i is (alphas[i], alphas[i]): the two terms vary together
        shape, X1g, X2g = (na,), X1, X2
        cross = np.einsum("in,n,in->i", X1, w, X2)
    else:  # grid point (i, j) is (alphas[i], betas[j])
        shape, X1g, X2g = (na, nb), X1[:, None, :], X2[None, :, :]
        cross = (X1 * w) @ X2.T
    by_alpha = (lambda v: v) if tied else (lambda v: v[:, None])
    by_beta = (lambda v: v) if tied else (lambda v: v[None, :])
    wL = w * L
    gram = np.empty(shape + (3, 3))
    rhs = np.empty(shape + (3,))
    gram[..., 0, 0] = w.sum()
    gram[..., 0, 1] = gram[..., 1, 0] = by_alpha(X1 @ w)
    gram[..., 0, 2] = gram[..., 2, 0] = by_beta(X2 @ w)
    gram[..., 1, 1] = by_alpha((X1 * X1) @ w)
    gram[..., 2, 2] = by_beta((X2 * X2) @ w)
    gram[..., 1, 2] = gram[..., 2, 1] = cross
    rhs[..., 0] = wL.sum()
    rhs[..., 1] = by_alpha(X1 @ wL)
    rhs[..., 2] = by_beta(X2 @ wL)
    yy = np.full(shape, (wL * L).sum())

    lin_fixed = ~problem.free[:3]
    coef = np.zeros(shape + (3,))
    if lin_fixed.any():
        c = np.exp(fixed_theta[:3][lin_fixed])  # fixed E/A/B values
        Fi = np.flatnonzero(lin_fixed)
        yy = yy - 2 * rhs[..., Fi] @ c + np.einsum("i,...ij,j->...", c, gram[..., Fi, :][..., :, Fi], c)
        coef[..., Fi] = c
    Ri = np.flatnonzero(~lin_fixed)
    if Ri.size:
        g_rr = gram[..., Ri, :][..., :, Ri]
        b_r = rhs[..., Ri]
        if lin_fixed.any():
            Fi = np.flatnonzero(lin_fixed)
            b_r = b_r - np.einsum("...ij,...j->...i", gram[..., Ri, :][..., :, Fi], coef[..., Fi])
        x, rss = nnls_gram(g_rr, b_r, yy)
        coef[..., Ri] = x
    else:
        rss = yy

    # True objective at the profiled coefficients: the grid proxy (weighted
    # least squares) can rank basins differently from a robust objective.
    pred = coef[..., 1, None] * X1g
    pred += coef[..., 2, None] * X2g
    pred += coef[..., 0, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        if problem.objective.log_space:
            resid = np.log(pred, out=pred)
            np.subtract(np.log(L), resid, out=resid)
        else:
            resid = np.subtract(L, pred, out=pred)
        true_obj = rho(resid, problem.delta, problem.objective.robust) @ problem.weights
    true_obj = np.where(np.isfinite(true_obj), true_obj, np.inf)

    picks = local_minima(rss, n_starts) + local_minima(true_obj, max(1, n_starts // 2))
    seen: list[tuple[int, ...]] = []
    for ij in picks:
        if ij not in seen:
            seen.append(ij)
    floor_scale = 1e-8 * np.median(L)
    starts = []
    for cell in seen:
        E, A, B = coef[cell]
        al, be = alphas[cell[0]], betas[cell[-1]]  # (i,) on the diagonal, (i, j) on the full grid
        E = max(E, floor_scale)
        A = max(A, floor_scale * np.exp(al * np.median(lN)))
        B = max(B, floor_scale * np.exp(be * np.median(lD)))
        th = np.array([np.log(E), np.log(A), np.log(B), al, be])
        th = np.where(np.isnan(fixed_theta), th, fixed_theta)  # fixed values in; a tied beta keeps alpha's
        starts.append(problem.clip(th))
    info = {"alphas": alphas, "betas": betas, "profile_rss": rss, "grid_objective": true_obj}
    return np.array(starts), info


def fit(N: np.ndarray, D: np.ndarray, L: np.ndarray, options: ChinchillaOptions | None = None) -> FitResult:
    """Fit ``L = E + A/N**alpha + B/D**beta`` to training runs.

    Args:
        N: parameters per run.
        D: training tokens per run.
        L: final loss per run.
        options: see :class:`ChinchillaOptions` (defaults: Huber on log L with
            delta 1e-3, a 64 x 64 grid, 4 basins polished).

    Returns:
        A :class:`~laws.types.FitResult`; ``extras["theta"]`` is the internal
        optimum, ``extras["grid"]`` the profile used for the starts.

    Raises:
        laws.errors.FitError: a value is not positive, or too few runs are left.
    """
    started = time.perf_counter()
    options = options or ChinchillaOptions()
    problem = make_problem(N, D, L, options)
    if options.init is not None:
        th = problem.space.to_theta({**dict(options.init), **dict(options.fixed or {})})
        starts, info = problem.clip(th)[None], {}
    else:
        starts, info = varpro_starts(problem, grid_size=options.grid_size, n_starts=options.n_starts)
    theta, f, conv, msg, details = polish(problem, starts)
    theta = problem.space.tied(theta)
    lN, lD, w = problem.extras["lN"], problem.extras["lD"], problem.weights
    design = {"log_design_correlation": _weighted_corr(lN, lD, w)}
    return fit_result(problem, theta, f, conv, msg, started, extras={"grid": info, **design, **details})


def _weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Correlation of log N and log D over the used runs.

    Near +-1 the design moves N and D together (e.g. every run at 20 tokens
    per parameter) and alpha cannot be told from beta, whatever the fit says.
    """
    w = w / w.sum()
    dx, dy = x - w @ x, y - w @ y
    sxx, syy = w @ (dx * dx), w @ (dy * dy)
    if sxx <= 0 or syy <= 0:
        return 1.0  # one of them does not vary at all: nothing to separate
    return float((w @ (dx * dy)) / np.sqrt(sxx * syy))


class Chinchilla(Law):
    """Hoffmann et al. 2022 Approach 3, the law planners read (see the module docstring)."""

    name = "chinchilla"
    description = "Hoffmann et al. 2022 Approach 3: L = E + A/N^alpha + B/D^beta"
    parameters = SPACE
    required_columns = ("params", "tokens", "loss")
    options_type = ChinchillaOptions
    arrays = ArrayFunctions(fit, predict, make_problem)
    allocates = True
    inference_aware = True
    primary = True
    approach = "Approach 3"
    profiled = True
    plausible = {"alpha": (0.0, 2.0), "beta": (0.0, 2.0)}
    gated_intervals = ("alpha", "beta")

    def space(self, options: Options | Mapping[str, Any] | None = None) -> ParameterSpace:
        """The five parameters; with ``tie_exponents`` ``beta`` follows ``alpha``."""
        return TIED_SPACE if _tied(self.options(options)) else SPACE

    def _optimum(self, params: Mapping[str, Any], C: np.ndarray, k: float, unique_tokens: Any) -> tuple[Any, Any, Any]:
        return allocation.chinchilla_optimum(params, C, k)

    def exponents(self, params: Mapping[str, Any]) -> tuple[Any, Any]:
        return allocation.allocation_exponents(params["alpha"], params["beta"])


CHINCHILLA = Chinchilla()
