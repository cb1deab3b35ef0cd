"""The team backend: the registry's tables in a DuckLake catalog held in PostgreSQL, data files under a shared path.

Selected by ``SCALEREG_CATALOG=postgres:<libpq connection string>`` plus ``SCALEREG_DATA_PATH`` (a folder
every writer and reader can reach, or object storage DuckDB can write). Unset, the registry is the
DuckDB file (:mod:`registry.db`). The same SQL runs on both; what DuckLake lacks is replaced here:

- PRIMARY KEY / UNIQUE / CHECK constraints, indexes and list defaults (``DEFAULT []``): stripped from the migrations
  (:func:`translate`); uniqueness is kept by the code that writes (duplicate detection inside the
  writing transaction, under a claim), and the checked values come only from the registry's own code.
- The ``source_id`` sequence: a PostgreSQL sequence in the catalog database (``scalereg_source_id``),
  so concurrent writers never draw the same id and none waits for another to draw one.
- The file lock (one writer at a time): writers commit concurrently. What must not interleave (the
  same source's content hash, the same family's runs and fit versions, a migration) is claimed with a
  PostgreSQL advisory lock held from before the transaction begins until after it commits; a claim
  ends with its session, so a killed writer never leaves one behind. A commit that still conflicts
  with another writer's (DuckLake refuses it: nothing of it is visible) is retried a bounded number
  of times by the caller (:func:`registry.db.retrying`).
- Views and table macros (``coefficients_as_of``) work in DuckLake as they are. Fits are append-only,
  so ``coefficients_as_of`` reads the same rows on both backends; the catalog's snapshots
  (``AT (VERSION => n)``, ``AT (TIMESTAMP => ts)``) are there too for "what did the registry hold".

Extensions are loaded from the installed Python packages' files; nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

#: Say "registry busy" after waiting this long for another writer's claim (seconds); see db.busy_wait.
_CLAIM_PREFIX = "scalereg:"
SEQUENCE = "scalereg_source_id"


class CatalogMisconfigured(ValueError):
    """SCALEREG_CATALOG / SCALEREG_DATA_PATH are set but do not describe a usable catalog."""


@dataclass(frozen=True)
class Catalog:
    """Where the team's registry lives: the PostgreSQL catalog (libpq string) and the data files' path."""

    dsn: str
    data_path: str

    @classmethod
    def from_env(cls) -> Catalog | None:
        """The configured catalog, or None for the DuckDB file (SCALEREG_CATALOG unset or empty)."""
        spec = os.environ.get("SCALEREG_CATALOG", "").strip()
        if not spec:
            return None
        if not spec.startswith("postgres:"):
            raise CatalogMisconfigured(
                f"SCALEREG_CATALOG={spec!r}: expected 'postgres:dbname=... host=... port=... user=...' (unset it for the DuckDB file)"
            )
        data_path = os.environ.get("SCALEREG_DATA_PATH", "").strip()
        if not data_path:
            raise CatalogMisconfigured("SCALEREG_CATALOG is set but SCALEREG_DATA_PATH is not: say where the data files go")
        if "://" not in data_path:  # a local or shared folder; object storage URLs are passed as they are
            Path(data_path).mkdir(parents=True, exist_ok=True)
            data_path = str(Path(data_path).resolve()) + os.sep
        return cls(dsn=spec.removeprefix("postgres:").strip(), data_path=data_path)

    def describe(self) -> str:
        """The catalog as messages name it (no password)."""
        shown = " ".join(part for part in self.dsn.split() if not part.startswith("password="))
        return f"DuckLake catalog postgres:{shown}"


def extension_file(package: str, name: str) -> str:
    """The extension shipped in an installed Python package (duckdb-extension-*), for ``LOAD '<path>'``."""
    module = __import__(package)
    folder = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    found = folder / f"{name}.duckdb_extension"
    if not found.exists():
        raise CatalogMisconfigured(f"{found} is missing: install {package.replace('_', '-')} for DuckDB {duckdb.__version__}")
    return str(found)


#: One attached DuckDB instance per process, catalog and mode: loading the extensions and attaching the
#: catalog takes about a second, a cursor on an attached instance a millisecond.
_INSTANCES: dict[tuple[int, Catalog, bool], duckdb.DuckDBPyConnection] = {}


def connect(catalog: Catalog, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection (a cursor of this process's attached instance) whose default database is the catalog.

    An instance whose configuration a query locked (``scalereg sql`` does) is not handed out again.
    """
    key = (os.getpid(), catalog, read_only)  # a forked child attaches its own
    base = _INSTANCES.get(key)
    if base is None or base.execute("SELECT current_setting('lock_configuration')").fetchall()[0][0]:
        base = _INSTANCES[key] = _attach(catalog, read_only)
    con = base.cursor()
    con.execute("USE lake")
    return con


def _attach(catalog: Catalog, read_only: bool) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.load_extension(extension_file("duckdb_extension_postgres_scanner", "postgres_scanner"))
        con.load_extension(extension_file("duckdb_extension_ducklake", "ducklake"))
        con.execute(attach_statement(catalog, read_only))
    except BaseException:
        con.close()
        raise
    return con


#: What ``scalereg sql`` refuses on DuckLake: the catalog database is reachable through the PostgreSQL
#: extension's functions (postgres_execute can end the read-only transaction), and query()/query_table()
#: could build those names from strings. PostgreSQL's own permissions are the real fence: give planners a
#: role that may only SELECT (README, "Running it for a team").
_CATALOG_REACH = re.compile(r"postgres_|__ducklake|\bquery(_table)?\s*\(|ducklake_", re.IGNORECASE)


def query_problem(query: str) -> str | None:
    """Why an analyst's query may not run on a DuckLake reader (None when it may)."""
    found = _CATALOG_REACH.search(query)
    if found is None:
        return None
    return (f"the sql command reads only the registry's tables: {found.group(0).rstrip('( ')!r} reaches the catalog "
            "database or builds queries from text, and is refused")


def attach_statement(catalog: Catalog, read_only: bool) -> str:
    """ATTACH takes no query parameters, so the catalog's address and data path (configuration, never input
    data) are written into it as SQL string literals, quotes doubled."""
    options = f"DATA_PATH '{_quoted(catalog.data_path)}'" + (", READ_ONLY" if read_only else "")
    return f"ATTACH '{_quoted('ducklake:postgres:' + catalog.dsn)}' AS lake ({options})"


def _quoted(text: str) -> str:
    return text.replace("'", "''")


class ClaimTimeout(RuntimeError):
    """Another writer held a claim for longer than the caller would wait."""

    def __init__(self, key: str, waited: float, holder: str):
        self.key, self.waited, self.holder = key, waited, holder
        super().__init__(f"{holder} holds {key}")


@dataclass
class Session:
    """A writer's side connection to the catalog database: advisory-lock claims and the source id sequence."""

    pg: object  # a psycopg2 connection (autocommit)

    @classmethod
    def open(cls, catalog: Catalog) -> Session:
        import psycopg2

        name = f"scalereg pid {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv[:3])}"[:63]
        pg = psycopg2.connect(catalog.dsn, application_name=name)
        pg.autocommit = True
        return cls(pg)

    def close(self) -> None:
        self.pg.close()

    def _one(self, query: str, params: tuple = ()) -> tuple | None:
        with self.pg.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchone() if cursor.description else None

    @contextmanager
    def claimed(self, keys: list[str], wait: float) -> Iterator[None]:
        """Hold these claims (in sorted order, so two writers never wait for each other) for the block."""
        import psycopg2.errors

        numbers = [(key, _lock_number(key)) for key in sorted(set(keys))]
        held: list[int] = []
        try:
            for key, number in numbers:
                start = time.monotonic()
                self._one("SELECT set_config('lock_timeout', %s, false)", (f"{max(1, int(wait * 1000))}ms",))
                try:
                    self._one("SELECT pg_advisory_lock(%s)", (number,))
                except psycopg2.errors.LockNotAvailable:
                    raise ClaimTimeout(key, time.monotonic() - start, self.holder(number)) from None
                held.append(number)
            yield
        finally:
            for number in reversed(held):
                if not self.pg.closed:
                    self._one("SELECT pg_advisory_unlock(%s)", (number,))

    def holder(self, number: int) -> str:
        """Who holds an advisory lock, from pg_locks and the holder's application name."""
        row = self._one(
            "SELECT a.application_name, a.client_addr FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = %s LIMIT 1",
            (number & 0xFFFFFFFFFFFFFFFF,),
        )
        if row is None:
            return "another writer"
        return f"{row[0] or 'another client'}" + (f" from {row[1]}" if row[1] else "")

    def catalog_exists(self) -> bool:
        """Whether DuckLake's metadata tables are in the database (asked of PostgreSQL: attaching to find out
        would race the writer creating them)."""
        return self._one("SELECT to_regclass('public.ducklake_snapshot')")[0] is not None

    def next_source_id(self, floor: int) -> int:
        """A fresh source id from the catalog's sequence, above every id already stored (``floor``)."""
        self._one(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}")
        (value,) = self._one(f"SELECT nextval('{SEQUENCE}')")
        if value <= floor:  # ids stored before the sequence existed (or restored from a copy): move past them
            (value,) = self._one(f"SELECT setval('{SEQUENCE}', greatest(%s, nextval('{SEQUENCE}')))", (floor + 1,))
        return int(value)


def _lock_number(key: str) -> int:
    """A claim's name as a signed 64-bit advisory-lock key."""
    digest = hashlib.sha256((_CLAIM_PREFIX + key).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def translate(sql: str) -> str:
    """A migration as DuckLake takes it: no PRIMARY KEY, UNIQUE or CHECK constraints, list defaults, sequences or indexes.

    Every one of them is enforced in code on both backends (see the module docstring); the file backend
    keeps them as a second line of defence.
    """
    out: list[str] = []
    for statement in _statements(sql):
        head = " ".join(statement.split()[:3]).upper()
        if head.startswith(("CREATE SEQUENCE", "CREATE INDEX", "CREATE UNIQUE")):
            continue
        out.append(_strip_constraints(statement))
    return ";\n".join(out) + (";\n" if out else "")


def _statements(sql: str) -> list[str]:
    """The statements of a migration (split on semicolons outside quotes and comments), comments dropped."""
    statements, current, quote, i = [], [], None, 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
            continue
        elif ch == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current).strip())
    return [s for s in statements if s]


def _strip_constraints(statement: str) -> str:
    """Drop ``PRIMARY KEY``, ``UNIQUE`` and ``CHECK (...)`` from a CREATE TABLE (column or table constraints)."""
    if not statement.upper().startswith("CREATE TABLE"):
        return statement
    text = statement
    for word in ("CHECK", "UNIQUE"):
        text = _drop_parenthesised(text, word)
    text = text.replace("PRIMARY KEY", "").replace("DEFAULT []", "")  # list defaults: every insert names the column
    # a table constraint that was a whole line leaves ", ," or ",)" behind
    lines = [line for line in text.splitlines() if line.strip() not in ("", ",")]
    text = "\n".join(lines)
    while True:
        cleaned = text.replace(",\n)", "\n)").replace(", )", " )")
        cleaned = "\n".join(line.rstrip() for line in cleaned.splitlines())
        if cleaned == text:
            return text
        text = cleaned


def _drop_parenthesised(text: str, word: str) -> str:
    """Remove every ``WORD (...)`` (balanced parentheses), and a table-level one's leading comma."""
    upper = text.upper()
    start = upper.find(word + " (")
    while start >= 0:
        depth, end = 0, start + len(word) + 1
        while end < len(text):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
            if depth == 0:
                break
        head = text[:start].rstrip()
        if word == "UNIQUE" and head.endswith(","):  # a table constraint: drop the comma before it too
            head = head[:-1]
        text = head + ("" if word == "UNIQUE" else " ") + text[end:]
        upper = text.upper()
        start = upper.find(word + " (")
    return text
