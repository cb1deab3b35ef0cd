"""The :class:`Law` type: the one place where a law is special.

A law knows its parameters (and which are fitted as logarithms), the columns
it needs, its options type, how to fit and predict, and its allocation rule;
everything else -- the bootstrap, extrapolation checks, the registry's
refits, the ``fit`` command, the plots -- asks the law instead of comparing
its name.  Each law module defines its subclass next to the numerical code
it wraps; :mod:`laws.catalog` lists them by name.

The class attributes a refit reads describe a law's role, not its identity:
``primary`` (the law planners read), ``cross_checks_exponent`` (an
independent estimate of the allocation exponent the primary law is compared
with) and ``fitted_per_family``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from laws import allocation
from laws.optimize import Problem
from laws.options import Options
from laws.parameters import ParameterSpace
from laws.runs import column
from laws.types import Allocation, FitResult

__all__ = ["Law", "ArrayFunctions", "Data", "COLUMNS"]

Data = Mapping[str, np.ndarray]

#: every column name a law may require; ``run`` numbers the run each observation (a
#: checkpoint) belongs to, for a law that reads training curves
COLUMNS: tuple[str, ...] = ("params", "tokens", "loss", "unique_tokens", "flops", "budget", "run")


@dataclass(frozen=True)
class ArrayFunctions:
    """A law module's numerical functions, on arrays in ``required_columns`` order.

    Attributes:
        fit: ``fit(*required_columns, options) -> FitResult``.
        predict: ``predict(params, *inputs)`` (the required columns without ``loss``).
        make_problem: ``make_problem(*required_columns, options) -> Problem``, or
            None when the bootstrap must refit resample by resample.
    """

    fit: Callable[..., FitResult]
    predict: Callable[..., Any]
    make_problem: Callable[..., Problem] | None = None


class Law:
    """A scaling law, described uniformly.

    Attributes:
        name: catalogue key.
        description: one line for listings.
        parameters: the fitted parameters (default configuration) and which
            are fitted as their logarithm; :attr:`param_names` and
            :attr:`log_params` read them.
        required_columns: data columns ``fit`` needs (``predict`` needs them
            without ``loss``).
        options_type: the frozen options record ``fit`` takes.
        predicts: "loss" for loss laws; "n_opt" for Approach 2, which has no
            loss surface and predicts the compute-optimal size per budget.
        allocates: the law has a compute-optimal allocation rule.
        inference_aware: the law has Sardana et al.'s inference-aware rule
            (Chinchilla form: it needs E, A, B, alpha, beta and no other terms).
        primary: the law planners read; a refit gives it the family's fit
            settings and the full bootstrap, gates it and publishes its allocations.
        cross_checks_exponent: the law estimates the allocation exponent
            independently of the primary law, whose agreement gate compares
            the two (so a refit fits it first).
        fitted_per_family: a refit fits the law to every family whose runs
            carry its columns (False for a law of one series, such as loss
            against compute along a chosen frontier).
        approach: Hoffmann et al.'s name for the law's route to the
            allocation ("Approach 1", "2", "3"), or None; the approaches a
            family's runs support are compared with one another.
        profiled: the allocation's identification is checked by profiles of
            the objective (:mod:`laws.profiles`, the Chinchilla form).
        plausible: natural-scale ``{name: (lo, hi)}`` outside which a fitted
            parameter is not believable (open interval).
        gated_intervals: the parameters whose bootstrap interval must be
            narrow enough to plan with (exponents relative to their value,
            scales in decades).
        arrays: the module's functions on arrays that :meth:`fit`,
            :meth:`predict` and :meth:`make_problem` call.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[ParameterSpace]
    required_columns: ClassVar[tuple[str, ...]]
    options_type: ClassVar[type[Options]]
    predicts: ClassVar[str] = "loss"
    allocates: ClassVar[bool] = False
    inference_aware: ClassVar[bool] = False
    primary: ClassVar[bool] = False
    cross_checks_exponent: ClassVar[bool] = False
    fitted_per_family: ClassVar[bool] = True
    approach: ClassVar[str | None] = None
    profiled: ClassVar[bool] = False
    plausible: ClassVar[Mapping[str, tuple[float, float]]] = {}
    gated_intervals: ClassVar[tuple[str, ...]] = ()
    arrays: ClassVar[ArrayFunctions]

    def __repr__(self) -> str:
        return f"<law {self.name}>"

    # -- options and parameters ---------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the fitted parameters (default configuration), in ``theta`` order."""
        return self.parameters.names

    @property
    def log_params(self) -> frozenset[str]:
        """The parameters fitted as their logarithm (scales)."""
        return self.parameters.log_params

    def options(self, given: Options | Mapping[str, Any] | None = None) -> Options:
        """This law's options record from a record, a mapping (unknown keys are an error) or None."""
        return self.options_type.of(given, self.name)

    def space(self, options: Options | Mapping[str, Any] | None = None) -> ParameterSpace:
        """The parameters of the configuration ``options`` asks for (one configuration for most laws)."""
        self.options(options)  # an unknown option is an error here too
        return self.parameters

    def to_theta(self, params: Mapping[str, Any], options: Options | Mapping[str, Any] | None = None) -> np.ndarray:
        """Natural parameters to the internal vector (logs of the scales)."""
        return self.space(options).to_theta(params)

    def to_natural(self, theta: np.ndarray, options: Options | Mapping[str, Any] | None = None) -> np.ndarray:
        """Internal vector(s) to natural parameters, in ``param_names`` order."""
        return self.space(options).to_natural(theta)

    # -- data ---------------------------------------------------------------
    def check_columns(self, data: Data) -> None:
        """Raise ``ValueError`` naming any required column missing from ``data``."""
        missing = [c for c in self.required_columns if c not in data]
        if missing:
            raise ValueError(
                f"law {self.name!r} needs columns {list(self.required_columns)}; "
                f"missing {missing} (got {sorted(data)})"
            )

    def columns(self, data: Data, names: tuple[str, ...] | None = None) -> list[np.ndarray]:
        """The arrays of ``names`` (default: the required columns), in that order."""
        return [column(data, name, self.name) for name in (names or self.required_columns)]

    def inputs(self, data: Data) -> list[np.ndarray]:
        """The arrays ``predict`` needs: the required columns without ``loss``."""
        return self.columns(data, tuple(c for c in self.required_columns if c != "loss"))

    # -- fitting ------------------------------------------------------------
    def fit(self, data: Data, options: Options | Mapping[str, Any] | None = None) -> FitResult:
        """Fit the law to the runs in ``data``.

        Raises:
            laws.errors.FitError: the runs cannot support the fit.
            ValueError: a required column is missing or an option is unknown.
        """
        return self.arrays.fit(*self.columns(data), self.options(options))

    def predict(self, params: Mapping[str, Any], data: Data) -> np.ndarray:
        """What the law predicts (see :attr:`predicts`) for the runs in ``data``."""
        return self.arrays.predict(params, *self.inputs(data))

    def make_problem(self, data: Data, options: Options | Mapping[str, Any] | None = None) -> Problem | None:
        """The fit as a :class:`~laws.optimize.Problem`, so a bootstrap can refine
        all resamples together; None when resamples must be refitted one by one."""
        if self.arrays.make_problem is None:
            return None
        return self.arrays.make_problem(*self.columns(data), self.options(options))

    def resample_groups(self, data: Data, options: Options | Mapping[str, Any] | None = None) -> np.ndarray | None:
        """The unit a bootstrap of this law resamples, one label per observation; None: each observation."""
        return None

    def refit_resamples(
        self, data: Data, options: Options | Mapping[str, Any] | None, counts: np.ndarray
    ) -> np.ndarray | None:
        """Parameters ``(B, p)`` of every resample at once (``counts`` over the input observations), for a
        law with no :class:`~laws.optimize.Problem` that can refit all resamples together; None: one by one."""
        return None

    # -- allocation ---------------------------------------------------------
    def allocate(
        self,
        params: Mapping[str, Any],
        compute: Any,
        *,
        flops_per_param_token: float = 6.0,
        unique_tokens: Any = None,
    ) -> Allocation:
        """Loss-minimising ``(N, D)`` for a training budget (scalar or array).

        Args:
            params: the law's parameters; values may be arrays (e.g. bootstrap
                draws shaped ``(B, 1)``) that broadcast against ``compute``.
            compute: training FLOPs, scalar or array.
            flops_per_param_token: FLOPs per parameter per token (6 for a dense
                transformer forward+backward pass).
            unique_tokens: unique tokens available, for a law that models
                repeated data (None: unlimited data).

        Raises:
            ValueError: the law has no compute-optimal allocation, or does not
                model unique tokens and was given them.
        """
        if not self.allocates:
            raise ValueError(f"law {self.name!r} has no compute-optimal allocation")
        if unique_tokens is not None and "unique_tokens" not in self.required_columns:
            raise ValueError(f"law {self.name!r} does not model unique tokens; only a data-constrained law takes them")
        C = allocation.budgets(compute)
        n, d, loss = self._optimum(params, C, float(flops_per_param_token), unique_tokens)
        return allocation.as_allocation(n, d, loss, flops_per_param_token)

    def _optimum(self, params: Mapping[str, Any], C: np.ndarray, k: float, unique_tokens: Any) -> tuple[Any, Any, Any]:
        """``(N_opt, D_opt, predicted loss)`` at budgets ``C``; laws that allocate override this."""
        raise ValueError(f"law {self.name!r} has no compute-optimal allocation")

    def exponents(self, params: Mapping[str, Any]) -> tuple[Any, Any]:
        """Allocation exponents ``(a, b)`` with ``N_opt ~ C**a`` and ``D_opt ~ C**b``."""
        raise ValueError(f"law {self.name!r} has no compute-optimal allocation")

    def allocate_inference_aware(
        self,
        params: Mapping[str, Any],
        target_loss: Any,
        inference_tokens: Any,
        *,
        flops_per_param_token: float = 6.0,
        inference_flops_per_param_token: float = 2.0,
    ) -> Allocation:
        """Cheapest model over its lifetime reaching ``target_loss`` (see :func:`laws.allocation.inference_aware`)."""
        if not self.inference_aware:
            raise ValueError(
                f"law {self.name!r} has no inference-aware allocation; it is defined for the chinchilla law "
                "(E + A/N^alpha + B/D^beta)"
            )
        return allocation.inference_aware(
            params, target_loss, inference_tokens, flops_per_param_token, inference_flops_per_param_token
        )
