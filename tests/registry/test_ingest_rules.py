"""Whole-source rules: nothing lost, file-level failures, idempotence, conflicts, one transaction per file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import polars as pl

from registry.db import reader
from registry.ingest import ingest_path
from tests.conftest import rows, write_csv

HEADER = "family,run_name,params,tokens,loss"


def test_a_file_missing_required_columns_fails_whole_naming_file_and_fix(con, home, tmp_path):
    path = write_csv(tmp_path / "partial.csv", "family,params,loss\nfam,1e8,3.1")
    report = ingest_path(con, home, path)
    assert report.status == "failed"
    assert "partial.csv" in report.error and "'tokens'" in report.error and "--mapping" in report.error
    status, error, accepted = rows(con, "SELECT status, error, rows_accepted FROM sources")[0]
    assert (status, accepted) == ("failed", 0) and error == report.error
    assert rows(con, "SELECT count(*) FROM runs")[0][0] == 0


def test_an_unreadable_file_is_recorded_as_failed(con, home, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(HEADER.encode() + b"\nfam,caf\xe9,1e8,2e9,3.1\n")
    report = ingest_path(con, home, path)
    assert report.status == "failed" and "UTF-8" in report.error


def test_reingesting_the_same_content_is_a_no_op(con, home, tmp_path):
    path = write_csv(tmp_path / "a.csv", f"{HEADER}\nfam,r1,1e8,2e9,3.1\nfam,r2,2e8,4e9,2.9")
    first = ingest_path(con, home, path)
    copy = write_csv(tmp_path / "copy-of-a.csv", path.read_text())
    second = ingest_path(con, home, copy)
    assert (first.status, second.status) == ("ingested", "unchanged")
    assert second.source_id == first.source_id
    assert rows(con, "SELECT count(*) FROM sources")[0][0] == 1
    assert rows(con, "SELECT count(*) FROM runs")[0][0] == 2


def test_every_ingested_file_is_archived_by_content_hash(con, home, tmp_path):
    path = write_csv(tmp_path / "a.csv", f"{HEADER}\nfam,r1,1e8,2e9,3.1")
    report = ingest_path(con, home, path)
    (archived,) = rows(con, "SELECT archive_path FROM sources")[0]
    assert Path(archived).read_bytes() == path.read_bytes() and report.sha256 in archived


def test_the_same_run_with_different_values_is_rejected_naming_the_earlier_source(con, home, tmp_path):
    ingest_path(con, home, write_csv(tmp_path / "first.csv", f"{HEADER}\nfam,r1,1e8,2e9,3.1"), name="first-export")
    report = ingest_path(con, home, write_csv(tmp_path / "second.csv", f"{HEADER}\nfam,r1,1e8,2e9,2.5\nfam,r2,1e8,4e9,2.9"))
    assert (report.rows_accepted, report.rows_rejected) == (1, 1)
    (reasons,) = rows(con, "SELECT reasons FROM rejects WHERE source_id = ?", [report.source_id])[0]
    assert "conflicts with the same run from source 'first-export'" in reasons[0] and "loss=3.1" in reasons[0]
    assert rows(con, "SELECT loss FROM runs WHERE run_name = 'r1'")[0][0] == 3.1


def test_the_same_run_with_identical_values_from_another_file_is_not_added_twice(con, home, tmp_path):
    ingest_path(con, home, write_csv(tmp_path / "first.csv", f"{HEADER}\nfam,r1,1e8,2e9,3.1"), name="first-export")
    report = ingest_path(con, home, write_csv(tmp_path / "second.csv", f"{HEADER}\nfam,r1,1e8,2e9,3.1\nfam,r3,3e8,1e9,3.0"))
    assert (report.rows_accepted, report.rows_rejected) == (1, 1)
    assert rows(con, "SELECT count(*) FROM runs")[0][0] == 2


def test_ingest_names_its_frames_on_the_connection_and_leaves_none_behind(con, home, tmp_path):
    # With DuckDB's scan of Python variables switched off, only frames registered by name are visible.
    con.execute("SET python_enable_replacements = false")
    first = ingest_path(con, home, write_csv(tmp_path / "a.csv", f"{HEADER}\nfam,r1,1e8,2e9,3.1\nfam,r2,-1,2e9,3.1"))
    curve = write_csv(tmp_path / "curve.csv", "family,run_name,params,tokens,loss,step\nfam,c,1e8,1e9,3.5,100\nfam,c,1e8,2e9,3.2,200")
    second = ingest_path(con, home, curve)
    assert (first.rows_accepted, first.rows_rejected, second.rows_accepted) == (1, 1, 2), (first.error, second.error)
    assert rows(con, "SELECT count(*) FROM run_points") == [(2,)] and rows(con, "SELECT count(*) FROM rejects") == [(1,)]
    assert rows(con, "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal") == []


def test_rows_that_do_not_add_up_fail_the_file_and_write_nothing(con, home, tmp_path, monkeypatch):
    import dataclasses

    import registry.ingest as ingest

    real = ingest._reconcile
    monkeypatch.setattr(ingest, "_reconcile", lambda c, batch, **how: dataclasses.replace(real(c, batch, **how), rows_rejected=5))
    report = ingest_path(con, home, write_csv(tmp_path / "a.csv", f"{HEADER}\nfam,r1,1e8,2e9,3.1\nfam,r2,-1,2e9,3.1"))
    assert report.status == "failed"
    assert "a.csv: 2 rows read but 1 accepted + 5 rejected; nothing was written" in report.error
    assert rows(con, "SELECT status FROM sources") == [("failed",)]
    assert rows(con, "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM rejects)") == [(0, 0)]


CRASHING_INGEST = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import registry.ingest as ingest
    from registry.db import writer
    from registry.home import Home

    from contextlib import contextmanager
    real_transaction = ingest.transaction

    @contextmanager
    def slow_transaction(con):
        with real_transaction(con) as c:
            yield c
            # all inserts of the file are done but not committed: announce and wait to be killed
            print("inserted", flush=True)
            time.sleep(60)
    ingest.transaction = slow_transaction
    home = Home.from_env().ensure()
    with writer(home.registry) as con:
        ingest.ingest_path(con, home, Path(sys.argv[1]))
    """
)


def test_a_crash_mid_file_leaves_no_partial_rows(home, tmp_path):
    lines = "\n".join(f"fam,r{i},{1e8 + i},2e9,3.1" for i in range(5000))
    path = write_csv(tmp_path / "big.csv", f"{HEADER}\n{lines}\nfam,bad,-1,2e9,3.1")
    script = tmp_path / "crash.py"
    script.write_text(CRASHING_INGEST)
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert child.stdout.readline().strip() == "inserted"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    with reader(home.registry) as con:
        counts = con.execute(
            "SELECT (SELECT count(*) FROM sources), (SELECT count(*) FROM runs), (SELECT count(*) FROM run_points), "
            "(SELECT count(*) FROM rejects)"
        ).fetchall()
    assert counts == [(0, 0, 0, 0)]
    # and the same file then ingests completely
    from registry.db import writer

    with writer(home.registry) as con:
        report = ingest_path(con, home, path)
        assert (report.rows_accepted, report.rows_rejected) == (5000, 1)
        assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 5000


def test_the_registry_upgrades_an_older_schema(tmp_path):
    from registry.db import migrate, migrations

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    con.close()
    con = duckdb.connect(str(path))
    assert migrate(con) == migrations()[-1][0]
    assert {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()} >= {"sources", "runs", "run_points", "rejects"}
    con.close()


def test_runs_whose_numbers_collide_are_numbered_exactly_and_keep_their_own_points(con, home, tmp_path, monkeypatch):
    """A file's runs are numbered by a hash of their key; should two share it, ranks number them instead."""
    from registry import ingest

    every_run_seven = pl.lit(7, dtype=pl.UInt64)  # the worst hash: every run gets the same number
    monkeypatch.setattr(ingest, "RUN_NUMBERS", (every_run_seven, ingest.RUN_NUMBERS[1]))
    lines = [f"fam,r{run},{params},{step * 1e9},{4.0 - step / 10 - run / 100},{step}" for run, params in enumerate((1e8, 2e8, 4e8)) for step in (1, 2, 3)]
    path = write_csv(tmp_path / "curves.csv", "\n".join(["family,run_name,params,tokens,loss,step", *lines]))

    report = ingest_path(con, home, path)

    assert (report.status, report.runs_added, report.rows_accepted, report.rows_rejected) == ("ingested", 3, 9, 0)
    stored = rows(con, "SELECT run_name, params, final_step, round(loss, 6) FROM runs ORDER BY run_name")
    assert stored == [("r0", 1e8, 3, 3.7), ("r1", 2e8, 3, 3.69), ("r2", 4e8, 3, 3.68)]
    points = rows(con, "SELECT r.run_name, count(*) FROM run_points p JOIN runs r USING (run_id) GROUP BY ALL ORDER BY 1")
    assert points == [("r0", 3), ("r1", 3), ("r2", 3)]
