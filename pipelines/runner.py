"""Running the project's Dagster jobs in-process, against the home's own Dagster instance.

Used by ``scalereg demo`` and ``scalereg refit`` and by tests: the same jobs the UI and the
schedules launch, executed without a daemon, recorded in the home's instance so the UI shows them.
"""

import dagster as dg

from registry.home import Home
from registry.instance import prepare_dagster_home


def run_job(
    home: Home, job_name: str, run_config: dict | None = None, tags: dict[str, str] | None = None
) -> dg.ExecuteInProcessResult:
    from pipelines.definitions import build_defs

    prepare_dagster_home(home)
    job = build_defs(home).resolve_job_def(job_name)
    with dg.DagsterInstance.get() as instance:
        return job.execute_in_process(run_config=run_config, instance=instance, tags=tags, raise_on_error=True)
