"""A family's card and gate results as Dagster events, one set per family partition of ``fits``.

Every refit emits, for each family it covered, a materialization of that family's partition (its card)
and one check evaluation per gate for that partition, whether the family was refitted or found
unchanged: the card is read back from the registry (:mod:`registry.family_card`), so a page never
goes blank after a refit that found nothing new. The plots are drawn once per fit and kept under the
home's ``plots/`` folder, so re-emitting an unchanged family's card draws nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.defs.tables import table
from registry.family_card import CARD_BUDGETS, PRIMARY_LAW, FamilyCard
from registry.gates import GATES
from registry.refit import FamilyRefit
from registry.settings import FitSettings, GateSettings

FITS_KEY = dg.AssetKey("fits")
FAMILIES = dg.DynamicPartitionsDefinition(name="family")

FitEvent = dg.AssetMaterialization | dg.AssetCheckEvaluation
#: A check is blocking when its gate holds fits under the default settings (the specs are fixed when the code loads).
DEFAULT_GATES = GateSettings()


def check_specs() -> list[dg.AssetCheckSpec]:
    """One check per gate of the catalogue, per family partition; a gate that holds a fit (with default
    settings) is blocking: a failed one fails the refit step, and the held fit is not published.

    Partitioned checks are a preview feature of Dagster 1.13; its notice is silenced here, where it is used.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning, message="Specifying a partitions_def on an AssetCheckSpec")
        return [
            dg.AssetCheckSpec(gate.name, asset=FITS_KEY, description=gate.description, blocking=gate.holds(DEFAULT_GATES),
                              partitions_def=FAMILIES)
            for gate in GATES.values()
        ]


def _cached_png(folder: Path, name: str, key: str, draw: Callable[[], bytes | None]) -> Path | None:
    """The plot ``name`` for ``key`` (the fits it shows), drawn only when not already kept; written whole."""
    path = folder / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.png"
    if path.exists():
        return path
    png = draw()
    if png is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(png)
    partial.replace(path)
    return path


def _image(path: Path, alt: str) -> dg.MetadataValue:
    from registry.plots import markdown_image

    return dg.MetadataValue.md(markdown_image(path.read_bytes(), alt))


def _profile_tolerance(card: FamilyCard, settings: FitSettings) -> float:
    """The tolerance the primary fit's profiles were judged with (widened for families with few runs)."""
    primary = card.primary
    summary = json.loads(primary["diagnostics"] or "{}").get("allocation") if primary else None
    for check in (summary or {}).get("profiles", {}).values():
        return float(check["tolerance"])
    return settings.trust.tolerance


def _plots(card: FamilyCard, settings: FitSettings, folder: Path) -> dict[str, dg.MetadataValue]:
    """The card's pictures as inline images: fit (IsoFLOP panels, frontier), exponent histograms, profiles."""
    from registry import plots

    primary = card.primary
    if primary is None:
        return {}
    key = f"{primary['fit_id']}:{card.largest_budget()}"
    tolerance = _profile_tolerance(card, settings)
    title = f"{card.family}: does the runs' objective pin down tokens/param at {plots.PROFILE_BUDGET:.0e} FLOPs?"
    drawn = {
        "plot": (lambda: plots.fit_png(card), f"{card.family} fit"),
        "exponent_histograms": (lambda: plots.exponent_histograms_png(card), f"{card.family} exponents"),
        "profile_plot": (
            lambda: plots.profile_png(card.profiles, title, tolerance, settings.trust.factor) if card.profiles.height else None,
            f"{card.family} profiles",
        ),
    }
    metadata: dict[str, dg.MetadataValue] = {}
    for name, (draw, alt) in drawn.items():
        if path := _cached_png(folder, name, key, draw):
            metadata[name] = _image(path, alt)
            if name == "plot":
                metadata["plot_file"] = dg.MetadataValue.path(str(path))
    return metadata


def card_metadata(card: FamilyCard, refit: FamilyRefit | None, settings: FitSettings, plots: Path | None) -> dict:
    """What a family's partition page shows: statuses and reasons, coefficients with intervals, allocations
    at :data:`CARD_BUDGETS` with their verdicts, versions, run count, key numbers (charted by Dagster) and plots."""
    fits = card.fits
    primary = card.primary or (fits.row(0, named=True) if fits.height else None)
    metadata: dict = {
        "refit": ("fitted " + ", ".join(refit.fit_ids) if refit and refit.fit_ids else "unchanged: nothing new to fit"),
        "fitted": ", ".join(refit.fit_ids) if refit and refit.fit_ids else "nothing new",
        "loss_law_status": "\n".join(f"{r['law']}: {r['status']} (v{r['version']})" for r in fits.iter_rows(named=True))
        or "no fits yet",
    }
    if primary is not None:
        metadata |= {"n_runs": int(primary["n_runs"]), "data_version": primary["data_version"],
                     "code_version": primary["code_version"]}
    failed = [f"{g.name} ({'held' if g.blocking else 'not blocking'}): {g.law} v{g.version}: {g.detail}"
              for g in card.gates() if not g.passed]
    metadata["failed_checks"] = "\n".join(failed) or "none"
    reasons = [f"{r['law']}: {r['status']}: {r['reason']}" for r in fits.iter_rows(named=True) if r["status"] != "published"]
    if reasons:
        metadata["not_published"] = "\n".join(reasons)
    if card.coefficients.height:
        metadata["coefficients"] = table(card.coefficients)
    allocations = card.at_budgets(CARD_BUDGETS)
    if allocations.height:
        metadata["allocation_status"] = table(
            allocations.select("law", "version", "compute", "status", "n_opt", "n_opt_lo", "n_opt_hi", "tokens_per_param",
                               "tokens_per_param_lo", "tokens_per_param_hi", "reason")
        )
    if card.overlaps.height:
        metadata["overlaps"] = table(card.overlaps)
    metadata |= {name: dg.MetadataValue.float(value) for name, value in card.key_numbers().items()}
    if plots is None:  # a refit of many families: drawing every family's pictures would cost more than its fits
        return metadata | {"plots": "not drawn in a refit of this many families; a refit of this family alone draws them"}
    return metadata | _plots(card, settings, plots)


def gate_evaluations(card: FamilyCard, settings: GateSettings) -> list[dg.AssetCheckEvaluation]:
    """One evaluation per gate that applies to the family's newest fits, for the family's partition.

    Failed when any law's newest fit failed it; an error (blocking) when that gate held a fit, a
    warning otherwise. The description names the laws that failed and why.
    """
    outcomes = card.gates()
    evaluations = []
    for gate in GATES.values():
        mine = [o for o in outcomes if o.name == gate.name]
        if not mine:
            continue  # no law of this family faces the gate (e.g. no Approach 2 to agree with)
        failed = [o for o in mine if not o.passed]
        held = any(o.blocking for o in failed)
        if failed:
            verdict = "held" if held else "failed (not blocking)"
            description = f"{verdict}: " + "; ".join(f"{card.family}/{o.law} v{o.version}: {o.detail}" for o in failed)
        else:
            description = f"passed by {', '.join(f'{o.law} v{o.version}' for o in mine)}: {gate.description}"
        outcome_rows = pl.DataFrame(
            [{"fit": f"{card.family}/{o.law}", "version": f"v{o.version}", "passed": o.passed, "holds": o.blocking,
              "detail": o.detail} for o in mine],
            schema={"fit": pl.String, "version": pl.String, "passed": pl.Boolean, "holds": pl.Boolean, "detail": pl.String},
        )
        evaluations.append(
            dg.AssetCheckEvaluation(
                asset_key=FITS_KEY, check_name=gate.name, passed=not failed, partition=card.family,
                severity=dg.AssetCheckSeverity.ERROR if held or gate.holds(settings) else dg.AssetCheckSeverity.WARN,
                blocking=gate.holds(DEFAULT_GATES), description=description[:2000],
                metadata={"fits": table(outcome_rows), "reason": dg.MetadataValue.text(description)},
            )
        )
    return evaluations


def family_events(card: FamilyCard, refit: FamilyRefit | None, settings: FitSettings, plots: Path | None) -> Iterator[FitEvent]:
    """The family partition's materialization (its card), then its gate evaluations."""
    yield dg.AssetMaterialization(
        asset_key=FITS_KEY, partition=card.family, metadata=card_metadata(card, refit, settings, plots / card.family if plots else None),
        description=f"{card.family}: newest fit of each law ({PRIMARY_LAW} first on its page's plots)",
    )
    yield from gate_evaluations(card, settings.gates)
