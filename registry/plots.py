"""The pictures of a family's fit that the Dagster UI shows: data, fitted law, compute-optimal frontier, and the
profiles of the objective that say whether the runs pin the allocation down."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from registry.refit import FamilyRefit, LawFit, isoflop_budgets  # noqa: E402


def fit_png(refit: FamilyRefit, fitted: LawFit) -> bytes:
    """Left: loss against compute with the law along its compute-optimal frontier (and IsoFLOP curves
    where the runs form budgets). Right: N_opt(C) with its bootstrap band and the runs' sizes.

    ``fitted`` is a fit of a law with an allocation rule (the refit's primary law); the band's
    coverage is that of its bootstrap.
    """
    runs, law, boot = refit.runs, fitted.law, fitted.boot
    N = runs.get_column("params").to_numpy()
    L = runs.get_column("loss").to_numpy()
    C = runs.get_column("flops").to_numpy()
    grid = np.logspace(np.log10(C.min()) - 0.5, np.log10(C.max()) + 1.5, 80)
    params = {k: fitted.record.params[k] for k in law.param_names}
    frontier = law.allocate(params, grid)
    budgets_of_runs = isoflop_budgets(runs)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=90)
    if budgets_of_runs is not None:
        budgets = np.unique(budgets_of_runs)
        colours = plt.cm.viridis(np.linspace(0, 1, budgets.size))
        for budget, colour in zip(budgets, colours):
            mask = budgets_of_runs == budget
            left.scatter(C[mask], L[mask], s=10, color=colour, alpha=0.7)
            sizes = np.logspace(np.log10(N[mask].min()) - 0.2, np.log10(N[mask].max()) + 0.2, 40)
            curve = law.predict(params, {"params": sizes, "tokens": budget / (6 * sizes)})
            left.plot(np.full_like(sizes, budget), curve, color=colour, lw=0.8, alpha=0.6)
    else:
        points = left.scatter(C, L, c=np.log10(N), s=10, cmap="viridis", alpha=0.8)
        fig.colorbar(points, ax=left, label="log10 N")
    left.plot(grid, frontier.predicted_loss, color="crimson", lw=1.5, label="law at compute-optimal N, D")
    left.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="loss", title=f"{refit.family}: loss vs compute")
    left.legend(loc="upper right", fontsize=8)

    right.plot(grid, frontier.n_opt, color="crimson", lw=1.5, label="N_opt(C)")
    if boot is not None:
        lo, hi = boot.samples.allocation_interval(law, grid, boot.level)["n_opt"]
        right.fill_between(grid, lo, hi, color="crimson", alpha=0.2, label=f"{boot.level:.0%} bootstrap band")
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


#: The budget the profile plot shows (the one planners quote), or the profiled budget nearest to it.
PROFILE_BUDGET = 1e24
_PROFILED = {"E": "E (irreducible loss), fixed", "a": "a = beta / (alpha + beta), fixed"}


def profile_png(profiles: pl.DataFrame, title: str, tolerance: float, factor: float, budget: float = PROFILE_BUDGET) -> bytes:
    """The stored profiles of a fit (:func:`registry.planning.fit_profiles`), one column per profiled parameter.

    Top: the objective's relative excess over the best fit, with the tolerance within which a fit
    counts as equally good. Bottom: tokens per parameter at ``budget`` of each constrained fit, with
    the band within ``factor`` of the free fit's answer. Points inside the tolerance but outside the
    band are equally good fits that give another answer: the allocation there is not identified.
    """
    budgets = np.unique(profiles.get_column("compute").to_numpy())
    shown = float(budgets[np.argmin(np.abs(np.log10(budgets) - np.log10(budget)))])
    parameters = [p for p in _PROFILED if p in set(profiles.get_column("parameter").to_list())]
    fig, axes = plt.subplots(2, len(parameters), figsize=(5 * len(parameters), 6), dpi=90, squeeze=False, sharex="col")
    for column, parameter in enumerate(parameters):
        rows = profiles.filter((pl.col("parameter") == parameter) & (pl.col("compute") == shown)).sort("value")
        value = rows.get_column("value").to_numpy()
        excess = np.nan_to_num(rows.get_column("relative_excess").to_numpy().astype(float), nan=np.nan, posinf=np.nan)
        tpp = rows.get_column("tokens_per_param").to_numpy().astype(float)
        best = int(np.nanargmin(excess))
        inside = excess <= tolerance
        top, bottom = axes[0, column], axes[1, column]
        top.plot(value, excess, marker=".", color="steelblue")
        top.axhline(tolerance, color="darkorange", ls="--", lw=1, label=f"tolerance {tolerance:.0%}")
        # linear up to the tolerance, logarithmic above: the flat stretch and the far walls both show
        top.set_yscale("symlog", linthresh=tolerance)
        top.set(ylim=(0, None), ylabel="relative objective excess", title=f"profile over {parameter}")
        top.axvline(value[best], color="crimson", lw=0.8, label="free fit")
        top.legend(loc="upper right", fontsize=8)
        bottom.plot(value, tpp, color="grey", lw=0.8)
        bottom.scatter(value[inside], tpp[inside], s=14, color="steelblue", zorder=3, label=f"within {tolerance:.0%}")
        bottom.scatter(value[~inside], tpp[~inside], s=8, color="lightgrey", zorder=2, label="worse fits")
        bottom.axhspan(tpp[best] / factor, tpp[best] * factor, color="crimson", alpha=0.12, label=f"within {factor:g}x of the fit")
        bottom.axvline(value[best], color="crimson", lw=0.8)
        bottom.set(yscale="log", xlabel=_PROFILED[parameter], ylabel=f"tokens/param at {shown:.0e} FLOPs")
        bottom.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
