"""Chinchilla Approach 1: the lower envelope of loss against compute.

Hoffmann et al. (2022) read the compute-optimal model straight off the
training curves: at each compute ``C = 6 N D`` take the run (and point on its
curve) with the lowest loss over all runs; the sizes and token counts of that
lower envelope, regressed on ``C`` in log-log space, give
``N_opt(C) = k_n C**a`` and ``D_opt(C) = k_d C**b``.  No loss surface is
assumed, so it is an independent check on Approach 3's allocation (whose
``a = beta / (alpha + beta)`` comes from a fitted law).

As Hoffmann et al. did, each curve's loss is interpolated (linearly in
``log C``, between its points) onto one log-uniform compute grid, and at each
grid compute the curve with the lowest loss is the envelope point.  Comparing
curves at the *same* compute matters: picking the lowest-loss raw checkpoint
in a compute bin would favour whichever run happens to have a checkpoint near
the bin's upper edge.

Which points make a curve (``use``):

* ``"checkpoints"`` (Hoffmann et al.): every checkpoint of a run.  Right when
  a checkpoint's loss is what a run stopped there would reach: a constant or
  schedule-free learning rate, or checkpoints taken after a cooldown.
* ``"ends"``: per model size, the curve through the *final* points of its
  runs (several horizons per size).  A run trained to ``D_final`` with a
  cosine (or any decaying) schedule is *above* a run trained to exactly
  ``D_t`` at its intermediate checkpoints (its learning rate has not
  decayed), by an amount that depends on how far the run is from its end.
  That excess differs between sizes at the same compute and drags the
  envelope towards whichever size has a run ending nearby: on synthetic
  cosine curves with horizons a factor 2 apart it moves ``a`` by 0.02-0.04.
  Only final points are annealed, so for such runs the envelope is built
  from them.

The lowest loss at a compute is the optimum only if the optimum lies among
the sizes whose curves reach that compute.  At low compute only small models
have points (the large ones start above it) and at high compute only large
ones, so the winner there may be the smallest or largest size available
whether or not it is optimal.  A grid point is kept only when a smaller and a
larger model also reach it (``bracketed``): the minimum is interior.

Intervals come from a bootstrap over curves (:func:`laws.resample.cluster_counts`:
runs, or sizes for ``"ends"``), never over points: a resample keeps the
curves it drew, rebuilds the envelope and refits the regression, all
resamples at once.  Duplicated curves do not change a minimum, so a resample
is the envelope of the distinct curves drawn.
Because ``log N + log D = log C - log 6`` on every envelope point, the two
least-squares slopes add to one (``a + b = 1``) exactly.

:data:`APPROACH1` is the law in the catalogue (``"approach1"``): its data are
the points of every run's curve with a ``run`` column naming the run, its
parameters Approach 2's (``a, k_n, b, k_d``), and its bootstrap
(:func:`laws.bootstrap.bootstrap`) resamples curves through
:meth:`Approach1.refit_resamples`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from laws.errors import FitError
from laws.intervals import DEFAULT_LEVEL, percentile_interval
from laws.isoflop import ISOFLOP
from laws.law import ArrayFunctions, Data, Law
from laws.options import Options
from laws.parameters import ParameterSpace
from laws.resample import cluster_counts
from laws.runs import positive_array, select_runs
from laws.types import Allocation, FitResult

__all__ = [
    "EnvelopeSettings", "Envelope", "Approach1Result", "envelope", "fit", "Approach1Options", "Approach1", "APPROACH1",
]

PARAM_NAMES: tuple[str, ...] = ("a", "k_n", "b", "k_d")
MIN_ENVELOPE_POINTS = 3


@dataclass(frozen=True)
class EnvelopeSettings:
    """How the envelope is built (a family's settings may choose these).

    Attributes:
        use: "checkpoints" (each run's curve, Hoffmann et al.'s choice) or
            "ends" (per size, the curve through the final points of its runs;
            for decaying schedules, see the module docstring).
        grid_per_decade: log-uniform compute grid points per decade.
        bracketed: keep a grid point only if a smaller and a larger model also
            reach that compute (see the module docstring).
        flops_per_param_token: ``k`` in ``C = k N D``.
    """

    use: str = "checkpoints"
    grid_per_decade: float = 20.0
    bracketed: bool = True
    flops_per_param_token: float = 6.0

    def __post_init__(self) -> None:
        if self.use not in ("checkpoints", "ends"):
            raise ValueError(f"use must be 'checkpoints' or 'ends', got {self.use!r}")
        if not self.grid_per_decade > 0:
            raise ValueError(f"grid_per_decade must be > 0, got {self.grid_per_decade}")


@dataclass(frozen=True, eq=False)
class Envelope:
    """The lowest-loss run at each grid compute (bracketed grid points only, by default).

    Attributes:
        compute: grid FLOPs, ascending.
        params: parameters N of the winning run.
        tokens: tokens ``C / (k N)`` the winner has seen at that compute.
        loss: the winner's (interpolated) loss there.
        curve: the winner's curve: its run identifier, or its size for ``use="ends"``.
    """

    compute: np.ndarray
    params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    curve: np.ndarray


@dataclass(frozen=True, eq=False)
class Approach1Result:
    """Approach 1's allocation law and its bootstrap uncertainty.

    Attributes:
        a, k_n: ``N_opt(C) = k_n C**a``.
        b, k_d: ``D_opt(C) = k_d C**b``.
        intervals: percentile interval per parameter at ``level`` (by run).
        level: interval coverage.
        samples: ``(n_resamples, 4)`` bootstrap values of ``a, k_n, b, k_d``
            (NaN rows where a resample's envelope had too few points).
        envelope: the envelope the point estimate was fitted on.
        n_runs: distinct runs in the input.
        n_points: points (checkpoints) in the input.
        n_resamples: bootstrap resamples.
        seed: bootstrap seed.
        settings: how the envelope was built.
        seconds: wall-clock time.
    """

    a: float
    k_n: float
    b: float
    k_d: float
    intervals: dict[str, tuple[float, float]]
    level: float
    samples: np.ndarray
    envelope: Envelope
    n_runs: int
    n_points: int
    n_resamples: int
    seed: int
    settings: EnvelopeSettings
    seconds: float

    @property
    def params(self) -> dict[str, float]:
        """``{"a", "k_n", "b", "k_d"}``: the parameters of Approach 2's law, which this shares."""
        return {"a": self.a, "k_n": self.k_n, "b": self.b, "k_d": self.k_d}

    def allocate(self, compute: Any) -> Allocation:
        """``N_opt``, ``D_opt`` and tokens per parameter at ``compute`` FLOPs (scalar or array).

        The predicted loss is NaN: Approach 1 has no loss surface.
        """
        return _allocate(self.params, compute, self.settings.flops_per_param_token)

    def tokens_per_param_interval(self, compute: Any, level: float | None = None) -> tuple[Any, Any]:
        """Bootstrap interval of tokens per parameter at ``compute`` (scalar or array)."""
        C = np.asarray(compute, float)
        params = {name: self.samples[:, i : i + 1] for i, name in enumerate(PARAM_NAMES)}
        tpp = np.asarray(_allocate(params, C.ravel()[None, :], self.settings.flops_per_param_token).tokens_per_param, float)
        lo, hi = _percentiles(tpp, self.level if level is None else level)
        if C.ndim == 0:
            return float(lo[0]), float(hi[0])
        return lo.reshape(C.shape), hi.reshape(C.shape)


# -- what this module takes from the rest of laws ------------------------------------------
def _allocate(params: dict[str, Any], compute: Any, k: float) -> Allocation:
    """Allocation of the power laws ``N = k_n C**a``, ``D = k_d C**b`` (Approach 2's rule)."""
    return ISOFLOP.allocate(params, compute, flops_per_param_token=k)


def _percentiles(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = percentile_interval(values, level)
    return np.atleast_1d(lo), np.atleast_1d(hi)


def _inputs(N: Any, D: Any, L: Any, runs: Any) -> tuple[np.ndarray, ...]:
    L = positive_array("loss", L)
    N = positive_array("params (N)", N, L.size)
    D = positive_array("tokens (D)", D, L.size)
    r = np.asarray(runs)
    if r.shape != L.shape:
        raise ValueError(f"runs has {r.size} entries for {L.size} points")
    return N, D, L, r


# -- the envelope, for many resamples at once ---------------------------------------------
@dataclass(frozen=True, eq=False)
class _Curves:
    """Every run's loss interpolated on one log-uniform compute grid.

    Attributes:
        log_c: ``(G,)`` grid of ``log C``.
        loss: ``(R, G)`` loss of run ``r`` at grid compute (inf outside its curve).
        size: ``(R,)`` parameters of each curve.
        curve: ``(R,)`` curve identifiers (runs, or sizes for ``use="ends"``).
    """

    log_c: np.ndarray
    loss: np.ndarray
    size: np.ndarray
    curve: np.ndarray


def _curves(N: np.ndarray, D: np.ndarray, L: np.ndarray, r: np.ndarray, settings: EnvelopeSettings) -> _Curves:
    """Interpolate each curve's loss linearly in ``log C`` between its points, on a shared grid.

    A curve is a run's checkpoints (``use="checkpoints"``) or the final
    points of all runs of one size (``use="ends"``).
    """
    if settings.use == "ends":
        ids, code = np.unique(r, return_inverse=True)
        last = np.array([np.flatnonzero(code == j)[np.argmax(D[code == j])] for j in range(ids.size)])
        N, D, L, r = N[last], D[last], L[last], N[last]
    ids, code = np.unique(r, return_inverse=True)
    log_c = np.log(settings.flops_per_param_token * N * D)
    step = np.log(10.0) / settings.grid_per_decade
    grid = np.arange(np.floor(log_c.min() / step), np.ceil(log_c.max() / step) + 1) * step
    loss = np.full((ids.size, grid.size), np.inf)
    size = np.empty(ids.size)
    for j in range(ids.size):
        mine = np.flatnonzero(code == j)
        sizes = np.unique(N[mine])
        if sizes.size != 1:
            raise ValueError(f"run {ids[j]!r} has {sizes.size} different parameter counts; a run has one size")
        size[j] = sizes[0]
        x = log_c[mine]
        order = np.argsort(x, kind="stable")
        x, y = x[order], L[mine][order]
        inside = (grid >= x[0]) & (grid <= x[-1])
        loss[j, inside] = np.interp(grid[inside], x, y)
    return _Curves(log_c=grid, loss=loss, size=size, curve=ids)


def _winners(curves: _Curves, available: np.ndarray, bracketed: bool) -> np.ndarray:
    """``(B, G)`` index of the lowest-loss available run at each grid compute (-1: none, or not bracketed).

    ``available`` is ``(B, R)``: which runs each resample holds.  With
    ``bracketed``, a winner counts only if a smaller and a larger available
    model also reach that compute.
    """
    out = np.empty((available.shape[0], curves.log_c.size), dtype=np.int64)
    covered = np.isfinite(curves.loss)  # (R, G)
    size = curves.size[:, None]
    chunk = max(1, 4_000_000 // max(curves.loss.size, 1))
    for s in range(0, available.shape[0], chunk):
        av = available[s : s + chunk, :, None] & covered[None]  # (b, R, G)
        masked = np.where(av, curves.loss[None], np.inf)
        best = masked.argmin(axis=1)  # (b, G)
        ok = np.take_along_axis(av, best[:, None, :], axis=1)[:, 0]
        if bracketed:
            winner = curves.size[best]
            ok &= (np.where(av, size, np.inf).min(axis=1) < winner) & (np.where(av, size, -np.inf).max(axis=1) > winner)
        out[s : s + chunk] = np.where(ok, best, -1)
    return out


def _fit_rows(curves: _Curves, winners: np.ndarray, log_k: float) -> np.ndarray:
    """``(B, 4)`` least-squares ``(a, k_n, b, k_d)`` of the envelope in each row of ``winners``.

    ``log N = log k_n + a log C`` per row; since ``log D = log C - log k - log N``
    on every envelope point, ``b = 1 - a`` and ``k_d = 1 / (k k_n)``.  Rows with
    fewer than :data:`MIN_ENVELOPE_POINTS` points are NaN.
    """
    mask = winners >= 0
    x = np.broadcast_to(curves.log_c, winners.shape)
    y = np.log(curves.size)[np.maximum(winners, 0)]
    m = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = np.where(mask, x, 0.0).sum(axis=1) / m
        yc = np.where(mask, y, 0.0).sum(axis=1) / m
        dx = np.where(mask, x - xc[:, None], 0.0)
        dy = np.where(mask, y - yc[:, None], 0.0)
        a = (dx * dy).sum(axis=1) / (dx * dx).sum(axis=1)
    log_kn = yc - a * xc
    rows = np.stack([a, np.exp(log_kn), 1.0 - a, np.exp(-log_k - log_kn)], axis=1)
    rows[m < MIN_ENVELOPE_POINTS] = np.nan
    return rows


def _as_envelope(curves: _Curves, winners: np.ndarray, k: float) -> Envelope:
    g = np.flatnonzero(winners >= 0)
    j = winners[g]
    C = np.exp(curves.log_c[g])
    N = curves.size[j]
    return Envelope(compute=C, params=N, tokens=C / (k * N), loss=curves.loss[j, g], curve=curves.curve[j])


def envelope(N: Any, D: Any, L: Any, runs: Any, settings: EnvelopeSettings | None = None) -> Envelope:
    """The lower envelope of loss against compute over all points of all runs.

    Args:
        N, D, L: parameters, tokens seen and loss per point (checkpoint).
        runs: run identifier per point (a run has one size).
        settings: how to build it (default :class:`EnvelopeSettings`).
    """
    settings = settings or EnvelopeSettings()
    curves = _curves(*_inputs(N, D, L, runs), settings)
    winners = _winners(curves, np.ones((1, curves.size.size), bool), settings.bracketed)
    return _as_envelope(curves, winners[0], settings.flops_per_param_token)


def fit(
    N: Any,
    D: Any,
    L: Any,
    runs: Any,
    settings: EnvelopeSettings | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Approach1Result:
    """Approach 1: power laws ``N_opt(C)``, ``D_opt(C)`` on the lower envelope, with run-bootstrap intervals.

    Args:
        N, D, L, runs, settings: as :func:`envelope`.
        n_resamples: bootstrap resamples, by curve (by run; by size for ``use="ends"``).
        seed: bootstrap seed.
        level: interval coverage.

    Raises:
        laws.errors.FitError: fewer than three envelope points remain.
    """
    started = time.perf_counter()
    settings = settings or EnvelopeSettings()
    N, D, L, r = _inputs(N, D, L, runs)
    curves = _curves(N, D, L, r, settings)
    log_k = float(np.log(settings.flops_per_param_token))
    full = _winners(curves, np.ones((1, curves.size.size), bool), settings.bracketed)
    point = _fit_rows(curves, full, log_k)[0]
    if not np.isfinite(point).all():
        raise FitError(
            f"Approach 1 needs at least {MIN_ENVELOPE_POINTS} envelope points with a smaller and a larger "
            f"model reaching the same compute; got {int((full >= 0).sum())} (too few curves overlap in compute)"
        )
    counts = cluster_counts(curves.curve, n_resamples, seed)  # one column per curve
    samples = _fit_rows(curves, _winners(curves, counts > 0, settings.bracketed), log_k)
    lo, hi = _percentiles(samples, level)
    env = _as_envelope(curves, full[0], settings.flops_per_param_token)
    return Approach1Result(
        a=float(point[0]),
        k_n=float(point[1]),
        b=float(point[2]),
        k_d=float(point[3]),
        intervals={name: (float(lo[i]), float(hi[i])) for i, name in enumerate(PARAM_NAMES)},
        level=level,
        samples=samples,
        envelope=env,
        n_runs=int(np.unique(r).size),
        n_points=int(L.size),
        n_resamples=int(n_resamples),
        seed=int(seed),
        settings=settings,
        seconds=time.perf_counter() - started,
    )


# -- the law in the catalogue ------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Approach1Options(Options):
    """Which points count (:class:`~laws.options.Options`: a zero weight leaves a point out) and how the
    envelope is built (the fields of :class:`EnvelopeSettings` but the FLOPs per parameter and token)."""

    use: str = "checkpoints"
    grid_per_decade: float = 20.0
    bracketed: bool = True

    def envelope_settings(self) -> EnvelopeSettings:
        return EnvelopeSettings(use=self.use, grid_per_decade=self.grid_per_decade, bracketed=self.bracketed)


def _law_inputs(N: Any, D: Any, L: Any, runs: Any, options: Approach1Options) -> tuple[np.ndarray, ...]:
    """The used points (``select_runs``: weights and exclusions) and their mask over the input."""
    N, D, L, r = _inputs(N, D, L, runs)
    used, _ = select_runs(L, options.weights, options.exclude_top_loss, min_runs=1)
    return N[used], D[used], L[used], r[used], used


def _fit_arrays(N: Any, D: Any, L: Any, runs: Any, options: Approach1Options | None = None) -> FitResult:
    """Approach 1's point estimate as a :class:`~laws.types.FitResult` (no bootstrap here).

    ``objective`` is the residual sum of squares of ``log N_opt`` on ``log C``
    over the envelope; there is no loss prediction, so ``rmse_log`` is NaN.
    """
    started = time.perf_counter()
    options = options or Approach1Options()
    settings = options.envelope_settings()
    N, D, L, r, used = _law_inputs(N, D, L, runs, options)
    curves = _curves(N, D, L, r, settings)
    winners = _winners(curves, np.ones((1, curves.size.size), bool), settings.bracketed)
    point = _fit_rows(curves, winners, float(np.log(settings.flops_per_param_token)))[0]
    env = _as_envelope(curves, winners[0], settings.flops_per_param_token)
    if not np.isfinite(point).all():
        raise FitError(
            f"Approach 1 needs at least {MIN_ENVELOPE_POINTS} envelope points with a smaller and a larger "
            f"model reaching the same compute; got {env.compute.size} (too few curves overlap in compute)"
        )
    a, k_n = point[0], point[1]
    residuals = np.log(env.params) - (np.log(k_n) + a * np.log(env.compute))
    return FitResult(
        law="approach1",
        params=dict(zip(PARAM_NAMES, map(float, point))),
        objective=float(residuals @ residuals),
        converged=True,
        message=f"lower envelope of {env.compute.size} grid computes over {curves.curve.size} curves ({settings.use})",
        n_runs=int(used.sum()),
        seconds=time.perf_counter() - started,
        used=used,
        rmse_log=float("nan"),
        objective_name="least_squares_log_n",
        extras={"envelope": env, "n_curves": int(curves.curve.size), "n_runs": int(np.unique(r).size)},
    )


def _predict(params: Mapping[str, Any], N: np.ndarray, D: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """``N_opt`` at the points' compute ``6 N D`` (the run column is not needed)."""
    return params["k_n"] * (6.0 * np.asarray(N, float) * np.asarray(D, float)) ** params["a"]


class Approach1(Law):
    """Hoffmann et al. 2022 Approach 1: no loss surface, the optimum read off the runs' curves."""

    name = "approach1"
    description = "Hoffmann et al. 2022 Approach 1: lower envelope of loss against compute, N_opt = k_n C^a, D_opt = k_d C^b"
    parameters = ParameterSpace(PARAM_NAMES, frozenset({"k_n", "k_d"}))
    required_columns = ("params", "tokens", "loss", "run")
    options_type = Approach1Options
    arrays = ArrayFunctions(_fit_arrays, _predict)
    predicts = "n_opt"
    allocates = True
    approach = "Approach 1"
    plausible = {"a": (0.0, 1.0)}
    gated_intervals = ("a",)

    def _optimum(self, params: Mapping[str, Any], C: np.ndarray, k: float, unique_tokens: Any) -> tuple[Any, Any, Any]:
        return ISOFLOP._optimum(params, C, k, unique_tokens)

    def exponents(self, params: Mapping[str, Any]) -> tuple[Any, Any]:
        return ISOFLOP.exponents(params)

    def resample_groups(self, data: Data, options: Options | Mapping[str, Any] | None = None) -> np.ndarray:
        """Curves: runs, or model sizes when the envelope is built from runs' final points (``use="ends"``)."""
        return self.columns(data, ("params" if self.options(options).use == "ends" else "run",))[0]

    def refit_resamples(self, data: Data, options: Options | Mapping[str, Any] | None, counts: np.ndarray) -> np.ndarray:
        """Every resample's envelope and regression at once: a curve is in a resample when it was drawn."""
        opts = self.options(options)
        settings = opts.envelope_settings()
        N, D, L, r, used = _law_inputs(*self.columns(data), opts)
        curves = _curves(N, D, L, r, settings)
        label = self.resample_groups(data, opts)[used]
        _, first = np.unique(label, return_index=True)  # one point per curve; its count is the curve's
        drawn = counts[:, used][:, first] > 0
        return _fit_rows(curves, _winners(curves, drawn, settings.bracketed), float(np.log(settings.flops_per_param_token)))


APPROACH1 = Approach1()
