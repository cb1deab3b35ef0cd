"""Chinchilla Approach 2: IsoFLOP parabolas.

For each compute budget, runs of different sizes trace an "IsoFLOP" curve of
loss against ``log N``; a parabola fitted to it locates the loss-minimising
size ``N_opt(C)`` (and, fitted against ``log D``, ``D_opt(C)``).  Power laws
``N_opt = k_n C**a`` and ``D_opt = k_d C**b`` are then fitted across budgets by
least squares in log-log space.

Why keep it next to Approach 3: it needs no parametric loss surface, which
makes it a useful cross-check -- but a parabola is only exact for a surface
that is symmetric in ``log N`` around its minimum.  When ``alpha != beta`` the
IsoFLOP curve is skewed, the parabola's vertex is displaced from the true
minimum by an amount that depends on where the sampled sizes sit relative to
the optimum, and ``a`` is biased (Czech et al. 2026, "Problems with
Chinchilla Approach 2").  The tests show this on synthetic data.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from laws import allocation
from laws.errors import FitError
from laws.law import ArrayFunctions, Data, Law
from laws.options import Options
from laws.parameters import ParameterSpace
from laws.runs import positive_array, select_runs
from laws.types import FitResult

__all__ = ["PARAM_NAMES", "IsoflopOptions", "budget_minima", "predict", "fit", "Isoflop", "ISOFLOP"]

PARAM_NAMES: tuple[str, ...] = ("a", "k_n", "b", "k_d")


@dataclass(frozen=True, eq=False)
class IsoflopOptions(Options):
    """Which runs count (:class:`~laws.options.Options`) plus ``min_points``:
    the distinct sizes a budget needs for its parabola.  Approach 2 minimises
    no robust objective, so it takes no objective or Huber threshold."""

    min_points: int = 3


def predict(params: Mapping[str, float], compute: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N_opt, D_opt)`` at the given budgets."""
    C = np.asarray(compute, float)
    return params["k_n"] * C ** params["a"], params["k_d"] * C ** params["b"]


def _parabola(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """Weighted quadratic fit; returns ``(vertex, value at vertex, curvature, fitted)``."""
    xc = (w * x).sum() / w.sum()
    X = np.column_stack([np.ones_like(x), x - xc, (x - xc) ** 2])
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
    c0, c1, c2 = coef
    if not c2 > 0:
        return np.nan, np.nan, float(c2), X @ coef
    return xc - c1 / (2 * c2), c0 - c1 * c1 / (4 * c2), float(c2), X @ coef


def budget_minima(
    N: np.ndarray,
    D: np.ndarray,
    L: np.ndarray,
    C: np.ndarray,
    weights: np.ndarray | None = None,
    min_points: int = 3,
) -> dict[str, np.ndarray]:
    """Per-budget parabola minima.

    Budgets are grouped by value (to 6 significant digits in log), so budgets
    written as ``1e19`` and ``1.0000001e19`` are the same budget.

    Returns:
        Arrays over budgets: ``budget``, ``n_opt``, ``d_opt``, ``loss_min``,
        ``curvature`` (of loss in ln N), ``n_points``, ``valid`` (a minimum
        exists), ``inside`` (the minimum lies within the sampled sizes), and
        ``fitted`` (per-run parabola values, NaN for runs of invalid budgets).
    """
    w = np.ones_like(L) if weights is None else np.asarray(weights, float)
    key = np.round(np.log(C), 6)
    budgets = np.unique(key)
    rows = []
    fitted = np.full(L.shape, np.nan)
    for b in budgets:
        sel = (key == b) & (w > 0)
        xN, xD = np.log(N[sel]), np.log(D[sel])
        n_distinct = np.unique(np.round(xN, 9)).size
        budget = float(np.exp(np.mean(np.log(C[key == b]))))
        if n_distinct < min_points:
            rows.append((budget, np.nan, np.nan, np.nan, np.nan, sel.sum(), False, False))
            continue
        vn, lmin, curv, fit_n = _parabola(xN, L[sel], w[sel])
        vd, _, _, _ = _parabola(xD, L[sel], w[sel])
        valid = np.isfinite(vn) and np.isfinite(vd)
        inside = valid and xN.min() <= vn <= xN.max()
        if valid:
            fitted[sel] = fit_n
        rows.append((budget, np.exp(vn), np.exp(vd), lmin, curv, sel.sum(), valid, inside))
    cols = list(zip(*rows)) if rows else [[]] * 8
    names = ("budget", "n_opt", "d_opt", "loss_min", "curvature", "n_points", "valid", "inside")
    out = {n: np.asarray(c) for n, c in zip(names, cols)}
    out["valid"] = out["valid"].astype(bool)
    out["inside"] = out["inside"].astype(bool)
    out["fitted"] = fitted
    return out


def fit(N: np.ndarray, D: np.ndarray, L: np.ndarray, C: np.ndarray, options: IsoflopOptions | None = None) -> FitResult:
    """Approach 2: per-budget parabolas, then ``N_opt = k_n C**a``, ``D_opt = k_d C**b``.

    Args:
        N, D, L: parameters, tokens and loss per run.
        C: the run's compute budget (runs of one IsoFLOP curve share it).
        options: see :class:`IsoflopOptions` (the bootstrap passes resample
            counts as ``weights``).

    Returns:
        A :class:`~laws.types.FitResult` whose ``objective`` is the residual
        sum of squares (halved) of the two log-log regressions, and whose
        ``extras["budgets"]`` is the per-budget table.

    Raises:
        laws.errors.FitError: fewer than 2 budgets give a parabola minimum.
    """
    options = options or IsoflopOptions()
    weights, min_points = options.weights, options.min_points
    started = time.perf_counter()
    L = positive_array("loss", L)
    N = positive_array("params (N)", N, L.size)
    D = positive_array("tokens (D)", D, L.size)
    C = positive_array("budget (C)", C, L.size)
    used, _ = select_runs(L, weights, options.exclude_top_loss, min_runs=2 * min_points)
    w = np.where(used, 1.0 if weights is None else np.asarray(weights, float), 0.0)
    table = budget_minima(N, D, L, C, w, min_points)
    ok = table["valid"]
    if ok.sum() < 2:
        raise FitError(
            f"Approach 2 needs at least 2 budgets with a parabola minimum; got {int(ok.sum())} "
            f"of {ok.size} (each budget needs >= {min_points} distinct sizes and upward curvature)"
        )
    lC = np.log(table["budget"][ok])
    a, lkn = np.polyfit(lC, np.log(table["n_opt"][ok]), 1)
    b, lkd = np.polyfit(lC, np.log(table["d_opt"][ok]), 1)
    rn = np.log(table["n_opt"][ok]) - (lkn + a * lC)
    rd = np.log(table["d_opt"][ok]) - (lkd + b * lC)
    run_ok = used & np.isfinite(table["fitted"])
    res_log = np.log(L[run_ok]) - np.log(np.maximum(table["fitted"][run_ok], 1e-300))
    ww = w[run_ok]
    message = f"{int(ok.sum())} of {ok.size} budgets gave a parabola minimum"
    if (ok & ~table["inside"]).any():
        message += f"; {int((ok & ~table['inside']).sum())} minima lie outside the sampled sizes"
    return FitResult(
        law="isoflop",
        params={"a": float(a), "k_n": float(np.exp(lkn)), "b": float(b), "k_d": float(np.exp(lkd))},
        objective=float(0.5 * (rn @ rn + rd @ rd)),
        converged=True,
        message=message,
        n_runs=int(run_ok.sum()),
        seconds=time.perf_counter() - started,
        used=run_ok,
        rmse_log=float(np.sqrt((ww * res_log**2).sum() / ww.sum())),
        objective_name="isoflop_parabola",
        residuals_log=res_log,
        extras={"budgets": table},
    )


class Isoflop(Law):
    """Hoffmann et al. 2022 Approach 2: no loss surface, an independent estimate of the allocation exponents."""

    name = "isoflop"
    description = "Hoffmann et al. 2022 Approach 2: IsoFLOP parabolas, N_opt = k_n C^a, D_opt = k_d C^b"
    parameters = ParameterSpace(PARAM_NAMES, frozenset({"k_n", "k_d"}))
    required_columns = ("params", "tokens", "loss", "budget")
    options_type = IsoflopOptions
    arrays = ArrayFunctions(fit, predict)
    predicts = "n_opt"
    allocates = True
    cross_checks_exponent = True
    approach = "Approach 2"
    plausible = {"a": (0.0, 1.0), "b": (0.0, 1.0)}
    gated_intervals = ("a",)

    def predict(self, params: Mapping[str, Any], data: Data) -> np.ndarray:
        """``N_opt`` at the runs' budgets."""
        return predict(params, *self.columns(data, ("budget",)))[0]

    def _optimum(self, params: Mapping[str, Any], C: np.ndarray, k: float, unique_tokens: Any) -> tuple[Any, Any, Any]:
        """The fitted power laws; Approach 2 has no loss surface, so the loss is NaN."""
        n, d = predict(params, C)
        return n, d, np.full(np.broadcast(n, d).shape, np.nan)

    def exponents(self, params: Mapping[str, Any]) -> tuple[Any, Any]:
        return allocation.as_scalar(params["a"]), allocation.as_scalar(params["b"])


ISOFLOP = Isoflop()
