"""Watch the landing folder and ingest each new file once."""


import json

import dagster as dg

from pipelines.defs.ingest_assets import ingest_landing_job
from pipelines.defs.resources import RegistryResource
from registry.adapters.tables import CSV_SUFFIXES, JSONL_SUFFIXES, PARQUET_SUFFIXES
from registry.home import Home

WATCHED_SUFFIXES = CSV_SUFFIXES | PARQUET_SUFFIXES | JSONL_SUFFIXES | {".pkl", ".pickle"}


def new_landing_files(home: Home, cursor: str | None) -> tuple[list[str], str]:
    """Files not seen before (by name, size and modification time) and the cursor that remembers them.

    A file rewritten in place is seen again; the ingest itself is a no-op when its content hash is
    already registered, so a touched file never duplicates runs.
    """
    seen: dict[str, str] = json.loads(cursor) if cursor else {}
    fresh = []
    if home.landing.exists():
        for path in sorted(home.landing.iterdir()):
            if not path.is_file() or path.name.startswith(".") or path.name.endswith(".partial"):
                continue
            if path.suffix.lower() not in WATCHED_SUFFIXES:
                continue
            stat = path.stat()
            signature = f"{stat.st_size}:{stat.st_mtime_ns}"
            if seen.get(path.name) != signature:
                fresh.append(path.name)
                seen[path.name] = signature
    return fresh, json.dumps(seen, sort_keys=True)


@dg.sensor(job=ingest_landing_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_sensor(context: dg.SensorEvaluationContext, registry: RegistryResource) -> dg.SensorResult | dg.SkipReason:
    """Ingests CSV, Parquet and JSONL files dropped into $SCALEREG_HOME/landing/, each once."""
    fresh, cursor = new_landing_files(registry.paths, context.cursor)
    if not fresh:
        return dg.SkipReason("no new files in the landing folder")
    request = dg.RunRequest(
        run_key=f"landing:{cursor}",
        run_config={"ops": {"landing_files": {"config": {"paths": fresh}}}},
        tags={"scalereg/files": ",".join(fresh)[:200]},
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor)


def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[landing_sensor])
