"""The parts of a mapping that are small languages of their own: a run's identity from several columns,
a row filter (``where``), and which transform fits which column.

Each is parsed when the mapping is loaded, so a mistake fails the mapping naming its line, before any
file is read; applying one to a file gives polars expressions (no Python loop over rows).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

import polars as pl

from schemas.units import FLOP_UNITS, LOSS_TRANSFORMS


class RuleProblem(ValueError):
    """A run identity, filter or transform that cannot be applied; the message says how to write it."""


# ---------------------------------------------------------------- run identity


@dataclass(frozen=True)
class RunIdentity:
    """A run's name built from columns: ``col=value,col=value`` for a list, or a template filled in."""

    columns: tuple[str, ...]
    template: str | None = None  # None: the list form

    def expression(self, text: dict[str, pl.Expr]) -> pl.Expr:
        """The run name from each column's text (``text[column]``); null where any of its columns is empty."""
        if self.template is None:
            parts = []
            for i, column in enumerate(self.columns):
                parts += [pl.lit(("," if i else "") + f"{column}="), text[column]]
            return pl.concat_str(parts)
        parts = []
        for literal, field_name, _, _ in string.Formatter().parse(self.template):
            if literal:
                parts.append(pl.lit(literal))
            if field_name is not None:
                parts.append(text[field_name])
        return pl.concat_str(parts)


def parse_identity(value: list[str] | str | None) -> RunIdentity | None:
    """``["checkpoint", "epochs"]`` or ``"{checkpoint}-e{epochs}"`` as a :class:`RunIdentity`."""
    if value is None:
        return None
    if isinstance(value, list):
        if not value:
            raise RuleProblem('run_name lists no column; give the columns that tell runs apart, such as ["model", "epochs"]')
        if len(set(value)) != len(value):
            raise RuleProblem(f"run_name names a column twice ({value}); list each column once")
        if any(not column for column in value):
            raise RuleProblem("run_name lists an empty column name")
        return RunIdentity(tuple(value))
    try:
        pieces = list(string.Formatter().parse(value))
    except ValueError as error:
        raise RuleProblem(
            f"run_name template {value!r} cannot be read ({error}); write columns in braces, such as "
            '"{checkpoint}-e{epochs}", and double a literal brace ({{ or }})'
        ) from None
    fields = [name for _, name, _, _ in pieces if name is not None]
    if not fields:
        raise RuleProblem(
            f"run_name template {value!r} names no column; put column names in braces, such as "
            '"{checkpoint}-e{epochs}", or give a list of columns'
        )
    if any(not name for name in fields):
        raise RuleProblem(f"run_name template {value!r} has empty braces {{}}; name a column inside them")
    if any(spec or conversion for _, name, spec, conversion in pieces if name is not None):
        raise RuleProblem(
            f"run_name template {value!r} formats a value (':' or '!' inside braces); write only column names in braces"
        )
    return RunIdentity(tuple(dict.fromkeys(fields)), template=value)


# ---------------------------------------------------------------- where


_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
_CLAUSE = re.compile(
    r"""^\s*(?:`(?P<tick>[^`]+)`|"(?P<quoted>[^"]+)"|(?P<bare>[A-Za-z_][\w./:-]*))\s*"""
    r"""(?P<op>==|!=|<=|>=|<|>)\s*(?P<value>.+?)\s*$"""
)
#: " and " outside quotes: the only way to join conditions.
_AND = re.compile(r"""\s+and\s+(?=(?:[^"']*["'][^"']*["'])*[^"']*$)""", re.IGNORECASE)


@dataclass(frozen=True)
class Clause:
    """One condition: a column compared with a number, a text or true/false."""

    column: str
    op: str
    value: float | str | bool

    def expression(self, column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
        """True where the row meets the condition; a missing value never does."""
        from registry.adapters.mapping import as_text

        if isinstance(self.value, bool):
            left, right = as_text(column, dtype).str.to_lowercase(), pl.lit(str(self.value).lower())
        elif isinstance(self.value, str):
            left, right = as_text(column, dtype), pl.lit(self.value)
        else:
            source = column.str.strip_chars() if dtype == pl.String else column
            left, right = source.cast(pl.Float64, strict=False), pl.lit(self.value)
        compared = {
            "==": left == right, "!=": left != right, "<": left < right,
            "<=": left <= right, ">": left > right, ">=": left >= right,
        }[self.op]
        return compared.fill_null(False)


@dataclass(frozen=True)
class Where:
    """Conditions joined by ``and``: a row is kept only when it meets all of them."""

    text: str
    clauses: tuple[Clause, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(clause.column for clause in self.clauses))


def _literal(text: str, clause: str) -> float | str | bool:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return float(text)
    except ValueError:
        raise RuleProblem(
            f"where: {clause.strip()!r} compares with {text!r}, which is neither a number, true/false nor text in "
            f"quotes; write text in quotes, such as State == \"finished\""
        ) from None


def parse_where(text: str | None) -> Where | None:
    """``State == "finished" and N >= 1e8`` as a :class:`Where`; a mistake says how to write it."""
    if text is None:
        return None
    if not text.strip():
        raise RuleProblem("where is empty; give a condition such as 'State == \"finished\"', or remove the line")
    clauses = []
    for part in _AND.split(text):
        found = _CLAUSE.match(part)
        if not found:
            raise RuleProblem(
                f"where: cannot read {part.strip()!r}; write COLUMN OP VALUE with OP one of "
                f"{', '.join(_COMPARISONS)}, joined by 'and', such as State == \"finished\" and N >= 1e8 "
                "(a column name with spaces in backticks: `C4 Eval PPL` < 50)"
            )
        column = found["tick"] or found["quoted"] or found["bare"]
        value = _literal(found["value"], part)
        if isinstance(value, (str, bool)) and found["op"] not in ("==", "!="):
            raise RuleProblem(f"where: {part.strip()!r} orders text; compare text with == or != only")
        clauses.append(Clause(column, found["op"], value))
    return Where(text.strip(), tuple(clauses))


# ---------------------------------------------------------------- transforms


def transform_problem(canonical_name: str, transform: str) -> str | None:
    """Why a transform cannot apply to a column (a perplexity's ln to a count, FLOP units to a loss), or None."""
    if transform in LOSS_TRANSFORMS and canonical_name != "loss":
        return f'"{transform}" turns a perplexity into a loss in nats; it applies to loss only, not {canonical_name}'
    if transform in FLOP_UNITS and canonical_name != "flops":
        return f'"{transform}" is a unit of compute; it applies to flops only, not {canonical_name}'
    if canonical_name == "loss" and transform in ("suffix", "thousands", "millions", "billions", "trillions"):
        return f'a loss takes no "{transform}"; give the loss in nats, or "ln" for a perplexity'
    return None


_PERPLEXITY = re.compile(r"(?:^|[^a-z])(ppl|perplexity)(?:$|[^a-z])", re.IGNORECASE)


def looks_like_perplexity(column: str) -> bool:
    """A column named as a perplexity ("C4 Eval PPL", "val_perplexity"): its ln is the loss."""
    return bool(_PERPLEXITY.search(column))
