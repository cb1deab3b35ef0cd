"""Bootstrap uncertainty for fitted laws: resample runs, refit, take percentiles.

Every resample draws ``n`` runs with replacement from the ``n`` used runs.
When the observations are checkpoints, several per run, ``groups`` names the
run of each and whole runs are drawn instead (a cluster bootstrap,
:mod:`laws.resample`): checkpoints of one run are not independent evidence.
Rather than building ``B`` new data sets, a resample is the *same* arrays with
weights equal to how often each run was drawn (a multinomial draw), which
makes the resamples a batch of weighted fits over shared data.  For laws with
a :class:`~laws.optimize.Problem`, all resamples are then refined together by
the batched Newton iteration of :mod:`laws.optimize`, each started from the
full-data optimum (a resample's optimum is a small perturbation of it; that
is the premise of the bootstrap).  Approach 2 has no such problem and is
refitted resample by resample; Approach 1 rebuilds every resample's envelope
at once (:meth:`~laws.law.Law.refit_resamples`).

Intervals are percentile intervals.  Correlations between parameters are
Spearman (rank) correlations: invariant to reporting ``A`` or ``log A``, and
not dominated by the long right tails of ``A`` and ``B``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.stats import rankdata

from laws.catalog import get_law
from laws.errors import FitError
from laws.intervals import DEFAULT_LEVEL, Samples, check_level
from laws.law import Data, Law
from laws.optimize import Problem, newton
from laws.options import Options
from laws.resample import resample_counts
from laws.types import FitResult

__all__ = ["BootstrapResult", "bootstrap", "spearman"]


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


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap distribution of a law's parameters.

    Attributes:
        law: the law that was fitted.
        samples: refitted parameters, natural scale, one row per resample
            (NaN rows for resamples that could not be fitted); its
            :meth:`~laws.intervals.Samples.interval` and
            :meth:`~laws.intervals.Samples.allocation_interval` give any interval.
        ci: percentile interval per parameter at ``level``.
        correlation: Spearman correlation matrix of the samples.
        level: interval coverage, e.g. 0.95.
        seed: seed of the resampling (the same seed gives the same result).
        n_resamples: ``B``.
        fit: the full-data fit the resamples were started from.
        converged_fraction: share of resamples whose refinement met its tolerance.
        seconds: wall-clock time including the full-data fit.
        resample_counts: ``(B, n)`` how often each used run was drawn in each
            resample (columns follow ``fit.used``), to reproduce any resample.
        clustered: resamples drew whole groups (runs) rather than observations.
    """

    law: Law
    samples: Samples
    ci: dict[str, tuple[float, float]]
    correlation: np.ndarray
    level: float
    seed: int
    n_resamples: int
    fit: FitResult
    converged_fraction: float
    seconds: float
    resample_counts: np.ndarray
    clustered: bool = False

    @property
    def param_names(self) -> tuple[str, ...]:
        """Column names of the samples."""
        return self.samples.names


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


def _batched(
    law: Law, data: Data, full: FitResult, counts: np.ndarray, options: Options
) -> tuple[np.ndarray, np.ndarray] | None:
    """All resamples from the law's own batched refit, or None if it has none."""
    on_inputs = np.zeros((counts.shape[0], full.used.size))
    on_inputs[:, full.used] = counts
    values = law.refit_resamples(data, options, on_inputs)
    if values is None:
        return None
    return values, np.isfinite(values).all(axis=1)


def _looped(law: Law, data: Data, full: FitResult, counts: np.ndarray, options: Options) -> tuple[np.ndarray, np.ndarray]:
    """Refit resample by resample (laws without a vectorised problem).

    A resample the runs cannot support (e.g. too few IsoFLOP budgets left) is
    a NaN row; so is one whose linear algebra fails (numpy's ``LinAlgError``
    from a degenerate least-squares design).
    """
    n_input = full.used.size
    base_w = np.ones(n_input) if options.weights is None else np.asarray(options.weights, float)
    samples = np.full((counts.shape[0], len(full.params)), np.nan)
    conv = np.zeros(counts.shape[0], bool)
    for i, c in enumerate(counts):
        w = np.zeros(n_input)
        w[full.used] = c * base_w[full.used]
        try:
            r = law.fit(data, replace(options, weights=w))
        except (FitError, np.linalg.LinAlgError):
            continue
        samples[i] = [r.params[k] for k in full.params]
        conv[i] = r.converged
    return samples, conv


def bootstrap(
    law: str | Law,
    data: Mapping[str, np.ndarray],
    options: Options | Mapping[str, Any] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    groups: Any = None,
) -> BootstrapResult:
    """Bootstrap a law's fit over runs.

    Args:
        law: a :class:`~laws.law.Law` or its catalogue name.
        data: columns (see :data:`laws.law.COLUMNS`), e.g.
            ``{"params": N, "tokens": D, "loss": L}``.
        options: the law's fit options (a record or a mapping, e.g.
            ``{"exclude_top_loss": 5}``).  Exclusions are applied once, to
            the full data; resamples are drawn from the runs that remain.
        n_resamples: number of resamples ``B``.
        seed: seed for the multinomial draws; results are reproducible.
        level: coverage of the percentile intervals.
        groups: one label per input observation naming its run: resamples
            draw runs, each with all its observations.  None: the law's own
            unit (:meth:`~laws.law.Law.resample_groups`), else observations.

    Returns:
        A :class:`BootstrapResult`.

    Raises:
        laws.errors.FitError: the full-data fit is not supported by the runs.
    """
    started = time.perf_counter()
    check_level(level)
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    spec = get_law(law)
    spec.check_columns(data)
    opts = spec.options(options)
    full = spec.fit(data, opts)
    n = int(full.used.sum())
    if groups is None:
        groups = spec.resample_groups(data, opts)
    used_groups = None if groups is None else np.asarray(groups)[full.used]
    counts = resample_counts(n, n_resamples, groups=used_groups, seed=seed)
    problem = spec.make_problem(data, opts)
    if problem is not None:
        values, conv = _vectorised(problem, full.extras["theta"], counts)
        names = problem.param_names
    else:
        values, conv = _batched(spec, data, full, counts, opts) or _looped(spec, data, full, counts, opts)
        names = tuple(full.params)
    samples = Samples(tuple(names), values)
    return BootstrapResult(
        law=spec,
        samples=samples,
        ci=samples.interval(level),
        correlation=spearman(values),
        level=level,
        seed=seed,
        n_resamples=n_resamples,
        fit=full,
        converged_fraction=float(conv.mean()),
        seconds=time.perf_counter() - started,
        resample_counts=counts,
        clustered=used_groups is not None,
    )
