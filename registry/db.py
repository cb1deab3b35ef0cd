"""Opening the registry: migrations for writers, bounded retries for readers, one writer at a time.

DuckDB lets exactly one process open a file read-write, and while it does no other process can
open it at all. So writers hold a connection only as long as a transaction needs it, and readers
retry for a bounded time and then say plainly that the registry is busy.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

from registry.processes import command_of

#: How long a reader or writer waits for another process to release the file before giving up.
#: Readers of planning tools can shorten it with SCALEREG_BUSY_WAIT (seconds).
DEFAULT_WAIT_SECONDS = 10.0


def busy_wait() -> float:
    try:
        return max(0.0, float(os.environ.get("SCALEREG_BUSY_WAIT", DEFAULT_WAIT_SECONDS)))
    except ValueError:
        return DEFAULT_WAIT_SECONDS


TRY_AGAIN = "Try again shortly, or read the exported files in exports/."


@dataclass(frozen=True)
class LockHolder:
    """Who holds the registry file, as far as DuckDB's lock error and the process table tell."""

    pid: int | None
    command: str | None
    reading: bool  # it has the file open only to read (else to write)

    @classmethod
    def from_lock_error(cls, text: str, read_only: bool) -> LockHolder:
        """DuckDB names the holder's PID. A reader is only ever blocked by a writer; a blocked writer is told
        it could still open the file read-only exactly when the holder is only reading."""
        found = re.search(r"\(PID (\d+)\)", text)
        pid = int(found.group(1)) if found else None
        return cls(pid, command_of(pid) if pid else None, reading=not read_only and "read-only mode" in text)

    def describe(self) -> str:
        who = "another process" if self.pid is None else f"process {self.pid}" + (f" ({self.command})" if self.command else "")
        return f"{who} is {'reading' if self.reading else 'writing'} it"

    def advice(self) -> str:
        return "Writers wait for readers to close the file; try again when that query has finished." if self.reading else TRY_AGAIN


class RegistryBusy(RuntimeError):
    """Another process holds the registry; says who (as far as is known), how long we waited, and what to do."""

    def __init__(self, path: Path, waited: float, holder: str = "another process has it open", advice: str = TRY_AGAIN):
        self.path = path
        self.waited = waited
        super().__init__(f"the registry {path} is busy: {holder}; waited {waited:.1f} s. {advice}")


class RegistryMissing(FileNotFoundError):
    def __init__(self, path: Path):
        self.path = path
        super().__init__(f"no registry at {path}: run 'make demo' or 'scalereg ingest FILE' first")


def one(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> tuple | None:
    """The first row of a query, reading the result to the end.

    DuckDB 2 refuses further work on a connection while a result is only partly fetched, so
    ``fetchone()`` on a multi-row (or even single-row) result is a trap; this helper is not.
    """
    rows = con.execute(query, params or []).fetchall()
    return rows[0] if rows else None


def _is_lock_error(error: BaseException) -> bool:
    text = str(error)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def migrations() -> list[tuple[int, str, str]]:
    """The versioned migration files in order: (version, name, sql)."""
    folder = resources.files("registry") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring an open registry up to the newest schema; returns the version it is at.

    Each migration runs in its own transaction with its ``schema_version`` row, so an interrupted
    upgrade leaves the registry at the last complete version.
    """
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    current = one(con, "SELECT coalesce(max(version), 0) FROM schema_version")[0]
    for version, name, sql in migrations():
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        current = version
    return current


def _open(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait
    start = time.monotonic()
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as error:
            if not _is_lock_error(error):
                raise
            if time.monotonic() >= deadline:
                holder = LockHolder.from_lock_error(str(error), read_only)
                raise RegistryBusy(path, time.monotonic() - start, holder.describe(), holder.advice()) from None
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)


@contextmanager
def writer(path: Path, wait: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A migrated read-write connection, closed as soon as the caller is done with it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path, read_only=False, wait=busy_wait() if wait is None else wait)
    try:
        migrate(con)
        yield con
    finally:
        con.close()


@contextmanager
def reader(path: Path, wait: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection: queries through it cannot change the registry."""
    if not path.exists():
        raise RegistryMissing(path)
    con = _open(path, read_only=True, wait=busy_wait() if wait is None else wait)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: a crash or an error inside leaves no partial rows behind."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, **frames: object) -> Iterator[None]:
    """Frames visible to SQL under these names for the block: named on the connection, never found by variable name."""
    for name, frame in frames.items():
        con.register(name, frame)
    try:
        yield
    finally:
        for name in frames:
            con.unregister(name)
