"""Properties of ingest over random tables: never a crash, never a lost or half-written row.

Hypothesis runs each property on a fixed budget of examples so ``make test`` stays fast. Function
fixtures do not reset between hypothesis examples, so every example makes its own home folder.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from registry import read
from registry.adapters.tables import NULL_VALUES
from registry.db import writer
from registry.home import Home
from registry.ingest import ingest_path
from schemas.families import FAMILY_PATTERN, is_family_key

#: 40 examples per property in ``make test``; SCALEREG_PROPERTY_EXAMPLES=2000 for a longer hunt.
BUDGET = settings(max_examples=int(os.environ.get("SCALEREG_PROPERTY_EXAMPLES", "40")), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
SLUGS = st.from_regex(FAMILY_PATTERN, fullmatch=True)
BAD_FAMILIES = st.sampled_from(
    ["Bad Family", "fam'x", 'fam"y', "x'); DROP TABLE runs; --", "a/b", "../up", "模型", "a" * 300, "-lead", "trail-", "fam\n", "FAM"]
)
FAMILY = st.one_of(st.sampled_from(["fam-a", "fam-b"]), SLUGS, BAD_FAMILIES, TEXT, st.just(""))
CORRUPT_NUMBERS = st.sampled_from(
    ["NaN", "nan", "inf", "-inf", "", "0", "-1e8", "lots", "2.8B", "70M", "32.0K", "11%", "11.3", "1e400", "2.8 billion", "true", "NA"]
)
COUNT = st.one_of(
    st.floats(min_value=1e3, max_value=1e13).map(repr),
    CORRUPT_NUMBERS,
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    TEXT,
)
LOSS = st.one_of(st.floats(min_value=0.5, max_value=12).map(repr), CORRUPT_NUMBERS, st.sampled_from(["99", "3.1K"]), TEXT)
RUN_NAME = st.one_of(st.sampled_from(["a", "b", "c"]), TEXT)
STEP = st.one_of(st.integers(0, 10**6).map(str), st.sampled_from(["", "1.5", "-1", "1e30", "x", "2000.0"]))
FILE_NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=30
)
EXTRA = st.one_of(st.floats(allow_nan=True).map(repr), TEXT, st.integers().map(str))


@st.composite
def corrupted_tables(draw) -> tuple[list[str], list[list[str]]]:
    """A generic-format table as text cells, with random corruptions, missing cells and repeated rows."""
    columns = ["family", "params", "tokens", "loss"]
    if draw(st.booleans()):
        columns.insert(1, "run_name")
    if draw(st.booleans()):
        columns.append("step")
    columns += draw(st.lists(st.sampled_from(["lr", "notes", "seed", "tags"]), max_size=2, unique=True))
    if draw(st.integers(0, 19)) == 0:  # now and then a required column is missing: the file fails
        columns.remove(draw(st.sampled_from(["params", "tokens", "loss"])))
    cell = {"family": FAMILY, "run_name": RUN_NAME, "params": COUNT, "tokens": COUNT, "loss": LOSS, "step": STEP}
    row = st.tuples(*[cell.get(c, EXTRA) for c in columns]).map(list)
    table = draw(st.lists(row, min_size=1, max_size=12))
    repeats = draw(st.lists(st.integers(0, len(table) - 1), max_size=3))
    table += [list(table[i]) for i in repeats]
    return columns, table


def write_table(
    folder: Path, fmt: str, columns: list[str], table: list[list[str]], name: str = "runs", typed: bool = False
) -> tuple[Path, int]:
    """Write the table; returns the file and how many of its rows are not blank (rows to account for)."""
    if fmt == "csv":
        path = folder / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer_ = csv.writer(handle)
            writer_.writerow(columns)
            writer_.writerows(table)
        return path, sum(any(v not in NULL_VALUES for v in r) for r in table)
    values = [[None if v == "" else v for v in r] for r in table]
    if typed:  # numbers as numbers where they read as one (JSON may then hold NaN, which is not JSON)
        values = [[_number(v) for v in r] for r in values]
    if fmt == "jsonl":
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(dict(zip(columns, r))) + "\n" for r in values), encoding="utf-8")
    else:
        path = folder / f"{name}.parquet"
        series = []
        for i, column in enumerate(columns):
            cells = [r[i] for r in values]
            numeric = typed and all(v is None or isinstance(v, float) for v in cells)
            series.append(pl.Series(column, cells, dtype=pl.Float64 if numeric else pl.String, strict=False))
        pl.DataFrame(series).write_parquet(path)
    return path, sum(any(v is not None for v in r) for r in values)


def _number(value: str | None) -> str | float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return value


@contextmanager
def fresh_registry():
    with tempfile.TemporaryDirectory() as folder:
        home = Home.from_env(Path(folder) / "home").ensure()
        with writer(home.registry) as con:
            yield Path(folder), home, con


def count(con, query: str, params: list) -> int:
    return con.execute(query, params).fetchall()[0][0]


@BUDGET
@given(corrupted_tables(), st.sampled_from(["csv", "jsonl", "parquet"]), FILE_NAMES, st.booleans())
def test_any_corrupted_table_is_ingested_without_a_crash_and_without_losing_a_row(table, fmt, name, typed):
    columns, cells = table
    with fresh_registry() as (folder, home, con):
        path, written = write_table(folder, fmt, columns, cells, name, typed)
        report = ingest_path(con, home, path)

        status, error, read_, accepted, rejected = con.execute(
            "SELECT status, error, rows_read, rows_accepted, rows_rejected FROM sources WHERE source_id = ?",
            [report.source_id],
        ).fetchall()[0]
        assert read_ == accepted + rejected
        assert count(con, "SELECT count(*) FROM rejects WHERE source_id = ?", [report.source_id]) == rejected
        if status == "failed":
            assert error and path.name in error and "bug in scalereg" not in error, error
            assert read_ == 0 and count(con, "SELECT count(*) FROM runs", []) == 0
            return
        # every non-blank row written is accounted for: nothing lost, nothing invented
        assert read_ == written
        (archived,) = con.execute("SELECT archive_path FROM sources WHERE source_id = ?", [report.source_id]).fetchall()[0]
        assert Path(archived).resolve().parent.parent.parent == home.archive.resolve()
        runs = count(con, "SELECT count(*) FROM runs WHERE source_id = ?", [report.source_id])
        points = count(con, "SELECT count(*) FROM run_points", [])
        curves = count(con, "SELECT count(*) FROM runs WHERE final_step IS NOT NULL", [])
        if curves:  # a file with steps keeps every accepted row as a point of its run's curve
            assert points == accepted and runs <= accepted
        else:  # a table of final values: one run per accepted row
            assert points == 0 and runs == accepted
        assert runs == report.runs_added
        assert all(is_family_key(f) for (f,) in con.execute("SELECT DISTINCT family FROM runs").fetchall())
        assert con.execute("SELECT count(*) FROM rejects WHERE len(reasons) = 0").fetchall() == [(0,)]

        again = ingest_path(con, home, path)  # the same content again changes nothing
        assert again.status == "unchanged" and again.source_id == report.source_id
        assert count(con, "SELECT count(*) FROM runs", []) == runs


@BUDGET
@given(st.lists(SLUGS, min_size=1, max_size=6, unique=True), st.sampled_from(["csv", "jsonl", "parquet"]))
def test_valid_family_keys_round_trip_unchanged(families, fmt):
    cells = [[family, f"run-{i}", repr(1e8 * (i + 1)), repr(2e9 * (i + 1)), "3.1"] for i, family in enumerate(families)]
    with fresh_registry() as (folder, home, con):
        path, _ = write_table(folder, fmt, ["family", "run_name", "params", "tokens", "loss"], cells)
        report = ingest_path(con, home, path)
        assert (report.status, report.rows_accepted) == ("ingested", len(families)), report.error
        assert sorted(f for (f,) in con.execute("SELECT family FROM runs").fetchall()) == sorted(families)
        assert sorted(report.families) == sorted(families)
        for family in families:
            assert read.runs(con, family).get_column("family").to_list() == [family]


@BUDGET
@given(st.one_of(BAD_FAMILIES, TEXT.filter(lambda t: not is_family_key(t))))
def test_a_value_that_is_not_a_key_is_rejected_with_a_reason_never_stored(name):
    with fresh_registry() as (folder, home, con):
        path, _ = write_table(folder, "csv", ["family", "params", "tokens", "loss"], [[name, "1e8", "2e9", "3.1"]])
        report = ingest_path(con, home, path)
        if report.status == "failed":  # a blank row: nothing to keep
            assert name in NULL_VALUES or name.strip() == "" and "no data rows" in report.error
            return
        assert (report.rows_accepted, report.rows_rejected) == (0, 1)
        (reasons,) = con.execute("SELECT reasons FROM rejects").fetchall()[0]
        assert any(r.startswith("family") and ("is not a key" in r or "is missing" in r) for r in reasons), reasons
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(0,)]


COLUMN_KINDS = {
    "float": (st.floats(allow_nan=True, allow_infinity=True), pl.Float64),
    "int": (st.integers(-(2**63), 2**63 - 1), pl.Int64),
    "bool": (st.booleans(), pl.Boolean),
    "text": (TEXT, pl.String),
    "date": (st.dates(), pl.Date),
    "datetime": (st.datetimes(), pl.Datetime),
    "list": (st.lists(st.floats(allow_nan=False), max_size=3), pl.List(pl.Float64)),
    "struct": (st.fixed_dictionaries({"a": st.floats(allow_nan=False), "b": TEXT}), pl.Struct({"a": pl.Float64, "b": pl.String})),
    "binary": (st.binary(max_size=8), pl.Binary),
    "list-of-binary": (st.lists(st.binary(max_size=4), max_size=2), pl.List(pl.Binary)),
    "categorical": (st.sampled_from(["fam-a", "x", "1e8"]), pl.Categorical),
    "null": (st.none(), pl.Null),
}


@st.composite
def typed_frames(draw) -> pl.DataFrame:
    """A Parquet-able frame whose canonical and extra columns have any type at all."""
    height = draw(st.integers(1, 6))
    names = ["family", "params", "tokens", "loss"] + draw(st.lists(st.sampled_from(["run_name", "step", "tags", "extra"]), unique=True, max_size=3))
    series = []
    for name in names:
        kind = draw(st.sampled_from(sorted(COLUMN_KINDS)))
        values, dtype = COLUMN_KINDS[kind]
        cells = draw(st.lists(st.one_of(st.none(), values), min_size=height, max_size=height))
        series.append(pl.Series(name, cells, dtype=dtype))
    return pl.DataFrame(series)


@BUDGET
@given(typed_frames(), st.sampled_from(["parquet", "jsonl"]))
def test_a_file_with_columns_of_any_type_never_crashes_and_conserves_rows(frame, fmt):
    with fresh_registry() as (folder, home, con):
        path = folder / f"typed.{fmt}"
        if fmt == "parquet":
            frame.write_parquet(path)
        else:
            assume("Binary" not in str(frame.schema))  # polars cannot write bytes as JSON
            frame.write_ndjson(path)
        report = ingest_path(con, home, path)
        assert report.error is None or ("bug in scalereg" not in report.error and path.name in report.error), report.error
        read_, accepted, rejected = con.execute(
            "SELECT rows_read, rows_accepted, rows_rejected FROM sources WHERE source_id = ?", [report.source_id]
        ).fetchall()[0]
        assert read_ == accepted + rejected
        assert con.execute("SELECT count(*) FROM rejects").fetchall() == [(rejected,)]
        assert all(is_family_key(f) for (f,) in con.execute("SELECT family FROM runs").fetchall())
