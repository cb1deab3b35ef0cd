"""What every adapter returns, and the one error a whole file fails with."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from schemas.runs import INCOMING_COLUMNS


class FileProblem(ValueError):
    """The file as a whole cannot be ingested; the message names the file and the fix."""


PARSE_ERROR_SCHEMA = {"row_number": pl.Int64, "reason": pl.String}


@dataclass
class Batch:
    """One source's rows in canonical form.

    ``points`` holds one row per input row and loss (a run with eleven evaluation losses gives
    eleven); ``raw`` keeps the input rows as read, so a rejected row can be stored verbatim;
    ``parse_errors`` holds values an adapter could not read, as row-level reasons.
    """

    points: pl.DataFrame
    raw: pl.DataFrame
    rows_read: int
    parse_errors: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PARSE_ERROR_SCHEMA))
    #: The file's columns that name a run (run_name, or the columns of N, and D for final values) and those
    #: read as its loss: when two runs collide, the message proposes an identity from the other columns.
    identity_columns: tuple[str, ...] = ()
    loss_columns: tuple[str, ...] = ()


def canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Add missing canonical columns as nulls and cast, in the canonical order."""
    columns = []
    for name, dtype in INCOMING_COLUMNS.items():
        if name in frame.columns:
            columns.append(pl.col(name).cast(dtype, strict=False))
        elif name in ("fit_loss",):
            columns.append(pl.lit(True, dtype=dtype).alias(name))
        elif name == "tokens_derived":
            columns.append(pl.lit(False, dtype=dtype).alias(name))
        else:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(columns)


def _count_text(value: pl.Expr) -> pl.Expr:
    """A count as a whole number ("125000000"); counts beyond a 64-bit integer in float notation, never null."""
    whole = value.round(0).cast(pl.Int64, strict=False).cast(pl.String)
    return pl.when(value.abs() < 9e18).then(whole).otherwise(value.cast(pl.String))


def synthesized_run_names(frame: pl.DataFrame) -> pl.Expr:
    """A run name for rows that carry none: the model size (curves) or size and tokens (final values).

    Names are derived from the values so that the same run ingested twice gets the same run id.
    """
    size = pl.lit("N=") + _count_text(pl.col("params"))
    tokens = pl.lit(",D=") + _count_text(pl.col("tokens"))
    return (
        pl.when(pl.col("run_name").is_not_null())
        .then(pl.col("run_name"))
        .when(pl.col("step").is_not_null())
        .then(size)
        .otherwise(size + tokens)
    )
