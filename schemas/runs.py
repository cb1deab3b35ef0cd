"""Models of training runs as they arrive (one row per input row and loss) and as the registry keeps them."""

from __future__ import annotations

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
    loss: float = pa.Field(gt=0, le=MAX_PLAUSIBLE_LOSS)
    loss_name: str = pa.Field(str_length={"min_value": 1, "max_value": 200})
    step: int = pa.Field(ge=0, nullable=True)

    @pa.check("params", "params_non_embedding", "tokens", "unique_tokens", "flops", "loss", name="finite")
    @classmethod
    def finite(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """NaN and infinity pass ``gt=0`` in polars, so finiteness is its own check."""
        col = pl.col(data.key)
        return data.lazyframe.select(col.is_finite() | col.is_null())

    @pa.check("params", "tokens", "unique_tokens", name="plausible_count")
    @classmethod
    def plausible_count(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """Parameter or token counts below 1,000 are log10 values or a unit slip (tokens = 11.3)."""
        col = pl.col(data.key)
        return data.lazyframe.select((col >= MIN_PLAUSIBLE_COUNT) | col.is_null() | (col <= 0) | col.is_nan())

    class Config:
        strict = False
        coerce = False


class RegistryRun(pa.DataFrameModel):
    """A row of ``runs``: one trained model, its final (fitted) loss and how each number was obtained."""

    run_id: str = pa.Field(str_length=16, unique=True)
    family: str = pa.Field(str_matches=FAMILY_PATTERN)
    run_name: str
    params: float = pa.Field(gt=0)
    tokens: float = pa.Field(gt=0)
    flops: float = pa.Field(gt=0)
    flops_derived: bool
    loss: float = pa.Field(gt=0, le=MAX_PLAUSIBLE_LOSS)
    loss_name: str

    class Config:
        strict = False
