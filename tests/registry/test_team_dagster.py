"""Dagster on PostgreSQL: the refit job of several families runs in parallel with deploy/dagster.yaml.

The instance is the team profile's (run, event-log and schedule storage in PostgreSQL through
dagster-postgres, the queued run coordinator, the registry pool open to 8) and the registry is on
DuckLake. Three processes each run the refit job for one family partition; their runs are recorded
in PostgreSQL and overlap in time, and every family gets its fits. (The runs are executed by the
processes themselves, not dequeued by dagster-daemon: starting the daemon and a code server per run
would take most of the test budget.)
"""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ProcessPoolExecutor

import dagster as dg

from pipelines.run_recovery import initialize_registry_pool
from registry.db import reader, writer
from registry.home import PROJECT_ROOT
from registry.ingest import ingest_path
from registry.instance import prepare_dagster_home
from tests.conftest import rows
from tests.services import team_workers
from tests.synthetic import chinchilla_runs, write_runs

FAMILIES = ("team-a", "team-b", "team-c")
FAST = {"ops": {"fits": {"config": {"bootstrap_resamples": 30, "other_law_resamples": 10}}}}


def test_refits_of_three_families_run_in_parallel_on_postgres_storage(lake, postgres, home, tmp_path, monkeypatch):
    dagster_db = postgres.create_database(f"dagster_{uuid.uuid4().hex[:8]}").split("dbname=")[1].split()[0]
    monkeypatch.setenv("SCALEREG_DAGSTER_YAML", str(PROJECT_ROOT / "deploy" / "dagster.yaml"))
    monkeypatch.setenv("DAGSTER_PG_URL", f"postgresql://{postgres.user}@127.0.0.1:{postgres.port}/{dagster_db}")
    for i, family in enumerate(FAMILIES):
        with writer(home.registry) as con:
            data = write_runs(tmp_path / f"{family}.csv", chinchilla_runs(family, n_sizes=5, n_tokens=4, seed=i))
            assert ingest_path(con, home, data).status == "ingested"

    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster))
    prepare_dagster_home(home)
    with dg.DagsterInstance.get() as instance:
        initialize_registry_pool(instance)  # as a deployment does before its first runs (see the function)

    with ProcessPoolExecutor(max_workers=3, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = list(pool.map(team_workers.dagster_refit, FAMILIES, [FAST] * 3))

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        records = instance.get_run_records(filters=dg.RunsFilter(run_ids=[run_id for run_id, _ in done]))
    assert len(records) == 3 and all(r.dagster_run.job_name == "refit" for r in records)
    assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == list(FAMILIES)
    # in parallel: every run started before any of them ended
    assert max(r.start_time for r in records) < min(r.end_time for r in records)
    with reader(home.registry) as con:
        assert rows(con, "SELECT family, max(version) FROM fits WHERE law = 'chinchilla' GROUP BY 1 ORDER BY 1") == [
            (family, 1) for family in FAMILIES
        ]
