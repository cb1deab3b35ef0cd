"""Fixtures for the team backend: one PostgreSQL cluster per test session, a fresh catalog per test.

``backend`` runs a test on both registry backends (the DuckDB file and DuckLake with a PostgreSQL
catalog); ``lake`` runs it on DuckLake only. Both set the environment every registry opener reads
(``SCALEREG_CATALOG``, ``SCALEREG_DATA_PATH``), so subprocesses and the CLI see the same registry.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.postgres import PostgresServer, postgres_server

BACKENDS = ("duckdb-file", "ducklake")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throw-away cluster under /tmp (the postgres user must reach it: pytest's own temp root is root-only)."""
    root = Path(tempfile.mkdtemp(prefix="scalereg-pg-"))
    try:
        with postgres_server(root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


def use_lake(server: PostgresServer, data: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the registry at a fresh DuckLake catalog (a new database) with its data files under ``data``."""
    dsn = server.create_database(f"lake_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("SCALEREG_CATALOG", f"postgres:{dsn}")
    monkeypatch.setenv("SCALEREG_DATA_PATH", str(data))
    return dsn


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test runs once on the DuckDB file and once on DuckLake; request it before ``home`` and ``con``."""
    if request.param == "ducklake":
        use_lake(request.getfixturevalue("postgres"), tmp_path / "lake-data", monkeypatch)
    else:
        monkeypatch.delenv("SCALEREG_CATALOG", raising=False)
    return request.param


@pytest.fixture
def lake(postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """DuckLake only (for what the DuckDB file cannot do: writers on several processes at once); the catalog's DSN."""
    return use_lake(postgres, tmp_path / "lake-data", monkeypatch)
