"""Percentile intervals from draws of a law's parameters.

One place computes every interval the registry publishes: of a parameter, of
the allocation exponents, and of the compute-optimal allocation at any
budget.  The draws come from a bootstrap (:mod:`laws.bootstrap`) or from the
registry's stored samples; the coverage is the caller's setting (95% by
default), never a literal.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from laws.law import Law

__all__ = ["DEFAULT_LEVEL", "ALLOCATION_FIELDS", "check_level", "percentile_interval", "Samples"]

#: coverage of the intervals a refit publishes unless its settings say otherwise
DEFAULT_LEVEL = 0.95
#: the allocation quantities that get an interval
ALLOCATION_FIELDS = ("n_opt", "d_opt", "tokens_per_param", "predicted_loss")

Interval = tuple[Any, Any]


def check_level(level: float) -> float:
    """``level`` if it is a coverage in (0, 1) (0.95, not 95)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return level


def percentile_interval(values: Any, level: float) -> Interval:
    """Central percentile interval over the first axis of ``values`` (one row per draw).

    NaN draws (resamples that could not be fitted) are left out; the result
    has the shape of one row (a float for 1-D ``values``).
    """
    q = 100 * np.array([(1 - check_level(level)) / 2, (1 + level) / 2])
    # unidentified parameters may be inf; a quantity a law does not give (Approach 1's loss) is all NaN
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        lo, hi = np.nanpercentile(np.asarray(values, float), q, axis=0)
    return _scalar(lo), _scalar(hi)


def _scalar(x: np.ndarray) -> Any:
    return float(x) if np.ndim(x) == 0 else x


@dataclass(frozen=True, eq=False)
class Samples:
    """Draws of a law's parameters, one row per draw (NaN rows for failed draws).

    Attributes:
        names: parameter names, one per column.
        values: ``(B, p)`` natural-scale values.
    """

    names: tuple[str, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        if np.ndim(self.values) != 2 or np.shape(self.values)[1] != len(self.names):
            raise ValueError(f"samples of {list(self.names)} must be (draws, {len(self.names)}); got {np.shape(self.values)}")

    def params(self) -> dict[str, np.ndarray]:
        """``{name: (B, 1) column}``: broadcasts against a row of budgets or runs."""
        return {name: self.values[:, i : i + 1] for i, name in enumerate(self.names)}

    def interval(self, level: float) -> dict[str, tuple[float, float]]:
        """Percentile interval of every parameter."""
        lo, hi = percentile_interval(self.values, level)
        return {name: (float(a), float(b)) for name, a, b in zip(self.names, np.atleast_1d(lo), np.atleast_1d(hi))}

    def exponent_interval(self, law: Law, level: float) -> dict[str, tuple[float, float]]:
        """Intervals of the allocation exponents ``a`` (N_opt ~ C^a) and ``b`` (D_opt ~ C^b)."""
        a, b = law.exponents(self.params())
        return {"a": percentile_interval(np.ravel(a), level), "b": percentile_interval(np.ravel(b), level)}

    def allocation_interval(
        self, law: Law, compute: Any, level: float, *, flops_per_param_token: float = 6.0
    ) -> dict[str, Interval]:
        """Intervals of the compute-optimal allocation at ``compute`` (scalar or array of budgets).

        Returns:
            ``{field: (lo, hi)}`` for :data:`ALLOCATION_FIELDS`, each shaped like ``compute``.
        """
        C = np.asarray(compute, float)
        spread = law.allocate(self.params(), C.ravel()[None, :], flops_per_param_token=flops_per_param_token)
        out = {}
        for name in ALLOCATION_FIELDS:
            lo, hi = percentile_interval(np.broadcast_to(getattr(spread, name), (self.values.shape[0], C.size)), level)
            out[name] = (_scalar(lo.reshape(C.shape)), _scalar(hi.reshape(C.shape)))
        return out
