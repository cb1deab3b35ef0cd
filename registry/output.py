"""What commands print and how they end: frames for people (tables) and programs (CSV, JSON),
and failures as one line on stderr with an exit code, never a traceback."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:  # polars is imported where a frame is rendered: reads that print JSON never load it
    import polars as pl

FORMATS = ("table", "csv", "json")
#: Rows a table shows (the command says how many more there were).
TABLE_ROWS = 200
EXIT_BAD_INPUT = 1
EXIT_BUSY = 3

FormatOption = Annotated[str, typer.Option("--format", "-f", help="table, csv or json")]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """End the command with one line naming the problem and its fix."""
    typer.echo(f"scalereg: {message}", err=True)
    raise typer.Exit(code)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        fail(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(value: Any) -> str:
    """Strict JSON (NaN and infinity become null) so any planning tool can parse it."""
    return json.dumps(_clean(value), indent=2, default=str, allow_nan=False)


def render(frame: pl.DataFrame, fmt: str, json_columns: Sequence[str] = ()) -> str:
    """The frame as a table (at most :data:`TABLE_ROWS` rows), CSV or JSON; ``json_columns`` hold JSON text
    (DuckDB's JSON type), nested as values in JSON output rather than quoted as strings."""
    import polars as pl

    if fmt == "json":
        rows = frame.to_dicts()
        for row in rows:
            for name in json_columns:
                if isinstance(row.get(name), str):
                    row[name] = json.loads(row[name])
        return to_json(rows)
    if fmt == "csv":
        flat = frame.with_columns(
            [pl.col(c).cast(pl.List(pl.String)).list.join(";") for c, t in frame.schema.items() if isinstance(t, pl.List)]
        )
        return flat.write_csv().rstrip("\n")
    with pl.Config(tbl_rows=TABLE_ROWS, tbl_cols=30, fmt_str_lengths=60, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
        return str(frame)
