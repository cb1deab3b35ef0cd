"""Muennighoff et al. (2023) data-constrained scaling law.

Repeated tokens and excess parameters are worth less than fresh ones.  With
``U_D`` unique tokens seen ``D / U_D`` times, and ``U_N`` the compute-optimal
model size for ``U_D`` tokens:

    R_D = D / U_D - 1,                       D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*))
    U_N = min(N, N_opt(U_D)),  R_N = N / U_N - 1,  N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*))
    L   = E + A / N'**alpha + B / D'**beta

``N_opt(U_D) = (U_D G)**(beta/alpha) G`` with ``G = (alpha A / (beta B))**(1/(alpha+beta))``
is the size for which ``U_D`` tokens are the Chinchilla-optimal data budget
(the ``D_to_N`` function of the authors' README; it is what reproduces their
worked example ``L(6.34e9, 242e9, 25e9) = 2.2256``).  ``U_D`` is taken as
``min(U, D)``: a run cannot see more unique tokens than it trains on.

Fitting follows the paper's logic in three stages so that each search is
small and well posed: (1) the Chinchilla terms from runs with neither repeated
data nor excess parameters (iterated, because "excess" depends on the fit);
(2) ``(R_D*, R_N*)`` on a log grid with the base law fixed; (3) all seven
parameters polished together.  The Jacobian is by central differences: the
``min`` makes the analytic one piecewise and the law is cheap to evaluate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from laws import allocation, chinchilla
from laws.errors import FitError
from laws.law import ArrayFunctions, Law
from laws.objectives import rho
from laws.optimize import Problem, build_problem, fit_result, polish
from laws.options import FitOptions
from laws.parameters import ParameterSpace
from laws.runs import positive_array
from laws.types import FitResult
from laws.varpro import local_minima

__all__ = [
    "PARAM_NAMES", "predict", "optimal_params_for_tokens", "make_problem", "fit", "DataConstrained", "DATA_CONSTRAINED",
]

PARAM_NAMES: tuple[str, ...] = ("E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star")
LOG_PARAMS = frozenset({"E", "A", "B", "R_D_star", "R_N_star"})
SPACE = ParameterSpace(PARAM_NAMES, LOG_PARAMS)
#: Muennighoff et al.'s C4 fit; used only when the runs cannot identify R*.
PUBLISHED_R_STAR = {"R_D_star": 15.387756, "R_N_star": 5.309743}


def optimal_params_for_tokens(params: Mapping[str, float], tokens: np.ndarray) -> np.ndarray:
    """Model size for which ``tokens`` is the Chinchilla-optimal data budget."""
    A, B, al, be = params["A"], params["B"], params["alpha"], params["beta"]
    G = (al * A / (be * B)) ** (1.0 / (al + be))
    return (np.asarray(tokens, float) * G) ** (be / al) * G


def predict(
    params: Mapping[str, float], N: np.ndarray, D: np.ndarray, U: np.ndarray
) -> np.ndarray:
    """Loss for ``N`` parameters trained on ``D`` tokens drawn from ``U`` unique ones."""
    N = np.asarray(N, float)
    D = np.asarray(D, float)
    UD = np.minimum(np.asarray(U, float), D)
    rd, rn = params["R_D_star"], params["R_N_star"]
    RD = np.maximum(D / UD - 1.0, 0.0)
    UN = np.minimum(N, optimal_params_for_tokens(params, UD))
    RN = np.maximum(N / UN - 1.0, 0.0)
    Np = UN + UN * rn * -np.expm1(-RN / rn)
    Dp = UD + UD * rd * -np.expm1(-RD / rd)
    return params["E"] + params["A"] * Np ** -params["alpha"] + params["B"] * Dp ** -params["beta"]


def _log_predict(theta: np.ndarray, N: np.ndarray, D: np.ndarray, U: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        nat = SPACE.to_natural(np.atleast_2d(theta))
        params = {n: nat[:, i : i + 1] for i, n in enumerate(PARAM_NAMES)}
        return np.log(predict(params, N, D, U))


def log_model(
    theta: np.ndarray, N: np.ndarray, D: np.ndarray, U: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``log L_hat`` and a central-difference Jacobian, for a batch of ``theta``."""
    theta = np.atleast_2d(theta)
    B, p = theta.shape
    h = 1e-6 * (1.0 + np.abs(theta))  # (B, p)
    pert = np.repeat(theta[:, None, :], 2 * p, axis=1)  # (B, 2p, p)
    ar = np.arange(p)
    pert[:, ar, ar] += h
    pert[:, p + ar, ar] -= h
    allm = _log_predict(np.concatenate([theta, pert.reshape(-1, p)]), N, D, U)
    m = allm[:B]
    mp = allm[B:].reshape(B, 2 * p, -1)
    J = (mp[:, :p] - mp[:, p:]) / (2 * h[:, :, None])
    return m, J


def make_problem(
    N: np.ndarray, D: np.ndarray, U: np.ndarray, L: np.ndarray, options: FitOptions | None = None
) -> Problem:
    """Validate the runs and describe the fit as a :class:`~laws.optimize.Problem`.

    ``extras`` holds the used runs' ``N``, ``D``, ``U`` (the staged search in
    :func:`fit` works on them) and ``fixed_theta``.
    """
    L = positive_array("loss", L)
    N = positive_array("params (N)", N, L.size)
    D = positive_array("tokens (D)", D, L.size)
    U = positive_array("unique_tokens (U)", U, L.size)
    return build_problem(
        "data_constrained", SPACE, log_model, loss=L, runs={"N": N, "D": D, "U": U}, options=options or FitOptions()
    )


def fit(N: np.ndarray, D: np.ndarray, U: np.ndarray, L: np.ndarray, options: FitOptions | None = None) -> FitResult:
    """Fit the data-constrained law (options as :func:`laws.chinchilla.fit`, without a grid size).

    Needs single-epoch runs without excess parameters to anchor the base law;
    if no run repeats data (or none has excess parameters) the corresponding
    ``R*`` is not identifiable and is held at the published C4 value (the
    message says so).

    Raises:
        laws.errors.FitError: fewer than 5 single-epoch runs, or another
            reason the runs cannot support the fit.
    """
    started = time.perf_counter()
    options = options or FitOptions()
    fixed = dict(options.fixed or {})
    problem = make_problem(N, D, U, L, options)
    Nu, Du, Uu = problem.extras["N"], problem.extras["D"], problem.extras["U"]
    notes: list[str] = []
    if options.init is not None:
        starts = problem.clip(SPACE.to_theta({**dict(options.init), **fixed}))[None]
    else:
        base_names = chinchilla.PARAM_NAMES
        UD = np.minimum(Uu, Du)
        single = Du <= UD * (1 + 1e-9)
        mask = single
        if mask.sum() < 5:
            raise FitError(
                "the data-constrained law needs at least 5 single-epoch runs "
                f"(tokens <= unique_tokens) to anchor E, A, B, alpha, beta; got {int(mask.sum())}"
            )

        def base_fit(mask: np.ndarray) -> FitResult:
            """The Chinchilla terms alone, on the runs in ``mask``."""
            base_options = chinchilla.ChinchillaOptions(
                objective=options.objective, huber_delta=options.huber_delta, weights=problem.weights[mask],
                fixed={k: v for k, v in fixed.items() if k in base_names},
                bounds={k: v for k, v in dict(options.bounds or {}).items() if k in base_names},
            )
            return chinchilla.fit(Nu[mask], Du[mask], problem.loss[mask], base_options)

        base = base_fit(mask)
        for _ in range(5):  # drop runs with excess parameters under the current fit
            clean = single & (Nu <= optimal_params_for_tokens(base.params, UD) * (1 + 1e-9))
            if clean.sum() < 5 or np.array_equal(clean, mask):
                break
            mask = clean
            base = base_fit(mask)
        has_repeat = bool((Du > UD * (1 + 1e-9)).any())
        has_excess = bool((Nu > optimal_params_for_tokens(base.params, UD) * (1 + 1e-9)).any())
        for name, ok in (("R_D_star", has_repeat), ("R_N_star", has_excess)):
            if not ok and name not in fixed:
                fixed[name] = PUBLISHED_R_STAR[name]
                notes.append(f"{name} not identifiable from these runs; held at the published C4 value")
        if notes:
            problem = make_problem(N, D, U, L, replace(options, fixed=fixed))
        # stage 2: (R_D*, R_N*) on a log grid, base law fixed
        grid = np.log(np.geomspace(0.2, 500.0, 41))
        RD, RN = np.meshgrid(grid, grid, indexing="ij")
        th0 = SPACE.to_theta({**base.params, "R_D_star": 1.0, "R_N_star": 1.0})
        cand = np.tile(th0, (RD.size, 1))
        cand[:, 5], cand[:, 6] = RD.ravel(), RN.ravel()
        cand = np.where(problem.free, cand, problem.extras["fixed_theta"])
        m = _log_predict(cand, Nu, Du, Uu)
        r = (np.log(problem.loss) - m) if problem.objective.log_space else (problem.loss - np.exp(m))
        vals = (problem.weights * rho(r, problem.delta, problem.objective.robust)).sum(-1)
        vals = np.where(np.isfinite(vals), vals, np.inf).reshape(RD.shape)
        picks = local_minima(vals, options.n_starts)
        starts = problem.clip(np.array([cand[i * grid.size + j] for i, j in picks]))
    theta, f, conv, msg, details = polish(problem, starts)
    if notes:
        msg = msg + "; " + "; ".join(notes)
    return fit_result(problem, theta, f, conv, msg, started, extras=details)


class DataConstrained(Law):
    """Muennighoff et al. 2023: the Chinchilla law with repeated data and excess parameters worth less."""

    name = "data_constrained"
    description = (
        "Muennighoff et al. 2023: Chinchilla law with decaying value of repeated data and excess parameters"
    )
    parameters = SPACE
    required_columns = ("params", "tokens", "unique_tokens", "loss")
    options_type = FitOptions
    arrays = ArrayFunctions(fit, predict, make_problem)
    allocates = True
    plausible = {"alpha": (0.0, 2.0), "beta": (0.0, 2.0)}
    gated_intervals = ("alpha", "beta")

    def _optimum(self, params: Mapping[str, Any], C: np.ndarray, k: float, unique_tokens: Any) -> tuple[Any, Any, Any]:
        """Chinchilla's closed form with unlimited data; else numerically, repeating the ``unique_tokens``."""
        if unique_tokens is None:
            return allocation.chinchilla_optimum(params, C, k)
        if np.ndim(unique_tokens) != 0:
            raise ValueError("unique_tokens must be a scalar (one data budget per call)")
        U = float(unique_tokens)

        def loss(p: Mapping[str, Any], N: np.ndarray, D: np.ndarray) -> np.ndarray:
            return predict(p, N, D, np.minimum(U, D))

        return allocation.numeric_optimum(loss, params, C, k)

    def exponents(self, params: Mapping[str, Any]) -> tuple[Any, Any]:
        """The exponents of the unconstrained-data limit (Chinchilla's)."""
        return allocation.allocation_exponents(params["alpha"], params["beta"])


DATA_CONSTRAINED = DataConstrained()
