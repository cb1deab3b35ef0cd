"""The same guarantees on both registry backends: the DuckDB file and DuckLake with a PostgreSQL catalog.

Each test takes ``backend`` first (tests/services/fixtures.py), so it runs once per backend against a
fresh registry: ingest rules, refit versioning, planners' reads, as-of answers, and what ``scalereg sql``
refuses.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from functools import partial

import duckdb
import pytest
from typer.testing import CliRunner

from registry.backend_ducklake import translate
from registry.cli import app
from registry.db import migrate, migrations, reader, writer
from registry.ingest import ingest_path
from registry.planning import allocate, coefficients
from registry.refit import refit_family
from registry.settings import FitSettings
from tests.conftest import rows, write_csv
from tests.synthetic import HOFFMANN, chinchilla_runs, write_runs

FAST = FitSettings(bootstrap_resamples=30, other_law_resamples=10)
HEADER = "family,run_name,params,tokens,loss"


def ingest(home, path):
    with writer(home.registry) as con:
        return ingest_path(con, home, path)


def test_ingest_rules_hold(backend, home, tmp_path):
    first = ingest(home, write_runs(tmp_path / "a.csv", chinchilla_runs("fam", n_sizes=3, n_tokens=2)))
    again = ingest(home, tmp_path / "a.csv")
    # a bad row (negative size) and a run stored before with another loss are rejected; the new run is kept
    mixed = write_csv(tmp_path / "b.csv", f"{HEADER}\nfam,run-0,1e7,1e9,9.9\nfam,new,2e8,3e9,2.5\nfam,bad,-5,1e9,3.0")
    second = ingest(home, mixed)
    assert (first.status, first.rows_accepted, again.status, again.source_id) == ("ingested", 6, "unchanged", first.source_id)
    assert (second.status, second.rows_read, second.rows_accepted, second.rows_rejected) == ("ingested", 3, 1, 2)
    assert second.source_id > first.source_id
    with reader(home.registry) as con:
        assert rows(con, "SELECT count(*), count(DISTINCT run_id) FROM runs") == [(7, 7)]
        assert rows(con, "SELECT row_number FROM rejects WHERE source_id = ? ORDER BY row_number", [second.source_id]) == [(1,), (3,)]
        assert rows(con, "SELECT count(*) FROM sources") == [(2,)]


def test_refit_versions_planners_reads_and_as_of(backend, home, tmp_path):
    ingest(home, write_runs(tmp_path / "a.csv", chinchilla_runs("synthetic")))
    refit = partial(refit_family, partial(writer, home.registry), "synthetic", FAST)
    refit()
    time.sleep(0.01)
    between = datetime.now(timezone.utc)
    time.sleep(0.01)
    unchanged = refit()
    ingest(home, write_runs(tmp_path / "b.csv", chinchilla_runs("synthetic", seed=1, size_range=(9.6, 10.0), n_sizes=2, prefix="big")))
    refit()
    assert unchanged.fitted == () and "chinchilla" in unchanged.unchanged
    with reader(home.registry) as con:
        assert rows(con, "SELECT version, n_runs FROM fits WHERE law = 'chinchilla' ORDER BY version") == [(1, 30), (2, 40)]
        assert rows(con, "SELECT count(DISTINCT fit_id) FROM fits") == rows(con, "SELECT count(*) FROM fits")
        (latest,) = coefficients(con, "synthetic", "chinchilla")
        (then,) = coefficients(con, "synthetic", "chinchilla", as_of=between)
        before = coefficients(con, "synthetic", "chinchilla", as_of="2000-01-01")
        plan = allocate(con, "synthetic", 1e21, law="chinchilla")
    assert (latest["version"], then["version"], before) == (2, 1, [])
    assert latest["params"]["alpha"] == pytest.approx(HOFFMANN["alpha"], rel=0.15)
    # the allocation follows the published coefficients' closed form: N* = G (C/6)^a
    p = latest["params"]
    a = p["beta"] / (p["alpha"] + p["beta"])
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    assert plan["n_opt"] == pytest.approx(g * (1e21 / 6) ** a, rel=1e-6)


REFUSED = [
    "DELETE FROM runs",
    "INSERT INTO runs SELECT * FROM runs",
    "CREATE TABLE evil AS SELECT 1",
    "SET enable_external_access = true",
    "COPY runs TO '{outside}/copied.csv'",
    "SELECT * FROM read_csv('{outside}/secret.csv')",
    "ATTACH '{outside}/other.duckdb' AS other",
    # DuckLake's catalog database is reachable through the PostgreSQL extension: refused on both
    "CALL postgres_execute('__ducklake_metadata_lake', 'COMMIT; DROP TABLE ducklake_snapshot')",
    "SELECT * FROM postgres_query('__ducklake_metadata_lake', 'SELECT 1')",
    "SELECT count(*) FROM __ducklake_metadata_lake.public.ducklake_snapshot",
]


def test_sql_refuses_changes_files_and_the_catalog(backend, home, tmp_path):
    ingest(home, write_csv(tmp_path / "a.csv", f"{HEADER}\nm,a,1e8,2e9,3.1\nm,b,2e8,4e9,2.9"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("secret\nhunter2\n")
    runner = CliRunner()
    for statement in REFUSED:
        done = runner.invoke(app, ["sql", statement.format(outside=outside)])
        assert done.exit_code == 1, (statement, done.stdout)
        assert "hunter2" not in done.stdout
    assert sorted(p.name for p in outside.iterdir()) == ["secret.csv"]
    done = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM runs", "--format", "csv"])
    assert done.exit_code == 0 and done.stdout.split() == ["n", "2"]
    with reader(home.registry) as con:
        assert rows(con, "SELECT count(*) FROM runs") == [(2,)]


def test_the_translated_migrations_make_the_same_tables_without_keys_checks_or_sequences(backend, home, con):
    """What DuckLake lacks is taken out of the migrations, and nothing else: every table, view and column is there."""
    for _, name, sql in migrations():
        for word in ("PRIMARY KEY", "UNIQUE (", "CHECK (", "CREATE SEQUENCE", "DEFAULT []"):
            assert word not in translate(sql).upper(), (name, word)
    reference = duckdb.connect()  # the untranslated migrations in a plain DuckDB database
    migrate(reference)
    query = ("SELECT table_name, column_name, data_type FROM information_schema.columns "
             "WHERE table_catalog = current_database() ORDER BY ALL")
    expected = rows(reference, query)
    assert {"sources", "runs", "run_points", "fits", "coefficients_latest", "fit_verdicts"} <= {t for t, *_ in expected}
    assert rows(con, query) == expected
