"""Unit rules: how counts written the way people write them become plain numbers.

Exports from spreadsheets and trackers write "2.8B" parameters, token counts in millions or as
log10. Each rule is a polars expression over a string or numeric column, so a million-row file is
converted without a Python loop; anything a rule cannot read becomes null and is reported by the
caller as a row-level reason (never guessed).
"""

from __future__ import annotations

import polars as pl

#: Suffixes that mean the same thing wherever they appear in a count of parameters or tokens.
SUFFIX_MULTIPLIERS: dict[str, float] = {
    "": 1.0,
    "K": 1e3,
    "M": 1e6,
    "B": 1e9,
    "G": 1e9,
    "T": 1e12,
}

#: Compute written in larger units: one of these times its FLOPs (a PFLOP/s-day is 1e15 FLOP/s for a day).
FLOP_UNITS: dict[str, float] = {
    "gflops": 1e9,
    "tflops": 1e12,
    "pflops": 1e15,
    "eflops": 1e18,
    "zflops": 1e21,
    "pflop_days": 1e15 * 86_400,
}
#: A loss written as a perplexity: its natural logarithm is the cross-entropy in nats.
LOSS_TRANSFORMS = ("ln",)
TRANSFORMS = ("suffix", "log10", "exp", "thousands", "millions", "billions", "trillions", "number", *LOSS_TRANSFORMS, *FLOP_UNITS)

_SUFFIX_RE = r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([KkMmBbGgTt]?)\s*$"
#: A value written with a unit suffix ("2.8B", "70M"); used to explain why a loss cannot have one.
SUFFIXED_RE = r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*[KkMmBbGgTt]\s*$"
#: A percentage ("11%"): never a count or a loss, so never converted.
PERCENT_RE = r"%\s*$"


def _as_float(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        return expr.str.strip_chars().cast(pl.Float64, strict=False)
    return expr.cast(pl.Float64, strict=False)


def apply_transform(expr: pl.Expr, dtype: pl.DataType, transform: str) -> pl.Expr:
    """A float expression for ``expr`` read under ``transform``; unreadable values become null."""
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; known: {', '.join(TRANSFORMS)}")
    if transform == "suffix":
        if dtype != pl.String:
            return expr.cast(pl.Float64, strict=False)
        text = expr.cast(pl.String)
        # A plain number first (this also reads "nan" and "inf", so validation can name them);
        # then a number with a suffix. Anything else ("11%", "2.8 billion") stays null.
        plain = text.str.strip_chars().cast(pl.Float64, strict=False)
        number = text.str.extract(_SUFFIX_RE, 1).cast(pl.Float64, strict=False)
        unit = text.str.extract(_SUFFIX_RE, 2).str.to_uppercase()
        multiplier = unit.replace_strict(SUFFIX_MULTIPLIERS, default=None, return_dtype=pl.Float64)
        return pl.coalesce(plain, number * multiplier)
    value = _as_float(expr, dtype)
    if transform == "log10":
        return pl.lit(10.0) ** value
    if transform == "exp":
        return value.exp()
    if transform == "ln":  # a perplexity of 1 or less is no perplexity: null, so the row is rejected naming it
        return pl.when(value > 1.0).then(value.log())
    scale = {"thousands": 1e3, "millions": 1e6, "billions": 1e9, "trillions": 1e12, **FLOP_UNITS}.get(transform, 1.0)
    return value * scale
