"""Watch the landing folder and ingest each new file once it is complete."""


import time

import dagster as dg

from pipelines.defs.ingest_assets import ingest_landing_job
from pipelines.defs.resources import RegistryResource
from registry.landing import MAX_ATTEMPTS, LandingState, scan_landing, settle_seconds

RUN_KEY_TAG = "dagster/run_key"
FAILED = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def _outcomes(instance: dg.DagsterInstance, run_keys: set[str]) -> tuple[set[str], set[str]]:
    """Which of these landing runs succeeded and which failed (runs not finished yet are in neither)."""
    if not run_keys:
        return set(), set()
    runs = instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: sorted(run_keys)}))
    succeeded = {r.tags[RUN_KEY_TAG] for r in runs if r.status == dg.DagsterRunStatus.SUCCESS}
    failed = {r.tags[RUN_KEY_TAG] for r in runs if r.status in FAILED}
    return succeeded, failed - succeeded


def _waiting_message(settling: list[str], in_flight: int, given_up: list[str]) -> str:
    parts = []
    if settling:
        parts.append(
            f"waiting for {len(settling)} file(s) to stop changing ({', '.join(settling[:5])}): taken once unchanged "
            f"between two ticks and {settle_seconds():g} s old (SCALEREG_LANDING_SETTLE)"
        )
    if in_flight:
        parts.append(f"{in_flight} landing run(s) still to finish")
    if given_up:
        parts.append(f"gave up on {', '.join(given_up)} after {MAX_ATTEMPTS} failed landing runs; change or re-drop them to retry")
    return "; ".join(parts) or "no new files in the landing folder"


@dg.sensor(job=ingest_landing_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_sensor(context: dg.SensorEvaluationContext, registry: RegistryResource) -> dg.SensorResult | dg.SkipReason:
    """Ingests CSV, Parquet and JSONL files dropped into $SCALEREG_HOME/landing/, each once, when complete.

    Write a file as `name.csv.partial` (or `.name.csv`) and rename it when it is complete; a file
    written in place is taken once its size and modification time are the same on two ticks and it
    is SCALEREG_LANDING_SETTLE seconds (default 10) old. Each entry succeeds or fails on its own; a
    landing run that fails as a whole is retried (three runs at most).
    """
    state = LandingState.parse(context.cursor)
    succeeded, failed = _outcomes(context.instance, state.outstanding())
    given_up = state.given_up(failed)
    scan = scan_landing(registry.paths, state.settle(succeeded, failed), time.time(), settle_seconds())
    if not scan.ready:
        message = _waiting_message(scan.settling, len(scan.state.outstanding()), given_up)
        if scan.state == state:
            return dg.SkipReason(message)
        return dg.SensorResult(skip_reason=message, cursor=scan.state.cursor())
    run_key = scan.run_key()
    names = sorted(scan.ready)
    request = dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {"landing_files": {"config": {"paths": names}}}},
        tags={"scalereg/files": ",".join(names)[:200]},
    )
    return dg.SensorResult(run_requests=[request], cursor=scan.requested_as(run_key).cursor())


def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[landing_sensor])
