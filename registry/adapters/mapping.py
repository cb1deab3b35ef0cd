"""Declarative mappings: a TOML file says how a table's columns become canonical run columns.

Users add a source by writing a mapping, not Python. The generic format for internal runs is
itself the identity mapping, so every tabular source goes through this one reader.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from registry.adapters.base import PARSE_ERROR_SCHEMA, Batch, FileProblem, canonical, synthesized_run_names
from registry.adapters.tables import read_table
from registry.mapping_rules import (
    RunIdentity,
    RuleProblem,
    Where,
    looks_like_perplexity,
    parse_identity,
    parse_where,
    transform_problem,
)
from schemas.families import family_problem, slugify
from schemas.units import PERCENT_RE, SUFFIXED_RE, TRANSFORMS, apply_transform

NUMERIC_COLUMNS = ("params", "params_non_embedding", "tokens", "unique_tokens", "flops", "loss", "step")
#: Columns that count something: "2.8B" or "32K" is unambiguous for them, never for a loss.
COUNT_COLUMNS = ("params", "params_non_embedding", "tokens", "unique_tokens", "flops", "step")
TEXT_COLUMNS = ("family", "run_name", "loss_name", "tags")
CANONICAL_COLUMNS = NUMERIC_COLUMNS + TEXT_COLUMNS
DEFAULT_LOSS_NAME = "loss"

#: What a mapping's tables may hold: canonical names read from a column (the family comes from
#: ``family_column``, never from [columns]), and transforms for the columns that hold numbers.
MappedColumn = Literal[("run_name", "loss_name", "tags") + NUMERIC_COLUMNS]
NumericColumn = Literal[NUMERIC_COLUMNS]
Transform = Literal[TRANSFORMS]
#: One byte the CSV reader can split on: printable ASCII or tab, and not the quote character.
Delimiter = Annotated[str, Field(pattern=r"^[\t !#-~]$")]


class MappingProblem(FileProblem):
    """A mapping that cannot be applied; names the mapping file and line."""


class ColumnMapping(BaseModel):
    """How one file layout maps to canonical columns (see the README, "Any export, declared not coded").

    The fields are exactly the keys a mapping file may hold: anything else, or a value of the wrong
    type (``header = "false"``, ``delimiter = 5``), is refused with a message naming its line.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str | None = None
    citation: str | None = None
    family: str | None = None
    family_column: str | None = None
    family_values: dict[str, str] = {}
    loss_name: str | None = None
    header: bool = True
    delimiter: Delimiter | None = None
    #: The run's identity from several columns (["checkpoint", "epochs"]) or a template ("{checkpoint}-e{epochs}").
    run_name: list[str] | str | None = None
    #: Rows to keep, such as 'State == "finished"'; the others are rejected naming the filter.
    where: str | None = None
    columns: dict[MappedColumn, str] = {}
    transforms: dict[NumericColumn, Transform] = {}

    #: Where the mapping came from and its text, so a message can name the line.
    _origin: str = PrivateAttr("<built-in>")
    _text: str = PrivateAttr("")
    #: Family values are turned into keys ("C4 web" -> "c4-web") except in the generic format,
    #: where a value that is not a key is rejected naming it.
    _slugify_family: bool = PrivateAttr(True)

    @model_validator(mode="after")
    def _consistent(self) -> ColumnMapping:
        """Keys that are each fine but contradict one another."""
        if self.family is not None and self.family_column is not None:
            raise _located("give either family or family_column, not both", None, "family_column")
        if self.family_values and self.family_column is None:
            raise _located("family_values translate the values of family_column; add family_column", None, "family_values")
        by_column: dict[str, str] = {}
        for canonical_name, column in self.columns.items():
            if column in by_column:
                raise _located(
                    f"{by_column[column]} and {canonical_name} both read column {column!r}; each canonical column "
                    "needs a column of its own",
                    "columns", canonical_name,
                )
            by_column[column] = canonical_name
        for canonical_name, transform in self.transforms.items():
            if canonical_name not in self.columns:
                raise _located(
                    f"a transform for {canonical_name}, but [columns] does not map {canonical_name}; "
                    f'add {canonical_name} = "COLUMN" under [columns]',
                    "transforms", canonical_name,
                )
            if problem := transform_problem(canonical_name, transform):
                raise _located(problem, "transforms", canonical_name)
        if self.run_name is not None and "run_name" in self.columns:
            raise _located(
                "run_name is given twice: at the top (the run's identity from several columns) and under [columns]; "
                "keep one", None, "run_name",
            )
        for key, parse in (("run_name", parse_identity), ("where", parse_where)):
            try:
                parse(getattr(self, key))
            except RuleProblem as problem:
                raise _located(str(problem), None, key) from None
        return self

    @model_validator(mode="after")
    def _usable_values(self) -> ColumnMapping:
        """Values that would otherwise be replaced silently (an empty loss name) or reject every row (a bad family)."""
        if self.loss_name == "":
            raise _located('loss_name is empty; give the name of the loss, such as "val/c4", or remove the line', None, "loss_name")
        if self.family is not None and (problem := family_problem(self.family)):
            raise _located(problem, None, "family")
        return self

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def identity(self) -> RunIdentity | None:
        """The run's identity from several columns, when the mapping gives one (checked when it was loaded)."""
        return parse_identity(self.run_name)

    @property
    def row_filter(self) -> Where | None:
        """The rows to keep, when the mapping says (checked when it was loaded)."""
        return parse_where(self.where)

    def reading(self) -> dict:
        """What the mapping says about reading a file, for its reading hash: the keys added later (run_name,
        where) only when given, so a mapping that does not use them reads its sources the same way as before."""
        dump = self.model_dump(mode="json", exclude={"name", "citation"})
        return {key: value for key, value in dump.items() if key not in ("run_name", "where") or value is not None}

    @property
    def slugify_family(self) -> bool:
        return self._slugify_family

    def line_of(self, table: str | None, key: str) -> str:
        """"map.toml, line 7" for a key (in a table, or at the top level), or just the file when not found."""
        number = _line_number(self._text, table, key)
        return self._origin if number is None else f"{self._origin}, line {number}"


def _located(message: str, table: str | None, key: str) -> PydanticCustomError:
    """A cross-key mistake, carrying where it is so the message can name the line."""
    # the message travels in the context: a template would read braces in a column name as placeholders
    return PydanticCustomError("mapping", "{message}", {"message": message, "table": table, "key": key})


def _built_in(mapping: ColumnMapping, origin: str, text: str = "", slugify_family: bool = True) -> ColumnMapping:
    mapping._origin, mapping._text, mapping._slugify_family = origin, text, slugify_family
    return mapping


#: The documented generic format: canonical names used as column names.
GENERIC = _built_in(
    ColumnMapping(columns={name: name for name in CANONICAL_COLUMNS if name != "family"}, family_column="family"),
    origin="the generic format",
    slugify_family=False,
)

_TABLE_HEADER = re.compile(r"^\[\s*([^\]]+?)\s*\]")
_KEY = re.compile(r"""^(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_.-]+))\s*=""")


def _line_number(text: str, table: str | None, key: str) -> int | None:
    """The line of ``key`` in ``[table]`` (or at the top level); a top-level key may also be a table's header."""
    current: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if header := _TABLE_HEADER.match(stripped):
            current = header.group(1).strip("\"'")
            if table is None and current == key:
                return number
            continue
        found = _KEY.match(stripped)
        written = next((g for g in found.groups() if g is not None), None) if found else None
        if current == table and written == key or current is None and written == f"{table}.{key}":
            return number
    return None


def _problem(error: ErrorDetails) -> tuple[str, str | None, str]:
    """One pydantic error as (message, table, key): the fix in words, and where to find the line."""
    kind, loc, value = error["type"], error["loc"], error.get("input")
    if kind == "mapping":
        context = error.get("ctx", {})
        return context["message"], context["table"], context["key"]
    top = str(loc[0]) if loc else ""
    key = str(loc[1]) if len(loc) > 1 else top
    table = top if len(loc) > 1 else None
    if kind == "extra_forbidden":
        known = ", ".join(ColumnMapping.model_fields)
        return f"unknown key {top!r}; known keys: {known}", None, top
    if kind == "dict_type":
        return f'{top} must be a table: a line [{top}] followed by lines such as params = "num_params"', None, top
    if top in ("columns", "transforms") and loc[-1] == "[key]":
        if key == "family":
            return 'the family is not read from [columns]: write family_column = "COLUMN" above the tables', table, key
        if top == "transforms" and key in CANONICAL_COLUMNS:
            return f"{key} takes no transform; transforms apply to {', '.join(NUMERIC_COLUMNS)}", table, key
        return f"{key!r} is not a canonical column; use one of {', '.join(CANONICAL_COLUMNS)}", table, key
    if top == "transforms":
        return f"unknown transform {value!r} for {key}; use one of {', '.join(TRANSFORMS)}", table, key
    if top == "header":
        return f"header must be true or false, without quotes; got {value!r}", None, top
    if top == "delimiter":
        return f"delimiter must be one character in quotes, such as \";\", \"|\" or \"\\t\"; got {value!r}", None, top
    if top == "run_name":
        return (
            'run_name must be a list of column names, such as ["checkpoint", "epochs"], or a template in quotes, '
            f'such as "{{checkpoint}}-e{{epochs}}"; got {value!r}', None, top,
        )
    if top == "where":
        return f"where must be a condition in quotes, such as 'State == \"finished\"'; got {value!r}", None, top
    return f"{key} must be text in quotes; got {value!r}", table, key


def load_mapping(path: Path) -> ColumnMapping:
    """Parse and check a mapping file; every mistake names its line."""
    origin = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MappingProblem(f"mapping {origin}: not UTF-8 text; save it as UTF-8.") from None
    except OSError as error:
        raise MappingProblem(f"mapping {origin}: cannot be read ({error.strerror or error}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MappingProblem(f"mapping {origin}: not valid TOML ({error}); fix that line.") from None
    try:
        mapping = ColumnMapping.model_validate(data)
    except ValidationError as invalid:
        message, table, key = _problem(invalid.errors()[0])
        number = _line_number(text, table, key)
        where = origin if number is None else f"{origin}, line {number}"
        raise MappingProblem(f"mapping {where}: {message}.") from None
    return _built_in(mapping, origin, text)


def _missing_columns_message(path: Path, missing: list[str], found: list[str], mapping: ColumnMapping) -> str:
    shown = ", ".join(repr(c) for c in found[:20]) + (" ..." if len(found) > 20 else "")
    hint = ""
    if len(found) == 1 and any(sep in found[0] for sep in (";", "\t", "|")):
        hint = " The header looks like one column: is the delimiter ';', tab or '|'? Set delimiter in a mapping."
    near = {m: c for m in missing for c in found if c != m and c.strip().lower().replace(" ", "_") == m}
    if near:
        hint += " Names differ only in case or spaces: " + ", ".join(f"{c!r} should be {m!r}" for m, c in near.items()) + "."
    where = "" if mapping is GENERIC else f" (mapping {mapping.origin})"
    return (
        f"{path.name}: missing required column(s) {', '.join(repr(m) for m in missing)}{where}; "
        f"found: {shown}.{hint} Rename the columns to the generic format, or describe the file with "
        "'scalereg ingest FILE --mapping MAP.toml'."
    )


def read_with_mapping(path: Path, mapping: ColumnMapping = GENERIC, family: str | None = None) -> Batch:
    """Read ``path`` and map it to canonical rows; unmapped columns are kept in ``tags``."""
    text_columns = tuple(column for name, column in mapping.columns.items() if name in TEXT_COLUMNS)
    if mapping.family_column and not (family or mapping.family):
        text_columns += (mapping.family_column,)
    table = read_table(path, header=mapping.header, delimiter=mapping.delimiter, text_columns=text_columns)
    frame = table.frame
    if "row_number" in frame.columns:  # the name is ours; the file's column is kept (in tags) under another
        frame = frame.rename({"row_number": "row_number_in_file"})
    frame = frame.with_row_index("row_number", offset=1).with_columns(pl.col("row_number").cast(pl.Int64))
    # Blank lines (every cell empty) are not rows: they carry nothing to keep or reject. Row numbers
    # are given first, so they still count the file's data lines.
    frame = frame.filter(~pl.all_horizontal(pl.exclude("row_number").is_null()))
    if frame.height == 0:
        raise FileProblem(f"{path.name}: has no data rows (only a header and blank lines); add the runs and drop it again.")
    present = {canonical_name: column for canonical_name, column in mapping.columns.items() if column in frame.columns}

    if mapping is not GENERIC:
        absent = {k: v for k, v in mapping.columns.items() if v not in frame.columns}
        if absent:
            raise MappingProblem(
                f"{path.name}: mapping {mapping.line_of('columns', next(iter(absent)))} names column(s) not in the "
                f"file: {', '.join(f'{k} = {v!r}' for k, v in absent.items())}; found: {', '.join(frame.columns[1:21])}."
            )
    _check_rules(path, mapping, frame.columns)
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
            source, source_dtype = pl.col(column), dtype
            if not (dtype.is_numeric() or dtype in (pl.String, pl.Null)):
                # true/false, dates, lists: never a number; read as text so the row is rejected naming the value
                source, source_dtype = as_text(pl.col(column), dtype), pl.String
            default = "suffix" if source_dtype == pl.String and canonical_name in COUNT_COLUMNS else "number"
            transform = mapping.transforms.get(canonical_name, default)
            expr = apply_transform(source, source_dtype, transform)
            if canonical_name == "step":
                # steps are whole numbers: 1000.0 is step 1000, 1.5 is a mistake and rejected
                expr = pl.when(expr == expr.round(0)).then(expr).cast(pl.Int64, strict=False)
            expressions.append(expr.alias(canonical_name))
            parse_checks.append((canonical_name, column))
        elif canonical_name == "tags":
            continue  # normalised to JSON below
        else:
            expressions.append(as_text(pl.col(column), dtype).alias(canonical_name))

    if family_source:
        expressions.append(pl.lit(family_source).alias("family"))
    elif family_column:
        raw_family = as_text(pl.col(family_column), frame.schema[family_column])
        if mapping.family_values:
            expressions.append(raw_family.replace(mapping.family_values).alias("family"))
        elif mapping.slugify_family:
            values = frame.select(raw_family).to_series().unique().drop_nulls().to_list()
            # a name with nothing to slugify ("模型") stays as it is, so its row is rejected naming it
            expressions.append(raw_family.replace({v: slugify(v) or v for v in values}).alias("family"))
        else:
            expressions.append(raw_family.alias("family"))
    if "loss_name" not in present:
        expressions.append(pl.lit(mapping.loss_name or DEFAULT_LOSS_NAME).alias("loss_name"))
    given_tags = _tags_as_json(frame, present["tags"]) if "tags" in present else None
    if extras:
        extra_struct = pl.struct([pl.col(c) for c in extras]).struct.json_encode()
        tags = extra_struct if given_tags is None else pl.concat_str(
            [pl.lit('{"tags":'), given_tags.fill_null("null"), pl.lit(","), extra_struct.str.slice(1)]
        )
        expressions.append(tags.alias("tags"))
    elif given_tags is not None:
        expressions.append(given_tags.alias("tags"))

    identity = mapping.identity
    if identity is not None:
        texts = {column: as_text(pl.col(column), frame.schema[column]) for column in identity.columns}
        expressions.append(identity.expression(texts).alias("run_name"))
    mapped = frame.select(expressions)
    if "tokens" not in present:
        mapped = mapped.with_columns(
            (pl.col("flops") / (6.0 * pl.col("params"))).alias("tokens"), pl.lit(True).alias("tokens_derived")
        )
    mapped = canonical(mapped).with_columns(synthesized_run_names(canonical(mapped)).alias("run_name"))

    errors = []
    for canonical_name, column in parse_checks:
        dtype = frame.schema[column]
        unread = pl.col(column).is_not_null() & mapped.get_column(canonical_name).is_null()
        failed = frame.filter(unread).select("row_number", as_text(pl.col(column), dtype).alias("value"))  # text only for failures
        if failed.height:
            transform = mapping.transforms.get(canonical_name, "a number")
            used_transform = mapping.transforms.get(canonical_name) or (
                "suffix" if frame.schema[column] == pl.String and canonical_name in COUNT_COLUMNS else "number"
            )
            errors.append(
                failed.select(
                    "row_number",
                    (
                        pl.lit(f"{canonical_name} (column {column!r}) = ")
                        + pl.col("value").str.slice(0, 40)
                        + pl.lit(f" cannot be read as {transform}; ")
                        + _why_unreadable(canonical_name, dtype, used_transform)
                    ).alias("reason"),
                )
            )
    # problems the reader found in single rows (a JSON key given twice), for the rows that are not blank
    row_problems = table.row_problems.filter(pl.col("row_number").is_in(frame.get_column("row_number").implode()))
    parse_errors = pl.concat([row_problems, *errors, *_rule_rejects(frame, mapping)])
    if "run_name" in present:
        identity_columns: tuple[str, ...] = (present["run_name"],)
    elif identity is not None:
        identity_columns = identity.columns
    else:  # names made from N (and D for final values): see synthesized_run_names
        by = ("params",) if "step" in present else ("params", "tokens" if "tokens" in present else "flops")
        identity_columns = tuple(present[name] for name in by if name in present)
    return Batch(
        points=mapped, raw=frame, rows_read=frame.height, parse_errors=parse_errors,
        identity_columns=identity_columns, loss_columns=(present["loss"],),
    )


def _check_rules(path: Path, mapping: ColumnMapping, found: list[str]) -> None:
    """The run identity and filter name columns the file has; a perplexity is read through "ln"."""
    for key, rule in (("run_name", mapping.identity), ("where", mapping.row_filter)):
        missing = [column for column in (rule.columns if rule else ()) if column not in found]
        if missing:
            raise MappingProblem(
                f"{path.name}: mapping {mapping.line_of(None, key)}: {key} names column(s) not in the file: "
                f"{', '.join(repr(c) for c in missing)}; found: {', '.join(c for c in found if c != 'row_number')[:400]}."
            )
    loss_column = mapping.columns.get("loss")
    if mapping is not GENERIC and loss_column and looks_like_perplexity(loss_column) and mapping.transforms.get("loss") != "ln":
        raise MappingProblem(
            f"{path.name}: mapping {mapping.line_of('columns', 'loss')}: loss reads {loss_column!r}, which is named as a "
            'perplexity; a loss is its natural logarithm: add loss = "ln" under [transforms].'
        )


def _rule_rejects(frame: pl.DataFrame, mapping: ColumnMapping) -> list[pl.DataFrame]:
    """Rows the mapping's filter leaves out, and rows whose run identity has an empty column, as row reasons."""
    rejects = []
    where = mapping.row_filter
    if where is not None:
        keep = pl.all_horizontal(clause.expression(pl.col(clause.column), frame.schema[clause.column]) for clause in where.clauses)
        shown = [
            pl.lit(f"{column} = ") + as_text(pl.col(column), frame.schema[column]).fill_null("(empty)").str.slice(0, 40)
            for column in where.columns
        ]
        rejects.append(
            frame.filter(~keep).select(
                "row_number",
                (pl.lit(f"left out by the mapping's where ({where.text}): ") + pl.concat_str(shown, separator=", "))
                .alias("reason"),
            )
        )
    identity = mapping.identity
    for column in identity.columns if identity is not None else ():
        rejects.append(
            frame.filter(pl.col(column).is_null()).select(
                "row_number",
                pl.lit(f"run_name: column {column!r} is empty in this row, so the run it belongs to is unknown").alias("reason"),
            )
        )
    return [r.cast(PARSE_ERROR_SCHEMA) for r in rejects]


def as_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Any column as text: lists and structs as JSON, everything else by its usual spelling."""
    if dtype == pl.String:
        return expr
    if dtype.is_nested():
        return pl.struct(expr.alias("v")).struct.json_encode().str.strip_prefix('{"v":').str.strip_suffix("}")
    return expr.cast(pl.String, strict=False)


def _why_unreadable(canonical_name: str, dtype: pl.DataType, transform: str) -> pl.Expr:
    """The fix for a value a unit rule could not read, phrased for what the value looks like."""
    if not (dtype.is_numeric() or dtype in (pl.String, pl.Null)):
        return pl.lit(f"the column holds {dtype} values, not numbers; export it as plain numbers such as 2.8e9")
    if canonical_name == "step":
        return pl.lit("a step is a whole number such as 1000")
    value = pl.col("value")
    if canonical_name == "loss":
        return (
            pl.when(value.str.contains(PERCENT_RE))
            .then(pl.lit("a percentage is not a loss; give the cross-entropy in nats, such as 2.9"))
            .when(value.str.contains(SUFFIXED_RE))
            .then(pl.lit("a loss takes no unit suffix; write a plain number such as 2.9"))
            .otherwise(pl.lit("write a plain number such as 2.9"))
        )
    plain = "write a plain number such as 2.8e9" + (", or with a K, M, B or T suffix such as 2.8B" if transform == "suffix" else "")
    return (
        pl.when(value.str.contains(PERCENT_RE))
        .then(pl.lit("a percentage is not a count; give the count itself, such as 2.8e9"))
        .otherwise(pl.lit(plain))
    )


def _tags_as_json(frame: pl.DataFrame, column: str) -> pl.Expr:
    """The tags column as JSON text: valid JSON is kept as it is, anything else as a JSON string (never lost)."""
    dtype = frame.schema[column]
    if dtype.is_nested():
        return pl.struct(pl.col(column).alias("v")).struct.json_encode().str.strip_prefix('{"v":').str.strip_suffix("}")
    text = frame.get_column(column).cast(pl.String, strict=False)
    encoded: dict[str, str] = {}
    for value in text.unique().drop_nulls().to_list():
        try:
            encoded[value] = json.dumps(json.loads(value), allow_nan=False)
        except (ValueError, RecursionError):
            encoded[value] = json.dumps(value)
    return pl.col(column).cast(pl.String, strict=False).replace_strict(encoded, default=None, return_dtype=pl.String)
