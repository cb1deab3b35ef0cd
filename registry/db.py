"""Opening the registry: migrations for writers, bounded retries for readers, one writer at a time.

Two backends sit behind :func:`writer` and :func:`reader`, chosen by configuration:

- the DuckDB file (the default): DuckDB lets exactly one process open a file read-write, and while it
  does no other process can open it at all. So writers hold a connection only as long as a
  transaction needs it, and readers retry for a bounded time and then say plainly that the registry
  is busy;
- DuckLake with a PostgreSQL catalog (``SCALEREG_CATALOG`` + ``SCALEREG_DATA_PATH``,
  :mod:`registry.backend_ducklake`): many writers and readers on many machines. Writers commit
  concurrently; what must not interleave is claimed (:func:`claimed`), and a commit that conflicts
  with another writer's is retried a bounded number of times (:func:`retrying`).
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

import duckdb

from registry.backend_ducklake import Catalog, ClaimTimeout, Session, connect, query_problem, translate
from registry.processes import command_of

#: How long a reader or writer waits for another process to release the file before giving up.
#: Readers of planning tools can shorten it with SCALEREG_BUSY_WAIT (seconds).
DEFAULT_WAIT_SECONDS = 10.0

T = TypeVar("T")


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
        self.holder, self.advice = holder, advice
        super().__init__(f"the registry {path} is busy: {holder}; waited {waited:.1f} s. {advice}")

    def __reduce__(self) -> tuple:
        """Picklable with its arguments, so a busy registry in a worker process reaches the parent as itself."""
        return type(self), (self.path, self.waited, self.holder, self.advice)


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


_SCHEMA_VERSION = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
    "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)
_LAKE_SCHEMA_VERSION = _SCHEMA_VERSION.replace(" PRIMARY KEY", "")  # DuckLake has no keys


def newest_version() -> int:
    """The schema version the migrations shipped with this code reach."""
    return migrations()[-1][0]


def migrate(con: duckdb.DuckDBPyConnection, lake: bool = False) -> int:
    """Bring an open registry up to the newest schema; returns the version it is at.

    Each migration runs in its own transaction with its ``schema_version`` row, so an interrupted
    upgrade leaves the registry at the last complete version. On DuckLake (``lake``) each migration
    is first translated (:func:`registry.backend_ducklake.translate`: no keys, checks or sequences).
    """
    con.execute(_LAKE_SCHEMA_VERSION if lake else _SCHEMA_VERSION)
    current = one(con, "SELECT coalesce(max(version), 0) FROM schema_version")[0]
    for version, name, sql in migrations():
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(translate(sql) if lake else sql)
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


#: The claim session of each open DuckLake writer, by connection (none for the DuckDB file).
_SESSIONS: dict[int, Session] = {}
#: Catalogs this process has migrated (once per process: migrations come with the code).
_MIGRATED: set[Catalog] = set()
#: Open DuckLake readers (by connection): ``scalereg sql`` checks their queries (:func:`sql_problem`).
_LAKE_READERS: set[int] = set()


@contextmanager
def writer(path: Path, wait: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A migrated read-write connection, closed as soon as the caller is done with it.

    ``path`` is the DuckDB file; with ``SCALEREG_CATALOG`` set the connection is to the DuckLake
    catalog instead (the path is then unused).
    """
    catalog = Catalog.from_env()
    if catalog is not None:
        with _lake_writer(catalog, busy_wait() if wait is None else wait) as con:
            yield con
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path, read_only=False, wait=busy_wait() if wait is None else wait)
    try:
        migrate(con)
        yield con
    finally:
        con.close()


@contextmanager
def reader(path: str | os.PathLike[str], wait: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection: queries through it cannot change the registry (``path``: a str or a Path)."""
    path = Path(path)
    catalog = Catalog.from_env()
    if catalog is not None:
        with _lake_reader(catalog) as con:
            yield con
        return
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
        try:
            con.execute("COMMIT")
        except duckdb.TransactionException as error:
            if "conflict" not in str(error).lower():
                raise
            raise WriteConflict(str(error).splitlines()[-1]) from None  # DuckLake refused the commit: nothing of it is visible


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


class WriteConflict(RuntimeError):
    """DuckLake refused a commit because another writer's commit touched the same rows; nothing of it was
    written. Not a ``duckdb.Error``: code that records a failed input must let it through to be retried."""


#: How many times a write that conflicts with other writers' commits is tried before giving up.
CONFLICT_ATTEMPTS = 8


def retrying(attempt: Callable[[], T], what: str) -> T:
    """Run ``attempt`` (a whole write: its reads, decisions and transaction) again when its commit conflicts
    with another writer's, up to :data:`CONFLICT_ATTEMPTS` times with a growing, jittered pause."""
    for number in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return attempt()
        except WriteConflict as conflict:
            if number == CONFLICT_ATTEMPTS:
                raise WriteConflict(
                    f"{what}: gave up after {number} commits that conflicted with other writers ({conflict}); "
                    "nothing of it was written. Try again when fewer writers change the same rows."
                ) from None
            time.sleep(random.uniform(0.05, 0.1 * 2**number))
    raise AssertionError("unreachable")


@contextmanager
def claimed(con: duckdb.DuckDBPyConnection, *keys: str, wait: float | None = None) -> Iterator[None]:
    """Hold these claims (e.g. ``source:<sha256>``, ``family:<name>``) against every other writer for the block.

    On DuckLake: PostgreSQL advisory locks, taken before the block's transaction begins so that it reads
    what the previous holder committed. On the DuckDB file: nothing to do, the writer holds the whole file.
    A claim held by another writer for longer than the busy wait raises :class:`RegistryBusy` naming it.
    """
    session = _SESSIONS.get(id(con))
    if session is None or not keys:
        yield
        return
    try:
        with session.claimed(list(keys), busy_wait() if wait is None else wait):
            yield
    except ClaimTimeout as timeout:
        raise RegistryBusy(
            Catalog.from_env().describe(), timeout.waited, f"{timeout.holder} holds {timeout.key}", TRY_AGAIN
        ) from None


def next_source_id(con: duckdb.DuckDBPyConnection) -> int:
    """A new ``source_id``: the file's sequence, or on DuckLake the catalog database's (no two writers share one)."""
    session = _SESSIONS.get(id(con))
    if session is None:
        return one(con, "SELECT nextval('source_id_seq')")[0]
    return session.next_source_id(floor=one(con, "SELECT coalesce(max(source_id), 0) FROM sources")[0])


def sql_problem(con: duckdb.DuckDBPyConnection, query: str) -> str | None:
    """Why an analyst's query may not run on this reader, beyond what read-only mode and disabled file access
    refuse: on DuckLake, reaching the PostgreSQL catalog (see :func:`registry.backend_ducklake.query_problem`)."""
    return query_problem(query) if id(con) in _LAKE_READERS else None


def concurrent(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether other writers may commit while this writer works (DuckLake), rather than wait for its file lock."""
    return id(con) in _SESSIONS


@contextmanager
def _lake_writer(catalog: Catalog, wait: float) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckLake connection with its claim session; the catalog is created and migrated under a claim,
    so two first writers never create the same tables."""
    session = Session.open(catalog)
    con = None
    try:
        if catalog not in _MIGRATED and not _lake_current(catalog, session):
            try:
                with session.claimed(["catalog"], wait):  # the first writers: one creates and migrates, the others wait
                    con = connect(catalog, read_only=False)
                    migrate(con, lake=True)
            except ClaimTimeout as timeout:
                raise RegistryBusy(catalog.describe(), timeout.waited, f"{timeout.holder} is migrating it", TRY_AGAIN) from None
        _MIGRATED.add(catalog)
        con = con or connect(catalog, read_only=False)
        _SESSIONS[id(con)] = session
        yield con
    finally:
        if con is not None:
            _SESSIONS.pop(id(con), None)
            con.close()
        session.close()


def _lake_current(catalog: Catalog, session: Session) -> bool:
    """Whether the catalog exists at the newest schema version: then writers need no claim to open it."""
    if not session.catalog_exists():
        return False
    con = connect(catalog, read_only=True)
    try:
        return one(con, "SELECT coalesce(max(version), 0) FROM schema_version")[0] >= newest_version()
    except duckdb.CatalogException:
        return False
    finally:
        con.close()


@contextmanager
def _lake_reader(catalog: Catalog) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only DuckLake connection: each query reads the newest committed snapshot; writers never wait for it."""
    con = connect(catalog, read_only=True)
    _LAKE_READERS.add(id(con))
    try:
        if one(con, "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake' AND table_name = 'schema_version'")[0] == 0:
            raise RegistryMissing(catalog.describe())
        yield con
    finally:
        _LAKE_READERS.discard(id(con))
        con.close()


