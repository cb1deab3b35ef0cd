"""Known truths for the laws tests: published constants and synthetic designs.

Everything here is written out from the papers, independently of ``laws``.
"""

from __future__ import annotations

import numpy as np

#: Hoffmann et al. 2022, rounded as printed in the paper
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
#: Hoffmann et al.'s unrounded coefficients (log A, log B, log E given)
HOFFMANN_UNROUNDED = {
    "E": float(np.exp(0.5267228)),
    "A": float(np.exp(6.0073404)),
    "B": float(np.exp(6.0179186)),
    "alpha": 0.33917084,
    "beta": 0.2849083,
}


def grid_runs(n_sizes: int = 7, n_tokens: int = 6, n_range=(1e7, 1e10), d_range=(1e9, 1e12)):
    """A full factorial design of model sizes x token counts."""
    N = np.repeat(np.geomspace(*n_range, n_sizes), n_tokens)
    D = np.tile(np.geomspace(*d_range, n_tokens), n_sizes)
    return N, D


def chinchilla_loss(p, N, D):
    """The Chinchilla law written out independently of laws.chinchilla."""
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
