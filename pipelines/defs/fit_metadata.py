"""Turning refits into what the Dagster UI shows: the coefficient table, the plots, verdicts, gate results."""

import math
from dataclasses import dataclass

import dagster as dg
import duckdb
import polars as pl

from pipelines.defs.tables import table
from registry.gates import GATES
from registry.planning import allocation_statuses, fit_profiles
from registry.refit import FamilyRefit
from registry.settings import AllocationTrustSettings, FitSettings, GateSettings

FITS_KEY = dg.AssetKey("fits")
#: Budgets whose allocation verdict a family's card lists (FLOPs).
CARD_BUDGETS = (1e20, 1e22, 1e24, 1e26)
_STATUS_COLUMNS = {"law": pl.String, "compute": pl.Float64, "tokens_per_param": pl.Float64, "status": pl.String,
                   "reason": pl.String}


@dataclass(frozen=True)
class StoredCard:
    """What a family's card shows that the refit stored rather than returned: the allocation verdicts of
    its fits at :data:`CARD_BUDGETS` and the primary fit's profiles (empty when none were stored)."""

    statuses: pl.DataFrame
    profiles: pl.DataFrame


def stored_card(con: duckdb.DuckDBPyConnection, refit: FamilyRefit) -> StoredCard:
    """Read the verdicts and profiles of the fits this refit stored."""
    statuses = [
        allocation_statuses(con, fit_id, CARD_BUDGETS).with_columns(pl.lit(fitted.record.law).alias("law"))
        for fitted, fit_id in zip(refit.fitted, refit.fit_ids)
    ]
    frames = [frame.select(list(_STATUS_COLUMNS)) for frame in statuses if frame.height]
    primary = [fit_id for fitted, fit_id in zip(refit.fitted, refit.fit_ids) if fitted.law.primary]
    return StoredCard(
        statuses=pl.concat(frames) if frames else pl.DataFrame(schema=_STATUS_COLUMNS),
        profiles=fit_profiles(con, primary[0]) if primary else pl.DataFrame(),
    )


def coefficient_table(refit: FamilyRefit) -> dg.TableMetadataValue:
    """Every parameter of every law fitted in this refit, with its bootstrap interval and the fit's status."""
    rows = []
    for fitted, fit_id in zip(refit.fitted, refit.fit_ids):
        record = fitted.record
        for name, value in record.params.items():
            lo, hi = record.ci.get(name, (math.nan, math.nan))
            rows.append({"law": record.law, "version": fit_id.rsplit("/", 1)[-1], "status": record.status,
                         "parameter": name, "value": value, "ci_lo": lo, "ci_hi": hi})
    schema = {"law": pl.String, "version": pl.String, "status": pl.String, "parameter": pl.String,
              "value": pl.Float64, "ci_lo": pl.Float64, "ci_hi": pl.Float64}
    return table(pl.DataFrame(rows, schema=schema))


def loss_law_statuses(refit: FamilyRefit) -> str:
    """Each law's loss-law verdict in this refit (``published``, ``held``, ``failed``)."""
    return "\n".join(f"{f.record.law}: {f.record.status}" for f in refit.fitted)


def overlaps(refit: FamilyRefit) -> dg.TableMetadataValue | None:
    """Other families holding the same runs (the fits' diagnostics), so the two are not read as independent evidence."""
    found = next((f.record.diagnostics["overlaps"] for f in refit.fitted if f.record.diagnostics.get("overlaps")), None)
    if not found:
        return None
    schema = {"family": pl.String, "n_shared": pl.Int64, "n_runs": pl.Int64}
    return table(pl.DataFrame([{k: item[k] for k in schema} for item in found], schema=schema))


def profile_plot(refit: FamilyRefit, card: StoredCard, trust: AllocationTrustSettings) -> str | None:
    """The primary fit's profiles over E and a (objective, and tokens/param at 1e24), as a markdown image."""
    from registry.plots import PROFILE_BUDGET, markdown_image, profile_png

    if card.profiles.height == 0:
        return None
    title = f"{refit.family}: does the runs' objective pin down tokens/param at {PROFILE_BUDGET:.0e} FLOPs?"
    return markdown_image(profile_png(card.profiles, title, _tolerance(refit, trust), trust.factor), f"{refit.family} profiles")


def _tolerance(refit: FamilyRefit, trust: AllocationTrustSettings) -> float:
    """The tolerance the primary fit's profiles were judged with (widened for families with few runs)."""
    for f in refit.fitted:
        summary = f.record.diagnostics.get("allocation") if f.law.primary else None
        for check in (summary or {}).get("profiles", {}).values():
            return float(check["tolerance"])
    return trust.tolerance


def reasons(refit: FamilyRefit) -> str | None:
    """Why each fit of this refit that is not published was held or failed."""
    lines = [f"{f.record.law}: {f.record.status}: {f.record.reason}" for f in refit.fitted if f.record.status != "published"]
    return "\n".join(lines) or None


def plot(refit: FamilyRefit) -> str | None:
    """The primary law's fit (Chinchilla) drawn over the runs, as a markdown image (the UI shows it inline)."""
    from registry.plots import fit_png, markdown_image

    primary = next((f for f in refit.fitted if f.law.primary and f.record.params), None)
    if primary is None or refit.runs is None:
        return None
    return markdown_image(fit_png(refit, primary), f"{refit.family} fit")


_OUTCOME_COLUMNS = {"fit": pl.String, "passed": pl.Boolean, "holds": pl.Boolean, "detail": pl.String}


def check_specs() -> list[dg.AssetCheckSpec]:
    """One check per gate of the catalogue; a gate that holds a fit (with default settings) is blocking."""
    defaults = GateSettings()
    return [
        dg.AssetCheckSpec(gate.name, asset=FITS_KEY, description=gate.description, blocking=gate.holds(defaults))
        for gate in GATES.values()
    ]


def check_results(refits: list[FamilyRefit], settings: GateSettings) -> list[dg.AssetCheckResult]:
    """Each gate over every fit of this run: failed if any fit failed it, an error if the gate holds fits."""
    results = []
    for gate in GATES.values():
        outcomes = [
            {"fit": f"{r.family}/{f.record.law}", "passed": g.passed, "holds": g.blocking, "detail": g.detail}
            for r in refits for f in r.fitted for g in f.gates if g.name == gate.name
        ]
        failed = [o["fit"] for o in outcomes if not o["passed"]]
        results.append(
            dg.AssetCheckResult(
                check_name=gate.name,
                asset_key=FITS_KEY,
                passed=not failed,
                severity=dg.AssetCheckSeverity.ERROR if gate.holds(settings) else dg.AssetCheckSeverity.WARN,
                description=gate.description + (f"; failed by {', '.join(failed)}" if failed else ""),
                metadata={
                    "fits": table(pl.DataFrame(outcomes, schema=_OUTCOME_COLUMNS)),
                    "applies": bool(outcomes),
                },
            )
        )
    return results


def materialize_result(refits: list[FamilyRefit], settings: FitSettings, card: StoredCard | None = None) -> dg.MaterializeResult:
    """What was fitted and what was unchanged; for a single family also its card: versions, loss-law statuses,
    coefficient table, reasons, plot, and from ``card`` the allocation verdicts and the profile plot."""
    metadata: dict = {
        "families": ", ".join(r.family for r in refits),
        "fitted": ", ".join(fit_id for r in refits for fit_id in r.fit_ids) or "nothing new",
        "unchanged": ", ".join(f"{r.family}/{law}" for r in refits for law in r.unchanged) or "none",
    }
    if len(refits) == 1:
        (refit,) = refits
        metadata |= {"n_runs": refit.n_runs, "data_version": refit.data_version, "code_version": refit.code_version}
        if refit.fitted:
            metadata["loss_law_status"] = loss_law_statuses(refit)
            if any(f.record.params for f in refit.fitted):  # a fit held by design has no parameters
                metadata["coefficients"] = coefficient_table(refit)
            if not_published := reasons(refit):
                metadata["not_published"] = not_published
            if shared := overlaps(refit):
                metadata["overlaps"] = shared
            if image := plot(refit):
                metadata["plot"] = dg.MetadataValue.md(image)
        if card is not None:
            if card.statuses.height:
                metadata["allocation_status"] = table(card.statuses)
            if image := profile_plot(refit, card, settings.trust):
                metadata["profile_plot"] = dg.MetadataValue.md(image)
    return dg.MaterializeResult(metadata=metadata, check_results=check_results(refits, settings.gates))
