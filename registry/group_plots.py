"""The group's card plot: every member's runs and its curve from the group's joint fit, on one set of axes.

Loss against training compute: each member's runs as points, and the loss its joint-fit law
predicts along its compute-optimal frontier as a line in the same colour, so a reader sees at
once whether the shared parameters let every member's curve pass through its own runs.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from laws.chinchilla import CHINCHILLA  # noqa: E402
from laws.extrapolation import compute_of  # noqa: E402
from registry.plots import _png  # noqa: E402


def group_png(
    group: str, shared: tuple[str, ...], datasets: Mapping[str, Mapping[str, np.ndarray]],
    params: Mapping[str, Mapping[str, float]],
) -> bytes:
    """PNG of the members' runs (points) and their joint-fit frontier curves (lines), loss against compute."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    low = min(float(compute_of(d).min()) for d in datasets.values())
    high = max(float(compute_of(d).max()) for d in datasets.values())
    budgets = np.geomspace(low / 3, high * 30, 80)
    for i, (member, data) in enumerate(datasets.items()):
        colour = f"C{i % 10}"
        ax.scatter(compute_of(data), data["loss"], s=12, alpha=0.6, color=colour, label=f"{member} runs")
        frontier = CHINCHILLA.allocate(params[member], budgets).predicted_loss
        ax.plot(budgets, frontier, color=colour, lw=1.5, label=f"{member} joint fit (compute-optimal)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("loss")
    ax.set_title(f"group {group}: shared {', '.join(shared)}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)
