"""Assets that bring runs into the registry: one per shipped published dataset, one for the landing folder."""


import dagster as dg

from pipelines.defs.ingest_metadata import RUNS_COLUMN_SCHEMA, check_specs, materialize_result
from pipelines.defs.resources import RegistryResource
from pipelines.defs.tables import table
from registry.db import one
from registry.landing import ingest_landing_entry
from registry.published import PUBLISHED, PublishedSource, ingest_published
from registry.read import family_summary

REGISTRY_POOL = "registry"
INGEST_GROUP = "ingest"


def ingest_asset(key: dg.AssetKey) -> dict:
    """What every ingesting asset shares: its group, the registry's one-writer pool and its row checks."""
    return {"key": key, "group_name": INGEST_GROUP, "pool": REGISTRY_POOL, "kinds": {"duckdb"}, "check_specs": check_specs(key)}


def published_asset(source: PublishedSource) -> dg.AssetsDefinition:
    key = dg.AssetKey(["published", source.key])

    @dg.asset(
        **ingest_asset(key),
        description=(
            f"{source.title}. Ingests the shipped files under data/published/ into the registry "
            f"(families: {', '.join(source.families)}). Re-materialising with unchanged files is a no-op."
        ),
        metadata={"families": ", ".join(source.families), "files": ", ".join(f.path for f in source.files)},
    )
    def _ingest(registry: RegistryResource) -> dg.MaterializeResult:
        with registry.writer() as con:
            reports = ingest_published(con, registry.paths, source)
        return materialize_result(key, reports)

    return _ingest


class LandingConfig(dg.Config):
    """Names of entries of $SCALEREG_HOME/landing/ to ingest; the landing sensor fills this in."""

    paths: list[str] = []


LANDING_KEY = dg.AssetKey("landing_files")


@dg.asset(**ingest_asset(LANDING_KEY))
def landing_files(config: LandingConfig, registry: RegistryResource) -> dg.MaterializeResult:
    """Runs dropped into $SCALEREG_HOME/landing/ (CSV, Parquet or JSONL in the generic format).

    Each file is validated and ingested in its own transaction; rejected rows are kept in
    `rejects` with their reasons, and an entry that cannot be read (or is a link, a folder, or
    was removed before its turn) is recorded in `sources` as failed with the reason.
    """
    home = registry.paths
    with registry.writer() as con:
        # one entry's problem (a link, a vanished file, a folder) is recorded for it and never stops the others
        reports = [ingest_landing_entry(con, home, name) for name in config.paths]
    return materialize_result(LANDING_KEY, reports)


@dg.asset(
    key="runs",
    group_name="registry",
    pool=REGISTRY_POOL,
    kinds={"duckdb"},
    deps=[dg.AssetKey(["published", s.key]) for s in PUBLISHED] + [LANDING_KEY],
)
def runs(registry: RegistryResource) -> dg.MaterializeResult:
    """The validated registry of training runs: one row per trained model, per family.

    Query it with `scalereg sql "select family, count(*) from runs group by 1"`. Rejected rows
    are in `rejects`, sources in `sources`, per-step curves in `run_points`.
    """
    with registry.writer() as con:
        summary = family_summary(con)
        sources = one(con, "SELECT count(*), coalesce(sum(rows_rejected), 0) FROM sources")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": int(summary.get_column("runs").sum() or 0),
            "families": len(summary),
            "sources": sources[0],
            "rejected_rows": int(sources[1]),
            "per_family": table(summary),
            "dagster/column_schema": RUNS_COLUMN_SCHEMA,
        }
    )


PUBLISHED_ASSETS = [published_asset(source) for source in PUBLISHED]

ingest_published_job = dg.define_asset_job(
    "ingest_published",
    selection=dg.AssetSelection.assets(*PUBLISHED_ASSETS, runs),
    description="Ingest every shipped published dataset and refresh the runs summary.",
)
ingest_landing_job = dg.define_asset_job(
    "ingest_landing",
    selection=dg.AssetSelection.assets(landing_files, runs),
    description="Ingest files dropped into the landing folder.",
)


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[*PUBLISHED_ASSETS, landing_files, runs],
        jobs=[ingest_published_job, ingest_landing_job],
    )
