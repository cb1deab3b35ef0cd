"""The landing folder: which entries are ready to ingest, and ingesting each entry on its own.

Convention for whoever writes into ``$SCALEREG_HOME/landing/``: write the file under a name the
folder ignores (ending in ``.partial``, or starting with ``.``) and rename it into place when it is
complete. A rename is atomic, so nothing reads half a file. A file written in place is taken only
once it is stable: the same size and modification time on two looks, and last modified at least
``SCALEREG_LANDING_SETTLE`` seconds (default 10) before.

Each entry succeeds or fails on its own, and every failure is recorded in ``sources`` with its
reason: a symbolic link (refused, so nothing outside the home is ever read through the folder), an
entry removed before its turn came, a folder, pipe or unreadable file named like a data file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from registry.adapters.base import FileProblem
from registry.adapters.tables import CSV_SUFFIXES, JSONL_SUFFIXES, PARQUET_SUFFIXES, REFUSED_SUFFIXES
from registry.db import next_source_id, transaction
from registry.home import Home
from registry.ingest import IngestReport, display_path, ingest_path

#: Entries looked at: data files, plus object formats so that they are refused on the record.
WATCHED_SUFFIXES = CSV_SUFFIXES | PARQUET_SUFFIXES | JSONL_SUFFIXES | REFUSED_SUFFIXES
DEFAULT_SETTLE_SECONDS = 10.0
#: A file whose landing run failed this many times is left alone until it changes.
MAX_ATTEMPTS = 3
#: The signature of an entry whose run failed: it matches no entry, so the entry is taken again.
RETRY = "retry"


def settle_seconds() -> float:
    """How long a file must have been left unmodified before it is taken (``SCALEREG_LANDING_SETTLE``)."""
    try:
        return max(0.0, float(os.environ.get("SCALEREG_LANDING_SETTLE", DEFAULT_SETTLE_SECONDS)))
    except ValueError:
        return DEFAULT_SETTLE_SECONDS


def is_watched(name: str) -> bool:
    """Names the folder takes: not hidden, not ``.partial`` (being written), with a data file's suffix."""
    return not name.startswith(".") and not name.endswith(".partial") and Path(name).suffix.lower() in WATCHED_SUFFIXES


def _signature(entry: os.stat_result) -> str:
    """What changes whenever an entry is written to, replaced or swapped for another kind of entry."""
    return f"{stat.S_IFMT(entry.st_mode)}:{entry.st_size}:{entry.st_mtime_ns}"


@dataclass(frozen=True)
class Request:
    """An entry handed to a landing run: its signature then, the run's key and which attempt this is."""

    signature: str
    run_key: str | None  # None once the run succeeded
    attempt: int = 1


@dataclass(frozen=True)
class LandingState:
    """What the sensor remembers between ticks (its cursor): the signature of every entry at the last look,
    and the entries requested, with the runs that are to ingest them."""

    looked: dict[str, str] = field(default_factory=dict)
    requested: dict[str, Request] = field(default_factory=dict)

    @classmethod
    def parse(cls, cursor: str | None) -> LandingState:
        data = json.loads(cursor) if cursor else {}
        if data and "looked" not in data:  # an older cursor: name -> signature of files already requested
            return cls(requested={name: Request(str(sig), None) for name, sig in data.items()})
        return cls(
            looked=dict(data.get("looked", {})),
            requested={name: Request(*values) for name, values in data.get("requested", {}).items()},
        )

    def cursor(self) -> str:
        requested = {n: [r.signature, r.run_key, r.attempt] for n, r in self.requested.items()}
        return json.dumps({"looked": self.looked, "requested": requested}, sort_keys=True)

    def outstanding(self) -> set[str]:
        """Run keys whose outcome is not known yet."""
        return {r.run_key for r in self.requested.values() if r.run_key}

    def settle(self, succeeded: set[str], failed: set[str]) -> LandingState:
        """Forget the run keys of runs that succeeded; an entry of a failed run is taken again on the next look
        (up to MAX_ATTEMPTS runs), so a run that fails as a whole never loses a file."""
        requested = {}
        for name, request in self.requested.items():
            if request.run_key in succeeded:
                request = replace(request, run_key=None)
            elif request.run_key in failed:
                retry = request.attempt < MAX_ATTEMPTS
                request = replace(request, run_key=None, signature=RETRY if retry else request.signature)
            requested[name] = request
        return replace(self, requested=requested)

    def given_up(self, failed: set[str]) -> list[str]:
        """Entries whose last allowed run is among ``failed``: left alone until they change."""
        return sorted(n for n, r in self.requested.items() if r.run_key in failed and r.attempt >= MAX_ATTEMPTS)


@dataclass(frozen=True)
class LandingScan:
    """One look at the folder: entries ready to ingest (name -> signature), entries still changing, the new state."""

    ready: dict[str, str]
    settling: list[str]
    state: LandingState

    def _attempt(self, name: str) -> int:
        earlier = self.state.requested.get(name)
        return earlier.attempt + 1 if earlier is not None and earlier.signature == RETRY else 1

    def run_key(self) -> str:
        """A key naming exactly these entries at this attempt: the same look never launches two runs, a retry does."""
        attempts = {name: (signature, self._attempt(name)) for name, signature in self.ready.items()}
        return "landing:" + hashlib.sha256(json.dumps(attempts, sort_keys=True).encode()).hexdigest()[:24]

    def requested_as(self, run_key: str) -> LandingState:
        """The state once the ready entries are handed to the run ``run_key``."""
        requested = dict(self.state.requested)
        for name, signature in self.ready.items():
            requested[name] = Request(signature, run_key, self._attempt(name))
        return replace(self.state, requested=requested)


def scan_landing(home: Home, state: LandingState, now: float, settle: float) -> LandingScan:
    """Entries that are new or changed and now stable (same signature as at the last look, unmodified for
    ``settle`` seconds); an entry is looked at without following links and without opening it."""
    looked: dict[str, str] = {}
    ready: dict[str, str] = {}
    settling: list[str] = []
    entries = sorted(os.scandir(home.landing), key=lambda e: e.name) if home.landing.is_dir() else []
    for entry in entries:
        if not is_watched(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # removed while we looked
            continue
        signature = _signature(info)
        looked[entry.name] = signature
        earlier = state.requested.get(entry.name)
        if earlier is not None and earlier.signature == signature:
            continue
        if state.looked.get(entry.name) == signature and now - info.st_mtime >= settle:
            ready[entry.name] = signature
        else:
            settling.append(entry.name)
    requested = {n: r for n, r in state.requested.items() if n in looked}
    return LandingScan(ready, settling, LandingState(looked=looked, requested=requested))


def entry_problem(home: Home, name: str) -> str | None:
    """Why a landing entry is not read at all (a link, gone, not an entry of the folder), or None."""
    path = home.landing / name
    if Path(name).name != name or name in ("", ".", ".."):
        return f"{name}: not an entry of the landing folder {home.landing}; give the name of a file in it."
    if path.is_symlink():
        return (
            f"{name}: a symbolic link (to {os.readlink(path)}) is not followed, so that nothing outside the home is "
            "read through the landing folder; copy or move the file itself into the folder."
        )
    if not path.exists():
        return f"{name}: removed from the landing folder before it could be ingested; put it back to ingest it."
    if not home.contains(path):
        return f"{name}: the landing folder {home.landing} leads outside the home {home.root}; nothing was read."
    return None


def record_failed_entry(con: duckdb.DuckDBPyConnection, home: Home, name: str, message: str) -> IngestReport:
    """Record in ``sources`` a landing entry that could not even be opened, with the reason.

    Identified by its name and reason (it has no content to hash); a later failure of the same entry
    for the same reason replaces this row, as ingest does for failed files.
    """
    sha256 = hashlib.sha256(f"landing entry\0{name}\0{message}".encode()).hexdigest()
    original = str(Path(display_path(home.landing)) / name)
    with transaction(con):
        con.execute("DELETE FROM sources WHERE sha256 = ? AND status = 'failed'", [sha256])
        source_id = next_source_id(con)
        con.execute(
            "INSERT INTO sources (source_id, name, kind, adapter, original_path, sha256, ingested_at, status, error) "
            "VALUES (?, ?, 'internal', 'mapping', ?, ?, ?, 'failed', ?)",
            [source_id, name, original, sha256, datetime.now(timezone.utc), message],
        )
    return IngestReport(name=name, path=original, sha256=sha256, status="failed", source_id=source_id, error=message)


def ingest_landing_entry(con: duckdb.DuckDBPyConnection, home: Home, name: str) -> IngestReport:
    """Ingest one entry of the landing folder; whatever is wrong with it is recorded, never raised."""
    if problem := entry_problem(home, name):
        return record_failed_entry(con, home, name, problem)
    try:
        return ingest_path(con, home, home.landing / name, kind="internal")
    except FileProblem as problem:
        return record_failed_entry(con, home, name, str(problem))
    except FileNotFoundError:
        return record_failed_entry(con, home, name, entry_problem(home, name) or f"{name}: removed while it was read.")
    except OSError as error:
        return record_failed_entry(
            con, home, name, f"{name}: could not be read ({error.strerror or error}); check its permissions, then drop it again."
        )
