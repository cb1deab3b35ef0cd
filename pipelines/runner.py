"""Running the project's Dagster jobs in-process, against the home's own Dagster instance.

Used by ``scalereg demo`` and ``scalereg refit`` and by tests: the same jobs the UI and the
schedules launch, executed without a daemon, recorded in the home's instance so the UI shows them.
Each run is tagged with this process, so that if it is killed the next job can tell the run is dead
and free what it held (:mod:`pipelines.run_recovery`).
"""

import dagster as dg

from pipelines.run_recovery import clear_the_pool, process_tags, recovering_while_running
from registry.home import Home
from registry.instance import prepare_dagster_home


def home_instance(home: Home) -> dg.DagsterInstance:
    """The Dagster instance kept in the home folder (what `make ui` and the schedules use)."""
    prepare_dagster_home(home)
    return dg.DagsterInstance.get()


def run_job(
    home: Home, job_name: str, run_config: dict | None = None, tags: dict[str, str] | None = None
) -> dg.ExecuteInProcessResult:
    from pipelines.definitions import build_defs

    prepare_dagster_home(home)
    with dg.DagsterInstance.get() as instance:
        # Resolve the job while this instance is open: Dagster's definitions loading looks up
        # the current instance, and an earlier, closed one may already be garbage.
        job = build_defs(home).resolve_job_def(job_name)
        # A run killed earlier may still claim the registry pool: recover it rather than wait for it forever.
        clear_the_pool(instance, home)
        with recovering_while_running():
            return job.execute_in_process(
                run_config=run_config, instance=instance, tags={**(tags or {}), **process_tags()}, raise_on_error=True
            )


def refit(home: Home, families: list[str] | None = None, run_config: dict | None = None) -> list[dg.ExecuteInProcessResult]:
    """Refit the given families (default: all) in one run, then refresh coefficients, allocations and exports."""
    from pipelines.defs.fit_assets import FAMILIES
    from registry.db import reader
    from registry.fit_store import families as registry_families
    from schemas.families import is_family_key

    if families is None:
        with reader(home.registry) as con:
            families = registry_families(con)
    families = sorted(f for f in families if is_family_key(f))
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
