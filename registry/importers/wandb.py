"""Weights & Biases exports as they come out of W&B: presets that reshape them for a mapping.

Two exports are what W&B users have:

- the **runs table** exported from the project page (``Name``, ``State``, ``Notes``, ``User``, ``Tags``,
  ``Created``, ``Runtime``, ``Sweep``, then one column per config key and summary metric, with names such as
  ``model.n_params`` or ``eval/loss``): one row per run. The mapping names the config and summary columns
  that hold N, D and the loss; the preset takes the run's name from ``Name`` and rejects every run whose
  ``State`` is not ``finished``, naming its state.
- **run histories** (per-step metrics): ``run.history()`` / ``scan_history()`` written out (``_step``,
  ``_runtime``, ``_timestamp`` and the metrics), one file per run or one long file with a run column.
  ``_step`` is the step unless the mapping maps another column; a file with no run column is one run,
  named after the file.
- **offline runs** (``WANDB_MODE=offline``): the run folder itself, read without a network
  (registry/importers/wandb_offline.py).

A preset reshapes, then the file's mapping reads the result like any file (see registry/adapters/mapping.py).
The reshaped table keeps the input's rows in order, so row numbers and rejected rows are the input's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl

from registry.adapters.base import Batch, FileProblem
from registry.adapters.mapping import ColumnMapping, read_with_mapping
from registry.adapters.tables import read_table

RUNS_TABLE_COLUMNS = ("Name", "State")
FINISHED = "finished"
#: The column W&B writes the step in (the API's history; a UI chart export says Step).
STEP_COLUMNS = ("_step", "Step")
RUN_COLUMN = "run"


def _with_defaults(mapping: ColumnMapping, **defaults: str) -> ColumnMapping:
    """The mapping with the preset's columns for what it leaves unmapped (its own keys always win)."""
    added = {name: column for name, column in defaults.items() if name not in mapping.columns}
    if "run_name" in added and mapping.run_name is not None:
        del added["run_name"]
    return mapping.model_copy(update={"columns": {**mapping.columns, **added}}) if added else mapping


def _read_reshaped(path: Path, frame: pl.DataFrame, mapping: ColumnMapping, family: str | None) -> Batch:
    """Read a reshaped table through the mapping, under the input's own name (messages name the user's file)."""
    with tempfile.TemporaryDirectory(prefix="scalereg-preset-") as folder:
        reshaped = Path(folder) / f"{path.stem}.parquet"
        frame.write_parquet(reshaped)
        try:
            return read_with_mapping(reshaped, mapping, family=family)
        except FileProblem as problem:
            raise type(problem)(str(problem).replace(reshaped.name, path.name)) from None


def read_runs_table(path: Path, mapping: ColumnMapping, family: str | None = None) -> Batch:
    """A W&B runs table: one row per run; runs not ``finished`` are rejected naming their state."""
    frame = read_table(path, header=True, delimiter=mapping.delimiter, text_columns=RUNS_TABLE_COLUMNS).frame
    missing = [c for c in RUNS_TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise FileProblem(
            f"{path.name}: not a W&B runs table (no {', '.join(repr(c) for c in missing)} column); export it from the "
            "project's Runs tab (Export as CSV), or ingest it without --preset"
        )
    batch = _read_reshaped(path, frame, _with_defaults(mapping, run_name="Name"), family)
    state = frame.with_row_index("row_number", offset=1).select("row_number", "State")
    return reject_rows(
        batch,
        state.filter(pl.col("State").is_null() | (pl.col("State") != FINISHED)),
        pl.lit("W&B State is ") + pl.col("State").fill_null("missing")
        + pl.lit(f": only {FINISHED} runs are ingested (a crashed, failed, killed or running run is not a trained model)"),
    )


def read_history(path: Path, mapping: ColumnMapping, family: str | None = None) -> Batch:
    """W&B run histories as the API gives them: one file per run, or one long file with a run column."""
    frame = read_table(path, header=True, delimiter=mapping.delimiter).frame
    step = mapping.columns.get("step") or next((c for c in STEP_COLUMNS if c in frame.columns), None)
    if step is None:
        raise FileProblem(
            f"{path.name}: not a W&B history (no {' or '.join(repr(c) for c in STEP_COLUMNS)} column, and the mapping maps "
            "no step); write run.history() or scan_history() out with its _step column"
        )
    return history_batch(path, frame, mapping, family, step)


def history_batch(
    path: Path, frame: pl.DataFrame, mapping: ColumnMapping, family: str | None, step: str, run: str | None = None
) -> Batch:
    """A history's rows through the mapping; unless the mapping names the run, the history is one run: ``run``,
    or named after its file."""
    defaults = {"step": step}
    if mapping.run_name is None and "run_name" not in mapping.columns:
        frame, defaults["run_name"] = frame.with_columns(pl.lit(run or path.stem).alias(RUN_COLUMN)), RUN_COLUMN
    return _read_reshaped(path, frame, _with_defaults(mapping, **defaults), family)


def reject_rows(batch: Batch, rows: pl.DataFrame, reason: str | pl.Expr) -> Batch:
    """The batch with these rows (a ``row_number`` column) rejected for a reason the preset knows."""
    text = pl.lit(reason) if isinstance(reason, str) else reason
    batch.parse_errors = pl.concat([batch.parse_errors, rows.select(pl.col("row_number").cast(pl.Int64), text.alias("reason"))])
    return batch


def read_offline(path: Path, mapping: ColumnMapping, family: str | None = None) -> Batch:
    """An offline run folder (see registry/importers/wandb_offline.py, which needs the ``wandb`` package)."""
    from registry.importers import wandb_offline

    try:
        return wandb_offline.read_offline(path, mapping, family)
    except ModuleNotFoundError as missing:
        if missing.name is None or not missing.name.startswith(("wandb", "google.protobuf")):
            raise
        raise FileProblem(
            f"{path.name}: reading an offline W&B run needs the wandb package ({missing.name} is not installed): "
            "uv sync --extra wandb"
        ) from None


#: Presets by the name ``scalereg ingest FILE --preset NAME`` takes.
PRESETS: dict[str, Callable[[Path, ColumnMapping, str | None], Batch]] = {
    "wandb-runs": read_runs_table,
    "wandb-history": read_history,
    "wandb-offline": read_offline,
}
