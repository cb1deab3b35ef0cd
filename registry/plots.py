"""The picture of a family's fit that the Dagster UI shows: data, fitted law, compute-optimal frontier."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from laws import allocation, chinchilla  # noqa: E402
from laws.bootstrap import BootstrapResult  # noqa: E402


def fit_png(
    family: str,
    runs: pl.DataFrame,
    params: dict[str, float],
    boot: BootstrapResult | None = None,
    isoflop_budgets: np.ndarray | None = None,
) -> bytes:
    """Left: loss against compute with the law along its compute-optimal frontier (and IsoFLOP curves
    where the runs form budgets). Right: N_opt(C) with its 95% bootstrap band and the runs' sizes."""
    N = runs.get_column("params").to_numpy()
    D = runs.get_column("tokens").to_numpy()
    L = runs.get_column("loss").to_numpy()
    C = runs.get_column("flops").to_numpy()
    grid = np.logspace(np.log10(C.min()) - 0.5, np.log10(C.max()) + 1.5, 80)
    law = {k: params[k] for k in ("E", "A", "B", "alpha", "beta")}
    frontier = allocation.compute_optimal(law, grid, law="chinchilla")

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=90)
    if isoflop_budgets is not None:
        budgets = np.unique(isoflop_budgets)
        colours = plt.cm.viridis(np.linspace(0, 1, budgets.size))
        for budget, colour in zip(budgets, colours):
            mask = isoflop_budgets == budget
            left.scatter(C[mask], L[mask], s=10, color=colour, alpha=0.7)
            sizes = np.logspace(np.log10(N[mask].min()) - 0.2, np.log10(N[mask].max()) + 0.2, 40)
            left.plot(np.full_like(sizes, budget), chinchilla.predict(law, sizes, budget / (6 * sizes)), color=colour, lw=0.8, alpha=0.6)
    else:
        points = left.scatter(C, L, c=np.log10(N), s=10, cmap="viridis", alpha=0.8)
        fig.colorbar(points, ax=left, label="log10 N")
    left.plot(grid, frontier.predicted_loss, color="crimson", lw=1.5, label="law at compute-optimal N, D")
    left.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="loss", title=f"{family}: loss vs compute")
    left.legend(loc="upper right", fontsize=8)

    right.plot(grid, frontier.n_opt, color="crimson", lw=1.5, label="N_opt(C)")
    if boot is not None:
        spread = allocation.compute_optimal(boot.param_samples(), grid[None, :], law="chinchilla")
        lo, hi = np.nanpercentile(np.broadcast_to(spread.n_opt, (boot.samples.shape[0], grid.size)), [2.5, 97.5], axis=0)
        right.fill_between(grid, lo, hi, color="crimson", alpha=0.2, label="95% bootstrap band")
    right.scatter(C, N, s=8, color="grey", alpha=0.6, label="runs")
    right.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="parameters N", title="compute-optimal frontier")
    right.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
