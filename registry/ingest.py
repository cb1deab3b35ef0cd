"""Ingest one source into the registry: read, validate, reconcile with what is there, write atomically.

Rules (ARCHITECTURE.md, "Nothing is lost"): every input row ends in ``runs``/``run_points`` or in
``rejects`` with its reasons; every source is recorded in ``sources`` with its content hash;
re-ingesting the same content is a no-op; one source is one transaction.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from registry.adapters import gadre, olmo_ladder, tables
from registry.adapters.base import Batch, FileProblem
from registry.adapters.mapping import GENERIC, ColumnMapping, load_mapping, read_with_mapping
from registry.db import one, transaction
from registry.home import PROJECT_ROOT, Home
from registry.validate import flag_expressions, validate
from schemas.runs import COMPUTE_TOLERANCE

ADAPTERS: dict[str, Callable[[Path], Batch]] = {"gadre": gadre.read, "olmo_ladder": olmo_ladder.read}
RUN_KEY = ["family", "run_name"]
POINT_KEY = ["family", "run_name", "step", "loss_name"]
SAME_VALUE_TOLERANCE = 1e-9
#: Archived copies keep the input's name only as far as it is safe in any folder on any system.
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._+=@-]+")
MAX_ARCHIVE_NAME = 120


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

    @property
    def conserved(self) -> bool:
        return self.rows_read == self.rows_accepted + self.rows_rejected

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"families": list(self.families)}


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


def _archive(home: Home, path: Path, sha256: str) -> Path:
    """Keep a copy of every ingested input by content hash, so the registry never depends on the original.

    Only a sanitised name is used under ``archive/<hash>/``, so no input name can place the copy
    anywhere else (``..``, separators, a name of its own hash folder).
    """
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    archive = home.archive.resolve()
    target = archive / sha256[:2] / sha256 / safe_file_name(path.resolve().name)
    if target.parent.parent.parent != archive:
        raise ValueError(f"archive path {target} would leave {archive}")
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    shutil.copytree(path, tmp) if path.is_dir() else shutil.copyfile(path, tmp)
    tmp.rename(target)
    return target


def _reject_frame(rows: pl.DataFrame, reason: str | pl.Expr) -> pl.DataFrame:
    expr = pl.lit(reason) if isinstance(reason, str) else reason
    return rows.select(pl.col("row_number").cast(pl.Int64), expr.cast(pl.String).alias("reason"))


def _within_file_duplicates(points: pl.DataFrame) -> pl.DataFrame:
    """Rows repeating an earlier row's run, step and loss name: the later one is rejected, naming the first."""
    repeated = points.select(pl.struct(POINT_KEY).is_duplicated()).to_series()
    if not repeated.any():
        return pl.DataFrame(schema={"row_number": pl.Int64, "reason": pl.String})
    first = points.filter(repeated).with_columns(pl.col("row_number").min().over(POINT_KEY).alias("first_row"))
    repeats = first.filter(pl.col("row_number") != pl.col("first_row")).select("row_number", "first_row").unique()
    return _reject_frame(
        repeats,
        pl.lit("repeats row ") + pl.col("first_row").cast(pl.String)
        + pl.lit(" of this file (same family, run, step and loss name); remove one of them"),
    )


def _assemble_runs(points: pl.DataFrame) -> pl.DataFrame:
    """One row per run from its final fitted point; compute is derived as 6ND only where not given."""
    fit_points = points.filter(pl.col("fit_loss"))
    # Duplicates are already rejected, so (run, step) is unique among fitted points and the
    # final point is simply the one with the largest step (a run without steps has one point).
    last = pl.col("step").fill_null(-1).arg_max()
    runs = (
        fit_points.group_by(RUN_KEY, maintain_order=True)
        .agg(pl.exclude(RUN_KEY).get(last))
        .rename({"step": "final_step"})
    )
    return runs.with_columns(
        pl.col("flops").is_null().alias("flops_derived"),
        pl.coalesce("flops", 6.0 * pl.col("params") * pl.col("tokens")).alias("flops"),
        *flag_expressions(COMPUTE_TOLERANCE),
    )


def _run_ids(con: duckdb.DuckDBPyConnection, runs: pl.DataFrame) -> pl.DataFrame:
    """Stable run ids: md5 of "family/run_name", so the same run from any file maps to one id."""
    with _registered(con, incoming_keys=runs.select(RUN_KEY)):
        return con.sql(
            "SELECT family, run_name, substr(md5(family || '/' || run_name), 1, 16) AS run_id FROM incoming_keys"
        ).pl()


def _conflicts(con: duckdb.DuckDBPyConnection, runs: pl.DataFrame) -> pl.DataFrame:
    """Incoming runs already in the registry: identical ones are duplicates, different ones conflicts."""
    with _registered(con, incoming=runs.select("run_id", "run_name", "params", "tokens", "loss")):
        found = con.sql(
            """
            SELECT i.run_id, s.name AS earlier_source, r.params AS old_params, r.tokens AS old_tokens, r.loss AS old_loss,
                   i.params, i.tokens, i.loss
            FROM incoming i JOIN runs r USING (run_id) JOIN sources s USING (source_id)
            """
        ).pl()
    if found.height == 0:
        return pl.DataFrame(schema={"run_id": pl.String, "reason": pl.String})
    same = pl.all_horizontal(
        ((pl.col(new) - pl.col(f"old_{new}")).abs() <= SAME_VALUE_TOLERANCE * pl.col(f"old_{new}").abs())
        for new in ("params", "tokens", "loss")
    )
    return found.select(
        "run_id",
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
    # Floats go as text so NaN and infinity survive: JSON would turn them into null.
    values = [
        pl.col(c).cast(pl.String) if raw.schema[c].is_float() else pl.col(c)
        for c in raw.columns if c != "row_number"
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


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, **frames: pl.DataFrame) -> Iterator[None]:
    """Frames visible to SQL under these names for the block: named on the connection, never found by variable name."""
    for name, frame in frames.items():
        con.register(name, frame)
    try:
        yield
    finally:
        for name in frames:
            con.unregister(name)


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
    source_id = one(con, "SELECT nextval('source_id_seq')")[0]
    counts = [stored.rows_read, stored.rows_accepted, stored.rows_rejected] if stored else [0, 0, 0]
    con.execute(
        "INSERT INTO sources (source_id, name, kind, adapter, citation, original_path, archive_path, sha256, ingested_at, "
        "rows_read, rows_accepted, rows_rejected, status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [source_id, source.name, source.kind, source.adapter, source.citation, source.original_path,
         str(archive_path) if archive_path else None, source.sha256, ingested_at or datetime.now(timezone.utc),
         *counts, "ingested" if stored else "failed", error],
    )
    return source_id


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
) -> IngestReport:
    """Ingest a file or folder; returns what happened. Never raises for bad input: it records it."""
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
    earlier = one(
        con,
        "SELECT source_id, name, rows_read, rows_accepted, rows_rejected FROM sources WHERE sha256 = ? AND status = 'ingested' "
        "ORDER BY source_id LIMIT 1",
        [source.sha256],
    )
    if earlier:
        return IngestReport(
            name=earlier[1], path=source.original_path, sha256=source.sha256, status="unchanged", source_id=earlier[0],
            rows_read=earlier[2], rows_accepted=earlier[3], rows_rejected=earlier[4],
        )
    try:
        if adapter == "mapping":
            chosen = load_mapping(mapping) if isinstance(mapping, Path) else (mapping or GENERIC)
            # a mapping may name its source and give its citation; what the caller gives wins
            source = replace(source, name=name or chosen.name or path.name, citation=citation or chosen.citation)
            batch = read_with_mapping(path, chosen, family=family)
        elif adapter in ADAPTERS:
            batch = ADAPTERS[adapter](path)
        else:
            raise FileProblem(f"unknown adapter {adapter!r}; known: mapping, {', '.join(ADAPTERS)}")
    except FileProblem as problem:
        return _record_failure(con, source, str(problem))
    except (Exception, tables.PanicException) as error:  # noqa: BLE001 - the file is recorded, never half-read
        message = (
            f"{path.name}: could not be read ({type(error).__name__}: {tables.first_line(error)}); nothing was written. "
            "This is a bug in scalereg's reader: please report it with the file."
        )
        return _record_failure(con, source, message)
    try:
        reconciled = _reconcile(con, batch)
        if reconciled.conserved:
            return _store(con, home, source, reconciled)
    except (duckdb.Error, pl.exceptions.PolarsError, tables.PanicException) as error:
        # The file's transaction was rolled back: record that it failed rather than leave no trace.
        message = (
            f"{path.name}: could not be written ({type(error).__name__}: {tables.first_line(error)}); nothing was "
            "written. This is a bug in scalereg's ingest: please report it with the file."
        )
        try:
            return _record_failure(con, source, message)
        except duckdb.Error:
            raise error from None
    return _record_failure(
        con, source,
        f"{path.name}: {reconciled.rows_read} rows read but {reconciled.rows_accepted} accepted + "
        f"{reconciled.rows_rejected} rejected; nothing was written. This is a bug in scalereg's ingest: "
        "please report it with the file.",
    )


def _reconcile(con: duckdb.DuckDBPyConnection, batch: Batch) -> Reconciled:
    """Validate a batch and set it against the registry: repeats within the file and conflicting runs are rejected."""
    accepted, rejects = validate(batch)
    duplicates = _within_file_duplicates(accepted)
    if duplicates.height:
        rejects = pl.concat([rejects, duplicates])
        accepted = accepted.filter(~pl.col("row_number").is_in(duplicates.get_column("row_number").implode()))

    runs = _assemble_runs(accepted)
    runs = runs.join(_run_ids(con, runs), on=RUN_KEY, how="left")
    conflicts = _conflicts(con, runs)
    if conflicts.height:
        bad = runs.join(conflicts, on="run_id").select(RUN_KEY + ["reason"])
        rows = accepted.join(bad, on=RUN_KEY).select("row_number", "reason").unique()
        rejects = pl.concat([rejects, rows])
        accepted = accepted.filter(~pl.col("row_number").is_in(rows.get_column("row_number").implode()))
        runs = runs.filter(~pl.col("run_id").is_in(conflicts.get_column("run_id").implode()))

    reject_rows = (
        rejects.group_by("row_number", maintain_order=True).agg(pl.col("reason").unique(maintain_order=True).alias("reasons"))
        .join(_raw_rows(batch, rejects.get_column("row_number").unique()), on="row_number", how="left")
        .sort("row_number")
    )
    # one point per row is the common case (a table of final values or one loss per step)
    one_point_per_row = batch.points.height == batch.rows_read
    has_curves = not one_point_per_row or accepted.get_column("step").is_not_null().any()
    return Reconciled(
        runs=runs,
        points=accepted.join(runs.select(RUN_KEY + ["run_id"]), on=RUN_KEY) if has_curves else None,
        reject_rows=reject_rows,
        rows_read=batch.rows_read,
        rows_accepted=accepted.height if one_point_per_row else accepted.get_column("row_number").n_unique(),
        rows_rejected=reject_rows.height,
    )


def _store(con: duckdb.DuckDBPyConnection, home: Home, source: IncomingSource, reconciled: Reconciled) -> IngestReport:
    """Archive the input, then write its source row, runs, curve points and rejects in one transaction."""
    archived = _archive(home, source.path, source.sha256)
    now = datetime.now(timezone.utc)
    runs, points, reject_rows = reconciled.runs, reconciled.points, reconciled.reject_rows
    with transaction(con):
        source_id = _insert_source(con, source, stored=reconciled, archive_path=archived, ingested_at=now)
        with _registered(con, incoming_runs=runs):
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
            with _registered(con, incoming_points=points):
                con.execute("INSERT INTO run_points SELECT run_id, step, tokens, loss_name, loss FROM incoming_points")
        if reject_rows.height:
            with _registered(con, incoming_rejects=reject_rows):
                con.execute(
                    "INSERT INTO rejects SELECT ?, member, row_number, raw::JSON, reasons FROM incoming_rejects", [source_id]
                )
    return IngestReport(
        name=source.name, path=source.original_path, sha256=source.sha256, status="ingested", source_id=source_id,
        rows_read=reconciled.rows_read, rows_accepted=reconciled.rows_accepted, rows_rejected=reconciled.rows_rejected,
        runs_added=runs.height, families=tuple(sorted(runs.get_column("family").unique().to_list())),
    )
