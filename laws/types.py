"""Result types shared by every law.

Results are frozen dataclasses so that a fit, once reported, cannot be edited
in place by a caller (the registry stores them as versioned facts).  Arrays
inside them are not copied defensively; treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FitResult", "Allocation", "JointFitResult"]


@dataclass(frozen=True, eq=False)
class FitResult:
    """Outcome of fitting one law to one set of runs.

    Attributes:
        law: catalogue name of the law ("chinchilla", "kaplan", ...).
        params: fitted parameters in their natural (reported) scale.
        objective: value of the fitting objective at ``params``, summed over
            runs (not averaged), so it compares with Besiroglu et al.'s numbers.
        converged: whether the final local optimiser met its tolerance.
        message: human-readable account of how the optimiser stopped.
        n_runs: runs that entered the objective (after exclusions).
        seconds: wall-clock time of the fit.
        used: boolean mask over the *input* runs: True where the run was used.
        rmse_log: root-mean-square of ``log L - log L_hat`` over used runs; a
            scale-free goodness of fit that is comparable across laws.
        objective_name: which objective was minimised.
        residuals_log: ``log L - log L_hat`` for the used runs, in input order
            (the observed scatter around the law).
        extras: law-specific side results (e.g. per-budget minima for
            Approach 2, the starting points tried, ...).
    """

    law: str
    params: dict[str, float]
    objective: float
    converged: bool
    message: str
    n_runs: int
    seconds: float
    used: np.ndarray
    rmse_log: float
    objective_name: str = ""
    residuals_log: np.ndarray = field(default_factory=lambda: np.empty(0))
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Allocation:
    """A compute allocation: how to split training FLOPs between N and D.

    Fields are floats for a scalar budget and arrays for an array of budgets.

    Attributes:
        compute: training FLOPs, ``flops_per_param_token * n_opt * d_opt``.
        n_opt: parameters.
        d_opt: training tokens.
        tokens_per_param: ``d_opt / n_opt``.
        predicted_loss: the law's loss at ``(n_opt, d_opt)``.
        inference_tokens: tokens expected to be served over the model's life
            (0 for a pure training-compute optimum).
        total_flops: training plus inference FLOPs.
    """

    compute: Any
    n_opt: Any
    d_opt: Any
    tokens_per_param: Any
    predicted_loss: Any
    inference_tokens: Any = 0.0
    total_flops: Any = None


@dataclass(frozen=True, eq=False)
class JointFitResult:
    """Outcome of fitting one law to several families with shared parameters.

    Attributes:
        law: catalogue name of the law.
        shared: names of the parameters that take one value across families.
        params: per-family parameter dicts (shared values repeated in each).
        shared_params: the shared values alone.
        objective: summed objective over all families.
        converged: whether the final local optimiser met its tolerance.
        message: how the optimiser stopped.
        n_runs: runs used per family.
        seconds: wall-clock time.
        rmse_log: per-family RMSE of log residuals.
        used: per-family boolean masks of used runs.
    """

    law: str
    shared: tuple[str, ...]
    params: dict[str, dict[str, float]]
    shared_params: dict[str, float]
    objective: float
    converged: bool
    message: str
    n_runs: dict[str, int]
    seconds: float
    rmse_log: dict[str, float]
    used: dict[str, np.ndarray]
