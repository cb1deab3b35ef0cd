"""Turning refits into what the Dagster UI shows: the coefficient table, the plot, gate results."""

import math

import dagster as dg
import polars as pl

from pipelines.defs.tables import table
from registry.gates import GATES
from registry.refit import FamilyRefit
from registry.settings import GateSettings

FITS_KEY = dg.AssetKey("fits")


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


def materialize_result(refits: list[FamilyRefit], settings: GateSettings) -> dg.MaterializeResult:
    """What was fitted and what was unchanged; for a single family also its card: versions, table, reasons, plot."""
    metadata: dict = {
        "families": ", ".join(r.family for r in refits),
        "fitted": ", ".join(fit_id for r in refits for fit_id in r.fit_ids) or "nothing new",
        "unchanged": ", ".join(f"{r.family}/{law}" for r in refits for law in r.unchanged) or "none",
    }
    if len(refits) == 1:
        (refit,) = refits
        metadata |= {"n_runs": refit.n_runs, "data_version": refit.data_version, "code_version": refit.code_version}
        if refit.fitted:
            metadata["coefficients"] = coefficient_table(refit)
            if not_published := reasons(refit):
                metadata["not_published"] = not_published
            if image := plot(refit):
                metadata["plot"] = dg.MetadataValue.md(image)
    return dg.MaterializeResult(metadata=metadata, check_results=check_results(refits, settings))
