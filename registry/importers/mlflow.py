"""Import the finished runs of an MLflow experiment: N, D and the family from params or tags, the loss from a metric.

An import reads every run of the experiment. Finished runs are read whole (params, tags, the loss
metric's history) into a snapshot, which is the import's content: it is archived, hashed and stored
through the same write path as a file (:func:`registry.ingest.store_batch`), one row per run, the
metric's history as the run's curve in ``run_points`` and its last value as the run's loss. Runs that
are running, scheduled, failed, killed or deleted are reported as skipped with the reason.

An import is a row in ``sources`` (tracker, URI, experiment, time range of the runs) and each run it
saw a row in ``tracker_runs`` (the tracker's run id and status), so every registry row traces back to
its tracker run. The same snapshot read the same way is a no-op; a snapshot that differs (a run that
logged more steps, a new or deleted run) is a new version of the import that supersedes the earlier
one: its runs replace the earlier version's, whose ``sources`` row and archived snapshot stay.

``mlflow`` is imported inside the functions that talk to the server: the registry's other commands
never pay for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import duckdb
import polars as pl

from registry.adapters.base import PARSE_ERROR_SCHEMA, Batch, FileProblem, canonical
from registry.db import claimed, registered, retrying, writer
from registry.home import Home
from registry.importers.tracker_mapping import FieldRef, TrackerMapping, parse_ref
from registry.ingest import IncomingSource, IngestReport, store_batch
from registry.run_losses import declared_losses
from schemas.families import slugify
from schemas.units import apply_transform

TRACKER = "mlflow"
#: Runs a page of the tracker's search returns; the import pages through all of them.
PAGE_SIZE = 1000
#: MLflow's client retries a refused connection for minutes by default; an import says at once that the
#: server cannot be reached. Users may still set these in the environment.
CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
_SKIP_REASONS = {
    "RUNNING": "still running (status RUNNING): imported once it has finished",
    "SCHEDULED": "scheduled and not started (status SCHEDULED): imported once it has finished",
    "FAILED": "failed (status FAILED): a run that did not finish is not a trained model; rerun it, "
    "or mark it FINISHED in MLflow if its last logged loss is final",
    "KILLED": "killed before it finished (status KILLED): a run that did not finish is not a trained model; "
    "resume it, or mark it FINISHED in MLflow if its last logged loss is final",
}
_DELETED = "deleted in MLflow: restore it there to import it again"


class TrackerProblem(FileProblem):
    """The tracker or the experiment cannot be read as a whole (unreachable, no such experiment)."""


@dataclass(frozen=True)
class TrackerRun:
    """One run as the tracker holds it: what an import reads, and what its snapshot keeps."""

    run_id: str
    name: str | None
    status: str
    deleted: bool
    started_at: int | None  # milliseconds since the epoch, as MLflow gives them
    ended_at: int | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    history: tuple[tuple[int, float, int], ...] = ()  # (step, value, timestamp) of the loss metric

    @property
    def skipped_reason(self) -> str | None:
        if self.deleted:
            return _DELETED
        if self.status == "FINISHED":
            return None
        return _SKIP_REASONS.get(self.status, f"not finished (status {self.status})")

    def value(self, ref: FieldRef) -> str | None:
        return (self.params if ref.kind == "params" else self.tags).get(ref.name)

    def as_json(self) -> dict:
        return {
            "run_id": self.run_id, "run_name": self.name, "status": self.status, "start_time": self.started_at,
            "end_time": self.ended_at, "params": self.params, "tags": self.tags, "history": [list(p) for p in self.history],
        }


@dataclass(frozen=True)
class Experiment:
    """An experiment's runs as read at one moment: finished runs whole, the others for the report."""

    tracking_uri: str  # credentials removed
    experiment_id: str
    name: str
    loss_metric: str
    runs: tuple[TrackerRun, ...]

    @property
    def finished(self) -> tuple[TrackerRun, ...]:
        return tuple(run for run in self.runs if run.skipped_reason is None)

    @property
    def skipped(self) -> tuple[TrackerRun, ...]:
        return tuple(run for run in self.runs if run.skipped_reason is not None)

    def snapshot(self) -> bytes:
        """The import's content: the finished runs as read, in a stable order (runs still changing stay out)."""
        content = {
            "tracker": TRACKER, "tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id,
            "experiment": self.name, "loss_metric": self.loss_metric,
            "runs": [run.as_json() for run in self.finished],
        }
        return json.dumps(content, sort_keys=True, indent=1).encode()

    @property
    def location(self) -> str:
        """Where the experiment is, as a link its tracking server's UI opens."""
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}"


@dataclass(frozen=True)
class SkippedRun:
    run_id: str
    name: str | None
    status: str
    reason: str


@dataclass(frozen=True)
class ImportReport:
    """What one import did: the ingest's own report of the finished runs, and the runs it skipped.

    Rows are runs: every run seen is accepted, rejected (kept in ``rejects`` with its reasons) or skipped.
    """

    tracking_uri: str
    experiment: str
    ingest: IngestReport
    skipped: tuple[SkippedRun, ...] = ()
    points_left_out: int = 0  # values logged at step 0 of a curve: no token trained yet, so no point of it

    @property
    def runs_seen(self) -> int:
        return self.ingest.rows_read + len(self.skipped)

    @property
    def conserved(self) -> bool:
        return self.runs_seen == self.ingest.rows_accepted + self.ingest.rows_rejected + len(self.skipped)

    def as_dict(self) -> dict:
        return {
            "tracker": TRACKER, "tracking_uri": self.tracking_uri, "experiment": self.experiment,
            "runs_seen": self.runs_seen, "runs_skipped": len(self.skipped), "points_left_out": self.points_left_out,
            "skipped": [vars(s) for s in self.skipped], **self.ingest.as_dict(),
        }


def public_uri(uri: str) -> str:
    """The tracking URI without a user name or password: it is stored and shown, credentials never are."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _client(uri: str):  # noqa: ANN202 - mlflow's type, imported lazily
    for name, value in CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, uri: str, name: str) -> str:  # noqa: ANN001
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_experiment_by_name(name)
    except MlflowException as error:
        raise TrackerProblem(f"MLflow at {public_uri(uri)}: cannot be read ({str(error).splitlines()[0][:200]})") from None
    except OSError as error:
        raise TrackerProblem(f"MLflow at {public_uri(uri)}: cannot be reached ({error}); is the server running?") from None
    if found is None:
        raise TrackerProblem(f"MLflow at {public_uri(uri)}: no experiment named {name!r}; check the name in the MLflow UI")
    return found.experiment_id


def _all_runs(client, experiment_id: str) -> Iterator:  # noqa: ANN001
    from mlflow.entities import ViewType

    token = None
    while True:
        page = client.search_runs(
            [experiment_id], run_view_type=ViewType.ALL, max_results=PAGE_SIZE, page_token=token, order_by=["attributes.start_time ASC"]
        )
        yield from page
        token = page.token
        if not token:
            return


def read_experiment(uri: str, experiment: str, mapping: TrackerMapping) -> Experiment:
    """Every run of the experiment; the loss metric's history of each finished one."""
    client = _client(uri)
    experiment_id = _experiment_id(client, uri, experiment)
    runs = []
    try:
        for found in _all_runs(client, experiment_id):
            info = found.info
            run = TrackerRun(
                run_id=info.run_id, name=info.run_name, status=info.status, deleted=info.lifecycle_stage == "deleted",
                started_at=info.start_time, ended_at=info.end_time,
                params=dict(found.data.params), tags=dict(found.data.tags),
            )
            if run.skipped_reason is None:
                history = client.get_metric_history(run.run_id, mapping.loss_metric)
                points = sorted((int(m.step), float(m.value), int(m.timestamp)) for m in history)
                run = replace(run, history=tuple(points))
            runs.append(run)
    except OSError as error:
        raise TrackerProblem(f"MLflow at {public_uri(uri)}: the connection failed while reading runs ({error})") from None
    runs.sort(key=lambda r: (r.started_at or 0, r.run_id))
    return Experiment(public_uri(uri), experiment_id, experiment, mapping.loss_metric, tuple(runs))


def fingerprint(uri: str, experiment: str) -> str:
    """A cheap sign that an experiment's finished runs changed (one search, no histories), for a sensor."""
    client = _client(uri)
    digest = hashlib.sha256()
    for found in _all_runs(client, _experiment_id(client, uri, experiment)):
        info = found.info
        if info.status == "FINISHED" and info.lifecycle_stage != "deleted":
            state = [info.run_id, info.end_time, sorted(found.data.params.items()), sorted(found.data.tags.items()),
                     sorted(found.data.metrics.items())]
            digest.update(json.dumps(state, default=str).encode())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ runs to a batch


def _source_text(mapping: TrackerMapping, key: str) -> str:
    return f"{key} ({getattr(mapping, key)})"


def _run_name(run: TrackerRun, mapping: TrackerMapping) -> str | None:
    if mapping.run_name == "name":
        return run.name or run.run_id
    if mapping.run_name == "id":
        return run.run_id
    return run.value(parse_ref(mapping.run_name))


def _curve(run: TrackerRun) -> tuple[list[tuple[int | None, float, int]], int]:
    """The run's points as (step, loss, step used for tokens) and how many were left out.

    Several values logged at one step: the latest counts (as a re-evaluation would). A run whose values
    are all at step 0 logged a final value, not a curve: its latest value is one point without a step.
    A step-0 value of a curve was logged before any token was trained: it is no point of the curve.
    """
    latest: dict[int, tuple[int, float]] = {}
    for step, value, timestamp in run.history:
        if step not in latest or timestamp >= latest[step][0]:
            latest[step] = (timestamp, value)
    if not latest:
        return [], 0
    if max(latest) <= 0:
        return [(None, latest[max(latest)][1], 0)], len(latest) - 1
    kept = [(step, value, step) for step, (_, value) in sorted(latest.items()) if step > 0]
    return kept, len(latest) - len(kept)


def _raw_counts(run: TrackerRun, mapping: TrackerMapping) -> dict[str, str | None]:
    """Each count the mapping names, as the run gives it (text): a param or tag, or the mapping's number."""
    values = {}
    for key in ("params", "tokens", "tokens_per_step", "unique_tokens"):
        given = getattr(mapping, key)
        ref = parse_ref(given) if isinstance(given, str) else None
        values[key] = run.value(ref) if ref else (None if given is None else repr(float(given)))
    return values


def _count_problems(frame: pl.DataFrame, mapping: TrackerMapping) -> pl.DataFrame:
    """Reasons for counts a run does not give, or gives in a form no unit rule reads."""
    problems = []
    for key in ("params", "tokens", "tokens_per_step", "unique_tokens"):
        given = getattr(mapping, key)
        if given is None:
            continue
        column = "tokens" if key == "tokens_per_step" else key
        raw, parsed = pl.col(f"{key}_raw"), pl.col(f"{key}_value")
        where = _source_text(mapping, key)
        required = key != "unique_tokens"
        missing = raw.is_null() if required else pl.lit(False)
        problems.append(
            frame.filter(missing | (raw.is_not_null() & parsed.is_null())).select(
                "row_number",
                pl.when(raw.is_null())
                .then(pl.lit(f"{column}: {where} is not set on this run; log it, or fix the mapping's {key} line"))
                .otherwise(
                    pl.lit(f"{column}: {where} = ") + raw.str.slice(0, 40)
                    + pl.lit(" cannot be read as a number; write a plain number such as 2.8e9, or with a K, M, B or T suffix")
                )
                .alias("reason"),
            )
        )
    return pl.concat(problems) if problems else pl.DataFrame(schema=PARSE_ERROR_SCHEMA)


def to_batch(experiment: Experiment, mapping: TrackerMapping) -> tuple[Batch, int]:
    """One input row per finished run, one point per step of its loss curve; and the points left out."""
    family_ref = parse_ref(mapping.family_from) if mapping.family_from else None
    rows, points, problems, left_out = [], [], [], 0
    for row_number, run in enumerate(experiment.finished, start=1):
        family = mapping.family or (slugify(value) if (value := run.value(family_ref)) is not None else None)
        if family is None:
            problems.append((row_number, f"family: {family_ref} is not set on this run; set it, or fix the mapping's family_from line"))
        name = _run_name(run, mapping)
        if name is None:
            problems.append((row_number, f"run_name: {mapping.run_name} is not set on this run; set it, or fix the mapping's run_name line"))
        curve, dropped = _curve(run)
        left_out += dropped
        if not curve:
            problems.append((row_number, f"loss: metric {mapping.loss_metric!r} was never logged in this run"))
            curve = [(None, None, 0)]
        last_step = max(step for _, _, step in curve)
        rows.append({"row_number": row_number, "family": family, "run_name": name, "last_step": last_step,
                     **{f"{k}_raw": v for k, v in _raw_counts(run, mapping).items()},
                     "raw": json.dumps(run.as_json() | {"history": f"{len(run.history)} values of {mapping.loss_metric}"})})
        points += [{"row_number": row_number, "step": step, "loss": loss, "token_step": token_step}
                   for step, loss, token_step in curve]
    frame = pl.DataFrame(rows, schema_overrides={f"{k}_raw": pl.String for k in ("params", "tokens", "tokens_per_step", "unique_tokens")})
    frame = frame.with_columns(
        apply_transform(pl.col(f"{k}_raw"), pl.String, "suffix").alias(f"{k}_value")
        for k in ("params", "tokens", "tokens_per_step", "unique_tokens")
    )
    parse_errors = pl.concat([
        pl.DataFrame(problems, schema=PARSE_ERROR_SCHEMA, orient="row"), _count_problems(frame, mapping),
    ])
    # D at a point: the run's D in proportion to its steps (the last step trained all of D), or steps x tokens per step
    tokens = (
        pl.col("token_step") * pl.col("tokens_per_step_value") if mapping.tokens_per_step is not None
        else pl.when(pl.col("last_step") > 0).then(pl.col("tokens_value") * pl.col("token_step") / pl.col("last_step"))
        .otherwise(pl.col("tokens_value"))
    )
    mapped = pl.DataFrame(points, schema={"row_number": pl.Int64, "step": pl.Int64, "loss": pl.Float64, "token_step": pl.Int64}).join(
        frame, on="row_number", how="left"
    ).with_columns(
        tokens.alias("tokens"),
        pl.col("params_value").alias("params"),
        pl.col("unique_tokens_value").alias("unique_tokens"),
        pl.lit(mapping.loss_name or mapping.loss_metric).alias("loss_name"),
        pl.struct(pl.lit(TRACKER).alias("tracker"), pl.col("raw").str.json_path_match("$.run_id").alias("tracker_run_id"))
        .struct.json_encode().alias("tags"),
    )
    batch = Batch(
        points=canonical(mapped), raw=frame.select("row_number", "raw"), rows_read=frame.height, parse_errors=parse_errors
    )
    return batch, left_out


# ------------------------------------------------------------------------------------------ the import


def _earlier(con: duckdb.DuckDBPyConnection, location: str) -> list[tuple]:
    return con.execute(
        "SELECT source_id, name, sha256, reading_sha256, rows_read, rows_accepted, rows_rejected FROM sources "
        "WHERE adapter = ? AND original_path = ? AND status = 'ingested' AND superseded_by IS NULL ORDER BY source_id",
        [TRACKER, location],
    ).fetchall()


def _when(milliseconds: int | None) -> datetime | None:
    return None if milliseconds is None else datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc)


def _provenance(experiment: Experiment, batch: Batch):  # noqa: ANN202 - a hook for IncomingSource.written_with
    """The import's tracker columns in ``sources`` and one ``tracker_runs`` row per run seen."""
    finished = experiment.finished
    rows_of = {run.run_id: number for number, run in enumerate(finished, start=1)}
    counted = batch.points.group_by("row_number").agg(pl.len().alias("points"), pl.col("step").max().alias("last_step"))
    per_row = {r["row_number"]: r for r in counted.iter_rows(named=True)}
    frame = pl.DataFrame(
        [
            {
                "tracker_run_id": run.run_id, "tracker_run_name": run.name, "status": run.status, "deleted": run.deleted,
                "started_at": _when(run.started_at), "ended_at": _when(run.ended_at), "row_number": rows_of.get(run.run_id),
                "points": per_row.get(rows_of.get(run.run_id), {}).get("points"),
                "last_step": per_row.get(rows_of.get(run.run_id), {}).get("last_step"),
                "skipped_reason": run.skipped_reason,
            }
            for run in experiment.runs
        ],
        schema={"tracker_run_id": pl.String, "tracker_run_name": pl.String, "status": pl.String, "deleted": pl.Boolean,
                "started_at": pl.Datetime("us", "UTC"), "ended_at": pl.Datetime("us", "UTC"), "row_number": pl.Int64,
                "points": pl.Int64, "last_step": pl.Int64, "skipped_reason": pl.String},
    )
    started = [run.started_at for run in finished if run.started_at is not None]
    ended = [run.ended_at for run in finished if run.ended_at is not None]

    def write(con: duckdb.DuckDBPyConnection, source_id: int) -> None:
        con.execute(
            "UPDATE sources SET tracker = ?, tracking_uri = ?, experiment = ?, experiment_id = ?, runs_started_from = ?, "
            "runs_ended_to = ? WHERE source_id = ?",
            [TRACKER, experiment.tracking_uri, experiment.name, experiment.experiment_id,
             _when(min(started)) if started else None, _when(max(ended)) if ended else None, source_id],
        )
        with registered(con, incoming_tracker_runs=frame):
            con.execute(
                "INSERT INTO tracker_runs SELECT ?, ?, ?, ?, tracker_run_id, tracker_run_name, status, deleted, started_at, "
                "ended_at, row_number, points, last_step, skipped_reason FROM incoming_tracker_runs",
                [source_id, TRACKER, experiment.tracking_uri, experiment.experiment_id],
            )

    return write


def _families(batch: Batch) -> list[str]:
    return batch.points.get_column("family").unique().drop_nulls().to_list()


def import_experiment(con: duckdb.DuckDBPyConnection, home: Home, experiment: Experiment, mapping: TrackerMapping) -> ImportReport:
    """Store an experiment's finished runs as a new version of its import, unless nothing changed.

    With other writers at work (DuckLake), the experiment and its families are claimed first, so that the
    decision (unchanged, or which version it supersedes) and the write see every earlier import's commit.
    """
    batch, left_out = to_batch(experiment, mapping)
    with claimed(con, f"tracker:{experiment.location}", *(f"family:{f}" for f in _families(batch))):
        return retrying(
            lambda: _import_once(con, home, experiment, mapping, batch, left_out), f"import of {experiment.location}"
        )


def _import_once(
    con: duckdb.DuckDBPyConnection, home: Home, experiment: Experiment, mapping: TrackerMapping, batch: Batch, left_out: int
) -> ImportReport:
    skipped = tuple(SkippedRun(r.run_id, r.name, r.status, r.skipped_reason) for r in experiment.skipped)
    content = experiment.snapshot()
    sha256 = hashlib.sha256(content).hexdigest()
    reading = mapping.reading()
    name = mapping.name or f"mlflow:{experiment.name}"
    earlier = _earlier(con, experiment.location)
    for source_id, earlier_name, earlier_sha, earlier_reading, read, accepted, rejected in earlier:
        if (earlier_sha, earlier_reading) == (sha256, reading):
            report = IngestReport(
                name=earlier_name, path=experiment.location, sha256=sha256, status="unchanged", source_id=source_id,
                rows_read=read, rows_accepted=accepted, rows_rejected=rejected,
            )
            return ImportReport(experiment.tracking_uri, experiment.name, report, skipped, left_out)
    with tempfile.TemporaryDirectory(prefix="scalereg-mlflow-") as folder:
        path = Path(folder) / f"mlflow-experiment-{experiment.experiment_id}.json"
        path.write_bytes(content)
        source = IncomingSource(
            path=path, name=name, kind="internal", adapter=TRACKER, citation=mapping.citation,
            original_path=experiment.location, sha256=sha256, reading_sha256=reading,
            supersedes=tuple(row[0] for row in earlier), written_with=_provenance(experiment, batch),
        )
        report = store_batch(con, home, source, batch, declared=declared_losses(home, _families(batch), path.name))
    return ImportReport(experiment.tracking_uri, experiment.name, report, skipped, left_out)


def import_mlflow(home: Home, uri: str, experiment: str, mapping: TrackerMapping) -> ImportReport:
    """Read the experiment from the server first, then take the registry's writer only to store it."""
    read = read_experiment(uri, experiment, mapping)
    with writer(home.registry) as con:
        return import_experiment(con, home, read, mapping)
