"""Row-level validation: every canonical point checked by the pandera model, failures turned into reasons.

An input row is accepted only if all of its points pass; otherwise the whole row is rejected with
every reason found, so a user fixes a row once rather than one error at a time.

The model (schemas/runs.py) is the schema of record and pandera reports every failure. Pandera runs
each check as a query of its own (over a hundred per frame), which costs a long file a tenth of a
second and a short one most of its ingest; so the model's own checks are first evaluated together in
one pass, and pandera then reports on the points that fail some check (every check of the model
looks at one point at a time, so a point fails on its own exactly as it does among all the others).
"""

from __future__ import annotations

import polars as pl
import pandera.backends.polars.builtin_checks  # noqa: F401 - the polars versions of the model's built-in checks
import pandera.polars as pa
from pandera.api.polars.types import PolarsData
from pandera.config import ValidationDepth, config_context

from registry.adapters.base import Batch
from schemas.families import family_problem
from schemas.runs import DIVERGED_LOSS, PHYSICAL_BOUNDS, IncomingPoint

REJECT_SCHEMA = {"row_number": pl.Int64, "reason": pl.String}

_MESSAGES = {
    "not_nullable": "is missing",
    "not_nullable(NaN)": "is missing (NaN); give a finite number",
    "greater_than(0)": "must be greater than 0",
    "finite": "must be a finite number (not NaN or infinity)",
    "greater_than_or_equal_to(1)": "must be at least 1",
    "greater_than_or_equal_to(0)": "must not be negative",
    "dtype": "has the wrong type",
}


def bound_text(value: float) -> str:
    """A bound as people write it: 1,000 and 20 in full, 1e15 and 0.001 without padding."""
    if value >= 1e6:
        return f"{value:.0e}".replace("e+", "e")
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def _out_of_range(column: str, value: str) -> str:
    """Which side of its physical range a value is on, the bound, and what the value most likely is."""
    bound = PHYSICAL_BOUNDS[column]
    if float(value) < bound.low:
        return f"{column} = {value} is below {bound_text(bound.low)}: {bound.below}"
    return f"{column} = {value} is above {bound_text(bound.high)}, {bound.above}"


def _message(column: str, check: str, value: str | None, family_messages: dict[str, str]) -> str:
    if check == "physical_range" and value is not None:
        return _out_of_range(column, value)
    if column == "family" and check.startswith("str_matches"):
        return family_messages.get(value or "", f"family {value!r} is not a key")
    if check.startswith("dtype"):
        return f"{column} has type {value}, expected a number; check the column holds plain numbers"
    if check == "not_nullable" and value == "NaN":
        check = "not_nullable(NaN)"
    text = _MESSAGES.get(check, check)
    shown = "" if value is None or check.startswith("not_nullable") else f" = {value}"
    return f"{column}{shown} {text}"


def _plain_cases(cases: pl.DataFrame, parse_errors: pl.DataFrame, row_numbers: pl.Series) -> pl.DataFrame:
    """One reason per problem: a value already reported as unreadable is not also "missing", and a
    NaN is reported once (as missing), not also as "not finite"."""
    cases = cases.with_columns(pl.col("index").cast(pl.Int64), pl.col("failure_case").cast(pl.String))
    nan = cases.filter((pl.col("check") == "not_nullable") & (pl.col("failure_case") == "NaN"))
    cases = cases.join(nan.select("index", "column", pl.lit("finite").alias("check")), on=["index", "column", "check"], how="anti")
    if parse_errors.height == 0:
        return cases
    unreadable = parse_errors.select(
        pl.col("row_number").cast(pl.Int64), pl.col("reason").str.extract(r"^([a-z_]+) ", 1).alias("column"),
        pl.lit("not_nullable").alias("check"),
    ).drop_nulls().unique()
    located = cases.with_columns(row_numbers.gather(cases.get_column("index")).alias("row_number"))
    return located.join(unreadable, on=["row_number", "column", "check"], how="anti").drop("row_number")


#: The model as pandera holds it: its columns, whether each may be missing, and their checks.
_SCHEMA = IncomingPoint.to_schema()


def _failure_cases(frame: pl.DataFrame) -> pl.DataFrame | None:
    """Pandera's report of what fails the model in ``frame`` (``index`` counts its rows), or None when all passes."""
    try:
        IncomingPoint.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        return errors.failure_cases
    return None


def _passing(points: pl.DataFrame) -> pl.Series:
    """Whether each point passes every check of the model, all checks evaluated in one query.

    The checks are the model's own (pandera's functions for its built-in checks, schemas/runs.py's for the
    others), with pandera's rules around them: a column that may not be missing fails a null (and a NaN in a
    float column), and a check passes a null value unless it says otherwise.
    """
    frame = points.lazy()
    outcomes = []
    for name, column in _SCHEMA.columns.items():
        value = pl.col(name)
        if not column.nullable:
            present = value.is_not_null() & value.is_not_nan() if points.schema[name].is_float() else value.is_not_null()
            outcomes.append(frame.select(present))
        for check in column.checks:
            result = check._check_fn(PolarsData(frame, name), **check._check_kwargs)
            passed = pl.first()
            outcomes.append(result.select(passed | passed.is_null() if check.ignore_na else passed.fill_null(False)))
    named = [outcome.select(pl.first().alias(f"check_{i}")) for i, outcome in enumerate(outcomes)]
    return pl.concat(named, how="horizontal").select(pl.all_horizontal(pl.all())).collect().to_series()


def validate(batch: Batch) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a batch's points into accepted points and one reject row (with its reasons) per bad input row."""
    points = batch.points
    reasons = [batch.parse_errors.select(pl.col("row_number").cast(pl.Int64), "reason")]
    # the frame as a whole first (its columns and their types); then its points, pandera reporting on those
    # that fail some check (see the module's docstring)
    with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY):
        frame_failures = _failure_cases(points)
    checked = points if frame_failures is not None else points.filter(~_passing(points))
    cases = _failure_cases(checked) if checked.height else None
    if cases is not None:
        if "index" in cases.columns and cases.get_column("index").null_count() < cases.height:
            row_numbers = checked.get_column("row_number")
            cases = _plain_cases(cases.filter(pl.col("index").is_not_null()), batch.parse_errors, row_numbers)
            bad_families = cases.filter(pl.col("column") == "family").get_column("failure_case").unique().to_list()
            family_messages = {value: family_problem(value) or "" for value in bad_families if value is not None}
            reasons.append(
                pl.DataFrame(
                    {
                        "row_number": row_numbers.gather(cases.get_column("index")),
                        "reason": [
                            _message(column, check, value, family_messages)
                            for column, check, value in zip(
                                cases.get_column("column"), cases.get_column("check"), cases.get_column("failure_case")
                            )
                        ],
                    },
                    schema=REJECT_SCHEMA,
                )
            )
        else:
            # A frame-level failure (a column of the wrong type) rejects every row with the same reason.
            text = "; ".join(
                _message(str(c), str(k), str(v), {}) for c, k, v in cases.select("column", "check", "failure_case").unique().rows()
            )
            reasons.append(points.select("row_number").unique().with_columns(pl.lit(text).alias("reason")))
    reasons.append(_derived_compute_out_of_range(points))
    rejected = pl.concat(reasons).unique(maintain_order=True)
    rejected_rows = rejected.get_column("row_number").unique()
    accepted = points.filter(~pl.col("row_number").is_in(rejected_rows.implode()))
    return accepted, rejected


def _derived_compute_out_of_range(points: pl.DataFrame) -> pl.DataFrame:
    """Compute derived as 6ND must lie in the FLOPs range too: N and D each in range can multiply past it."""
    bound = PHYSICAL_BOUNDS["flops"]
    six_nd = 6.0 * pl.col("params") * pl.col("tokens")
    in_range = [pl.col(c).is_between(PHYSICAL_BOUNDS[c].low, PHYSICAL_BOUNDS[c].high) for c in ("params", "tokens")]
    past = points.filter(pl.col("flops").is_null() & pl.all_horizontal(in_range) & (six_nd > bound.high))
    return past.select(
        pl.col("row_number").cast(pl.Int64),
        (
            pl.lit("compute 6ND = ") + six_nd.cast(pl.String)
            + pl.lit(f" FLOPs is above {bound_text(bound.high)} (no flops given, so derived from N and D), {bound.above}")
        ).alias("reason"),
    )


def flag_expressions(tolerance: float) -> list[pl.Expr]:
    """Flags that keep a run but tell fits and users to look twice; never silent corrections."""
    six_nd = 6.0 * pl.col("params") * pl.col("tokens")
    mismatch = pl.col("flops").is_not_null() & ((pl.col("flops") / six_nd - 1.0).abs() > tolerance)
    return [
        pl.concat_list(
            pl.when(mismatch).then(pl.lit(["compute_mismatch"])).otherwise(pl.lit([], dtype=pl.List(pl.String))),
            pl.when(pl.col("loss") > DIVERGED_LOSS).then(pl.lit(["diverged"])).otherwise(pl.lit([], dtype=pl.List(pl.String))),
            pl.when(pl.col("tokens_derived")).then(pl.lit(["tokens_derived"])).otherwise(pl.lit([], dtype=pl.List(pl.String))),
        ).alias("flags")
    ]
