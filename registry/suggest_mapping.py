"""A draft mapping for a file that does not read as the generic format: ``scalereg suggest-mapping FILE``.

The draft is meant to be read and edited, not trusted: it matches column names to canonical columns
(case, spaces and punctuation ignored; common names such as ``N``, ``Params``, ``num_params``, ``D``,
``train_tokens``, ``C``, ``flops``, ``*eval*loss*``, ``*ppl*``), keeps a match only if its values have
the magnitude of what it claims to be (parameters 1e6-1e13, tokens 1e7-1e15, losses 0.5-15 nats,
perplexities above e), recognises size suffixes ("2.8B"), log10 columns and FLOP units in names,
proposes a run identity when N and D (or N and step) repeat, and says as TOML comments which
candidates it rejected and why. Passed to ``--mapping`` after editing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from registry.adapters.tables import read_table
from registry.collisions import fewest_separating
from schemas.families import slugify
from schemas.units import FLOP_UNITS, apply_transform

#: Plausible magnitudes (inclusive) of each canonical column, as the values should read once transformed.
RANGES: dict[str, tuple[float, float]] = {
    "params": (1e6, 1e13),
    "params_non_embedding": (1e5, 1e13),
    "tokens": (1e7, 1e15),
    "unique_tokens": (1e6, 1e15),
    "flops": (1e12, 1e30),
    "loss": (0.5, 15.0),
    "step": (0, 1e9),
}
#: Names (lower case, runs of non-alphanumerics as "_") that mean a canonical column outright.
EXACT: dict[str, tuple[str, ...]] = {
    "run_name": ("run_name", "name", "run", "run_id", "runname"),
    "params": ("n", "params", "num_params", "n_params", "nparams", "parameters", "num_parameters", "param_count",
               "parameter_count", "model_size", "params_active_precise", "n_w_emb", "size"),
    "params_non_embedding": ("n_no_emb", "params_no_embed", "non_embedding_params", "params_non_embedding", "n_non_emb"),
    "tokens": ("d", "tokens", "train_tokens", "num_tokens", "n_tokens", "training_tokens", "token_num", "total_tokens",
               "throughput_total_tokens", "tokens_seen"),
    "unique_tokens": ("unique_tokens", "tokens_per_epoch", "u"),
    "flops": ("c", "flops", "compute", "train_flops", "total_flops", "training_flops", "flop"),
    "loss": ("loss", "final_loss", "eval_loss", "val_loss", "validation_loss", "test_loss", "train_loss"),
    "step": ("step", "_step", "steps", "global_step", "iteration", "iter", "current_steps", "trainer_global_step"),
}
#: Patterns (on the normalised name) that make a column a candidate, weaker than an exact name.
PATTERNS: dict[str, re.Pattern] = {
    "params_non_embedding": re.compile(r"(param|^n_).*(no_?emb|non_?emb)"),
    "params": re.compile(r"param|model_size|parameter_count|^n_(b|bn|m|t|billions?|millions?)$"),
    "unique_tokens": re.compile(r"unique.*tok"),
    "tokens": re.compile(r"tokens?($|_)|^d_"),
    "flops": re.compile(r"flop"),
    "loss": re.compile(r"loss|cross_?entropy|ppl|perplexity"),
    "step": re.compile(r"(^|_)steps?($|_)"),
}
#: Held-out losses are preferred to plain "loss", training losses come last, perplexities after losses.
_HELD_OUT = re.compile(r"eval|val|valid|test|c4|held|paloma")
_TRAINING = re.compile(r"train")
_PERPLEXITY = re.compile(r"ppl|perplexity")
_LOG = re.compile(r"(^|_)log(10)?(_|$)")
_FLOP_UNIT_NAMES = {"gflop": "gflops", "tflop": "tflops", "pflop_day": "pflop_days", "pf_day": "pflop_days",
                    "petaflop_day": "pflop_days", "pflop": "pflops", "eflop": "eflops", "zflop": "zflops"}
#: Counts whose name gives their unit: "N (B)", "tokens_billions", "params_m".
_COUNT_UNITS = {
    "trillions": re.compile(r"(^|_)(t|trillions?)$"),
    "billions": re.compile(r"(^|_)(b|bn|billions?)$"),
    "millions": re.compile(r"(^|_)(m|millions?)$"),
}
_SCALES = {"trillions": 1e12, "billions": 1e9, "millions": 1e6}
_SUFFIXED = re.compile(r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*[KkMmBbGgTt]\s*$")
#: Rejected candidates listed per canonical column; a wide export has dozens of losses.
SHOWN_REJECTS = 8
ROLES = ("run_name", "params", "params_non_embedding", "tokens", "unique_tokens", "flops", "loss", "step")


def normalised(column: str) -> str:
    """A column name compared without case, spaces or punctuation: "C4 Eval Loss" -> "c4_eval_loss"."""
    return re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_")


@dataclass(frozen=True)
class Choice:
    """A column chosen for a canonical column, with the transform that reads it and why."""

    role: str
    column: str
    transform: str | None
    why: str


@dataclass(frozen=True)
class Draft:
    """The suggestion: chosen columns, the run identity, the filter, and the rejected candidates with reasons."""

    path: Path
    rows: int
    delimiter: str | None
    chosen: dict[str, Choice]
    run_name: tuple[str, ...] = ()
    where: str | None = None
    family_column: str | None = None  # a column naming the data or family, when the file has one
    rejected: tuple[tuple[str, str, str], ...] = ()  # (column, role, why)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def toml(self) -> str:
        """The draft as a mapping file: valid input to ``--mapping`` once checked (and completed, where it says)."""
        q = json.dumps  # a JSON string is a TOML basic string
        lines = [
            f"# Draft mapping for {self.path.name} ({self.rows} rows), written by scalereg suggest-mapping.",
            "# Check every line against the file, then: scalereg ingest FILE --mapping THIS.toml",
            *(f"# {note}" for note in self.notes),
        ]
        if self.family_column:
            lines.append(f"family_column = {q(self.family_column)}  # each value a family (slugified): one architecture, data and recipe")
        else:
            lines.append(f"family = {q(slugify(self.path.stem) or 'my-family')}  # the unit of a fit: one architecture, data and recipe")
        if "loss" in self.chosen:
            lines.append(f"loss_name = {q(self.chosen['loss'].column)}")
        if self.delimiter:
            lines.append(f"delimiter = {q(self.delimiter)}")
        if self.run_name:
            lines.append(f"run_name = [{', '.join(q(c) for c in self.run_name)}]  # N and D repeat: these tell runs apart")
        if self.where:
            lines.append(f"where = {q(self.where)}")
        lines += ["", "[columns]"]
        for role in ROLES:
            if role in self.chosen:
                choice = self.chosen[role]
                lines.append(f"{role} = {q(choice.column)}  # {choice.why}")
            elif role in ("params", "loss") or role == "tokens" and "flops" not in self.chosen:
                lines.append(f'# {role} = "?"  no column looks like {role}: name it here')
        transforms = {role: c.transform for role, c in self.chosen.items() if c.transform}
        if transforms:
            lines += ["", "[transforms]"]
            lines += [f"{role} = {q(transform)}" for role, transform in transforms.items()]
        if self.rejected:
            lines += ["", "# Candidates rejected:"]
            for role in ROLES:
                of_role = [(column, why) for column, r, why in self.rejected if r == role]
                lines += [f"#   {column!r} as {role}: {why}" for column, why in of_role[:SHOWN_REJECTS]]
                if len(of_role) > SHOWN_REJECTS:
                    lines.append(f"#   ... and {len(of_role) - SHOWN_REJECTS} more columns as {role}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _Column:
    name: str
    key: str  # normalised
    values: pl.Series  # as numbers (null where unreadable); suffixes read
    suffixed: bool
    n_unique: int
    given: int  # rows with a value (a spreadsheet may fill a column on some rows only)


def _numbers(series: pl.Series) -> tuple[pl.Series, bool]:
    if series.dtype.is_numeric():
        return series.cast(pl.Float64), False
    if series.dtype != pl.String:
        return pl.Series(series.name, [None] * series.len(), dtype=pl.Float64), False
    suffixed = bool(series.drop_nulls().str.contains(_SUFFIXED.pattern).any())
    values = pl.select(apply_transform(pl.lit(series), pl.String, "suffix")).to_series()
    return values, suffixed


def _median(values: pl.Series) -> float | None:
    finite = values.filter(values.is_finite())
    return None if finite.len() == 0 else float(finite.median())


def _in_range(value: float, role: str) -> bool:
    low, high = RANGES[role]
    return low <= value <= high


def _fits(column: _Column, role: str) -> tuple[str | None, str]:
    """(transform, why) when the column's magnitudes fit the role; (None, reason) naming what is off otherwise."""
    median = _median(column.values)
    if role == "run_name":
        return ("", "names runs") if column.n_unique > 1 else (None, "one value for every row")
    if median is None or column.values.is_not_null().sum() < max(1, column.given // 2):
        return None, "not numbers in most rows that have a value"
    if role == "loss":
        if _PERPLEXITY.search(column.key):
            low = float(column.values.min())
            if low > math.e and _in_range(math.log(median), "loss"):
                return "ln", f"a perplexity (median {median:.4g}): the loss is its ln"
            return None, f"named as a perplexity but values from {low:.4g}: a perplexity is above e"
        if _in_range(median, "loss"):
            return "", f"median {median:.4g} nats"
        return None, f"median {median:.4g}, outside 0.5-15 nats"
    if role == "step":
        return ("", "whole numbers") if (column.values.drop_nulls() % 1 == 0).all() else (None, "not whole numbers")
    unit = next((u for name, u in _FLOP_UNIT_NAMES.items() if name in column.key), None) if role == "flops" else None
    scale = FLOP_UNITS[unit] if unit else 1.0
    low, high = RANGES[role]
    if _in_range(median * scale, role):
        suffix = ", size suffixes read" if column.suffixed else ""
        return (unit or ("suffix" if column.suffixed else "")), f"median {median * scale:.3g}{suffix}" + (f" (in {unit})" if unit else "")
    scaled = next((t for t, pattern in _COUNT_UNITS.items() if pattern.search(column.key)), None)
    if scaled and _in_range(median * _SCALES[scaled], role):
        return scaled, f"in {scaled} by its name (median {median:.3g} -> {median * _SCALES[scaled]:.3g})"
    if (_LOG.search(column.key) or median < 40) and _in_range(10**median, role):
        unsure = "" if _LOG.search(column.key) else "; check: a count in other units reads the same"
        return "log10", f"log10 values (median {median:.3g} -> {10**median:.3g}){unsure}"
    return None, f"median {median * scale:.3g}, outside {low:.0e}-{high:.0e}"


def _rank(column: _Column, role: str) -> int:
    """Lower is better: an exact name, then a pattern; for losses, held-out before training, loss before ppl."""
    exact = column.key in EXACT.get(role, ())
    base = 0 if exact else 10
    if role == "loss":
        kind = 0 if _HELD_OUT.search(column.key) else 4 if _TRAINING.search(column.key) else 2
        return (20 if _PERPLEXITY.search(column.key) else 0) + kind + (0 if exact else 1)
    return base


def _read(path: Path) -> tuple[pl.DataFrame, str | None]:
    """The file's rows; a CSV that reads as one column is tried again with ';', tab and '|'."""
    frame = read_table(path).frame
    if len(frame.columns) == 1 and path.suffix.lower() not in (".jsonl", ".json", ".parquet"):
        for delimiter in (";", "\t", "|"):
            if delimiter in frame.columns[0]:
                return read_table(path, delimiter=delimiter).frame, delimiter
    return frame, None


def _identity(frame: pl.DataFrame, chosen: dict[str, Choice], columns: dict[str, _Column]) -> tuple[tuple[str, ...], str | None]:
    """When N with D (or with step) repeat, the fewest low-cardinality columns that tell the rows apart."""
    if "params" not in chosen or "run_name" in chosen:
        return (), None
    if "loss" in chosen:  # only rows with a loss are runs
        frame = frame.filter(pl.col(chosen["loss"].column).is_not_null())
    # the columns a run's name is made of when the file gives none (N; N and D for final values)
    named_by = [chosen["params"].column]
    if "step" not in chosen:
        named_by += [chosen[r].column for r in ("tokens", "flops") if r in chosen][:1]
    key = named_by + [chosen[r].column for r in ("step",) if r in chosen]
    if not frame.select(pl.struct(key).is_duplicated().any()).item():
        return (), None
    used = {c.column for c in chosen.values()}
    # an identity column has a value on every run's row (an empty one rejects the row) and few distinct values
    cardinality = {
        c.name: frame.get_column(c.name).n_unique()
        for c in columns.values() if c.name not in used and frame.get_column(c.name).null_count() == 0
    }
    tried = sorted(
        (c for c in columns.values() if 1 < cardinality.get(c.name, 0) <= max(2, frame.height // 2)),
        key=lambda c: cardinality[c.name],
    )[:10]

    def still_repeated(extra: tuple[_Column, ...]) -> int:
        return frame.select(pl.struct(key + [c.name for c in extra]).is_duplicated().sum()).item()

    best, left = fewest_separating(tried, still_repeated)
    if not best:
        return (), "N and D repeat and no three columns tell the rows apart: add run_name = [...] by hand"
    note = None if left == 0 else (
        f"with this run_name {left} rows still share N and step (or D) with another: no column tells them apart, "
        "so those that differ in loss will be rejected; check them"
    )
    return (*named_by, *(c.name for c in best)), note


def _where(frame: pl.DataFrame) -> str | None:
    """A W&B runs table's State column: keep the finished runs."""
    state = next((c for c in frame.columns if normalised(c) == "state" and frame.schema[c] == pl.String), None)
    if state is None or "finished" not in frame.get_column(state).unique().to_list():
        return None
    return f'{state} == "finished"' if re.fullmatch(r"[A-Za-z_][\w./:-]*", state) else f'`{state}` == "finished"'


#: Names of a column whose values are families: the training data or the model family of each run.
_FAMILY = ("family", "data", "dataset", "data_mix", "model_family", "corpus")


def _family_column(frame: pl.DataFrame) -> str | None:
    """A text column named as a family or dataset with a few values, each shared by several rows."""
    for name in frame.columns:
        if normalised(name) in _FAMILY and frame.schema[name] == pl.String:
            values = frame.get_column(name).n_unique()
            if 1 < values <= min(50, frame.height // 2):
                return name
    return None


def suggest(path: Path) -> Draft:
    """A draft mapping for ``path`` (see the module docstring)."""
    frame, delimiter = _read(path)
    columns: dict[str, _Column] = {}
    for name in frame.columns:
        series = frame.get_column(name)
        if series.dtype.is_nested():
            continue
        values, suffixed = _numbers(series)
        columns[name] = _Column(name, normalised(name), values, suffixed, series.n_unique(), series.len() - series.null_count())
    chosen: dict[str, Choice] = {}
    rejected: list[tuple[str, str, str]] = []
    for role in ROLES:
        candidates = [
            c for c in columns.values()
            if c.key in EXACT.get(role, ()) or (role in PATTERNS and PATTERNS[role].search(c.key))
        ]
        taken = {choice.column for choice in chosen.values()}
        # among equally good names, the column with a value on more rows (a spreadsheet fills some on a few)
        for column in sorted(candidates, key=lambda c: (_rank(c, role), -c.given)):
            if column.name in taken:
                continue
            if role == "params" and PATTERNS["params_non_embedding"].search(column.key):
                continue  # non-embedding counts are params_non_embedding's
            if role == "tokens" and re.search(r"unique|per_|goal|sec|batch", column.key):
                rejected.append((column.name, role, "a rate, goal or per-epoch count, not the tokens trained on"))
                continue
            if role == "step" and column.key not in EXACT["step"] and re.search(r"num|total|max|per", column.key):
                rejected.append((column.name, role, "a setting or a rate (number of steps, time per step), not the row's step"))
                continue
            transform, why = _fits(column, role)
            if transform is None:
                rejected.append((column.name, role, why))
            elif role not in chosen:
                chosen[role] = Choice(role, column.name, transform or None, why)
            else:
                rejected.append((column.name, role, f"fits too ({why}), but {chosen[role].column!r} was preferred"))
    notes = []
    run_name, problem = _identity(frame, chosen, columns)
    if problem:
        notes.append(problem)
    if not ("params" in chosen and "loss" in chosen and ("tokens" in chosen or "flops" in chosen)):
        notes.append("Some required columns (params, loss, tokens or flops) were not found: complete [columns] by hand.")
    where = _where(frame)
    if where is None and "loss" in chosen and columns[chosen["loss"].column].given < frame.height:
        # rows without a loss are a spreadsheet's headings or settings, not runs: keep the rows that have one
        where = f"`{chosen['loss'].column}` > 0"
        notes.append(f"{frame.height - columns[chosen['loss'].column].given} rows have no {chosen['loss'].column!r}: where keeps the others")
    return Draft(
        path=path, rows=frame.height, delimiter=delimiter, chosen=chosen, run_name=run_name, where=where,
        family_column=_family_column(frame),
        rejected=tuple(rejected), notes=tuple(notes),
    )
