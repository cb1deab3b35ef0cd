"""Validation and selection of the runs that enter a fit.

Kept apart from the laws so every law rejects bad input with the same
messages and applies ``exclude_top_loss`` and weights the same way.
"""

from __future__ import annotations

import numpy as np

from laws.errors import FitError

__all__ = ["positive_array", "select_runs", "column"]


def positive_array(name: str, values: object, n: int | None = None) -> np.ndarray:
    """Return ``values`` as a 1-D float array, checking it is finite and > 0.

    Scaling laws take logs of every input, so a zero or negative parameter
    count, token count or loss is a data error (:class:`~laws.errors.FitError`),
    not something to fit around; arrays of different lengths are a caller's
    mistake (``ValueError``).
    """
    a = np.asarray(values, dtype=float).reshape(-1)
    if n is not None and a.size != n:
        raise ValueError(f"{name} has {a.size} values, expected {n}")
    if a.size == 0:
        raise FitError(f"{name} is empty")
    bad = ~np.isfinite(a) | (a <= 0)
    if bad.any():
        raise FitError(
            f"{name} must be finite and positive; {int(bad.sum())} value(s) are not "
            f"(first at index {int(np.flatnonzero(bad)[0])})"
        )
    return a


def select_runs(
    loss: np.ndarray,
    weights: np.ndarray | None,
    exclude_top_loss: int,
    min_runs: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Choose the runs a fit uses and their weights.

    ``exclude_top_loss`` drops the K highest-loss runs (Besiroglu et al. drop
    five: tiny models whose losses sit far above the trend).  Zero-weight runs
    are also marked unused, so ``n_runs`` counts only runs that matter.

    Returns:
        ``(used mask over all runs, weights of the used runs)``.
    """
    n = loss.size
    if weights is None:
        w = np.ones(n)
    else:
        w = np.asarray(weights, dtype=float).reshape(-1)
        if w.size != n:
            raise ValueError(f"weights has {w.size} values, expected {n}")
        if (~np.isfinite(w) | (w < 0)).any():
            raise ValueError("weights must be finite and non-negative")
    k = int(exclude_top_loss)
    if k < 0:
        raise ValueError(f"exclude_top_loss must be >= 0, got {k}")
    used = w > 0
    if k:
        order = np.argsort(loss, kind="stable")
        used[order[max(n - k, 0) :]] = False  # k >= n excludes every run
    if used.sum() < min_runs:
        raise FitError(
            f"only {int(used.sum())} runs left to fit (after exclusions/zero weights); "
            f"this law needs at least {min_runs}"
        )
    return used, w[used]


def column(data: dict[str, np.ndarray], name: str, law: str) -> np.ndarray:
    """Fetch a required column, naming the law and the missing column on failure."""
    if name not in data:
        raise ValueError(
            f"law {law!r} needs column {name!r}; got columns {sorted(data)}"
        )
    return np.asarray(data[name], dtype=float).reshape(-1)
