"""What the team backend's concurrency tests run in other processes: ingest files, refit a family.

Importable functions (a spawned process finds them by module path); each reads the registry's
configuration from the environment it inherits, as a writer on another machine would.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from registry.db import writer
from registry.home import Home

#: Few resamples: these tests are about concurrency, not intervals.
RESAMPLES = {"bootstrap_resamples": 30, "other_law_resamples": 10}


def ingest_files(paths: list[str]) -> list[tuple[str, str, int]]:
    """Ingest each file with its own writer; (file name, status, rows accepted) per file."""
    from registry.ingest import ingest_path  # imported here: a refitting process need not load the readers

    home = Home.from_env().ensure()
    done = []
    for path in paths:
        with writer(home.registry) as con:
            report = ingest_path(con, home, Path(path))
        done.append((Path(path).name, report.status, report.rows_accepted))
    return done


def refit(family: str) -> list[str]:
    """Refit one family; the fit ids it stored."""
    from registry.refit import refit_family
    from registry.settings import FitSettings

    home = Home.from_env().ensure()
    return list(refit_family(partial(writer, home.registry), family, FitSettings(**RESAMPLES)).fit_ids)


def dagster_refit(family: str, run_config: dict) -> tuple[str, str]:
    """Run the refit job for one family partition on the Dagster instance the environment names
    (SCALEREG_DAGSTER_YAML: deploy/dagster.yaml, storage in PostgreSQL); (run id, status)."""
    import dagster as dg

    from pipelines.defs.fit_assets import FAMILIES
    from registry.instance import prepare_dagster_home

    home = Home.from_env().ensure()
    prepare_dagster_home(home)
    from pipelines.definitions import build_defs

    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(FAMILIES.name, [family])
        job = build_defs(home).resolve_job_def("refit")
        result = job.execute_in_process(run_config=run_config, instance=instance, partition_key=family, raise_on_error=False)
        return result.run_id, instance.get_run_by_id(result.run_id).status.value
