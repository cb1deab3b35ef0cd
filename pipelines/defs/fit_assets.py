"""Per-family fits, the latest coefficient and allocation tables built from them, and the exports."""

import warnings

import dagster as dg
import polars as pl

from pipelines.defs import fit_metadata
from pipelines.defs.fit_config import RefitConfig, fit_settings
from pipelines.defs.fit_metadata import FAMILIES, FITS_KEY
from pipelines.defs.ingest_assets import REGISTRY_POOL
from pipelines.defs.resources import RegistryResource
from pipelines.defs.tables import table
from registry.exports import write_exports
from registry.family_card import family_card, family_cards
from registry.family_settings import load_family_settings, settings_for
from registry.overlaps import overlaps_of
from registry.planning import allocations_latest, coefficient_rows, loss_law_statuses
from registry.progress import every
from registry.refit_batch import refitting

__all__ = ["FAMILIES", "FITS_KEY", "defs", "fits", "publish_job", "refit_job"]
FIT_GROUP = "fits"
#: Family cards read per visit to the registry after a refit of many families.
CARDS_PER_VISIT = 200
#: Seconds between the refit's progress lines in the run's log.
LOG_EVERY = 10.0
#: Cards carry their pictures in runs of at most this many families; the nightly refit of a whole lab draws none
#: (a few seconds of matplotlib per family would cost more than the fits themselves).
PLOTS_UP_TO = 50
#: The published tables and the exports follow every refit, held fits included (a failed blocking check fails the
#: refit step after every family's card is stored), so not ``eager()``: that waits for every family partition
#: to be materialised and would leave the tables stale while any family is new or failed.
PUBLISH = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after every refit")

with warnings.catch_warnings():
    # one run per refit over many families keeps one registry writer; the parameter is marked beta in Dagster 1.13
    warnings.filterwarnings("ignore", category=dg.BetaWarning, message="Parameter `backfill_policy`")
    _fits_asset = dg.asset(
        key=FITS_KEY,
        partitions_def=FAMILIES,
        deps=["runs"],
        group_name=FIT_GROUP,
        pool=REGISTRY_POOL,
        kinds={"duckdb", "scipy"},
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=fit_metadata.check_specs(),
        output_required=False,  # each family's partition is materialised by its own card event
    )


@_fits_asset
def fits(context: dg.AssetExecutionContext, config: RefitConfig, registry: RegistryResource):
    """Scaling laws fitted to one family's runs: Chinchilla Approach 3 with a bootstrap, Approach 2 where
    the runs form IsoFLOP groups, Kaplan, and the data-constrained law where unique tokens are known.

    Each fit is appended as a new version to `fits`, `coefficients` and `allocations`; a family whose
    runs and code are unchanged is recorded as unchanged instead. A fit that fails a blocking check
    is held, and the previously published version stays the one planners read.

    Every family's partition shows its card after every refit (unchanged families too; in a refit of more than
    `PLOTS_UP_TO` families, an unchanged family keeps the card and checks of its last refit): each law's
    newest fit with its loss-law verdict (`published`, `held`, `failed`) and reason, coefficients with
    95% intervals, the allocation at 1e20-1e26 FLOPs with its verdict (`trusted`, `extrapolated`,
    `unidentified`, `approaches_disagree`), versions, run count, key numbers charted across refits,
    the IsoFLOP and frontier plot, the exponents' bootstrap histograms and the profiles behind the
    allocation verdict; and one check per gate, failed (and blocking where the gate holds fits) when a
    law's newest fit failed it.
    """
    settings = fit_settings(config)
    declared = load_family_settings(registry.paths)  # the shipped families' settings and the home's own
    plots = registry.paths.root / "plots"
    families = list(context.partition_keys)
    pictures = len(families) <= PLOTS_UP_TO
    # A lab's refit shows again only the cards that changed: an unchanged family's page keeps its last card and
    # checks (re-recording a thousand unchanged cards, ten events each, would cost minutes of a night with nothing new).
    shown_before = set() if pictures else context.instance.get_materialized_partitions(FITS_KEY)
    overlaps = None
    if not pictures:  # matching runs across the registry costs about the same for one family as for all: once, for fits and cards
        with registry.writer() as con:
            overlaps = overlaps_of(con, families)
    kept = 0
    # each stored batch's cards are recorded while the pool fits the next families
    for stored in refitting(registry.writer, families, settings, family_settings=declared, overlaps=overlaps,
                            progress=every(LOG_EVERY, lambda p: context.log.info(f"refit {p.line()}"))):
        shown = [refit for refit in stored if refit.fitted or refit.family not in shown_before]
        kept += len(stored) - len(shown)
        for start in range(0, len(shown), CARDS_PER_VISIT):  # the registry is opened once per stretch of cards
            chunk = shown[start:start + CARDS_PER_VISIT]
            with registry.writer() as con:
                chosen = [settings_for(refit.family, declared) for refit in chunk]
                cards = [family_card(con, s) for s in chosen] if pictures else family_cards(con, chosen, overlaps)
            for refit, card in zip(chunk, cards):
                if pictures:  # a line per family; a lab's refit logs its counts instead (each log line is an event)
                    unchanged = ", ".join(refit.unchanged) or "none"
                    context.log.info(f"{refit.family}: fitted {', '.join(refit.fit_ids) or 'nothing'}; unchanged {unchanged}")
                yield from fit_metadata.family_events(card, refit, settings, plots if pictures else None)
    if kept:
        context.log.info(f"{kept:,} unchanged families keep the cards and checks of their last refit")
    yield from _group_cards(registry, families, settings, declared, context.log)
    # the checks were evaluated per family above; their outputs carry nothing (as Dagster's own AssetCheckResult)
    for key in context.selected_asset_check_keys:
        yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(key))


def _group_cards(registry: RegistryResource, families: list, settings, declared, log):
    """Refit the groups these families belong to (registry/group_refit.py); each member's page gets the group's card."""
    from registry.group_plots import group_png
    from registry.group_refit import refit_groups
    from registry.groups import load_groups
    from registry.plots import markdown_image

    for group in refit_groups(registry.writer, families, load_groups(registry.paths), settings, family_settings=declared):
        log.info(group.line())
        if group.boot is None:
            continue
        png = group_png(group.group, group.shared, group.datasets, group.boot.fit.params)
        metadata = {"group": group.group, "shared": ", ".join(group.shared), "comparison": table(group.comparison),
                    "group_plot": dg.MetadataValue.md(markdown_image(png, f"group {group.group}"))}
        for member in group.datasets:
            yield dg.AssetObservation(asset_key=FITS_KEY, partition=member, metadata=metadata)


#: How each published table is built: from the fits, one registry writer at a time, after every new fit.
PUBLISHED_TABLE = dict(
    deps=[FITS_KEY], group_name=FIT_GROUP, pool=REGISTRY_POOL, kinds={"duckdb"}, automation_condition=PUBLISH
)

@dg.asset(key="coefficients", **PUBLISHED_TABLE)
def coefficients(registry: RegistryResource) -> dg.MaterializeResult:
    """The newest published coefficients per family and law, with 95% bootstrap intervals, and each
    law's loss-law status: whether its newest fit was published, held or failed, and why.

    Planners read them with `scalereg coefficients --format json`, from `exports/coefficients.*`,
    or from the `coefficients_latest` view; `coefficients_as_of(ts)` answers what was believed at ts.
    """
    with registry.writer() as con:
        rows = coefficient_rows(con)
        verdicts = pl.DataFrame(
            [{"family": v.family, "law": v.law, "newest_version": v.version, "status": v.status,
              "published_version": v.published_version, "reason": v.reason} for v in loss_law_statuses(con)],
            schema={"family": pl.String, "law": pl.String, "newest_version": pl.Int64, "status": pl.String,
                    "published_version": pl.Int64, "reason": pl.String},
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows.height,
            "families": rows.get_column("family").n_unique(),
            "loss_law_status": table(verdicts),
            "latest": table(rows.select("family", "law", "version", "name", "value", "ci_lo", "ci_hi")),
        }
    )


@dg.asset(key="allocations", **PUBLISHED_TABLE)
def allocations(registry: RegistryResource) -> dg.MaterializeResult:
    """Compute-optimal N, D, tokens per parameter and predicted loss for budgets from 1e18 to 1e27 FLOPs
    (every half decade) from each family's published fits of the laws that allocate, with 95% bootstrap
    intervals, plus inference-aware rows for 1e9 to 1e13 inference tokens.

    Every row carries its status (`trusted`, `extrapolated`, `unidentified`, `approaches_disagree`) and
    the reason: only a trusted row is what the family's runs identify. The `frontiers` plot draws every
    family's Chinchilla N_opt(C) with its band (hollow points: budgets not trusted).
    """
    with registry.writer() as con:
        frame = allocations_latest(con)
    at_1e24 = frame.filter((frame["compute"] == 1e24) & (frame["inference_tokens"] == 0))
    columns = ("family", "law", "status", "n_opt", "n_opt_lo", "n_opt_hi", "d_opt", "tokens_per_param", "predicted_loss",
               "reason")
    metadata = {"dagster/row_count": frame.height, "at_1e24_flops": table(at_1e24.select(columns))}
    if frame.height:
        from registry.plots import frontiers_png, markdown_image

        if png := frontiers_png(frame):
            metadata["frontiers"] = dg.MetadataValue.md(markdown_image(png, "compute-optimal frontiers of every family"))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key="exports",
    deps=["coefficients", "allocations"],
    group_name=FIT_GROUP,
    pool=REGISTRY_POOL,
    kinds={"parquet", "csv", "json"},
    automation_condition=PUBLISH,
)
def exports(registry: RegistryResource) -> dg.MaterializeResult:
    """Files for planning tools that do not open DuckDB: `exports/coefficients.*` and `exports/allocations.*`
    (Parquet, CSV, JSON), each replaced atomically, plus a dated copy under `exports/versions/`.

    Rewritten only when the published tables changed, so a refit that found nothing new adds no copy.
    """
    with registry.writer() as con:
        written = write_exports(con, registry.paths)
    return dg.MaterializeResult(
        metadata={
            "folder": dg.MetadataValue.path(str(registry.paths.exports)),
            "written": "\n".join(path.name for path in written) or "nothing: the exports already hold the published tables",
            "files_written": len(written),
        }
    )


refit_job = dg.define_asset_job(
    "refit",
    selection=dg.AssetSelection.assets(FITS_KEY),
    description="Refit the selected families (only laws whose data or code changed get a new version).",
)
publish_job = dg.define_asset_job(
    "publish",
    selection=dg.AssetSelection.assets(coefficients, allocations, exports),
    description="Refresh the latest coefficient and allocation tables, then the exports.",
)
#: Evaluates ``PUBLISH``: without it running, a sensor-driven refit would leave the tables and exports stale.
publish_automation = dg.AutomationConditionSensorDefinition(
    "publish_automation",
    target=dg.AssetSelection.assets(coefficients, allocations, exports),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[fits, coefficients, allocations, exports], jobs=[refit_job, publish_job], sensors=[publish_automation]
    )
