"""Per-family fits, and the latest coefficient and allocation tables built from them."""

import dagster as dg

from pipelines.defs.ingest_assets import REGISTRY_POOL
from pipelines.defs.resources import RegistryResource
from registry.exports import write_exports
from registry.gates import GateSettings
from registry.planning import allocations_latest, coefficient_rows
from registry.refit import FamilyRefit, FitSettings, budgets_of, isoflop_groups, refit_family

FAMILIES = dg.DynamicPartitionsDefinition(name="family")
FIT_GROUP = "fits"
GATES = {
    "converged": "the optimiser met its tolerance",
    "plausible": "0 < alpha, beta < 2 and 0 < E < the smallest observed loss",
    "extrapolation": "loss on the runs above a compute cut-off is predicted within the threshold by a fit on those below",
    "interval_width": "95% bootstrap intervals of alpha and beta are narrow enough to plan with",
    "identifiability": "alpha and beta (and A and E) can be told apart on these runs",
    "approaches_agree": "Approach 2 and Approach 3 agree on the allocation exponent a, where both apply",
}
BLOCKING = {"converged", "plausible", "extrapolation", "interval_width"}


class RefitConfig(dg.Config):
    """Settings of a refit; changing any of them changes the code version, so families are refit."""

    bootstrap_resamples: int = 1000
    other_law_resamples: int = 200
    exclude_top_loss: int = 0
    max_extrapolation_error: float = 0.05
    max_relative_interval_width: float = 1.0
    max_exponent_disagreement: float = 0.1

    def settings(self) -> FitSettings:
        return FitSettings(
            bootstrap_resamples=self.bootstrap_resamples,
            other_law_resamples=self.other_law_resamples,
            exclude_top_loss=self.exclude_top_loss,
            gates=GateSettings(
                max_extrapolation_error=self.max_extrapolation_error,
                max_relative_interval_width=self.max_relative_interval_width,
                max_exponent_disagreement=self.max_exponent_disagreement,
            ),
        )


FITS_KEY = dg.AssetKey("fits")


def _coefficient_table(refit: FamilyRefit) -> str:
    lines = ["| law | version | status | parameter | value | 95% interval |", "|---|---|---|---|---:|---|"]
    for fitted, fit_id in zip(refit.fitted, refit.fit_ids):
        record = fitted.record
        for name, value in record.params.items():
            lo, hi = record.ci.get(name, (float("nan"), float("nan")))
            lines.append(f"| {record.law} | {fit_id.rsplit('/', 1)[-1]} | {record.status} | {name} | {value:.5g} | [{lo:.5g}, {hi:.5g}] |")
        if record.status != "published":
            lines.append(f"| {record.law} | | {record.status} | reason | {record.reason} | |")
    return "\n".join(lines)


def _plot(refit: FamilyRefit) -> str | None:
    from registry.plots import fit_png, markdown_image

    chinchilla = next((f for f in refit.fitted if f.record.law == "chinchilla" and f.record.params), None)
    if chinchilla is None or refit.runs is None:
        return None
    budgets = budgets_of(refit.runs.get_column("flops").to_numpy()) if isoflop_groups(refit.runs) >= 3 else None
    png = fit_png(refit.family, refit.runs, chinchilla.record.params, chinchilla.boot, budgets)
    return markdown_image(png, f"{refit.family} fit")


def _check_results(refits: list[FamilyRefit]) -> list[dg.AssetCheckResult]:
    results = []
    for name, description in GATES.items():
        outcomes = {
            r.family: g for r in refits for f in r.fitted if f.record.law == "chinchilla" for g in f.gates if g.name == name
        }
        passed = all(g.passed for g in outcomes.values())
        results.append(
            dg.AssetCheckResult(
                check_name=name,
                asset_key=FITS_KEY,
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR if name in BLOCKING else dg.AssetCheckSeverity.WARN,
                description=description,
                metadata={
                    "families": dg.MetadataValue.json({f: {"passed": g.passed, "detail": g.detail} for f, g in outcomes.items()}),
                    "applies": bool(outcomes),
                },
            )
        )
    return results


@dg.asset(
    key=FITS_KEY,
    partitions_def=FAMILIES,
    deps=["runs"],
    group_name=FIT_GROUP,
    pool=REGISTRY_POOL,
    kinds={"duckdb", "scipy"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec(name, asset=FITS_KEY, description=text) for name, text in GATES.items()],
)
def fits(context: dg.AssetExecutionContext, config: RefitConfig, registry: RegistryResource) -> dg.MaterializeResult:
    """Scaling laws fitted to one family's runs: Chinchilla Approach 3 with a bootstrap, Approach 2 where
    the runs form IsoFLOP groups, Kaplan, and the data-constrained law where unique tokens are known.

    Each fit is appended as a new version to `fits`, `coefficients` and `allocations`; a family whose
    runs and code are unchanged is recorded as unchanged instead. A fit that fails a blocking check
    is held, and the previously published version stays the one planners read.
    """
    settings = config.settings()
    refits = []
    for family in context.partition_keys:
        refit = refit_family(registry.writer, family, settings)
        context.log.info(
            f"{family}: fitted {[f.record.law + ':' + f.record.status for f in refit.fitted]}, unchanged {refit.unchanged}"
        )
        refits.append(refit)
    with registry.writer() as con:
        write_exports(con, registry.paths)

    metadata: dict = {
        "families": ", ".join(r.family for r in refits),
        "fitted": ", ".join(fit_id for r in refits for fit_id in r.fit_ids) or "nothing new",
        "unchanged": ", ".join(f"{r.family}/{law}" for r in refits for law in r.unchanged) or "none",
    }
    if len(refits) == 1:
        refit = refits[0]
        metadata |= {"n_runs": refit.n_runs, "data_version": refit.data_version, "code_version": refit.code_version}
        if refit.fitted:
            metadata["coefficients"] = dg.MetadataValue.md(_coefficient_table(refit))
            plot = _plot(refit)
            if plot:
                metadata["plot"] = dg.MetadataValue.md(plot)
    return dg.MaterializeResult(metadata=metadata, check_results=_check_results(refits))


@dg.asset(
    key="coefficients",
    deps=[FITS_KEY],
    group_name=FIT_GROUP,
    pool=REGISTRY_POOL,
    kinds={"duckdb", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
)
def coefficients(registry: RegistryResource) -> dg.MaterializeResult:
    """The newest published coefficients per family and law, with 95% bootstrap intervals.

    Planners read them with `scalereg coefficients --format json`, from `exports/coefficients.*`,
    or from the `coefficients_latest` view; `coefficients_as_of(ts)` answers what was believed at ts.
    """
    with registry.writer() as con:
        rows = coefficient_rows(con)
        write_exports(con, registry.paths)
    table = "| family | law | version | parameter | value | 95% interval |\n|---|---|---:|---|---:|---|\n" + "\n".join(
        f"| {r['family']} | {r['law']} | {r['version']} | {r['name']} | {r['value']:.5g} | "
        f"[{r['ci_lo'] if r['ci_lo'] is None else format(r['ci_lo'], '.5g')}, {r['ci_hi'] if r['ci_hi'] is None else format(r['ci_hi'], '.5g')}] |"
        for r in rows.iter_rows(named=True)
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows.height,
            "families": rows.get_column("family").n_unique() if rows.height else 0,
            "latest": dg.MetadataValue.md(table),
            "exports": str(registry.paths.exports),
        }
    )


@dg.asset(
    key="allocations",
    deps=[FITS_KEY],
    group_name=FIT_GROUP,
    pool=REGISTRY_POOL,
    kinds={"duckdb", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
)
def allocations(registry: RegistryResource) -> dg.MaterializeResult:
    """Compute-optimal N, D, tokens per parameter and predicted loss for budgets from 1e18 to 1e27 FLOPs
    (every half decade) from each family's published Chinchilla fit, with 95% bootstrap intervals, plus
    inference-aware rows for 1e9 to 1e13 inference tokens."""
    with registry.writer() as con:
        frame = allocations_latest(con)
    at_1e24 = frame.filter((frame["compute"] == 1e24) & (frame["inference_tokens"] == 0)) if frame.height else frame
    table = "| family | N_opt | D_opt | D/N | loss |\n|---|---:|---:|---:|---:|\n" + "\n".join(
        f"| {r['family']} | {r['n_opt']:.3g} | {r['d_opt']:.3g} | {r['tokens_per_param']:.1f} | {r['predicted_loss']:.3f} |"
        for r in at_1e24.iter_rows(named=True)
    )
    return dg.MaterializeResult(metadata={"dagster/row_count": frame.height, "at_1e24_flops": dg.MetadataValue.md(table)})


refit_job = dg.define_asset_job(
    "refit",
    selection=dg.AssetSelection.assets(FITS_KEY),
    description="Refit the selected families (only laws whose data or code changed get a new version).",
)
publish_job = dg.define_asset_job(
    "publish", selection=dg.AssetSelection.assets("coefficients", "allocations"),
    description="Refresh the latest coefficient and allocation tables and the exports.",
)


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[fits, coefficients, allocations], jobs=[refit_job, publish_job])
