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


# --- chinchilla -----------------------------------------------------------------
def _chinchilla_fit(data: Data, **options: Any) -> FitResult:
    return chinchilla.fit(*_cols(data, "chinchilla", "params", "tokens", "loss"), **options)


def _chinchilla_problem(data: Data, **options: Any) -> Problem:
    return chinchilla.make_problem(
        *_cols(data, "chinchilla", "params", "tokens", "loss"), **_only(chinchilla.make_problem, options)
    )


def _chinchilla_predict(params: Mapping[str, Any], data: Data) -> np.ndarray:
    return chinchilla.predict(params, *_cols(data, "chinchilla", "params", "tokens"))


# --- kaplan ---------------------------------------------------------------------
def _kaplan_fit(data: Data, **options: Any) -> FitResult:
    return kaplan.fit(*_cols(data, "kaplan", "params", "tokens", "loss"), **options)


def _kaplan_problem(data: Data, **options: Any) -> Problem:
    return kaplan.make_problem(
        *_cols(data, "kaplan", "params", "tokens", "loss"), **_only(kaplan.make_problem, options)
    )


def _kaplan_predict(params: Mapping[str, Any], data: Data) -> np.ndarray:
    return kaplan.predict(params, *_cols(data, "kaplan", "params", "tokens"))


# --- data-constrained -------------------------------------------------------------
_DC = ("params", "tokens", "unique_tokens", "loss")


def _dc_fit(data: Data, **options: Any) -> FitResult:
    return data_constrained.fit(*_cols(data, "data_constrained", *_DC), **options)


def _dc_problem(data: Data, **options: Any) -> Problem:
    return data_constrained.make_problem(
        *_cols(data, "data_constrained", *_DC), **_only(data_constrained.make_problem, options)
    )


def _dc_predict(params: Mapping[str, Any], data: Data) -> np.ndarray:
    return data_constrained.predict(
        params, *_cols(data, "data_constrained", "params", "tokens", "unique_tokens")
    )


# --- broken power law ----------------------------------------------------------
def _bpl_fit(data: Data, **options: Any) -> FitResult:
    return broken_power_law.fit(*_cols(data, "broken_power_law", "flops", "loss"), **options)


def _bpl_problem(data: Data, **options: Any) -> Problem:
    return broken_power_law.make_problem(
        *_cols(data, "broken_power_law", "flops", "loss"), **_only(broken_power_law.make_problem, options)
    )


def _bpl_predict(params: Mapping[str, Any], data: Data) -> np.ndarray:
    return broken_power_law.predict(params, column(data, "flops", "broken_power_law"))


# --- isoflop (Approach 2) -------------------------------------------------------
def _isoflop_fit(data: Data, **options: Any) -> FitResult:
    return isoflop.fit(*_cols(data, "isoflop", "params", "tokens", "loss", "budget"), **options)


def _isoflop_predict(params: Mapping[str, Any], data: Data) -> np.ndarray:
    return isoflop.predict(params, column(data, "budget", "isoflop"))[0]


LAWS: dict[str, Law] = {
    "chinchilla": Law(
        name="chinchilla",
        param_names=chinchilla.PARAM_NAMES,
        required_columns=("params", "tokens", "loss"),
        fit=_chinchilla_fit,
        predict=_chinchilla_predict,
        description="Hoffmann et al. 2022 Approach 3: L = E + A/N^alpha + B/D^beta",
        make_problem=_chinchilla_problem,
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
    "kaplan": Law(
        name="kaplan",
        param_names=kaplan.PARAM_NAMES,
        required_columns=("params", "tokens", "loss"),
        fit=_kaplan_fit,
        predict=_kaplan_predict,
        description="Kaplan et al. 2020: L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
        make_problem=_kaplan_problem,
    ),
    "broken_power_law": Law(
        name="broken_power_law",
        param_names=broken_power_law.PARAM_NAMES,
        required_columns=("flops", "loss"),
        fit=_bpl_fit,
        predict=_bpl_predict,
        description="Caballero et al. 2022: smoothly broken power law of loss in compute",
        make_problem=_bpl_problem,
    ),
    "data_constrained": Law(
        name="data_constrained",
        param_names=data_constrained.PARAM_NAMES,
        required_columns=("params", "tokens", "unique_tokens", "loss"),
        fit=_dc_fit,
        predict=_dc_predict,
        description="Muennighoff et al. 2023: Chinchilla law with decaying value of repeated data and excess parameters",
        make_problem=_dc_problem,
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
