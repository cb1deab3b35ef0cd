"""Polars frames as Dagster table metadata: the UI renders them as tables with typed columns."""

import math

import dagster as dg
import polars as pl


def _column_type(dtype: pl.DataType) -> str:
    if dtype.is_float():
        return "float"
    if dtype.is_integer():
        return "int"
    return "bool" if dtype == pl.Boolean else "string"


def _cell(value: object) -> object:
    """Floats as text with five significant digits: the UI prints numbers in full (2464000000000), not 2.464e+12.

    NaN and infinity become empty cells.
    """
    if isinstance(value, float):
        return f"{value:.5g}" if math.isfinite(value) else None
    return value


def table(frame: pl.DataFrame) -> dg.TableMetadataValue:
    """The frame's rows under a schema of its column names and types."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, _column_type(dtype)) for name, dtype in frame.schema.items()])
    records = [dg.TableRecord({k: _cell(v) for k, v in row.items()}) for row in frame.iter_rows(named=True)]
    return dg.MetadataValue.table(records=records, schema=schema)
