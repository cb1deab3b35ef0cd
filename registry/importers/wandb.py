"""Weights & Biases exports as they come out of W&B: presets that reshape them for a mapping.

Two exports are what W&B users have:

- the **runs table** exported from the project page (``Name``, ``State``, ``Notes``, ``User``, ``Tags``,
  ``Created``, ``Runtime``, ``Sweep``, then one column per config key and summary metric, with names such as
  ``model.n_params`` or ``eval/loss``): one row per run. The mapping names the config and summary columns
  that hold N, D and the loss; the preset takes the run's name from ``Name`` and rejects every run whose
  ``State`` is not ``finished``, naming its state.
- **run histories** (per-step metrics): ``run.history()`` / ``scan_history()`` written out (``_step``,
  ``_runtime``, ``_timestamp`` and the metrics), one file per run or one long file with a run column; or a
  chart exported from the UI, which is wide (``Step``, then ``<run> - <metric>`` with ``__MIN``/``__MAX``
  companions) and is turned long (one row per run and step). ``_step``/``Step`` is the step unless the
  mapping says otherwise; a file with no run column is one run, named after the file.

A preset reshapes, then the file's mapping reads the result like any file (see registry/adapters/mapping.py).
The reshaped table keeps the input's rows in order, so row numbers and rejected rows are the input's; only a
chart export, which is wide, becomes one row per run and step.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl

from registry.adapters.base import Batch, FileProblem
from registry.adapters.mapping import ColumnMapping, read_with_mapping
from registry.adapters.tables import read_table

RUNS_TABLE_COLUMNS = ("Name", "State")
FINISHED = "finished"
#: The columns W&B writes the step in: the API's history and the UI's chart export.
STEP_COLUMNS = ("_step", "Step")
#: A chart exported from the UI: ``<run name> - <metric>``, with ``__MIN``/``__MAX`` bands when smoothed.
_CHART_COLUMN = re.compile(r"^(?P<run>.+?) - (?P<metric>.+?)(?P<band>__MIN|__MAX)?$")
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
    state = frame.with_row_index("row_number", offset=1).select(pl.col("row_number").cast(pl.Int64), "State")
    unfinished = state.filter(pl.col("State").is_null() | (pl.col("State") != FINISHED)).select(
        "row_number",
        (
            pl.lit("W&B State is ") + pl.col("State").fill_null("missing")
            + pl.lit(f": only {FINISHED} runs are ingested (a crashed, failed, killed or running run is not a trained model)")
        ).alias("reason"),
    )
    batch.parse_errors = pl.concat([batch.parse_errors, unfinished])
    return batch


def _long_chart(frame: pl.DataFrame, step: str) -> pl.DataFrame | None:
    """A UI chart export (``Step``, ``<run> - <metric>``...) as one row per run and step; None if it is not one."""
    series = {c: m for c in frame.columns if c != step and (m := _CHART_COLUMN.match(c))}
    if not series or len(series) != len(frame.columns) - 1:
        return None
    values = [c for c, m in series.items() if m["band"] is None]  # the bands are the smoothing's spread, not values
    parts = [
        frame.select(pl.lit(series[c]["run"]).alias(RUN_COLUMN), pl.col(step), pl.col(c).alias(series[c]["metric"]))
        for c in values
    ]
    long = pl.concat(parts, how="diagonal_relaxed").group_by(RUN_COLUMN, step, maintain_order=True).agg(pl.all().drop_nulls().first())
    return long.filter(~pl.all_horizontal(pl.exclude(RUN_COLUMN, step).is_null()))


def read_history(path: Path, mapping: ColumnMapping, family: str | None = None) -> Batch:
    """W&B run histories: the API's (one file per run, or long with a run column) or a UI chart export."""
    frame = read_table(path, header=True, delimiter=mapping.delimiter).frame
    step = next((c for c in STEP_COLUMNS if c in frame.columns), None)
    if step is None:
        raise FileProblem(
            f"{path.name}: not a W&B history (no {' or '.join(repr(c) for c in STEP_COLUMNS)} column); write "
            "run.history() or scan_history() out with its _step column, or export the chart's CSV from the UI"
        )
    chart = _long_chart(frame, step)
    defaults = {"step": step}
    if chart is not None:
        frame, defaults["run_name"] = chart, RUN_COLUMN
    elif mapping.run_name is None and "run_name" not in mapping.columns:
        # one file per run: the run is named after the file (runs told apart by their files' names)
        frame, defaults["run_name"] = frame.with_columns(pl.lit(path.stem).alias(RUN_COLUMN)), RUN_COLUMN
    return _read_reshaped(path, frame, _with_defaults(mapping, **defaults), family)


#: Presets by the name ``scalereg ingest FILE --preset NAME`` takes.
PRESETS: dict[str, Callable[[Path, ColumnMapping, str | None], Batch]] = {
    "wandb-runs": read_runs_table,
    "wandb-history": read_history,
}
