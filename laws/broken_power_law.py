"""Smoothly broken power law (Caballero et al. 2022, "Broken Neural Scaling Laws").

For a one-dimensional series (loss against compute, typically):

    y = a + b x**(-c0) * prod_i (1 + (x/d_i)**(1/f_i))**(-c_i f_i)

Each break ``i`` at ``x = d_i`` changes the log-log slope from ``-(c0 + ...)``
by ``-c_i``, over a width set by the sharpness ``f_i``.  One break is the
default: with few points more breaks are rarely identifiable.

Fitting: for fixed ``(c0, c_i, d_i, f_i)`` the law is linear in ``(a, b)``,
so a grid over the non-linear parameters with non-negative least squares on
``(a, b)`` (all grid points at once) supplies the starts; the polish works in
``theta = (log a, log b, c0, c_1.., log d_1.., log f_1..)`` with the
analytic Jacobian.  Extra breaks are added one at a time: break ``k`` is
searched on a grid with the earlier ones held at their fitted values, then
everything is polished together.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from laws.law import ArrayFunctions, Law
from laws.optimize import Problem, build_problem, fit_result, polish
from laws.options import FitOptions, Options
from laws.parameters import ParameterSpace
from laws.runs import positive_array
from laws.types import FitResult
from laws.varpro import local_minima, nnls_gram

__all__ = [
    "param_names", "PARAM_NAMES", "BrokenPowerLawOptions", "space", "predict", "log_model", "make_problem", "fit",
    "BrokenPowerLaw", "BROKEN_POWER_LAW",
]


@dataclass(frozen=True, eq=False)
class BrokenPowerLawOptions(FitOptions):
    """:class:`~laws.options.FitOptions` plus ``n_breaks``; six basins are polished by default."""

    n_breaks: int = 1
    n_starts: int = 6


def param_names(n_breaks: int = 1) -> tuple[str, ...]:
    """Parameter names for ``n_breaks`` breaks: a, b, c0, c1.., d1.., f1..."""
    k = range(1, n_breaks + 1)
    return ("a", "b", "c0", *(f"c{i}" for i in k), *(f"d{i}" for i in k), *(f"f{i}" for i in k))


PARAM_NAMES: tuple[str, ...] = param_names(1)


def _n_breaks(params: Mapping[str, float]) -> int:
    k = 0
    while f"d{k + 1}" in params:
        k += 1
    return k


def predict(params: Mapping[str, float], x: np.ndarray) -> np.ndarray:
    """Value of the smoothly broken power law at ``x``.

    Evaluated in logs (``(1 + (x/d)**(1/f))**(-c f) = exp(-c f softplus(log(x/d)/f))``)
    so that sharp breaks far from ``x`` neither overflow nor lose precision.
    """
    lx = np.log(np.asarray(x, float))
    log_y = np.log(params["b"]) - params["c0"] * lx
    for i in range(1, _n_breaks(params) + 1):
        c, ld, f = params[f"c{i}"], np.log(params[f"d{i}"]), params[f"f{i}"]
        log_y = log_y - c * f * np.logaddexp(0.0, (lx - ld) / f)
    return params["a"] + np.exp(log_y)


def _log_params(n_breaks: int) -> frozenset[str]:
    k = range(1, n_breaks + 1)
    return frozenset({"a", "b", *(f"d{i}" for i in k), *(f"f{i}" for i in k)})


def space(n_breaks: int = 1) -> ParameterSpace:
    """The parameters of the law with ``n_breaks`` breaks (a, b, d_i and f_i are fitted as logs)."""
    return ParameterSpace(param_names(n_breaks), _log_params(n_breaks))


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def log_model(theta: np.ndarray, lx: np.ndarray, n_breaks: int) -> tuple[np.ndarray, np.ndarray]:
    """``log y_hat = logaddexp(log a, log b - c0 log x - sum c_i f_i softplus((log x - log d_i)/f_i))``."""
    with np.errstate(all="ignore"):  # extreme trial steps: rejected by the optimiser
        return _log_model(np.atleast_2d(theta), lx, n_breaks)


def _log_model(theta: np.ndarray, lx: np.ndarray, n_breaks: int) -> tuple[np.ndarray, np.ndarray]:
    K = n_breaks
    la, lb, c0 = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
    c = theta[:, 3 : 3 + K]
    ld = theta[:, 3 + K : 3 + 2 * K]
    f = np.exp(theta[:, 3 + 2 * K : 3 + 3 * K])
    z = (lx[None, None, :] - ld[:, :, None]) / f[:, :, None]  # (B, K, n)
    sp = _softplus(z)
    sg = _sigmoid(z)
    tb = lb - c0 * lx - (c[:, :, None] * f[:, :, None] * sp).sum(axis=1)
    ta = np.broadcast_to(la, tb.shape)
    m = np.logaddexp(ta, tb)
    qa = np.exp(ta - m)
    qb = np.exp(tb - m)
    cols = [qa, qb, -qb * lx]
    cols += [-qb * f[:, i, None] * sp[:, i] for i in range(K)]
    cols += [qb * c[:, i, None] * sg[:, i] for i in range(K)]
    cols += [-qb * c[:, i, None] * f[:, i, None] * (sp[:, i] - z[:, i] * sg[:, i]) for i in range(K)]
    return m, np.stack(cols, axis=1)


def make_problem(x: np.ndarray, y: np.ndarray, options: BrokenPowerLawOptions | None = None) -> Problem:
    """Validate the series and describe the fit as a :class:`~laws.optimize.Problem`."""
    options = options or BrokenPowerLawOptions()
    n_breaks = options.n_breaks
    y = positive_array("loss (y)", y)
    x = positive_array("x (compute)", x, y.size)
    if n_breaks < 0:
        raise ValueError("n_breaks must be >= 0")
    return build_problem(
        "broken_power_law",
        space(n_breaks),
        lambda theta, lx: log_model(theta, lx, n_breaks),
        loss=y,
        runs={"lx": np.log(x)},
        options=options,
        # sharpness outside [0.01, 100] is indistinguishable from a kink / no break
        # on any realistic series; bounding it keeps resamples from running off
        default_bounds={f"f{i}": (1e-2, 1e2) for i in range(1, n_breaks + 1)},
        extras={"n_breaks": n_breaks},
    )


def _profile(
    problem: Problem, log_g: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NNLS of ``y = a + b g`` for every row of ``log g`` (shape (..., n)).

    Returns ``(log a, log b, rss)`` with ``b`` in the units of the unscaled ``g``.
    """
    y = problem.loss
    w = problem.weights / y**2 if problem.objective.log_space else problem.weights
    shift = log_g.max(axis=-1, keepdims=True)
    g = np.exp(log_g - shift)
    gram = np.empty(log_g.shape[:-1] + (2, 2))
    gram[..., 0, 0] = w.sum()
    gram[..., 0, 1] = gram[..., 1, 0] = g @ w
    gram[..., 1, 1] = (g * g) @ w
    rhs = np.stack([np.full(log_g.shape[:-1], (w * y).sum()), g @ (w * y)], axis=-1)
    coef, rss = nnls_gram(gram, rhs, np.full(log_g.shape[:-1], (w * y * y).sum()))
    floor = 1e-12 * np.median(y)
    la = np.log(np.maximum(coef[..., 0], floor))
    lb = np.log(np.maximum(coef[..., 1], floor)) - shift[..., 0]
    return la, lb, rss


def _starts(problem: Problem, base: np.ndarray | None, n_starts: int) -> np.ndarray:
    """Grid starts for the last break, earlier breaks held at ``base``."""
    lx = problem.extras["lx"]
    K = problem.extras["n_breaks"]
    if K == 0:
        c0 = np.linspace(0.0, 2.0, 201)
        la, lb, rss = _profile(problem, -c0[:, None] * lx[None, :])
        return np.array([[la[i], lb[i], c0[i]] for (i,) in local_minima(rss, n_starts)])
    q = np.quantile(lx, [0.02, 0.98])
    ld = np.linspace(q[0], q[1], 14)
    lf = np.log(np.array([0.1, 0.3, 1.0, 3.0]))
    ck = np.linspace(-1.0, 2.0, 16)
    c0 = np.linspace(0.0, 1.5, 16)
    C0, CK, LD, LF = np.meshgrid(c0, ck, ld, lf, indexing="ij")
    fk = np.exp(LF)[..., None]
    log_g = -C0[..., None] * lx - CK[..., None] * fk * _softplus((lx - LD[..., None]) / fk)
    if base is not None:  # earlier breaks, fixed
        kb = K - 1
        for i in range(kb):
            c, d, f = base[3 + i], base[3 + kb + i], np.exp(base[3 + 2 * kb + i])
            log_g = log_g - c * f * _softplus((lx - d) / f)
    la, lb, rss = _profile(problem, log_g)
    starts = []
    for idx in local_minima(rss, n_starts):
        if base is None:
            th = [la[idx], lb[idx], C0[idx], CK[idx], LD[idx], LF[idx]]
        else:
            kb = K - 1
            th = [la[idx], lb[idx], C0[idx], *base[3 : 3 + kb], CK[idx],
                  *base[3 + kb : 3 + 2 * kb], LD[idx], *base[3 + 2 * kb : 3 + 3 * kb], LF[idx]]
        starts.append(th)
    return np.array(starts, float)


def fit(x: np.ndarray, y: np.ndarray, options: BrokenPowerLawOptions | None = None) -> FitResult:
    """Fit a smoothly broken power law with ``options.n_breaks`` breaks to ``y(x)``.

    Options as :func:`laws.chinchilla.fit`; ``fixed``/``bounds`` are applied to
    the polish (the grid searches the free shape parameters).
    """
    started = time.perf_counter()
    options = options or BrokenPowerLawOptions()
    n_breaks = options.n_breaks
    problem = make_problem(x, y, options)
    fixed_theta = problem.extras["fixed_theta"]
    if options.init is not None:
        starts = problem.clip(space(n_breaks).to_theta({**dict(options.init), **dict(options.fixed or {})}))[None]
    elif n_breaks <= 1:
        starts = _starts(problem, None, options.n_starts)
    else:
        # grow one break at a time: fit k-1 breaks, search the k-th on a grid
        prev = fit(x, y, replace(options, n_breaks=n_breaks - 1, bounds=None, fixed=None))
        base = space(n_breaks - 1).to_theta(prev.params)
        starts = _starts(problem, base, options.n_starts)
    starts = np.where(problem.free, starts, fixed_theta)
    starts = problem.clip(starts)
    theta, f, conv, msg, details = polish(problem, starts)
    return fit_result(problem, theta, f, conv, msg, started, extras=details)


class BrokenPowerLaw(Law):
    """Caballero et al. 2022: loss against one variable (compute); it has no allocation rule.

    A refit does not fit it per family: a family's runs are not one series, and
    the law says nothing about how to split compute between N and D.
    """

    name = "broken_power_law"
    description = "Caballero et al. 2022: smoothly broken power law of loss in compute"
    parameters = space(1)
    required_columns = ("flops", "loss")
    options_type = BrokenPowerLawOptions
    arrays = ArrayFunctions(fit, predict, make_problem)
    fitted_per_family = False

    def space(self, options: Options | Mapping[str, Any] | None = None) -> ParameterSpace:
        return space(self.options(options).n_breaks)


BROKEN_POWER_LAW = BrokenPowerLaw()
