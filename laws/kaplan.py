"""Kaplan et al. (2020): ``L(N, D) = [(N_c/N)**(alpha_N/alpha_D) + D_c/D]**alpha_D``.

Kaplan's joint law (their Eq. 1.5) has no irreducible term: loss falls as a
power law in both N and D, with the ratio of exponents controlling how much
data a larger model needs.  It is fitted the same way as the Chinchilla law:

* raising both sides to ``1/alpha_D`` gives ``L**(1/alpha_D) = c_1 N**(-p) +
  c_2 / D`` with ``p = alpha_N/alpha_D``, ``c_1 = N_c**p``, ``c_2 = D_c`` --
  linear in ``(c_1, c_2)`` for fixed exponents, so a dense grid over
  ``(alpha_N, alpha_D)`` with non-negative least squares finds the basins;
* the full objective is polished in ``theta = (log N_c, log D_c, alpha_N,
  alpha_D)`` with the analytic Jacobian (see :mod:`laws.optimize`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from laws import allocation
from laws.law import ArrayFunctions, Law
from laws.optimize import Problem, build_problem, fit_result, polish
from laws.options import FitOptions
from laws.parameters import ParameterSpace
from laws.runs import positive_array
from laws.types import FitResult
from laws.varpro import local_minima, nnls_gram

__all__ = ["PARAM_NAMES", "KaplanOptions", "predict", "log_model", "make_problem", "fit", "Kaplan", "KAPLAN"]

PARAM_NAMES: tuple[str, ...] = ("N_c", "D_c", "alpha_N", "alpha_D")
LOG_PARAMS = frozenset({"N_c", "D_c"})
SPACE = ParameterSpace(PARAM_NAMES, LOG_PARAMS)
EXPONENT_RANGE: tuple[float, float] = (0.01, 2.0)


@dataclass(frozen=True, eq=False)
class KaplanOptions(FitOptions):
    """:class:`~laws.options.FitOptions` plus ``grid_size``: points per exponent axis of the grid."""

    grid_size: int = 48


def predict(params: Mapping[str, float], N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Loss predicted by Kaplan's joint law."""
    N = np.asarray(N, float)
    D = np.asarray(D, float)
    an, ad = params["alpha_N"], params["alpha_D"]
    with np.errstate(over="ignore"):  # a scale that ran off (N_c ~ 1e55) overflows to inf, which callers reject
        return ((params["N_c"] / N) ** (np.divide(an, ad)) + params["D_c"] / D) ** ad


def log_model(theta: np.ndarray, lN: np.ndarray, lD: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log L_hat = alpha_D * logaddexp(p (log N_c - log N), log D_c - log D)`` and its Jacobian."""
    theta = np.atleast_2d(theta)
    lnc, ldc, an, ad = (theta[:, i : i + 1] for i in range(4))
    p = an / ad
    gap = lnc - lN
    u1 = p * gap
    u2 = ldc - lD
    s = np.logaddexp(u1, u2)
    q1 = np.exp(u1 - s)
    q2 = np.exp(u2 - s)
    m = ad * s
    J = np.stack([q1 * an, ad * q2, q1 * gap, s - q1 * p * gap], axis=1)
    return m, J


def make_problem(N: np.ndarray, D: np.ndarray, L: np.ndarray, options: FitOptions | None = None) -> Problem:
    """Validate the runs and describe the fit as a :class:`~laws.optimize.Problem`.

    The exponents are bounded away from zero by default: ``alpha_D`` divides
    in the model and the grid search takes powers of the bounds.
    """
    L = positive_array("loss", L)
    N = positive_array("params (N)", N, L.size)
    D = positive_array("tokens (D)", D, L.size)
    return build_problem(
        "kaplan", SPACE, log_model,
        loss=L, runs={"lN": np.log(N), "lD": np.log(D)}, options=options or KaplanOptions(),
        default_bounds={"alpha_N": (1e-4, None), "alpha_D": (1e-4, None)},
    )


def _grid(problem: Problem, j: int, size: int) -> np.ndarray:
    if not problem.free[j]:
        return np.array([problem.lower[j]])
    lo = max(problem.lower[j], EXPONENT_RANGE[0])
    hi = min(problem.upper[j], EXPONENT_RANGE[1])
    if hi <= lo:
        lo, hi = problem.lower[j], problem.upper[j]
    return np.geomspace(lo, hi, size)


def varpro_starts(problem: Problem, grid_size: int = 48, n_starts: int = 4) -> np.ndarray:
    """Starts from the profile over ``(alpha_N, alpha_D)``.

    Everything is scaled to ``(0, 1]`` before powers are taken
    (``L/L_max``, ``N/N_min``, ``D/D_min``) so that ``L**(1/alpha_D)`` cannot
    overflow for small ``alpha_D``; the scale factors return in the logs.
    """
    lN, lD = problem.extras["lN"], problem.extras["lD"]
    fixed_theta = problem.extras["fixed_theta"]
    L = problem.loss
    an = _grid(problem, 2, grid_size)
    ad = _grid(problem, 3, grid_size)
    lL = np.log(L)
    lLmax, lN0, lD0 = lL.max(), lN.min(), lD.min()
    P = an[:, None] / ad[None, :]  # (na, nd)
    x1 = np.exp(-P[..., None] * (lN - lN0))  # (na, nd, n)
    x2 = np.exp(-(lD - lD0))  # (n,)
    y = np.exp((lL - lLmax)[None, :] / ad[:, None])  # (nd, n)
    # weights that make the profile's least squares in y = L**(1/alpha_D)
    # approximate the objective's residuals: d log L = alpha_D dy / y
    w = problem.weights * (ad[:, None] / y) ** 2
    if not problem.objective.log_space:
        w = w * L**2
    gram = np.empty(P.shape + (2, 2))
    rhs = np.empty(P.shape + (2,))
    gram[..., 0, 0] = np.einsum("adn,dn->ad", x1 * x1, w)
    gram[..., 0, 1] = gram[..., 1, 0] = np.einsum("adn,dn->ad", x1, w * x2)
    gram[..., 1, 1] = (w * x2 * x2).sum(-1)[None, :]
    rhs[..., 0] = np.einsum("adn,dn->ad", x1, w * y)
    rhs[..., 1] = (w * x2 * y).sum(-1)[None, :]
    yy = np.broadcast_to((w * y * y).sum(-1)[None, :], P.shape)
    coef, rss = nnls_gram(gram, rhs, yy)
    starts = []
    tiny = 1e-300
    for i, j in local_minima(rss, n_starts):
        p = P[i, j]
        c1 = max(coef[i, j, 0], tiny)
        c2 = max(coef[i, j, 1], tiny)
        # undo the scalings:  L**(1/ad) = c1 e^{lLmax/ad} e^{p lN0} N^-p + c2 e^{lLmax/ad} e^{lD0} / D
        log_c1 = np.log(c1) + lLmax / ad[j] + p * lN0
        log_c2 = np.log(c2) + lLmax / ad[j] + lD0
        th = np.array([log_c1 / p, log_c2, an[i], ad[j]])
        th = np.where(problem.free, th, fixed_theta)
        starts.append(problem.clip(th))
    return np.array(starts)


def fit(N: np.ndarray, D: np.ndarray, L: np.ndarray, options: KaplanOptions | None = None) -> FitResult:
    """Fit Kaplan's joint law (options as :func:`laws.chinchilla.fit`, a 48 x 48 grid by default)."""
    started = time.perf_counter()
    options = options or KaplanOptions()
    problem = make_problem(N, D, L, options)
    if options.init is not None:
        starts = problem.clip(SPACE.to_theta({**dict(options.init), **dict(options.fixed or {})}))[None]
    else:
        starts = varpro_starts(problem, options.grid_size, options.n_starts)
    theta, f, conv, msg, details = polish(problem, starts)
    return fit_result(problem, theta, f, conv, msg, started, extras=details)


class Kaplan(Law):
    """Kaplan et al. 2020's joint law; its allocation is found numerically."""

    name = "kaplan"
    description = "Kaplan et al. 2020: L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
    parameters = SPACE
    required_columns = ("params", "tokens", "loss")
    options_type = KaplanOptions
    arrays = ArrayFunctions(fit, predict, make_problem)
    allocates = True
    #: Kaplan et al. found alpha_N = 0.076, alpha_D = 0.095, N_c = 8.8e13, D_c = 5.4e13; a scale beyond
    #: 1e22 (more parameters or tokens than any run could have) is a fit running off, not a finding
    plausible = {"alpha_N": (0.0, 2.0), "alpha_D": (0.0, 2.0), "N_c": (1e3, 1e22), "D_c": (1e3, 1e22)}
    gated_intervals = ("alpha_N", "alpha_D", "N_c", "D_c")

    def _optimum(self, params: Mapping[str, Any], C: np.ndarray, k: float, unique_tokens: Any) -> tuple[Any, Any, Any]:
        return allocation.numeric_optimum(predict, params, C, k)

    def exponents(self, params: Mapping[str, Any]) -> tuple[Any, Any]:
        return allocation.allocation_exponents(params["alpha_N"], params["alpha_D"])


KAPLAN = Kaplan()
