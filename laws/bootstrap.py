"""Bootstrap uncertainty for fitted laws: resample runs, refit, take percentiles.

Every resample draws ``n`` runs with replacement from the ``n`` used runs.
Rather than building ``B`` new data sets, a resample is the *same* arrays with
weights equal to how often each run was drawn (a multinomial draw), which
makes the resamples a batch of weighted fits over shared data.  For laws with
a :class:`~laws.optimize.Problem`, all resamples are then refined together by
the batched Newton iteration of :mod:`laws.optimize`, each started from the
full-data optimum (a resample's optimum is a small perturbation of it; that
is the premise of the bootstrap).  Approach 2 has no such problem and is
refitted resample by resample.

Intervals are percentile intervals.  Correlations between parameters are
Spearman (rank) correlations: invariant to reporting ``A`` or ``log A``, and
not dominated by the long right tails of ``A`` and ``B``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from laws import allocation
from laws.catalog import Law, get_law
from laws.optimize import Problem, newton
from laws.types import FitResult

__all__ = ["BootstrapResult", "bootstrap", "spearman"]

Interval = tuple[np.ndarray | float, np.ndarray | float]


def spearman(samples: np.ndarray) -> np.ndarray:
    """Spearman correlation matrix of the columns of ``samples``.

    Columns without spread (fixed parameters) get NaN off the diagonal.
    """
    ok = np.all(np.isfinite(samples), axis=1)
    ranks = rankdata(samples[ok], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(ranks, rowvar=False)
    c = np.atleast_2d(c)
    np.fill_diagonal(c, 1.0)
    return c


def _pct(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    with np.errstate(invalid="ignore"):  # unidentified parameters may be inf
        lo, hi = np.nanpercentile(values, q, axis=0)
    return lo, hi


def _scalar(x: np.ndarray) -> np.ndarray | float:
    return float(x) if np.ndim(x) == 0 else x


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap distribution of a law's parameters.

    Attributes:
        law: catalogue name.
        param_names: column names of ``samples``.
        samples: ``(B, p)`` refitted parameters, natural scale (NaN rows for
            resamples that could not be fitted).
        ci: percentile interval per parameter at ``level``.
        correlation: Spearman correlation matrix of ``samples``.
        level: interval coverage, e.g. 0.95.
        seed: seed of the resampling (the same seed gives the same result).
        n_resamples: ``B``.
        fit: the full-data fit the resamples were started from.
        converged_fraction: share of resamples whose refinement met its tolerance.
        seconds: wall-clock time including the full-data fit.
        resample_counts: ``(B, n)`` how often each used run was drawn in each
            resample (columns follow ``fit.used``), to reproduce any resample.
    """

    law: str
    param_names: tuple[str, ...]
    samples: np.ndarray
    ci: dict[str, tuple[float, float]]
    correlation: np.ndarray
    level: float
    seed: int
    n_resamples: int
    fit: FitResult
    converged_fraction: float
    seconds: float
    resample_counts: np.ndarray

    # -- generic -----------------------------------------------------------
    def param_samples(self) -> dict[str, np.ndarray]:
        """Samples as ``{name: (B, 1) array}``, ready to broadcast against data."""
        return {n: self.samples[:, i : i + 1] for i, n in enumerate(self.param_names)}

    def interval(self, values: np.ndarray, level: float | None = None) -> Interval:
        """Percentile interval over the first axis of ``values`` (one row per resample)."""
        lo, hi = _pct(np.asarray(values, float), self.level if level is None else level)
        return _scalar(lo), _scalar(hi)

    def derived(self, fn: Callable[[dict[str, np.ndarray]], np.ndarray], level: float | None = None) -> Interval:
        """Interval of any derived quantity ``fn(param_samples)``."""
        return self.interval(fn(self.param_samples()), level)

    # -- allocation --------------------------------------------------------
    def exponent_intervals(self, level: float | None = None) -> dict[str, tuple[float, float]]:
        """Intervals of the allocation exponents ``a`` (N_opt ~ C^a) and ``b`` (D_opt ~ C^b)."""
        a, b = allocation.exponents(self.param_samples())
        return {"a": self.interval(np.ravel(a), level), "b": self.interval(np.ravel(b), level)}

    def _allocation(self, compute: Any, flops_per_param_token: float, field: str, level: float | None) -> Interval:
        C = np.asarray(compute, float)
        alloc = allocation.compute_optimal(self.param_samples(), C.ravel(), flops_per_param_token, law=self.law)
        values = np.broadcast_to(getattr(alloc, field), (self.samples.shape[0], C.size))
        lo, hi = _pct(values, self.level if level is None else level)
        if C.ndim == 0:
            return float(lo[0]), float(hi[0])
        return lo.reshape(C.shape), hi.reshape(C.shape)

    def n_opt_interval(self, compute: Any, flops_per_param_token: float = 6.0, level: float | None = None) -> Interval:
        """Interval of the compute-optimal parameter count at ``compute`` FLOPs."""
        return self._allocation(compute, flops_per_param_token, "n_opt", level)

    def d_opt_interval(self, compute: Any, flops_per_param_token: float = 6.0, level: float | None = None) -> Interval:
        """Interval of the compute-optimal token count at ``compute`` FLOPs."""
        return self._allocation(compute, flops_per_param_token, "d_opt", level)

    # -- loss --------------------------------------------------------------
    def predict_interval(
        self, data: Mapping[str, Any], *, prediction: bool = False, level: float | None = None
    ) -> Interval:
        """Interval of the law's prediction for the runs described by ``data``.

        With ``prediction=True`` the interval is a *prediction* interval for a
        new run's observed loss: each resample's prediction is multiplied by
        ``exp(r)`` with ``r`` drawn from the full fit's log residuals, so it
        includes run-to-run scatter as well as parameter uncertainty.
        """
        law = get_law(self.law)
        cols = {k: np.atleast_1d(np.asarray(v, float))[None, :] for k, v in data.items()}
        pred = law.predict(self.param_samples(), cols)  # (B, m)
        if prediction:
            res = self.fit.residuals_log
            rng = np.random.default_rng(self.seed + 1)
            pred = pred * np.exp(rng.choice(res, size=pred.shape))
        lo, hi = _pct(pred, self.level if level is None else level)
        squeeze = all(np.ndim(v) == 0 for v in data.values())
        return (float(lo[0]), float(hi[0])) if squeeze else (lo, hi)

    def loss_interval(
        self,
        N: Any,
        D: Any,
        *,
        unique_tokens: Any = None,
        prediction: bool = False,
        level: float | None = None,
    ) -> Interval:
        """Interval of the predicted loss at ``(N, D)`` (see :meth:`predict_interval`)."""
        data: dict[str, Any] = {"params": N, "tokens": D, "flops": 6.0 * np.asarray(N, float) * np.asarray(D, float)}
        if unique_tokens is not None:
            data["unique_tokens"] = unique_tokens
        return self.predict_interval(data, prediction=prediction, level=level)


def _vectorised(problem: Problem, theta_hat: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Refine all resamples at once (in chunks bounding memory)."""
    B, n = counts.shape
    chunk = max(64, int(3_000_000 // max(n, 1)))
    samples = np.empty((B, theta_hat.size))
    conv = np.empty(B, bool)
    for s in range(0, B, chunk):
        W = counts[s : s + chunk] * problem.weights[None, :]
        res = newton(problem, np.tile(theta_hat, (W.shape[0], 1)), weights=W, max_iter=100, xtol=1e-8)
        samples[s : s + chunk] = problem.to_natural(res.theta)
        conv[s : s + chunk] = res.converged
    return samples, conv


def _looped(
    law: Law, data: Mapping[str, np.ndarray], full: FitResult, counts: np.ndarray, options: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Refit resample by resample (laws without a vectorised problem)."""
    n_input = full.used.size
    base_w = np.ones(n_input) if options.get("weights") is None else np.asarray(options["weights"], float)
    samples = np.full((counts.shape[0], len(full.params)), np.nan)
    conv = np.zeros(counts.shape[0], bool)
    for i, c in enumerate(counts):
        w = np.zeros(n_input)
        w[full.used] = c * base_w[full.used]
        try:
            r = law.fit(data, **{**options, "weights": w})
        except ValueError:  # e.g. too few budgets left in this resample
            continue
        samples[i] = [r.params[k] for k in full.params]
        conv[i] = r.converged
    return samples, conv


def bootstrap(
    data: Mapping[str, np.ndarray],
    law: str = "chinchilla",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    **fit_options: Any,
) -> BootstrapResult:
    """Bootstrap a law's fit over runs.

    Args:
        data: columns (see :data:`laws.catalog.COLUMNS`), e.g.
            ``{"params": N, "tokens": D, "loss": L}``.
        law: catalogue name.
        n_resamples: number of resamples ``B``.
        seed: seed for the multinomial draws; results are reproducible.
        level: coverage of the percentile intervals.
        **fit_options: passed to the law's fit (e.g. ``exclude_top_loss=5``,
            ``huber_delta=1e-3``).  Exclusions are applied once, to the full
            data; resamples are drawn from the runs that remain.

    Returns:
        A :class:`BootstrapResult`.
    """
    started = time.perf_counter()
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    spec = get_law(law)
    spec.check_columns(data)
    full = spec.fit(data, **fit_options)
    n = int(full.used.sum())
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)
    if spec.make_problem is not None:
        problem = spec.make_problem(data, **fit_options)
        samples, conv = _vectorised(problem, full.extras["theta"], counts)
        names = problem.param_names
    else:
        samples, conv = _looped(spec, data, full, counts, dict(fit_options))
        names = tuple(full.params)
    lo, hi = _pct(samples, level)
    return BootstrapResult(
        law=spec.name,
        param_names=tuple(names),
        samples=samples,
        ci={k: (float(a), float(b)) for k, a, b in zip(names, lo, hi)},
        correlation=spearman(samples),
        level=level,
        seed=seed,
        n_resamples=n_resamples,
        fit=full,
        converged_fraction=float(conv.mean()),
        seconds=time.perf_counter() - started,
        resample_counts=counts,
    )
