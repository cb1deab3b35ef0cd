"""Declarative mappings: a TOML file says how a table's columns become canonical run columns.

Users add a source by writing a mapping, not Python. The generic format for internal runs is
itself the identity mapping, so every tabular source goes through this one reader.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from registry.adapters.base import PARSE_ERROR_SCHEMA, Batch, FileProblem, canonical, synthesized_run_names
from registry.adapters.tables import read_table
from schemas.families import slugify
from schemas.units import TRANSFORMS, apply_transform

NUMERIC_COLUMNS = ("params", "params_non_embedding", "tokens", "unique_tokens", "flops", "loss", "step")
TEXT_COLUMNS = ("family", "run_name", "loss_name", "tags")
CANONICAL_COLUMNS = NUMERIC_COLUMNS + TEXT_COLUMNS
TOP_LEVEL_KEYS = {
    "family", "family_column", "family_values", "loss_name", "header", "delimiter",
    "columns", "transforms", "name", "citation", "kind", "fit_loss",
}
DEFAULT_LOSS_NAME = "loss"


class MappingProblem(FileProblem):
    """A mapping that cannot be applied; names the mapping file and line."""


@dataclass(frozen=True)
class Mapping:
    """How one file layout maps to canonical columns (see the README, "Any export, declared not coded")."""

    columns: dict[str, str] = field(default_factory=dict)
    transforms: dict[str, str] = field(default_factory=dict)
    family: str | None = None
    family_column: str | None = None
    family_values: dict[str, str] = field(default_factory=dict)
    slugify_family: bool = True
    loss_name: str | None = None
    header: bool = True
    delimiter: str | None = None
    name: str | None = None
    citation: str | None = None
    origin: str = "<built-in>"
    text: str = ""

    def line_of(self, needle: str) -> str:
        for number, line in enumerate(self.text.splitlines(), start=1):
            if needle in line:
                return f"{self.origin}, line {number}"
        return self.origin


#: The documented generic format: canonical names used as column names.
GENERIC = Mapping(
    columns={name: name for name in CANONICAL_COLUMNS if name != "family"},
    family_column="family",
    slugify_family=False,
    origin="the generic format",
)


def load_mapping(path: Path) -> Mapping:
    """Parse and check a mapping file; every mistake names its line."""
    text = path.read_text(encoding="utf-8")
    origin = path.name
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MappingProblem(f"mapping {origin}: not valid TOML ({error}); fix that line.") from None
    probe = Mapping(origin=origin, text=text)
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise MappingProblem(
                f"mapping {probe.line_of(key)}: unknown key {key!r}; known keys: {', '.join(sorted(TOP_LEVEL_KEYS))}."
            )
    columns = dict(data.get("columns", {}))
    transforms = dict(data.get("transforms", {}))
    for canonical_name in list(columns) + list(transforms):
        if canonical_name not in CANONICAL_COLUMNS:
            raise MappingProblem(
                f"mapping {probe.line_of(canonical_name)}: {canonical_name!r} is not a canonical column; "
                f"use one of {', '.join(CANONICAL_COLUMNS)}."
            )
    for canonical_name, transform in transforms.items():
        if transform not in TRANSFORMS:
            raise MappingProblem(
                f"mapping {probe.line_of(transform)}: unknown transform {transform!r} for {canonical_name}; "
                f"use one of {', '.join(TRANSFORMS)}."
            )
    if "family" in data and "family_column" in data:
        raise MappingProblem(f"mapping {probe.line_of('family_column')}: give either family or family_column, not both.")
    return Mapping(
        columns={str(k): str(v) for k, v in columns.items()},
        transforms={str(k): str(v) for k, v in transforms.items()},
        family=data.get("family"),
        family_column=data.get("family_column"),
        family_values={str(k): str(v) for k, v in data.get("family_values", {}).items()},
        loss_name=data.get("loss_name"),
        header=bool(data.get("header", True)),
        delimiter=data.get("delimiter"),
        name=data.get("name"),
        citation=data.get("citation"),
        origin=origin,
        text=text,
    )


def _missing_columns_message(path: Path, missing: list[str], found: list[str], mapping: Mapping) -> str:
    shown = ", ".join(found[:20]) + (" ..." if len(found) > 20 else "")
    hint = ""
    if len(found) == 1 and any(sep in found[0] for sep in (";", "\t", "|")):
        hint = " The header looks like one column: is the delimiter ';', tab or '|'? Set delimiter in a mapping."
    where = "" if mapping is GENERIC else f" (mapping {mapping.origin})"
    return (
        f"{path.name}: missing required column(s) {', '.join(repr(m) for m in missing)}{where}; "
        f"found: {shown}.{hint} Rename the columns to the generic format, or describe the file with "
        "'scalereg ingest FILE --mapping MAP.toml'."
    )


def read_with_mapping(path: Path, mapping: Mapping = GENERIC, family: str | None = None) -> Batch:
    """Read ``path`` and map it to canonical rows; unmapped columns are kept in ``tags``."""
    frame = read_table(path, header=mapping.header, delimiter=mapping.delimiter)
    frame = frame.with_row_index("row_number", offset=1).with_columns(pl.col("row_number").cast(pl.Int64))
    present = {canonical_name: column for canonical_name, column in mapping.columns.items() if column in frame.columns}

    if mapping is not GENERIC:
        absent = [f"{k} = {v!r}" for k, v in mapping.columns.items() if v not in frame.columns]
        if absent:
            raise MappingProblem(
                f"{path.name}: mapping {mapping.line_of(absent[0].split(' = ')[1].strip(chr(39)))} names column(s) "
                f"not in the file: {', '.join(absent)}; found: {', '.join(frame.columns[1:21])}."
            )
    family_source = family or mapping.family
    family_column = None if family_source else mapping.family_column
    required = ["params", "loss"] + ([] if "flops" in present else ["tokens"])
    missing = [name for name in required if name not in present]
    if family_column and family_column not in frame.columns:
        missing.insert(0, family_column)
    if missing:
        raise FileProblem(_missing_columns_message(path, missing, frame.columns[1:], mapping))

    used = set(present.values()) | ({family_column} if family_column else set())
    extras = [c for c in frame.columns if c not in used and c != "row_number"]

    expressions: list[pl.Expr] = [pl.col("row_number")]
    parse_checks: list[tuple[str, str]] = []
    for canonical_name, column in present.items():
        dtype = frame.schema[column]
        if canonical_name in NUMERIC_COLUMNS:
            transform = mapping.transforms.get(canonical_name, "suffix" if dtype == pl.String else "number")
            expr = apply_transform(pl.col(column), dtype, transform)
            if canonical_name == "step":
                expr = expr.round(0).cast(pl.Int64, strict=False)
            expressions.append(expr.alias(canonical_name))
            if dtype == pl.String or transform not in ("number",):
                parse_checks.append((canonical_name, column))
        else:
            expressions.append(pl.col(column).cast(pl.String).alias(canonical_name))

    if family_source:
        expressions.append(pl.lit(family_source).alias("family"))
    elif family_column:
        raw_family = pl.col(family_column).cast(pl.String)
        if mapping.family_values:
            expressions.append(raw_family.replace(mapping.family_values).alias("family"))
        elif mapping.slugify_family:
            values = frame.get_column(family_column).cast(pl.String).unique().drop_nulls().to_list()
            expressions.append(raw_family.replace({v: slugify(v) for v in values}).alias("family"))
        else:
            expressions.append(raw_family.alias("family"))
    if "loss_name" not in present:
        expressions.append(pl.lit(mapping.loss_name or DEFAULT_LOSS_NAME).alias("loss_name"))
    if extras:
        extra_struct = pl.struct([pl.col(c) for c in extras]).struct.json_encode()
        tags = extra_struct if "tags" not in present else pl.concat_str(
            [pl.lit('{"tags":'), pl.col(present["tags"]).cast(pl.String).str.json_encode(), pl.lit(","), extra_struct.str.slice(1)]
        )
        expressions.append(tags.alias("tags"))

    mapped = frame.select(expressions)
    if "tokens" not in present:
        mapped = mapped.with_columns(
            (pl.col("flops") / (6.0 * pl.col("params"))).alias("tokens"), pl.lit(True).alias("tokens_derived")
        )
    mapped = canonical(mapped).with_columns(synthesized_run_names(canonical(mapped)).alias("run_name"))

    errors = []
    for canonical_name, column in parse_checks:
        failed = frame.select("row_number", pl.col(column).alias("value")).with_columns(
            mapped.get_column(canonical_name).alias("parsed")
        ).filter(pl.col("value").is_not_null() & pl.col("parsed").is_null())
        if failed.height:
            transform = mapping.transforms.get(canonical_name, "a number")
            errors.append(
                failed.select(
                    "row_number",
                    (
                        pl.lit(f"{canonical_name} (column {column!r}) = ")
                        + pl.col("value").cast(pl.String).str.slice(0, 40)
                        + pl.lit(f" cannot be read as {transform}; write a plain number such as 2.8e9")
                    ).alias("reason"),
                )
            )
    parse_errors = pl.concat(errors) if errors else pl.DataFrame(schema=PARSE_ERROR_SCHEMA)
    return Batch(points=mapped, raw=frame, rows_read=frame.height, parse_errors=parse_errors)
