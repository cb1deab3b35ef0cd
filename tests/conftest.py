"""Shared fixtures: a fresh home folder and registry per test, so tests never touch ./var."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from registry.db import writer
from registry.home import PUBLISHED_DIR, Home

#: The PostgreSQL service and the backend fixtures (``backend``, ``lake``) of the team backend's tests.
pytest_plugins = ["tests.services.fixtures"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.setenv("SCALEREG_HOME", str(tmp_path / "home"))
    return Home.from_env().ensure()


@pytest.fixture
def con(home: Home) -> Iterator[duckdb.DuckDBPyConnection]:
    with writer(home.registry) as connection:
        yield connection


@pytest.fixture
def published() -> Path:
    return PUBLISHED_DIR


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def rows(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> list[tuple]:
    return con.execute(query, params or []).fetchall()
