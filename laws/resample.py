"""Bootstrap resamples as count weights: by point, or by run (a cluster bootstrap).

A resample is the same data with a weight per point equal to how often the
point was drawn (the form :mod:`laws.bootstrap` uses, so resamples are a
batch of weighted fits over shared data).  Drawing *points* assumes the
points are independent.  Checkpoints of one run are not: they share the
run's seed, data order and schedule, so their deviations from the law move
together.  Resampling such points treats 50 checkpoints of one run as 50
independent pieces of evidence, and the intervals come out far too narrow
(``alpha +/- 0.005`` for Gemstones).  A cluster bootstrap draws *runs* with
replacement and gives every point of a drawn run that run's count, so the
intervals reflect how many independent runs there are.

With few runs the percentile intervals of any bootstrap under-cover somewhat
(the resamples see at most as many distinct runs as there are), but they
are honest about the unit of independence, which the point bootstrap is not.

Columns follow the points passed in: pass the points a fit *uses* (after its
exclusions), as :mod:`laws.bootstrap` draws over ``fit.used``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["point_counts", "cluster_counts", "resample_counts", "n_clusters"]

Seed = int | np.random.Generator


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check(n_resamples: int) -> None:
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")


def point_counts(n_points: int, n_resamples: int, seed: Seed = 0) -> np.ndarray:
    """``(n_resamples, n_points)`` draw counts of an ordinary (point) bootstrap.

    Each row is a multinomial draw of ``n_points`` points with replacement;
    with an integer seed it equals the draws :func:`laws.bootstrap.bootstrap`
    makes with that seed.
    """
    _check(n_resamples)
    if n_points < 1:
        raise ValueError("n_points must be >= 1")
    return _rng(seed).multinomial(n_points, np.full(n_points, 1.0 / n_points), size=n_resamples).astype(float)


def n_clusters(groups: Any) -> int:
    """Number of distinct runs in ``groups``."""
    return int(np.unique(np.asarray(groups)).size)


def cluster_counts(groups: Any, n_resamples: int, seed: Seed = 0) -> np.ndarray:
    """``(n_resamples, n_points)`` count weights of a run (cluster) bootstrap.

    Args:
        groups: run identifier per point (any values numpy can sort: ints,
            strings); points with equal identifiers belong to one run.
        n_resamples: number of resamples.
        seed: integer seed or generator.

    Returns:
        Each row draws as many runs as there are, with replacement, and gives
        every point of a run the number of times the run was drawn.  Row sums
        therefore vary with the sizes of the runs drawn.
    """
    _check(n_resamples)
    g = np.asarray(groups)
    if g.ndim != 1 or g.size == 0:
        raise ValueError("groups must be a non-empty 1-D array of run identifiers, one per point")
    _, code = np.unique(g, return_inverse=True)
    k = int(code.max()) + 1
    runs = _rng(seed).multinomial(k, np.full(k, 1.0 / k), size=n_resamples).astype(float)
    return runs[:, code]


def resample_counts(n_points: int, n_resamples: int, *, groups: Any = None, seed: Seed = 0) -> np.ndarray:
    """Count weights by run when ``groups`` is given, else by point (see the functions above)."""
    if groups is None:
        return point_counts(n_points, n_resamples, seed)
    if np.size(groups) != n_points:
        raise ValueError(f"groups has {np.size(groups)} entries for {n_points} points")
    return cluster_counts(groups, n_resamples, seed)
