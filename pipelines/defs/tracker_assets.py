"""Runs from an MLflow tracking server: an asset that imports an experiment, and a sensor that notices changes.

Off unless a tracker is configured: set SCALEREG_MLFLOW_URI, SCALEREG_MLFLOW_EXPERIMENT and
SCALEREG_MLFLOW_MAPPING (a tracker mapping TOML). The work is in registry/importers/mlflow.py.
"""


import os
from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.defs.ingest_assets import ingest_asset, runs
from pipelines.defs.ingest_metadata import materialize_result
from pipelines.defs.resources import RegistryResource
from pipelines.defs.tables import table

MLFLOW_KEY = dg.AssetKey(["trackers", "mlflow"])
ENV = {"uri": "SCALEREG_MLFLOW_URI", "experiment": "SCALEREG_MLFLOW_EXPERIMENT", "mapping": "SCALEREG_MLFLOW_MAPPING"}


class MlflowTracker(dg.ConfigurableResource):
    """One experiment on an MLflow tracking server and the tracker mapping its runs are read with."""

    uri: str
    experiment: str
    mapping: str

    @classmethod
    def from_env(cls) -> "MlflowTracker | None":
        """The tracker the environment configures, or None when it configures none."""
        values = {field: os.environ.get(name, "") for field, name in ENV.items()}
        return cls(**values) if all(values.values()) else None


@dg.asset(**ingest_asset(MLFLOW_KEY))
def mlflow_runs(registry: RegistryResource, mlflow: MlflowTracker) -> dg.MaterializeResult:
    """Finished runs of the configured MLflow experiment (N, D and the family from params or tags, the loss
    from a metric, its history as the run's curve).

    Running, failed, killed and deleted runs are listed as skipped with the reason. An unchanged
    experiment is a no-op; a changed one (a run that logged more steps, a new run) is a new version of
    the import that supersedes the earlier one, which stays in `sources`; `tracker_runs` ties every row
    to its MLflow run id.
    """
    from registry.importers.mlflow import import_mlflow
    from registry.importers.tracker_mapping import load_tracker_mapping

    report = import_mlflow(registry.paths, mlflow.uri, mlflow.experiment, load_tracker_mapping(Path(mlflow.mapping)))
    result = materialize_result(MLFLOW_KEY, [report.ingest])
    skipped = [{"run": s.name or s.run_id, "run_id": s.run_id, "status": s.status, "reason": s.reason} for s in report.skipped]
    extra = {"runs_seen": report.runs_seen, "runs_skipped": len(skipped)}
    if skipped:
        extra["skipped"] = table(pl.DataFrame(skipped))
    return dg.MaterializeResult(asset_key=MLFLOW_KEY, metadata={**result.metadata, **extra}, check_results=result.check_results)


mlflow_job = dg.define_asset_job(
    "import_mlflow", selection=dg.AssetSelection.assets(mlflow_runs, runs), description="Import the configured MLflow experiment."
)


@dg.sensor(job=mlflow_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def mlflow_sensor(context: dg.SensorEvaluationContext, mlflow: MlflowTracker) -> dg.SensorResult | dg.SkipReason:
    """Imports the configured MLflow experiment when its finished runs change (one search per tick, no histories)."""
    from registry.adapters.base import FileProblem
    from registry.importers.mlflow import fingerprint

    try:
        seen = fingerprint(mlflow.uri, mlflow.experiment)
    except FileProblem as problem:
        return dg.SkipReason(str(problem))
    if seen == context.cursor:
        return dg.SkipReason(f"no finished run of {mlflow.experiment!r} changed since the last import")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"mlflow-{seen[:16]}")], cursor=seen)


def defs(tracker: MlflowTracker | None = None) -> dg.Definitions:
    """The MLflow asset, job and sensor, only when a tracker is configured (``tracker`` or the environment)."""
    chosen = tracker or MlflowTracker.from_env()
    if chosen is None:
        return dg.Definitions()
    return dg.Definitions(assets=[mlflow_runs], jobs=[mlflow_job], sensors=[mlflow_sensor], resources={"mlflow": chosen})
