"""Many writers on DuckLake at once: nothing lost, nothing half-written, duplicates ingested once.

Four processes ingest different files and a fifth ingests one of the same files, while two more refit
different families and a reader in this process polls the registry: every read must succeed and see
only whole commits (a source with all of its runs, a fit with its coefficients). A writer killed with
SIGKILL mid-commit leaves no snapshot of the catalog with part of a source.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from concurrent.futures import ProcessPoolExecutor, wait

import pytest

from registry.db import reader, writer
from registry.ingest import ingest_path
from tests.conftest import rows
from tests.services import team_workers
from tests.synthetic import chinchilla_runs, write_runs

SPAWN = multiprocessing.get_context("spawn")

# A source whose runs are not all there, or a published fit without its coefficients: a partial commit.
PARTIAL_SOURCES_AT = """
SELECT s.source_id FROM {sources} AS s LEFT JOIN (SELECT source_id, count(*) AS n FROM {runs} GROUP BY 1) AS r USING (source_id)
WHERE s.status = 'ingested' AND s.superseded_by IS NULL AND coalesce(r.n, 0) <> s.rows_accepted
UNION ALL
SELECT DISTINCT source_id FROM {runs} WHERE source_id NOT IN (SELECT source_id FROM {sources})
"""
PARTIAL_SOURCES = PARTIAL_SOURCES_AT.format(sources="sources", runs="runs")
#: The same check on the tables as they were at snapshot $version of the catalog.
PARTIAL_SOURCES_THEN = PARTIAL_SOURCES_AT.format(
    sources="(SELECT * FROM sources AT (VERSION => $version))", runs="(SELECT * FROM runs AT (VERSION => $version))"
)
PARTIAL_FITS = """
SELECT f.fit_id FROM fits f WHERE f.status = 'published' AND NOT EXISTS (SELECT 1 FROM coefficients c WHERE c.fit_id = f.fit_id)
UNION ALL
SELECT fit_id FROM refits WHERE outcome = 'fitted' AND fit_id NOT IN (SELECT fit_id FROM fits)
"""


def files(tmp_path, specs):
    """(file name, family, run-name prefix, seed) -> written generic CSVs of 20 runs each."""
    return {
        name: write_runs(tmp_path / name, chinchilla_runs(family, n_sizes=5, n_tokens=4, prefix=prefix, seed=seed))
        for name, family, prefix, seed in specs
    }


def poll(home, until) -> tuple[int, list]:
    """Read the registry until every future is done; (reads done, partial things seen)."""
    reads, partial = 0, []
    while True:
        finished = all(f.done() for f in until)
        with reader(home.registry, wait=30) as con:
            partial += rows(con, PARTIAL_SOURCES) + rows(con, PARTIAL_FITS)
            rows(con, "SELECT count(*) FROM coefficients_latest")
        reads += 1
        if finished:
            return reads, partial
        time.sleep(0.05)


def test_four_writers_two_refits_and_a_reader_at_once(lake, home, tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEREG_BUSY_WAIT", "120")  # a writer waits for another's family claim on a loaded 2-core machine
    inputs = files(tmp_path, [
        ("w0.csv", "team-x", "a", 0), ("w1.csv", "team-x", "b", 1),  # two files of one family: claimed in turn
        ("w2.csv", "team-y", "c", 2), ("w3.csv", "team-z", "d", 3),
        ("r0.csv", "refit-a", "r", 4), ("r1.csv", "refit-b", "r", 5),
    ])
    for name in ("r0.csv", "r1.csv"):
        with writer(home.registry) as con:
            assert ingest_path(con, home, inputs[name]).status == "ingested"

    with ProcessPoolExecutor(max_workers=7, mp_context=SPAWN) as pool:
        ingests = [pool.submit(team_workers.ingest_files, [str(inputs[f"w{i}.csv"])]) for i in range(4)]
        ingests.append(pool.submit(team_workers.ingest_files, [str(inputs["w0.csv"])]))  # the same file again, at once
        refits = [pool.submit(team_workers.refit, family) for family in ("refit-a", "refit-b")]
        reads, partial = poll(home, ingests + refits)
        wait(ingests + refits)
        outcomes = [f.result() for f in ingests]
        fitted = [f.result() for f in refits]

    assert reads >= 2 and partial == []
    assert sorted(status for (name, status, _), in outcomes if name == "w0.csv") == ["ingested", "unchanged"]
    assert all(status == "ingested" and accepted == 20 for (name, status, accepted), in outcomes if name != "w0.csv")
    assert all(any(fit_id.endswith("/v1") for fit_id in ids) for ids in fitted)
    with reader(home.registry) as con:
        # rows conserved: six files of 20 runs, each stored once; one source row per file
        assert rows(con, "SELECT count(*), count(DISTINCT run_id) FROM runs") == [(120, 120)]
        assert rows(con, "SELECT count(*), count(DISTINCT source_id), count(DISTINCT sha256) FROM sources") == [(6, 6, 6)]
        assert rows(con, "SELECT family, count(*) FROM runs GROUP BY 1 ORDER BY 1") == [
            ("refit-a", 20), ("refit-b", 20), ("team-x", 40), ("team-y", 20), ("team-z", 20)
        ]
        # each refit family has exactly one version of each law it fitted
        assert rows(con, "SELECT count(*) FROM (SELECT family, law FROM fits GROUP BY 1, 2 HAVING count(*) <> 1)") == [(0,)]
        assert rows(con, PARTIAL_SOURCES) + rows(con, PARTIAL_FITS) == []


def test_a_writer_killed_mid_commit_leaves_no_partial_snapshot(lake, home, tmp_path):
    big = [
        write_runs(tmp_path / f"big{i}.csv", chinchilla_runs(f"big-{i}", n_sizes=60, n_tokens=50, seed=i))  # 3,000 runs
        for i in range(4)
    ]
    with writer(home.registry) as con:  # the catalog exists before the writer starts: the kill lands on ingests
        (migrated,) = rows(con, "SELECT max(snapshot_id) FROM lake.snapshots()")[0]
    victim = SPAWN.Process(target=team_workers.ingest_files, args=([str(p) for p in big],))
    victim.start()
    deadline = time.monotonic() + 120
    with reader(home.registry) as con:  # kill once the first file is in, while the next ones are written
        while not rows(con, "SELECT count(*) FROM sources")[0][0] and time.monotonic() < deadline:
            time.sleep(0.05)
    time.sleep(random.uniform(0.0, 1.0))
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    assert victim.exitcode == -signal.SIGKILL

    with reader(home.registry) as con:
        versions = [v for (v,) in rows(con, "SELECT snapshot_id FROM lake.snapshots() WHERE snapshot_id > ? ORDER BY 1", [migrated])]
        partial = {v: found for v in versions if (found := rows(con, PARTIAL_SOURCES_THEN, {"version": v}))}
        stored = rows(con, "SELECT count(*) FROM sources")[0][0]
    assert len(versions) == stored >= 1 and partial == {}  # one snapshot per whole file, none with part of one
    # the killed writer's work is redone: every file ends up stored exactly once
    outcomes = team_workers.ingest_files([str(p) for p in big])
    assert sorted(status for _, status, _ in outcomes) == sorted(["unchanged"] * stored + ["ingested"] * (4 - stored))
    with reader(home.registry) as con:
        assert rows(con, "SELECT count(*), count(DISTINCT run_id) FROM runs") == [(12000, 12000)]
        assert rows(con, PARTIAL_SOURCES) == []


@pytest.fixture(autouse=True)
def _no_leftover_workers():
    """A failed assertion must not leave writer processes behind."""
    yield
    for child in SPAWN.active_children():
        child.kill()
