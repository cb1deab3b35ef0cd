"""Running the project's Dagster jobs in-process, against the home's own Dagster instance.

Used by ``scalereg demo`` and ``scalereg refit`` and by tests: the same jobs the UI and the
schedules launch, executed without a daemon, recorded in the home's instance so the UI shows them.
Each run is tagged with this process, so that if it is killed the next job can tell the run is dead
and free what it held (:mod:`pipelines.run_recovery`).
"""

import os

import dagster as dg

from pipelines.run_recovery import clear_the_pool, process_tags, recovering_while_running
from registry.home import Home
from registry.instance import prepare_dagster_home


def home_instance(home: Home) -> dg.DagsterInstance:
    """The Dagster instance kept in the home folder (what `make ui` and the schedules use)."""
    prepare_dagster_home(home)
    return dg.DagsterInstance.get()


class JobFailed(RuntimeError):
    """A job failed for a reason other than fits held by their gates; the message is Dagster's account of it."""


def held_only(result: dg.ExecuteInProcessResult) -> bool:
    """The run failed only because blocking checks held fits: each failed step materialised its asset, then
    Dagster failed it for a blocking check (a held fit is a verdict stored in the registry, not an error)."""
    failed = {e.step_key for e in result.get_step_failure_events()}
    materialised = {e.step_key for e in result.get_asset_materialization_events()}
    holds = [
        c for c in result.get_asset_check_evaluations()
        if not c.passed and c.blocking and c.severity == dg.AssetCheckSeverity.ERROR
    ]
    return bool(failed) and failed <= materialised and bool(holds)


#: Jobs whose failed blocking checks hold fits (a verdict stored with the fit), not errors of the command.
HOLDING_JOBS = frozenset({"refit"})


def quiet(run_config: dict | None) -> dict:
    """``run_config`` with Dagster's console logger silenced, unless ``SCALEREG_VERBOSE`` is set (``--verbose``):
    the commands say what happened themselves, and a held fit is a verdict, not an error to print."""
    level = "DEBUG" if os.environ.get("SCALEREG_VERBOSE") else "CRITICAL"
    return {**(run_config or {}), "loggers": {"console": {"config": {"log_level": level}}}}


def run_job(
    home: Home, job_name: str, run_config: dict | None = None, tags: dict[str, str] | None = None
) -> dg.ExecuteInProcessResult:
    """Execute a job in-process; errors are raised. A run of a job in :data:`HOLDING_JOBS` that failed only
    because fits were held returns its (failed) result; any other failure of it raises :class:`JobFailed`."""
    from pipelines.definitions import build_defs

    prepare_dagster_home(home)
    with dg.DagsterInstance.get() as instance:
        # Resolve the job while this instance is open: Dagster's definitions loading looks up
        # the current instance, and an earlier, closed one may already be garbage.
        job = build_defs(home).resolve_job_def(job_name)
        # A run killed earlier may still claim the registry pool: recover it rather than wait for it forever.
        clear_the_pool(instance, home)
        with recovering_while_running():
            result = job.execute_in_process(
                run_config=quiet(run_config), instance=instance, tags={**(tags or {}), **process_tags()},
                raise_on_error=job_name not in HOLDING_JOBS,
            )
    if not (result.success or held_only(result)):
        errors = [e.step_failure_data.error for e in result.get_step_failure_events() if e.step_failure_data.error]
        raise JobFailed(f"job {job_name!r} failed: " + "; ".join(f"{e.cls_name}: {e.message.strip()}" for e in errors))
    return result


def refit(home: Home, families: list[str] | None = None, run_config: dict | None = None) -> list[dg.ExecuteInProcessResult]:
    """Refit the given families (default: all) in one run, then refresh coefficients, allocations and exports.

    Of all families (``families`` None), those with nothing new are recorded as unchanged without a run; when
    no family is left, nothing runs (the published tables and exports already hold every fit). Held fits do
    not stop it: they are stored with their reasons and the publish job runs regardless.
    """
    from pipelines.defs.fit_assets import FAMILIES
    from pipelines.defs.fit_config import RefitConfig, fit_settings
    from registry.db import reader, writer
    from registry.family_settings import load_family_settings
    from registry.refit_batch import record_unchanged_families
    from registry.fit_store import families as registry_families
    from schemas.families import is_family_key

    every = families is None
    if every:
        with reader(home.registry) as con:
            families = registry_families(con)
    families = sorted(f for f in families if is_family_key(f))
    if every:
        # Families whose rows, laws code and settings are those of their newest fits are recorded as unchanged here,
        # in one query and one transaction: a night with nothing new starts no run and reads no family's runs.
        # (Families named explicitly still run, so their cards are shown again, pictures included.)
        settings = fit_settings(RefitConfig(**(run_config or {}).get("ops", {}).get("fits", {}).get("config", {})))
        with writer(home.registry) as con:
            unchanged, _ = record_unchanged_families(con, families, settings, load_family_settings(home))
        families = [f for f in families if f not in unchanged]
    if not families:
        return []
    prepare_dagster_home(home)
    with dg.DagsterInstance.get() as instance:
        known = set(instance.get_dynamic_partitions(FAMILIES.name))
        if missing := [f for f in families if f not in known]:
            instance.add_dynamic_partitions(FAMILIES.name, missing)
        ordered = [k for k in instance.get_dynamic_partitions(FAMILIES.name)]
    results = []
    # Contiguous stretches of the partition order run as one run each (single-run backfill policy).
    wanted = set(families)
    stretch: list[str] = []
    for key in ordered + [None]:
        if key in wanted:
            stretch.append(key)
            continue
        if stretch:
            tags = {"dagster/asset_partition_range_start": stretch[0], "dagster/asset_partition_range_end": stretch[-1]}
            results.append(run_job(home, "refit", run_config=run_config, tags=tags))
            stretch = []
    results.append(run_job(home, "publish"))
    return results
