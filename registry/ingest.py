"""Ingest one source into the registry: read, validate, reconcile with what is there, write atomically.

Rules (ARCHITECTURE.md, "Nothing is lost"): every input row ends in ``runs``/``run_points`` or in
``rejects`` with its reasons; every source is recorded in ``sources`` with its content hash;
re-ingesting the same content is a no-op; one source is one transaction.

A source is its content *read one way* (adapter, mapping, ``--family``): the same content read
another way is a corrected reading, which supersedes the earlier one (its runs, run points and
rejects are removed; its ``sources`` row stays, with ``superseded_by``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from registry.adapters import gadre, olmo_ladder, tables
from registry.adapters.base import Batch, FileProblem
from registry.adapters.mapping import GENERIC, ColumnMapping, load_mapping, read_with_mapping
from registry.collisions import within_file_collisions
from registry.db import claimed, concurrent, next_source_id, registered, retrying, transaction
from registry.disk import NoSpace, is_no_space, no_space
from registry.home import PROJECT_ROOT, Home
from registry.importers.wandb import PRESETS
from registry.run_losses import declared_losses, extra_loss_rejects, fitted_losses, mark_fitted
from registry.validate import flag_expressions, validate
from schemas.runs import COMPUTE_TOLERANCE, SAME_VALUE_RTOL

ADAPTERS: dict[str, Callable[[Path], Batch]] = {"gadre": gadre.read, "olmo_ladder": olmo_ladder.read}
RUN_KEY = ["family", "run_name"]
#: How the runs of a file are numbered (see _numbered_runs): by a hash of their key, else exactly by rank.
RUN_NUMBERS = (pl.struct(RUN_KEY).hash(), pl.struct(RUN_KEY).rank("dense").cast(pl.UInt64))
#: Archived copies keep the input's name only as far as it is safe in any folder on any system.
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._+=@-]+")
MAX_ARCHIVE_NAME = 120
#: A copy still being written into the archive: ``.<name>.<pid>.partial``, renamed into place when complete.
_PARTIAL = re.compile(r"^\..+\.(?P<pid>\d+)\.partial$")


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did, for the CLI, the sensor and asset metadata."""

    name: str
    path: str
    sha256: str
    status: str  # "ingested", "failed" or "unchanged"
    source_id: int | None = None
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    runs_added: int = 0
    error: str | None = None
    families: tuple[str, ...] = field(default_factory=tuple)
    supersedes: tuple[int, ...] = ()  # earlier readings of the same content this one replaced (source ids)

    @property
    def conserved(self) -> bool:
        return self.rows_read == self.rows_accepted + self.rows_rejected

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {
            "families": list(self.families), "supersedes": list(self.supersedes),
        }


def content_hash(path: Path) -> str:
    """sha256 of a file, or of a folder's sorted relative paths and file contents."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            if not path.is_dir():
                return hashlib.file_digest(handle, "sha256").hexdigest()
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def reading_hash(adapter: str, mapping: ColumnMapping | None, family: str | None) -> str:
    """sha256 of how a source is read: adapter, mapping and family override (never its name or citation).

    With the content hash it is the source's identity: the same content read another way is a new
    reading, which supersedes the earlier one.
    """
    how = {
        "adapter": adapter,
        "family": family,
        "mapping": mapping.reading() if mapping else None,
        "slugify_family": mapping.slugify_family if mapping else None,
    }
    return hashlib.sha256(json.dumps(how, sort_keys=True).encode()).hexdigest()


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path.resolve())


def fingerprint(path: Path, size: int) -> str:
    """sha256 of a file's size, first and last MiB: identifies a file too large to read whole."""
    digest = hashlib.sha256(f"size={size}".encode())
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return digest.hexdigest()


def safe_file_name(name: str) -> str:
    """A name that stays one plain file inside its folder: no separators, no '..', no hidden or huge names."""
    cleaned = _UNSAFE_NAME_CHARS.sub("_", name).lstrip(".")
    stem, dot, suffix = cleaned.rpartition(".")
    if not dot or len(suffix) > 16:
        stem, suffix = cleaned, ""
    keep = MAX_ARCHIVE_NAME - len(suffix) - 1
    cleaned = stem[:keep] + ("." + suffix if suffix else "")
    return cleaned.strip("._") and cleaned or "input"


def _archive_target(home: Home, path: Path, sha256: str) -> Path:
    """Where an input's copy lives: ``archive/<hash>/`` and only a sanitised name, so no input name can
    place the copy anywhere else (``..``, separators, a name of its own hash folder)."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    archive = home.archive.resolve()
    target = archive / sha256[:2] / sha256 / safe_file_name(path.resolve().name)
    if target.parent.parent.parent != archive:
        raise ValueError(f"archive path {target} would leave {archive}")
    return target


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _discard_copy(copy: Path) -> None:
    """Remove an archive copy (or its partial) and the hash folders that held only it."""
    _remove(copy)
    for folder in (copy.parent, copy.parent.parent):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _writing(pid: int) -> bool:
    """Whether another live process may still be writing its partial copy (this process's are leftovers)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_partials(archive: Path) -> None:
    """Remove copies left half-written by an ingest that was killed: the process that wrote each is gone."""
    for partial in archive.glob("*/*/.*.partial"):
        found = _PARTIAL.match(partial.name)
        if found and not _writing(int(found["pid"])):
            _remove(partial)


def _archive(home: Home, path: Path, sha256: str) -> Path:
    """Keep a copy of every ingested input by content hash, so the registry never depends on the original.

    The copy is written under a partial name and renamed into place, so the archive never holds a
    truncated copy under the real name; a copy that fails (a full disk) is removed before the error
    goes on, and partial copies of killed ingests are swept away by the next one.
    """
    target = _archive_target(home, path, sha256)
    if target.exists():
        return target
    archive = home.archive.resolve()
    _sweep_partials(archive)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        shutil.copytree(path, tmp) if path.is_dir() else shutil.copyfile(path, tmp)
        tmp.rename(target)
    except OSError as error:
        _discard_copy(tmp)
        if is_no_space(error):
            raise NoSpace(archive) from error
        raise
    return target


@dataclass
class _ArchiveCopy:
    """An input's archive copy being made in a thread (see :func:`_archiving`)."""

    made: bool  # this ingest makes the copy (else it is there already, from an earlier reading of the content)
    copying: Future[Path]
    stored: bool = False  # set once the input is stored: its copy stays

    def path(self) -> Path:
        """The complete copy; raises what copying raised (NoSpace on a full disk)."""
        return self.copying.result()


@contextmanager
def _archiving(home: Home, path: Path, sha256: str) -> Iterator[_ArchiveCopy]:
    """The input's archive copy, made in a thread while the block reconciles the input: copying releases the
    GIL, so the copy of a long file costs no time of its own. A copy made for an input that the block does not
    store in the end (a failed write, rows not conserved) is removed again when the block ends, before the
    failure is recorded, so the archive holds only inputs the registry has (and a full disk gets its room back)."""
    made = not _archive_target(home, path, sha256).exists()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive") as pool:
        copy = _ArchiveCopy(made, pool.submit(_archive, home, path, sha256))
        try:
            yield copy
        finally:
            if made and not copy.stored and copy.copying.exception() is None:
                _discard_copy(copy.copying.result())


def _assemble_runs(points: pl.DataFrame) -> pl.DataFrame:
    """One row per run from its final fitted point; compute is derived as 6ND only where not given."""
    # Duplicates are already rejected, so (run, step) is unique among fitted points and the
    # final point is simply the one with the largest step (a run without steps has one point).
    # Only the final point's position is found (lazily: three columns of a long file are read; runs by their
    # number, see _numbered_runs), then its row taken whole: gathering every column per group costs several times
    # as much.
    last = pl.col("step").fill_null(-1).arg_max()
    final = (
        points.lazy().select("run", "step", "fit_loss").with_row_index("point").filter(pl.col("fit_loss"))
        .group_by("run", maintain_order=True).agg(pl.col("point").get(last))
        .collect().get_column("point")
    )
    runs = points.select(pl.all().gather(final)).rename({"step": "final_step"})
    return runs.with_columns(
        pl.col("flops").is_null().alias("flops_derived"),
        pl.coalesce("flops", 6.0 * pl.col("params") * pl.col("tokens")).alias("flops"),
        *flag_expressions(COMPUTE_TOLERANCE),
    )


def _numbered_runs(points: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The points with ``run``, a number per run of the file, and the runs' keys (family, run name) with it.

    The number is a 64-bit hash of the key, so that grouping and joining a million points costs integer work
    rather than comparing strings each time. It is used only when no two runs of the file share it (checked:
    as many numbers as keys); otherwise the runs are numbered by rank, exactly.
    """
    keys = points.select(RUN_KEY).unique()
    for number in RUN_NUMBERS:
        numbered = points.with_columns(number.alias("run"))
        numbers = numbered.group_by("run").agg(pl.col(RUN_KEY).first())
        if numbers.height == keys.height:
            return numbered, numbers
    raise AssertionError("ranks number every run")


def _run_ids(con: duckdb.DuckDBPyConnection, runs: pl.DataFrame) -> pl.DataFrame:
    """Stable run ids: md5 of "family/run_name", so the same run from any file maps to one id."""
    with registered(con, incoming_keys=runs.select("run", *RUN_KEY)):
        return con.sql(
            "SELECT run, substr(md5(family || '/' || run_name), 1, 16) AS run_id FROM incoming_keys"
        ).pl()


def _conflicts(con: duckdb.DuckDBPyConnection, runs: pl.DataFrame, replacing: Sequence[int] = ()) -> pl.DataFrame:
    """Incoming runs already in the registry: identical ones (``same``) are duplicates, different ones conflicts.

    Values are the same when they agree to :data:`SAME_VALUE_RTOL` (a float32 export of 3.1 is 3.0999999).
    Runs of the sources this ingest replaces are not compared: they are about to go.
    """
    with registered(con, incoming=runs.select("run_id", "run_name", "params", "tokens", "loss")):
        found = con.sql(
            """
            SELECT i.run_id, s.name AS earlier_source, r.params AS old_params, r.tokens AS old_tokens, r.loss AS old_loss,
                   i.params, i.tokens, i.loss
            FROM incoming i JOIN runs r USING (run_id) JOIN sources s USING (source_id)
            WHERE NOT list_contains(?::BIGINT[], r.source_id)
            """,
            params=[list(replacing)],
        ).pl()
    if found.height == 0:
        return pl.DataFrame(schema={"run_id": pl.String, "same": pl.Boolean, "reason": pl.String})
    same = pl.all_horizontal(
        ((pl.col(new) - pl.col(f"old_{new}")).abs() <= SAME_VALUE_RTOL * pl.col(f"old_{new}").abs())
        for new in ("params", "tokens", "loss")
    )
    return found.select(
        "run_id",
        same.alias("same"),
        pl.when(same)
        .then(pl.lit("run already in the registry from source '") + pl.col("earlier_source") + pl.lit("' with the same values; nothing to add"))
        .otherwise(
            pl.lit("conflicts with the same run from source '") + pl.col("earlier_source")
            + pl.lit("' (there: N=") + pl.col("old_params").cast(pl.String) + pl.lit(", D=") + pl.col("old_tokens").cast(pl.String)
            + pl.lit(", loss=") + pl.col("old_loss").cast(pl.String)
            + pl.lit("; here: N=") + pl.col("params").cast(pl.String) + pl.lit(", D=") + pl.col("tokens").cast(pl.String)
            + pl.lit(", loss=") + pl.col("loss").cast(pl.String)
            + pl.lit("); if it is a different run give it a new run_name")
        )
        .alias("reason"),
    )


def _raw_rows(batch: Batch, row_numbers: pl.Series) -> pl.DataFrame:
    """The rejected input rows as they were read, as JSON, with the member file they came from."""
    raw = batch.raw.filter(pl.col("row_number").is_in(row_numbers.implode()))
    if "raw" in raw.columns and set(raw.columns) <= {"row_number", "member", "raw"}:  # adapters give raw JSON
        member = pl.col("member") if "member" in raw.columns else pl.lit(None, dtype=pl.String)
        return raw.select("row_number", member.alias("member"), pl.col("raw").cast(pl.String))
    # Floats go as text so NaN and infinity survive: JSON would turn them into null. The schema is
    # read once: polars rebuilds it on every access, which made this quadratic in the column count.
    values = [
        pl.col(name).cast(pl.String) if dtype.is_float() else pl.col(name)
        for name, dtype in raw.schema.items() if name != "row_number"
    ]
    return raw.select(
        "row_number",
        pl.lit(None, dtype=pl.String).alias("member"),
        pl.struct(values).struct.json_encode().alias("raw"),
    )


@dataclass(frozen=True)
class IncomingSource:
    """A source being ingested: what its row in ``sources`` says about it, whatever the outcome."""

    path: Path
    name: str
    kind: str
    adapter: str
    citation: str | None
    original_path: str
    sha256: str
    reading_sha256: str | None = None  # how it is read: see reading_hash
    supersedes: tuple[int, ...] = ()  # earlier readings of the same content that this one replaces
    #: Rows of the source's own provenance tables (a tracker's runs), written in its transaction given its source_id.
    written_with: Callable[[duckdb.DuckDBPyConnection, int], None] | None = None


@dataclass(frozen=True)
class Reconciled:
    """A batch split into what goes into the registry and what is rejected, with its rows counted."""

    runs: pl.DataFrame
    points: pl.DataFrame | None  # per-step curves and extra losses, when the source has them
    reject_rows: pl.DataFrame
    rows_read: int
    rows_accepted: int
    rows_rejected: int

    @property
    def conserved(self) -> bool:
        """Every row read is either accepted or rejected: nothing is lost, nothing counted twice."""
        return self.rows_read == self.rows_accepted + self.rows_rejected


def _insert_source(
    con: duckdb.DuckDBPyConnection,
    source: IncomingSource,
    *,
    error: str | None = None,
    stored: Reconciled | None = None,
    archive_path: Path | None = None,
    ingested_at: datetime | None = None,
) -> int:
    """Record one attempt at a source (failed with ``error``, or ``stored``); returns its ``source_id``.

    Call inside the attempt's transaction. A new attempt replaces an earlier failed attempt of the
    same content; successes are never touched.
    """
    con.execute("DELETE FROM sources WHERE sha256 = ? AND status = 'failed'", [source.sha256])
    source_id = next_source_id(con)
    counts = [stored.rows_read, stored.rows_accepted, stored.rows_rejected] if stored else [0, 0, 0]
    con.execute(
        "INSERT INTO sources (source_id, name, kind, adapter, citation, original_path, archive_path, sha256, ingested_at, "
        "rows_read, rows_accepted, rows_rejected, status, error, reading_sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [source_id, source.name, source.kind, source.adapter, source.citation, source.original_path,
         str(archive_path) if archive_path else None, source.sha256, ingested_at or datetime.now(timezone.utc),
         *counts, "ingested" if stored else "failed", error, source.reading_sha256],
    )
    return source_id


def _supersede(con: duckdb.DuckDBPyConnection, replaced: Sequence[int], by: int) -> None:
    """Replace earlier readings: their runs, run points and rejects go, their sources rows say by which reading.

    Removed rather than marked, so no fit, planner or query can use a superseded value by mistake;
    the earlier reading stays traceable (its sources row, counts and archived copy).
    """
    if not replaced:
        return
    ids = list(replaced)
    con.execute("DELETE FROM run_points WHERE list_contains(?::BIGINT[], source_id)", [ids])
    con.execute("DELETE FROM runs WHERE list_contains(?::BIGINT[], source_id)", [ids])
    con.execute("DELETE FROM rejects WHERE list_contains(?::BIGINT[], source_id)", [ids])
    con.execute("UPDATE sources SET superseded_by = ? WHERE list_contains(?::BIGINT[], source_id)", [by, ids])


def _record_failure(con: duckdb.DuckDBPyConnection, source: IncomingSource, message: str) -> IngestReport:
    with transaction(con):
        source_id = _insert_source(con, source, error=message)
    return IngestReport(
        name=source.name, path=source.original_path, sha256=source.sha256, status="failed", source_id=source_id,
        error=message,
    )


def ingest_path(
    con: duckdb.DuckDBPyConnection,
    home: Home,
    path: Path,
    *,
    name: str | None = None,
    kind: str = "internal",
    adapter: str = "mapping",
    mapping: ColumnMapping | Path | None = None,
    family: str | None = None,
    citation: str | None = None,
    ahead: ReadAhead | None = None,
) -> IngestReport:
    """Ingest a file or folder; returns what happened. Never raises for bad input: it records it.

    With other writers committing at the same time (DuckLake), the file is read and validated first,
    outside any claim; then its content hash and its families are claimed, so that the duplicate check,
    the run conflict checks and the write see every earlier writer's commit and no concurrent one; a
    commit that still conflicts (another writer deleted rows of the same table) is tried again.
    """
    options = {"name": name, "kind": kind, "adapter": adapter, "mapping": mapping, "family": family, "citation": citation}
    path = Path(path)
    if not concurrent(con) or not path.exists() or tables.kind_problem(path):
        return _ingest_once(con, home, path, ahead=ahead, **options)
    if ahead is None and (path.is_dir() or tables.size_problem(path) is None):
        ahead = read_ahead(path, adapter=adapter, mapping=mapping, family=family)
    families = ahead.batch.points.get_column("family").unique().drop_nulls().to_list() if ahead else []
    with claimed(con, f"source:{content_hash(path)}", *(f"family:{f}" for f in families)):
        return retrying(lambda: _ingest_once(con, home, path, ahead=ahead, **options), f"ingest of {path.name}")


def _ingest_once(
    con: duckdb.DuckDBPyConnection,
    home: Home,
    path: Path,
    *,
    name: str | None = None,
    kind: str = "internal",
    adapter: str = "mapping",
    mapping: ColumnMapping | Path | None = None,
    family: str | None = None,
    citation: str | None = None,
    ahead: ReadAhead | None = None,
) -> IngestReport:
    """One attempt at :func:`ingest_path`.

    ``ahead``: the file already read and validated by :func:`read_ahead` (the same way), so that a
    caller holds the registry's writer only to reconcile and store it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if problem := tables.kind_problem(path):
        raise FileProblem(problem)  # a pipe or device has no content to hash or record
    # An oversized file is refused before hashing: the record identifies it by its size and ends only.
    oversized = tables.size_problem(path) if path.is_file() else None
    source = IncomingSource(
        path=path, name=name or path.name, kind=kind, adapter=adapter, citation=citation,
        original_path=display_path(path),
        sha256=fingerprint(path, path.stat().st_size) if oversized else content_hash(path),
    )
    if oversized:
        return _record_failure(con, source, oversized)
    try:
        chosen = _chosen_mapping(adapter, mapping)
    except FileProblem as problem:
        return _record_failure(con, source, str(problem))
    if chosen is not None:  # a mapping may name its source and give its citation; what the caller gives wins
        source = replace(source, name=name or chosen.name or path.name, citation=citation or chosen.citation)
    source = replace(source, reading_sha256=reading_hash(adapter, chosen, family))
    earlier = con.execute(
        "SELECT source_id, name, rows_read, rows_accepted, rows_rejected, reading_sha256 FROM sources "
        "WHERE sha256 = ? AND status = 'ingested' AND superseded_by IS NULL ORDER BY source_id",
        [source.sha256],
    ).fetchall()
    for source_id, earlier_name, read, accepted, rejected, reading in earlier:
        if reading == source.reading_sha256:
            return IngestReport(
                name=earlier_name, path=source.original_path, sha256=source.sha256, status="unchanged",
                source_id=source_id, rows_read=read, rows_accepted=accepted, rows_rejected=rejected,
            )
    # the same content read another way (a corrected mapping, another family): this reading replaces those
    source = replace(source, supersedes=tuple(row[0] for row in earlier))
    if ahead is not None and (ahead.path, ahead.reading_sha256) != (path, source.reading_sha256):
        raise ValueError(f"{path} was read ahead as {ahead.path} another way; read it ahead as it is ingested")
    try:
        batch = ahead.batch if ahead else _read_batch(path, adapter, chosen, family)
        declared = declared_losses(home, batch.points.get_column("family").unique().drop_nulls().to_list(), path.name)
    except FileProblem as problem:
        return _record_failure(con, source, str(problem))
    except (Exception, tables.PanicException) as error:  # noqa: BLE001 - the file is recorded, never half-read
        message = (
            f"{path.name}: could not be read ({type(error).__name__}: {tables.first_line(error)}); nothing was written. "
            "This is a bug in scalereg's reader: please report it with the file."
        )
        return _record_failure(con, source, message)
    validated = (ahead.accepted, ahead.rejects) if ahead else None
    return store_batch(con, home, source, batch, declared=declared, validated=validated)


def store_batch(
    con: duckdb.DuckDBPyConnection,
    home: Home,
    source: IncomingSource,
    batch: Batch,
    *,
    declared: Mapping[str, str] | None = None,
    validated: tuple[pl.DataFrame, pl.DataFrame] | None = None,
) -> IngestReport:
    """Reconcile a batch with the registry and store it with its source, or record why not: the one write path
    for files and for sources read by a caller of their own (a tracker import, registry/importers/)."""
    path = source.path
    try:
        with _archiving(home, path, source.sha256) as copy:
            reconciled = _reconcile(con, batch, declared=declared, replacing=source.supersedes, validated=validated)
            if reconciled.conserved:
                report = _write(con, source, reconciled, copy.path())
                copy.stored = True
                return report
    except (NoSpace, duckdb.Error, pl.exceptions.PolarsError, tables.PanicException) as error:
        # The file's transaction was rolled back: record that it failed rather than leave no trace.
        # A full disk (the archive copy, DuckDB's write-ahead log) is not a bug: say which folder is full.
        full = no_space(error, home.root) if is_no_space(error) else None
        message = f"{path.name}: {full}" if full else (
            f"{path.name}: could not be written ({type(error).__name__}: {tables.first_line(error)}); nothing was "
            "written. This is a bug in scalereg's ingest: please report it with the file."
        )
        try:
            return _record_failure(con, source, message)
        except duckdb.Error:
            raise (full or error) from None
    return _record_failure(
        con, source,
        f"{path.name}: {reconciled.rows_read} rows read but {reconciled.rows_accepted} accepted + "
        f"{reconciled.rows_rejected} rejected; nothing was written. This is a bug in scalereg's ingest: "
        "please report it with the file.",
    )


@dataclass(frozen=True)
class ReadAhead:
    """A file read and validated before the registry's writer is taken: the slow part of a wide or long file
    is done while readers and other writers can still get in. ``ingest_path(..., ahead=...)`` takes it."""

    path: Path
    reading_sha256: str  # how it was read (see reading_hash): ingest_path refuses it for another reading
    batch: Batch
    accepted: pl.DataFrame  # the rows that passed validation
    rejects: pl.DataFrame  # (row_number, reason) of those that did not


def read_ahead(
    path: Path, *, adapter: str = "mapping", mapping: ColumnMapping | Path | None = None, family: str | None = None
) -> ReadAhead | None:
    """Read and validate ``path`` without the registry; None when it cannot be read (ingest_path records why)."""
    path = Path(path)
    try:
        chosen = _chosen_mapping(adapter, mapping)
        batch = _read_batch(path, adapter, chosen, family)
        return ReadAhead(path, reading_hash(adapter, chosen, family), batch, *validate(batch))
    except (Exception, tables.PanicException):  # noqa: BLE001 - ingest_path reads it again and records the failure
        return None


def _read_batch(path: Path, adapter: str, chosen: ColumnMapping | None, family: str | None) -> Batch:
    """The file's rows, through its mapping or its own adapter (see :func:`_chosen_mapping`)."""
    if adapter in PRESETS:  # an export reshaped by a preset (registry/importers/wandb.py), then read by its mapping
        return PRESETS[adapter](path, chosen, family)
    return read_with_mapping(path, chosen, family=family) if chosen is not None else ADAPTERS[adapter](path)


def _chosen_mapping(adapter: str, mapping: ColumnMapping | Path | None) -> ColumnMapping | None:
    """The mapping a tabular source is read with (None for a source with an adapter of its own)."""
    if adapter == "mapping":
        return load_mapping(mapping) if isinstance(mapping, Path) else (mapping or GENERIC)
    if adapter in ADAPTERS:
        return None
    if adapter in PRESETS:
        if mapping is None:
            raise FileProblem(f"the {adapter} preset reads a file through a mapping: give --mapping MAP.toml naming N, D and the loss")
        return load_mapping(mapping) if isinstance(mapping, Path) else mapping
    raise FileProblem(f"unknown adapter {adapter!r}; known: mapping, {', '.join([*ADAPTERS, *PRESETS])}")


def _rejecting(accepted: pl.DataFrame, rejects: pl.DataFrame, new: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Reject whole input rows: a row is accepted only if every one of its points is."""
    if new.height == 0:
        return accepted, rejects
    rejected_rows = new.get_column("row_number").implode()
    return accepted.filter(~pl.col("row_number").is_in(rejected_rows)), pl.concat([rejects, new.select(rejects.columns)])


def _reconcile(
    con: duckdb.DuckDBPyConnection,
    batch: Batch,
    *,
    declared: Mapping[str, str] | None = None,
    replacing: Sequence[int] = (),
    validated: tuple[pl.DataFrame, pl.DataFrame] | None = None,
) -> Reconciled:
    """Validate a batch and set it against the registry: repeats within the file, conflicting runs and extra
    losses that cannot be stored are rejected.

    ``declared`` are the fitted losses family settings declare; ``replacing`` the sources this one supersedes,
    whose runs no longer count; ``validated`` the batch's accepted rows and rejects when it was validated ahead.
    """
    accepted, rejects = validated or validate(batch)
    fitted = fitted_losses(con, accepted, batch.points, declared or {}, replacing)
    accepted, numbers = _numbered_runs(mark_fitted(accepted, fitted))
    # repeats keep their first row; rows of different runs sharing a run name are all rejected (registry/collisions.py)
    accepted, rejects = _rejecting(accepted, rejects, within_file_collisions(accepted, batch))
    # every accepted point with its run's id, joined once (a left join keeps the points' order; every run has an
    # id), then narrowed as rows are rejected
    points = accepted.join(_run_ids(con, numbers), on="run", how="left")
    runs = _assemble_runs(points)
    rows_before = points.height
    conflicts = _conflicts(con, runs, replacing)
    if conflicts.height:
        # A conflicting run loses all its rows. A run already stored with the same values loses its fitted
        # rows only: its other losses are checked below as extra losses of the stored run.
        rows = points.join(conflicts, on="run_id").filter(~pl.col("same") | pl.col("fit_loss"))
        points, rejects = _rejecting(points, rejects, rows.select("row_number", "reason").unique())
        runs = runs.filter(~pl.col("run_id").is_in(conflicts.get_column("run_id").implode()))
    points, rejects = _rejecting(points, rejects, extra_loss_rejects(con, points, runs, fitted, replacing))
    if points.height != rows_before:
        # a rejected row takes all its points with it, fitted ones of other runs' rows included (a wide row
        # holds several losses): the runs are assembled again from exactly the accepted points
        runs = _assemble_runs(points)

    reject_rows = (
        rejects.group_by("row_number", maintain_order=True).agg(pl.col("reason").unique(maintain_order=True).alias("reasons"))
        .join(_raw_rows(batch, rejects.get_column("row_number").unique()), on="row_number", how="left")
        .sort("row_number")
    )
    # one point per row is the common case (a table of final values or one loss per step)
    one_point_per_row = batch.points.height == batch.rows_read
    has_curves = not one_point_per_row or points.get_column("step").is_not_null().any()
    has_extra_losses = not points.get_column("fit_loss").all()
    return Reconciled(
        runs=runs,
        points=points if has_curves or has_extra_losses else None,
        reject_rows=reject_rows,
        rows_read=batch.rows_read,
        rows_accepted=points.height if one_point_per_row else points.get_column("row_number").n_unique(),
        rows_rejected=reject_rows.height,
    )


def _write(con: duckdb.DuckDBPyConnection, source: IncomingSource, reconciled: Reconciled, archived: Path) -> IngestReport:
    """The source row, runs, curve points and rejects of an archived input, in one transaction."""
    now = datetime.now(timezone.utc)
    runs, points, reject_rows = reconciled.runs, reconciled.points, reconciled.reject_rows
    with transaction(con):
        source_id = _insert_source(con, source, stored=reconciled, archive_path=archived, ingested_at=now)
        _supersede(con, source.supersedes, by=source_id)
        if source.written_with is not None:
            source.written_with(con, source_id)
        with registered(con, incoming_runs=runs):
            con.execute(
                """
                INSERT INTO runs (run_id, family, source_id, run_name, params, params_non_embedding, tokens, tokens_derived,
                                  unique_tokens, flops, flops_derived, loss, loss_name, final_step, flags, tags, row_number,
                                  ingested_at)
                SELECT run_id, family, ?, run_name, params, params_non_embedding, tokens, tokens_derived, unique_tokens,
                       flops, flops_derived, loss, loss_name, final_step, flags, tags::JSON, row_number, ?
                FROM incoming_runs
                """,
                [source_id, now],
            )
        if points is not None and points.height:
            # only the stored columns go to DuckDB: each registered column is converted for it
            with registered(con, incoming_points=points.select("run_id", "step", "tokens", "loss_name", "loss")):
                con.execute(
                    "INSERT INTO run_points (run_id, step, tokens, loss_name, loss, source_id) "
                    "SELECT run_id, step, tokens, loss_name, loss, ? FROM incoming_points",
                    [source_id],
                )
        if reject_rows.height:
            with registered(con, incoming_rejects=reject_rows):
                con.execute(
                    "INSERT INTO rejects SELECT ?, member, row_number, raw::JSON, reasons FROM incoming_rejects", [source_id]
                )
    return IngestReport(
        name=source.name, path=source.original_path, sha256=source.sha256, status="ingested", source_id=source_id,
        rows_read=reconciled.rows_read, rows_accepted=reconciled.rows_accepted, rows_rejected=reconciled.rows_rejected,
        runs_added=runs.height, families=tuple(sorted(runs.get_column("family").unique().to_list())),
        supersedes=source.supersedes,
    )
