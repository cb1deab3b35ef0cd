"""Bounds on an analyst's query: a time limit and a memory limit.

A reader shares the registry file with other readers but keeps every writer out, so a query that
runs for an hour stops every ingest and refit for an hour. ``scalereg sql`` therefore stops a query
after ``SCALEREG_SQL_TIMEOUT`` seconds (default 30) and caps its memory at ``SCALEREG_SQL_MEMORY``
(default 1GB), each with a one-line message saying which limit was hit and how to raise it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MEMORY = "1GB"
_MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


class QueryLimitHit(RuntimeError):
    """A query was stopped by one of its bounds; the message names the bound and the setting that raises it."""


@dataclass(frozen=True)
class QueryBounds:
    """How long a query may run (seconds) and how much memory it may use (a DuckDB size such as ``1GB``)."""

    seconds: float = DEFAULT_TIMEOUT_SECONDS
    memory: str = DEFAULT_MEMORY

    @classmethod
    def from_env(cls) -> QueryBounds:
        """The bounds set in the environment; a setting that is not a positive number or a size is refused by name."""
        seconds = os.environ.get("SCALEREG_SQL_TIMEOUT", str(DEFAULT_TIMEOUT_SECONDS))
        memory = os.environ.get("SCALEREG_SQL_MEMORY", DEFAULT_MEMORY)
        try:
            timeout = float(seconds)
        except ValueError:
            timeout = float("nan")
        if not timeout > 0:
            raise ValueError(f"SCALEREG_SQL_TIMEOUT={seconds!r} is not a number of seconds above 0 (default {DEFAULT_TIMEOUT_SECONDS:g})")
        if not _MEMORY.fullmatch(memory.strip()):
            raise ValueError(f"SCALEREG_SQL_MEMORY={memory!r} is not a memory size such as 512MB or 2GB (default {DEFAULT_MEMORY})")
        return cls(seconds=timeout, memory=memory.strip())


def limit_memory(con: duckdb.DuckDBPyConnection, bounds: QueryBounds) -> None:
    """Cap the connection's memory; call before the configuration is locked."""
    con.execute("SET memory_limit = ?", [bounds.memory])


@contextmanager
def bounded(con: duckdb.DuckDBPyConnection, bounds: QueryBounds) -> Iterator[None]:
    """Run the block's queries under the time limit (a watchdog interrupts the connection) and turn a
    stopped query into :class:`QueryLimitHit` with a message saying which limit stopped it."""
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        con.interrupt()

    watchdog = threading.Timer(bounds.seconds, stop)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    except duckdb.InterruptException:
        if not stopped.is_set():
            raise
        raise QueryLimitHit(
            f"the query was stopped after {bounds.seconds:g} s (SCALEREG_SQL_TIMEOUT); narrow it (filters, LIMIT) "
            "or raise the limit for this query"
        ) from None
    except duckdb.OutOfMemoryException:
        raise QueryLimitHit(
            f"the query needed more memory than {bounds.memory} (SCALEREG_SQL_MEMORY); narrow it or raise the limit"
        ) from None
    finally:
        watchdog.cancel()
