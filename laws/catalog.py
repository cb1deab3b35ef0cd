"""The catalogue of laws: one uniform interface over every law module.

The registry and pipelines work with columns (``params``, ``tokens``,
``loss``, ``unique_tokens``, ``flops``, ``budget``); the law modules work
with the arrays each law needs.  A :class:`Law` adapts one to the other, so
callers can loop over ``LAWS`` without knowing which law takes which inputs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from laws import broken_power_law, chinchilla, data_constrained, isoflop, kaplan
from laws.optimize import Problem
from laws.runs import column
from laws.types import FitResult

__all__ = ["Law", "LAWS", "get_law", "COLUMNS"]

Data = Mapping[str, np.ndarray]

#: every column name a law may require
COLUMNS: tuple[str, ...] = ("params", "tokens", "loss", "unique_tokens", "flops", "budget")


@dataclass(frozen=True)
class Law:
    """One law, described uniformly.

    Attributes:
        name: catalogue key.
        param_names: names of the fitted parameters (default configuration).
        required_columns: data columns ``fit`` and ``predict`` need.
        fit: ``fit(data, **options) -> FitResult``.
        predict: ``predict(params, data) -> np.ndarray``; what it returns is
            named by ``predicts``.
        description: one line for listings.
        predicts: "loss" for loss laws; "n_opt" for Approach 2, which has no
            loss surface and predicts the compute-optimal size per budget.
        make_problem: ``make_problem(data, **options) -> Problem`` for laws whose
            bootstrap can run vectorised (None: resamples are refitted one by one).
    """

    name: str
    param_names: tuple[str, ...]
    required_columns: tuple[str, ...]
    fit: Callable[..., FitResult]
    predict: Callable[[Mapping[str, Any], Data], np.ndarray]
    description: str
    predicts: str = "loss"
    make_problem: Callable[..., Problem] | None = None

    def check_columns(self, data: Data) -> None:
        """Raise ``ValueError`` naming any required column missing from ``data``."""
        missing = [c for c in self.required_columns if c not in data]
        if missing:
            raise ValueError(
                f"law {self.name!r} needs columns {list(self.required_columns)}; "
                f"missing {missing} (got {sorted(data)})"
            )


def _only(func: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the options ``func`` accepts (the bootstrap passes fit options on)."""
    params = inspect.signature(func).parameters
    return {k: v for k, v in options.items() if k in params}


def _cols(data: Data, law: str, *names: str) -> list[np.ndarray]:
    return [column(data, n, law) for n in names]


def _parametric(name: str, module: ModuleType, columns: tuple[str, ...], description: str) -> Law:
    """A :class:`Law` for a module with ``fit``, ``make_problem`` and ``predict``.

    ``fit`` and ``make_problem`` take ``columns`` in order; ``predict`` takes
    the same columns without ``loss``.
    """
    inputs = tuple(c for c in columns if c != "loss")

    def fit(data: Data, **options: Any) -> FitResult:
        return module.fit(*_cols(data, name, *columns), **options)

    def make_problem(data: Data, **options: Any) -> Problem:
        return module.make_problem(*_cols(data, name, *columns), **_only(module.make_problem, options))

    def predict(params: Mapping[str, Any], data: Data) -> np.ndarray:
        return module.predict(params, *_cols(data, name, *inputs))

    return Law(
        name=name,
        param_names=module.PARAM_NAMES,
        required_columns=columns,
        fit=fit,
        predict=predict,
        description=description,
        make_problem=make_problem,
    )


# --- isoflop (Approach 2) -------------------------------------------------------
def _isoflop_fit(data: Data, **options: Any) -> FitResult:
    return isoflop.fit(*_cols(data, "isoflop", "params", "tokens", "loss", "budget"), **options)


def _isoflop_predict(params: Mapping[str, Any], data: Data) -> np.ndarray:
    return isoflop.predict(params, column(data, "budget", "isoflop"))[0]


LAWS: dict[str, Law] = {
    "chinchilla": _parametric(
        "chinchilla", chinchilla, ("params", "tokens", "loss"),
        "Hoffmann et al. 2022 Approach 3: L = E + A/N^alpha + B/D^beta",
    ),
    "isoflop": Law(
        name="isoflop",
        param_names=isoflop.PARAM_NAMES,
        required_columns=("params", "tokens", "loss", "budget"),
        fit=_isoflop_fit,
        predict=_isoflop_predict,
        description="Hoffmann et al. 2022 Approach 2: IsoFLOP parabolas, N_opt = k_n C^a, D_opt = k_d C^b",
        predicts="n_opt",
    ),
    "kaplan": _parametric(
        "kaplan", kaplan, ("params", "tokens", "loss"),
        "Kaplan et al. 2020: L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
    ),
    "broken_power_law": _parametric(
        "broken_power_law", broken_power_law, ("flops", "loss"),
        "Caballero et al. 2022: smoothly broken power law of loss in compute",
    ),
    "data_constrained": _parametric(
        "data_constrained", data_constrained, ("params", "tokens", "unique_tokens", "loss"),
        "Muennighoff et al. 2023: Chinchilla law with decaying value of repeated data and excess parameters",
    ),
}


def get_law(name: str | Law) -> Law:
    """Look a law up by name, failing with the list of known laws."""
    if isinstance(name, Law):
        return name
    try:
        return LAWS[name]
    except KeyError:
        raise ValueError(f"unknown law {name!r}; choose one of {sorted(LAWS)}") from None
