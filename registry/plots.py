"""The pictures the Dagster UI shows: a family's IsoFLOP profiles and compute-optimal frontier, the bootstrap
distribution of its exponents, the profiles of the objective that say whether the runs pin the allocation down,
and every family's frontier side by side."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from laws.catalog import get_law  # noqa: E402
from laws.intervals import DEFAULT_LEVEL  # noqa: E402
from registry.family_card import PRIMARY_LAW, FamilyCard  # noqa: E402
from registry.refit import isoflop_budgets  # noqa: E402

#: How far past the largest run the frontier is drawn when no allocation table says (decades).
_BEYOND_RUNS = 1.5


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _primary_params(card: FamilyCard) -> dict[str, float] | None:
    """The primary law's own parameters of the card's newest primary fit (None: it has none, e.g. held by design)."""
    law = get_law(PRIMARY_LAW)
    rows = card.coefficients.filter(pl.col("law") == PRIMARY_LAW)
    params = dict(zip(rows.get_column("parameter").to_list(), rows.get_column("value").to_list()))
    if not all(params.get(name) is not None and np.isfinite(params[name]) for name in law.param_names):
        return None
    return {name: float(params[name]) for name in law.param_names}


def _isoflop_panel(ax, card: FamilyCard, params: dict[str, float]) -> None:
    """Loss against N per IsoFLOP budget, the law's curve at each budget and its fitted minimum; without
    IsoFLOP groups, loss against N coloured by D with the law's compute-optimal curve."""
    law, runs = get_law(PRIMARY_LAW), card.runs
    N, L = runs.get_column("params").to_numpy(), runs.get_column("loss").to_numpy()
    budgets_of_runs = isoflop_budgets(runs)
    if budgets_of_runs is not None:
        budgets = np.unique(budgets_of_runs)
        colours = plt.cm.viridis(np.linspace(0, 0.9, budgets.size))
        for budget, colour in zip(budgets, colours):
            mask = budgets_of_runs == budget
            sizes = np.logspace(np.log10(N[mask].min()) - 0.2, np.log10(N[mask].max()) + 0.2, 60)
            curve = law.predict(params, {"params": sizes, "tokens": budget / (6 * sizes)})
            best = law.allocate(params, budget)
            ax.scatter(N[mask], L[mask], s=12, color=colour, alpha=0.8, label=f"{budget:.2g} FLOPs")
            ax.plot(sizes, curve, color=colour, lw=0.9, alpha=0.7)
            ax.scatter([float(best.n_opt)], [float(best.predicted_loss)], marker="*", s=90, color=colour,
                       edgecolor="black", linewidth=0.5, zorder=4)
        ax.scatter([], [], marker="*", s=90, color="white", edgecolor="black", label="fitted minimum")
        ax.set_title(f"{card.family}: IsoFLOP profiles")
        ax.legend(loc="best", fontsize=7, ncol=2 if budgets.size > 6 else 1, title="budget", title_fontsize=7)
    else:
        D = runs.get_column("tokens").to_numpy()
        points = ax.scatter(N, L, c=np.log10(D), s=12, cmap="viridis", alpha=0.85)
        plt.colorbar(points, ax=ax, label="log10 D (tokens)")
        C = runs.get_column("flops").to_numpy()
        grid = np.logspace(np.log10(C.min()), np.log10(C.max()), 60)
        frontier = law.allocate(params, grid)
        ax.plot(frontier.n_opt, frontier.predicted_loss, color="crimson", lw=1.5, label="law at compute-optimal N, D")
        ax.set_title(f"{card.family}: loss against model size")
        ax.legend(loc="best", fontsize=7)
    ax.set(xscale="log", xlabel="parameters N", ylabel=f"loss: {card.loss_name} (nats)")


def _frontier_panel(ax, card: FamilyCard, params: dict[str, float]) -> None:
    """N_opt(C) with its bootstrap band, from below the smallest run to the largest published budget."""
    law, runs = get_law(PRIMARY_LAW), card.runs
    C, N = runs.get_column("flops").to_numpy(), runs.get_column("params").to_numpy()
    top = card.largest_budget() or C.max() * 10**_BEYOND_RUNS
    grid = np.logspace(np.log10(C.min()) - 0.5, np.log10(max(top, C.max())), 100)
    frontier = law.allocate(params, grid)
    ax.plot(grid, frontier.n_opt, color="crimson", lw=1.5, label="N_opt(C)")
    if card.samples is not None:
        lo, hi = card.samples.allocation_interval(law, grid, DEFAULT_LEVEL)["n_opt"]
        ax.fill_between(grid, lo, hi, color="crimson", alpha=0.2, label=f"{DEFAULT_LEVEL:.0%} bootstrap band")
    ax.scatter(C, N, s=8, color="grey", alpha=0.6, label="runs")
    planned = card.at_budgets().filter(pl.col("law") == PRIMARY_LAW)
    if planned.height:
        ax.scatter(planned.get_column("compute").to_numpy(), planned.get_column("n_opt").to_numpy(), marker="D", s=22,
                   color="black", zorder=4, label="published budgets")
    ax.axvline(C.max(), color="grey", ls=":", lw=0.8, label="largest run")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel="compute-optimal parameters N_opt",
           title="compute-optimal frontier")
    ax.legend(loc="upper left", fontsize=7)


def fit_png(card: FamilyCard) -> bytes | None:
    """The primary law's fit: IsoFLOP panels (left) and the compute-optimal frontier with its band (right).

    None when the card's primary fit has no parameters (held before fitting, or failed).
    """
    params = _primary_params(card)
    if params is None or card.runs.height == 0:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=90)
    _isoflop_panel(left, card, params)
    _frontier_panel(right, card, params)
    fig.tight_layout()
    return _png(fig)


def exponent_histograms_png(card: FamilyCard) -> bytes | None:
    """Bootstrap draws of the primary fit's exponents alpha, beta and a = beta / (alpha + beta), each with its
    point estimate and 95% interval (None: no draws stored)."""
    params = _primary_params(card)
    if card.samples is None or params is None:
        return None
    law = get_law(PRIMARY_LAW)
    draws = card.samples.params()
    a, _ = law.exponents(draws)
    values = {"alpha": np.ravel(draws["alpha"]), "beta": np.ravel(draws["beta"]), "a": np.ravel(a)}
    point = {"alpha": params["alpha"], "beta": params["beta"], "a": float(law.exponents(params)[0])}
    fig, axes = plt.subplots(1, 3, figsize=(11, 3), dpi=90)
    for ax, (name, x) in zip(axes, values.items()):
        x = x[np.isfinite(x)]
        if x.size:
            ax.hist(x, bins=40, color="steelblue", alpha=0.8)
            lo, hi = np.percentile(x, [50 * (1 - DEFAULT_LEVEL), 50 * (1 + DEFAULT_LEVEL)])
            ax.axvspan(lo, hi, color="steelblue", alpha=0.12, label=f"{DEFAULT_LEVEL:.0%} interval")
        ax.axvline(point[name], color="crimson", lw=1.2, label="fit")
        ax.set(xlabel=name, ylabel="bootstrap draws", title=f"{name}: {x.size} draws")
        ax.legend(loc="upper right", fontsize=7)
    fig.suptitle(f"{card.family}: bootstrap distribution of the exponents")
    fig.tight_layout()
    return _png(fig)


#: Up to this many families, the frontiers plot names each (legend) and draws its band; a lab's thousand
#: families are drawn as thin lines without either (a legend of a thousand names cannot be laid out).
LABELLED_FAMILIES = 20


def frontiers_png(allocations: pl.DataFrame, law: str = PRIMARY_LAW) -> bytes | None:
    """Every family's published N_opt(C) of ``law`` with its band, one colour per family; budgets whose
    allocation is not trusted are drawn hollow (None: nothing published)."""
    rows = allocations.filter((pl.col("law") == law) & (pl.col("inference_tokens") == 0)).sort("family", "compute")
    if rows.height == 0:
        return None
    families = rows.get_column("family").unique(maintain_order=True).to_list()
    labelled = len(families) <= LABELLED_FAMILIES
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=90)
    colours = plt.cm.tab20(np.linspace(0, 1, max(len(families), 2)))
    for (family, one), colour in zip(rows.group_by("family", maintain_order=True), colours):
        C, n = one.get_column("compute").to_numpy(), one.get_column("n_opt").to_numpy()
        if not labelled:
            ax.plot(C, n, color=colour, lw=0.5, alpha=0.4)
            continue
        ax.plot(C, n, color=colour, lw=1.3, label=family[0])
        lo, hi = one.get_column("n_opt_lo").to_numpy(), one.get_column("n_opt_hi").to_numpy()
        ax.fill_between(C, lo.astype(float), hi.astype(float), color=colour, alpha=0.12)
        trusted = (one.get_column("status") == "trusted").to_numpy()
        ax.scatter(C[trusted], n[trusted], s=14, color=colour)
        ax.scatter(C[~trusted], n[~trusted], s=14, facecolor="none", edgecolor=colour)
    title = f"Published compute-optimal frontiers ({law}), {DEFAULT_LEVEL:.0%} bootstrap bands"
    if labelled:
        ax.scatter([], [], s=14, color="black", label="trusted")
        ax.scatter([], [], s=14, facecolor="none", edgecolor="black", label="not trusted (see status)")
        ax.legend(loc="upper left", fontsize=7, ncol=2)
    else:
        title = f"Published compute-optimal frontiers ({law}) of {len(families):,} families (bands and status: each family's page)"
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel="compute-optimal parameters N_opt", title=title)
    fig.tight_layout()
    return _png(fig)


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
    return _png(fig)
