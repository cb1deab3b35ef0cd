"""Extrapolation error: the test a scaling law exists to pass.

A law earns its keep by predicting runs larger than those it was fitted on.
:func:`extrapolation_error` holds out every run above a compute cut-off, fits
on the rest and reports how far the law's predictions for the held-out runs
are from their observed losses.  A small in-sample RMSE with a large
extrapolation error is the signature of a law (or a fit) that bends to the
small runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from laws.catalog import get_law
from laws.errors import FitError
from laws.law import Law
from laws.options import Options

__all__ = ["extrapolation_error", "compute_of"]


def compute_of(data: Mapping[str, np.ndarray]) -> np.ndarray:
    """Training compute per run: the ``flops`` column, else ``6 N D``."""
    if "flops" in data:
        return np.asarray(data["flops"], float)
    if "params" in data and "tokens" in data:
        return 6.0 * np.asarray(data["params"], float) * np.asarray(data["tokens"], float)
    raise ValueError(f"need a 'flops' column or 'params' and 'tokens' to know each run's compute; got {sorted(data)}")


def extrapolation_error(
    law: str | Law,
    data: Mapping[str, np.ndarray],
    options: Options | Mapping[str, Any] | None = None,
    *,
    compute_cutoff: float | None = None,
    quantile: float = 0.75,
) -> dict[str, Any]:
    """Fit below a compute cut-off, score the predicted loss above it.

    Args:
        law: a loss law or its catalogue name.
        data: columns for the law (plus ``flops`` if ``6ND`` is not the compute).
        options: the law's fit options; ``weights`` (over all runs) are
            restricted to the fitted runs.
        compute_cutoff: runs with compute ``<=`` this are fitted, the rest are
            held out.  Default: the ``quantile`` of the runs' compute.
        quantile: used when ``compute_cutoff`` is None.

    Returns:
        ``cutoff``, ``n_fit``, ``n_test``, ``mean_relative_error`` and
        ``max_relative_error`` (of ``|L_hat - L| / L`` on held-out runs),
        ``mean_signed_error`` (positive: the law over-predicts loss),
        ``relative_errors`` (per held-out run), ``test_mask``, and ``fit``.

    Raises:
        laws.errors.FitError: no run lies above the cut-off, or the runs
            below it cannot support the fit.
        ValueError: the law does not predict loss.
    """
    spec = get_law(law)
    if spec.predicts != "loss":
        raise ValueError(f"law {spec.name!r} does not predict loss; extrapolation error is undefined")
    spec.check_columns(data)
    opts = spec.options(options)
    C = compute_of(data)
    cutoff = float(np.quantile(C, quantile)) if compute_cutoff is None else float(compute_cutoff)
    test = C > cutoff
    train = ~test
    if not test.any():
        raise FitError(f"no run has compute above the cut-off {cutoff:.3g}")
    sub = {k: np.asarray(v)[train] for k, v in data.items()}
    held = {k: np.asarray(v)[test] for k, v in data.items()}
    if opts.weights is not None:
        opts = replace(opts, weights=np.asarray(opts.weights, float)[train])
    fit = spec.fit(sub, opts)
    pred = spec.predict(fit.params, held)
    L = np.asarray(held["loss"], float)
    rel = (pred - L) / L
    return {
        "law": spec.name,
        "cutoff": cutoff,
        "n_fit": int(train.sum()),
        "n_test": int(test.sum()),
        "mean_relative_error": float(np.mean(np.abs(rel))),
        "max_relative_error": float(np.max(np.abs(rel))),
        "mean_signed_error": float(np.mean(rel)),
        "relative_errors": np.abs(rel),
        "test_mask": test,
        "fit": fit,
    }
