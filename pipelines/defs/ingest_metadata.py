"""Turning ingest reports into what the Dagster UI shows: counts, rejects, schema and check results."""


import dagster as dg
import polars as pl

from pipelines.defs.tables import table
from registry.ingest import IngestReport

#: A source with more rejected rows than this share fails the (non-blocking) rejects check.
REJECT_SHARE_THRESHOLD = 0.05

RUNS_COLUMN_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("run_id", "VARCHAR", description="md5 of family/run_name, first 16 hex digits"),
        dg.TableColumn("family", "VARCHAR", description="the unit of a fit; a slug"),
        dg.TableColumn("source_id", "BIGINT"),
        dg.TableColumn("run_name", "VARCHAR"),
        dg.TableColumn("params", "DOUBLE", description="N"),
        dg.TableColumn("params_non_embedding", "DOUBLE"),
        dg.TableColumn("tokens", "DOUBLE", description="D, training tokens"),
        dg.TableColumn("tokens_derived", "BOOLEAN", description="D = C / 6N"),
        dg.TableColumn("unique_tokens", "DOUBLE"),
        dg.TableColumn("flops", "DOUBLE", description="C"),
        dg.TableColumn("flops_derived", "BOOLEAN", description="C = 6ND"),
        dg.TableColumn("loss", "DOUBLE", description="final value of the loss the family is fitted on"),
        dg.TableColumn("loss_name", "VARCHAR"),
        dg.TableColumn("final_step", "BIGINT"),
        dg.TableColumn("flags", "VARCHAR[]", description="compute_mismatch, diverged, tokens_derived"),
        dg.TableColumn("tags", "JSON"),
    ]
)


def check_specs(asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec("no_rows_lost", asset=asset_key, description="rows read = rows accepted + rows rejected, for every file"),
        dg.AssetCheckSpec(
            "rejects_below_threshold",
            asset=asset_key,
            description=f"at most {REJECT_SHARE_THRESHOLD:.0%} of the rows of each file are rejected",
        ),
        dg.AssetCheckSpec("no_failed_files", asset=asset_key, description="every file could be read as a whole"),
    ]


def materialize_result(asset_key: dg.AssetKey, reports: list[IngestReport]) -> dg.MaterializeResult:
    read = sum(r.rows_read for r in reports)
    accepted = sum(r.rows_accepted for r in reports)
    rejected = sum(r.rows_rejected for r in reports)
    shares = {r.name: (r.rows_rejected / r.rows_read if r.rows_read else 0.0) for r in reports}
    failed = [r for r in reports if r.status == "failed"]
    sources = pl.DataFrame(
        [{"source": r.name, "status": r.status, "read": r.rows_read, "accepted": r.rows_accepted,
          "rejected": r.rows_rejected, "runs_added": r.runs_added} for r in reports],
        schema={"source": pl.String, "status": pl.String, "read": pl.Int64, "accepted": pl.Int64,
                "rejected": pl.Int64, "runs_added": pl.Int64},
    )
    return dg.MaterializeResult(
        asset_key=asset_key,
        metadata={
            "rows_read": read,
            "rows_accepted": accepted,
            "rows_rejected": rejected,
            "runs_added": sum(r.runs_added for r in reports),
            "families": ", ".join(sorted({f for r in reports for f in r.families})) or "(none new)",
            "sources": table(sources),
            # errors name their file already (landing and file problems); others get it in front, once
            "errors": "\n".join(r.error if (r.error or "").startswith(f"{r.name}:") else f"{r.name}: {r.error}"
                                for r in failed) or "none",
            "dagster/column_schema": RUNS_COLUMN_SCHEMA,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_rows_lost",
                asset_key=asset_key,
                passed=all(r.conserved for r in reports),
                metadata={"rows_read": read, "rows_accepted": accepted, "rows_rejected": rejected},
            ),
            dg.AssetCheckResult(
                check_name="rejects_below_threshold",
                asset_key=asset_key,
                passed=all(share <= REJECT_SHARE_THRESHOLD for share in shares.values()),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"reject_share": dg.MetadataValue.json(shares)},
            ),
            dg.AssetCheckResult(
                check_name="no_failed_files",
                asset_key=asset_key,
                passed=not failed,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"failed": dg.MetadataValue.json([r.as_dict() for r in failed])},
            ),
        ],
    )
