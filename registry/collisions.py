"""Rows of one file that land on the same point (family, run, step, loss name): repeats or different runs.

Two rows with the same point and the same loss are a repeat: the first is kept, the later ones are
rejected naming it. Two rows with the same point and *different* losses are not a repeat: they are
different runs that the file's run names do not tell apart (several runs per model size, each row a
checkpoint). Keeping either would put one run's checkpoint on another's curve, so every row of such a
collision is rejected, naming the rows and the columns whose values differ between them, and, when
some of those columns tell every colliding run apart, the ``run_name = [...]`` that would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from typing import TypeVar

import polars as pl

from registry.adapters.base import Batch
from schemas.runs import SAME_VALUE_RTOL

POINT_KEY = ["family", "run_name", "step", "loss_name"]
T = TypeVar("T")
REJECT_SCHEMA = {"row_number": pl.Int64, "reason": pl.String}
#: Rows named in one message, and candidate columns tried (alone, in pairs and threes) as a run identity.
SHOWN_ROWS = 8
TRIED_COLUMNS = 10


def fewest_separating(candidates: Sequence[T], still_colliding: Callable[[tuple[T, ...]], int]) -> tuple[tuple[T, ...], int]:
    """The one, two or three candidates that leave the fewest rows colliding (none, if none helps), and that count.

    Smaller sets first: a larger set is taken only if it leaves fewer rows colliding.
    """
    best: tuple[T, ...] = ()
    left = still_colliding(best)
    for size in (1, 2, 3):
        for chosen in combinations(candidates, size):
            if left and (count := still_colliding(chosen)) < left:
                best, left = chosen, count
        if left == 0:
            break
    return best, left


def _same_losses(loss: pl.Expr) -> pl.Expr:
    """All losses of a group agree (to the float32 precision two files of the same runs may differ by)."""
    return (loss.max() - loss.min()) <= SAME_VALUE_RTOL * loss.abs().max()


def within_file_collisions(points: pl.DataFrame, batch: Batch) -> pl.DataFrame:
    """(row_number, reason) for rows repeating an earlier row's point, and for rows of colliding runs.

    ``points`` carry ``run``, a number per run (family, run name) of the file (see registry/ingest.py).
    """
    # Every repeat is in a run with fewer distinct (step, loss name) than points. They are counted by hash, per
    # run number: a fraction of the cost of comparing every point's whole key, and two points sharing a hash only
    # make their run a suspect; only suspects' points are then compared point by point.
    suspect = (
        points.group_by("run").agg(pl.len() > pl.struct(POINT_KEY[2:]).hash().n_unique())
        .filter(pl.col("len")).select("run")
    )
    if suspect.height == 0:
        return pl.DataFrame(schema=REJECT_SCHEMA)
    points = points.join(suspect, on="run", how="semi")
    groups = (
        points.filter(pl.struct(POINT_KEY).is_duplicated())
        .with_columns(
            pl.col("row_number").min().over(POINT_KEY).alias("first_row"),
            _same_losses(pl.col("loss")).over(POINT_KEY).alias("repeat"),
        )
    )
    repeats = groups.filter(pl.col("repeat") & (pl.col("row_number") != pl.col("first_row")))
    rejects = [
        repeats.select(
            pl.col("row_number").cast(pl.Int64),
            (
                pl.lit("repeats row ") + pl.col("first_row").cast(pl.String)
                + pl.lit(" of this file (same family, run, step and loss name); remove one of them")
            ).alias("reason"),
        )
    ]
    colliding = groups.filter(~pl.col("repeat"))
    if colliding.height:
        rejects.append(_collision_rejects(colliding, batch))
    return pl.concat(rejects).unique(maintain_order=True)


def _collision_rejects(colliding: pl.DataFrame, batch: Batch) -> pl.DataFrame:
    """Every row of a collision, with one message per collision naming its rows and what tells the runs apart."""
    advice = _identity_advice(colliding, batch)
    per_group = colliding.group_by(POINT_KEY, maintain_order=True).agg(
        pl.col("row_number").sort().alias("rows"), pl.col("loss").sort_by("row_number").alias("losses")
    )
    messages = []
    for group in per_group.iter_rows(named=True):
        rows, losses = group["rows"], group["losses"]
        shown = ", ".join(str(r) for r in rows[:SHOWN_ROWS]) + (f" and {len(rows) - SHOWN_ROWS} more" if len(rows) > SHOWN_ROWS else "")
        values = ", ".join(f"{loss:.6g}" for loss in losses[:SHOWN_ROWS]) + (", ..." if len(losses) > SHOWN_ROWS else "")
        step = "no step" if group["step"] is None else f"step {group['step']}"
        messages.append({
            "rows": rows,
            "reason": (
                f"rows {shown} of this file have the same family, run name {group['run_name']!r}, {step} and loss name "
                f"{group['loss_name']!r} but different losses ({values}): they are different runs, not repeats. {advice}"
            ),
        })
    return (
        pl.DataFrame(messages, schema={"rows": pl.List(pl.Int64), "reason": pl.String})
        .explode("rows")
        .select(pl.col("rows").alias("row_number"), "reason")
    )


def _identity_advice(colliding: pl.DataFrame, batch: Batch) -> str:
    """The columns whose values differ between colliding rows, and the fewest that tell every colliding run apart."""
    columns = [c for c in batch.raw.columns if c not in ("row_number", *batch.loss_columns, *batch.identity_columns)]
    if not columns or set(batch.raw.columns) <= {"row_number", "member", "raw"}:  # an adapter's rows: no columns to offer
        return "Give each run its own run_name."
    # the file's columns under names of their own: a file may have columns called family or run_name too
    alias = {c: f"column {i}" for i, c in enumerate(columns)}
    raw = batch.raw.select("row_number", *(pl.col(c).cast(pl.String, strict=False).alias(alias[c]) for c in columns))
    as_text = colliding.select(*POINT_KEY, "row_number", "loss").join(raw, on="row_number", how="left")
    differing = as_text.group_by(POINT_KEY).agg(pl.col(list(alias.values())).n_unique() > 1).select(pl.col(list(alias.values())).any())
    differ = [c for c in columns if differing.get_column(alias[c]).item()]
    if not differ:
        return (
            "No column of the file differs between them: give each run its own name (a run_name column, or "
            "run_name = [...] in the mapping naming the columns that tell runs apart)."
        )
    # columns that take few values across the file name runs; those with a value per row are measurements
    cardinality = {c: batch.raw.get_column(c).n_unique() for c in differ}
    differ = [c for c in differ if cardinality[c] <= max(2, batch.raw.height // 2)]
    if not differ:
        return "Only measurements differ between them: give each run its own run_name."

    def still_colliding(chosen: tuple[str, ...]) -> int:
        groups = as_text.group_by(*POINT_KEY, *(alias[c] for c in chosen)).agg(_same_losses(pl.col("loss")), pl.len())
        return groups.filter(~pl.col("loss")).get_column("len").sum()

    separating, left = fewest_separating(sorted(differ, key=cardinality.get)[:TRIED_COLUMNS], still_colliding)
    named = ", ".join(repr(c) for c in differ[:12]) + (" ..." if len(differ) > 12 else "")
    text = f"Columns whose values differ between them: {named}."
    if not separating:
        return text + " None of them tells the colliding runs apart: give each run its own run_name."
    rest = "" if left == 0 else f" (the {left} rows no column tells apart still collide: check them)"
    identity = ", ".join(f'"{c}"' for c in [*batch.identity_columns, *separating])
    return (
        text + f" Together with the run name, {' and '.join(repr(c) for c in separating)} "
        f"{'tells' if len(separating) == 1 else 'tell'} the colliding runs apart: "
        f"give the runs an identity with run_name = [{identity}] in the mapping{rest}."
    )
