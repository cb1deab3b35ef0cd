"""Variable projection: the global search behind every parametric law.

Scaling laws are sums of power-law terms: for fixed exponents they are *linear*
in the coefficients (E, A, B for Chinchilla).  Profiling the coefficients out
by non-negative least squares turns a 5-parameter non-convex search into a
2-parameter one that can be covered by a dense grid, so the result does not
depend on where a random start happened to land (the failure mode of the
multi-start L-BFGS procedure in the literature).

The inner problems are tiny (2-4 coefficients) and there are thousands of
them, so instead of calling an NNLS routine per grid point, :func:`nnls_gram`
solves them all at once from their Gram matrices by enumerating active sets:
the NNLS optimum is the best of the unconstrained least-squares solutions on
supports where all coefficients come out non-negative.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["nnls_gram", "local_minima"]


def nnls_gram(
    gram: np.ndarray, rhs: np.ndarray, yy: np.ndarray, ridge: float = 1e-13
) -> tuple[np.ndarray, np.ndarray]:
    """Solve many small weighted NNLS problems given their normal equations.

    Each problem is ``min_x |W^1/2 (y - X x)|^2, x >= 0`` described by
    ``gram = X'WX``, ``rhs = X'Wy`` and ``yy = y'Wy``.

    Args:
        gram: ``(..., k, k)`` Gram matrices (k small: 2^k - 1 supports are tried).
        rhs: ``(..., k)``.
        yy: ``(...)``.
        ridge: relative Tikhonov term that keeps collinear supports solvable.

    Returns:
        ``(coef (..., k), rss (...))``.
    """
    gram = np.asarray(gram, float)
    rhs = np.asarray(rhs, float)
    yy = np.asarray(yy, float)
    k = gram.shape[-1]
    d = np.sqrt(np.einsum("...ii->...i", gram))
    d = np.where(d > 0, d, 1.0)
    Gs = gram / (d[..., :, None] * d[..., None, :])
    bs = rhs / d
    best_rss = yy.copy()
    best = np.zeros(rhs.shape)
    for size in range(1, k + 1):
        for S in itertools.combinations(range(k), size):
            S = list(S)
            Gss = Gs[..., S, :][..., :, S] + ridge * np.eye(size)
            xs = np.linalg.solve(Gss, bs[..., S, None])[..., 0]
            rss = yy - 2 * np.einsum("...i,...i->...", xs, bs[..., S]) + np.einsum(
                "...i,...ij,...j->...", xs, Gs[..., S, :][..., :, S], xs
            )
            feasible = (xs >= 0).all(axis=-1) & np.isfinite(rss)
            take = feasible & (rss < best_rss)
            if take.any():
                full = np.zeros(rhs.shape)
                full[..., S] = xs
                best = np.where(take[..., None], full, best)
                best_rss = np.where(take, rss, best_rss)
    return best / d, np.maximum(best_rss, 0.0)


def local_minima(values: np.ndarray, k: int) -> list[tuple[int, ...]]:
    """Indices of up to ``k`` grid points no larger than any neighbour, best first.

    Several basins are polished, not just the best grid point, because the
    grid objective is a proxy (least squares) for the fitted one (Huber).
    """
    v = np.where(np.isfinite(values), values, np.inf)
    padded = np.pad(v, 1, constant_values=np.inf)
    is_min = np.isfinite(v)
    for off in itertools.product((-1, 0, 1), repeat=v.ndim):
        if not any(off):
            continue
        sl = tuple(slice(1 + o, 1 + o + s) for o, s in zip(off, v.shape))
        is_min &= v <= padded[sl]
    flat = np.flatnonzero(is_min.ravel())
    order = flat[np.argsort(v.ravel()[flat], kind="stable")]
    return [tuple(int(i) for i in np.unravel_index(j, v.shape)) for j in order[:k]]
