"""Models of training runs as they arrive (one row per input row and loss) and as the registry keeps them."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pandera.polars as pa

from schemas.families import FAMILY_PATTERN

#: A cross-entropy loss in nats above this is not a language-model loss (a mistyped column, a
#: perplexity, a percentage): the row is rejected.
MAX_PLAUSIBLE_LOSS = 20.0
#: Above this the run most likely diverged: it is kept but flagged and left out of fits by default.
DIVERGED_LOSS = 6.0
#: Given compute may differ from 6ND by this relative amount before the run is flagged. Real
#: counts include attention and embedding FLOPs, so they sit above 6ND; beyond this they are
#: probably a different unit or a different accounting, which the user should see.
COMPUTE_TOLERANCE = 0.25
#: Counts below this are almost surely log10 values or a unit slip (tokens = 11.3).
MIN_PLAUSIBLE_COUNT = 1_000.0
#: Two values of one run (from two files, or a float32 and a float64 export) are the same value when
#: they agree to this relative difference: float32 keeps about 7 significant digits (3.1 is stored as
#: 3.0999999), and no loss, count or FLOP figure is meaningful beyond 6.
SAME_VALUE_RTOL = 1e-6


@dataclass(frozen=True)
class Bound:
    """The physical range of one canonical column (inclusive), and what a value outside it most likely is."""

    low: float
    high: float
    below: str
    above: str


#: What a value outside its physical range most likely is (messages shared by several columns).
_LOG10_SLIP = "looks like a log10 value or a unit slip; give the raw count (e.g. 2.8e9) or use a mapping transform (log10, suffix)"
_TOO_MANY_PARAMS = "more parameters than any trained model by a factor of 500; check the unit (a count, not bytes or FLOPs)"
_TOO_MANY_TOKENS = "more tokens than any training corpus by a factor of 1,000; check the unit (tokens, not bytes or FLOPs)"
#: Physical ranges of the numbers a run may carry. A value outside is not a trained language model
#: (or is in another unit) and its row is rejected naming the bound; the README documents this table.
#: The largest published runs (2025) have N ~ 2e12 parameters, D ~ 4e13 tokens and C ~ 5e25 FLOPs:
#: the upper bounds leave two to four orders of magnitude of room. A cross-entropy in nats of a model
#: that learned anything sits between about 0.5 and the log of its vocabulary (~12).
PHYSICAL_BOUNDS: dict[str, Bound] = {
    "params": Bound(MIN_PLAUSIBLE_COUNT, 1e15, below=_LOG10_SLIP, above=_TOO_MANY_PARAMS),
    "params_non_embedding": Bound(1.0, 1e15, below="a non-embedding parameter count is at least 1", above=_TOO_MANY_PARAMS),
    "tokens": Bound(MIN_PLAUSIBLE_COUNT, 1e17, below=_LOG10_SLIP, above=_TOO_MANY_TOKENS),
    "unique_tokens": Bound(MIN_PLAUSIBLE_COUNT, 1e17, below=_LOG10_SLIP, above=_TOO_MANY_TOKENS),
    "flops": Bound(
        1.0, 1e30,
        below="compute is at least one FLOP; check the unit (FLOPs, not PetaFLOP-days or log10)",
        above="more compute than any training run by a factor of 10,000; check the unit (FLOPs)",
    ),
    "loss": Bound(
        1e-3, MAX_PLAUSIBLE_LOSS,
        below="not a cross-entropy in nats of a language model (a probability, an error rate or a log-scale slip?)",
        above="not a plausible cross-entropy in nats (a perplexity or a percentage?)",
    ),
}

#: The canonical columns every adapter produces, in order.
INCOMING_COLUMNS: dict[str, pl.DataType] = {
    "row_number": pl.Int64(),
    "member": pl.String(),
    "family": pl.String(),
    "run_name": pl.String(),
    "params": pl.Float64(),
    "params_non_embedding": pl.Float64(),
    "tokens": pl.Float64(),
    "unique_tokens": pl.Float64(),
    "flops": pl.Float64(),
    "loss": pl.Float64(),
    "loss_name": pl.String(),
    "fit_loss": pl.Boolean(),
    "step": pl.Int64(),
    "tokens_derived": pl.Boolean(),
    "tags": pl.String(),
}


class IncomingPoint(pa.DataFrameModel):
    """One loss value of one input row, after an adapter has mapped it to canonical names.

    Row-level problems found here become reasons in ``rejects``; nothing is dropped silently.
    """

    row_number: int = pa.Field(ge=1)
    family: str = pa.Field(str_matches=FAMILY_PATTERN)
    run_name: str = pa.Field(nullable=True)
    params: float = pa.Field(gt=0)
    params_non_embedding: float = pa.Field(gt=0, nullable=True)
    tokens: float = pa.Field(gt=0)
    unique_tokens: float = pa.Field(gt=0, nullable=True)
    flops: float = pa.Field(gt=0, nullable=True)
    loss: float = pa.Field(gt=0)
    loss_name: str = pa.Field(str_length={"min_value": 1, "max_value": 200})
    step: int = pa.Field(ge=0, nullable=True)

    @pa.check("params", "params_non_embedding", "tokens", "unique_tokens", "flops", "loss", name="finite")
    @classmethod
    def finite(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """NaN and infinity pass ``gt=0`` in polars, so finiteness is its own check."""
        col = pl.col(data.key)
        return data.lazyframe.select(col.is_finite() | col.is_null())

    @pa.check(*PHYSICAL_BOUNDS, name="physical_range")
    @classmethod
    def physical_range(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """Inside :data:`PHYSICAL_BOUNDS`. Missing, non-finite and non-positive values have their own checks."""
        col, bound = pl.col(data.key), PHYSICAL_BOUNDS[data.key]
        other_check = col.is_null() | ~col.is_finite() | (col <= 0)
        return data.lazyframe.select(other_check | col.is_between(bound.low, bound.high))

    class Config:
        strict = False
        coerce = False
