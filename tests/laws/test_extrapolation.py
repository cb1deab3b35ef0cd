"""Extrapolation error: fit small runs, predict large ones."""

from __future__ import annotations

import numpy as np
import pytest

from laws.errors import FitError
from laws.extrapolation import extrapolation_error
from laws_truth import HOFFMANN, chinchilla_loss, grid_runs


def _data():
    N, D = grid_runs()
    return {"params": N, "tokens": D, "loss": chinchilla_loss(HOFFMANN, N, D)}


def test_the_true_law_extrapolates_without_error():
    r = extrapolation_error("chinchilla", _data())
    assert r["max_relative_error"] < 1e-6


def test_a_misspecified_law_shows_extrapolation_error():
    # Kaplan's law has no irreducible term; fitted to small runs it misses large ones
    r = extrapolation_error("kaplan", _data())
    assert r["mean_relative_error"] > 1e-3


def test_default_cutoff_holds_out_the_top_quarter_of_compute():
    data = _data()
    r = extrapolation_error("chinchilla", data)
    C = 6 * data["params"] * data["tokens"]
    assert r["cutoff"] == pytest.approx(np.quantile(C, 0.75))
    assert r["n_test"] == (C > r["cutoff"]).sum()
    assert r["n_fit"] + r["n_test"] == C.size
    np.testing.assert_array_equal(r["test_mask"], C > r["cutoff"])


def test_explicit_cutoff_and_flops_column_are_used():
    data = _data()
    data["flops"] = 6 * data["params"] * data["tokens"] * 1.1
    cutoff = float(np.median(data["flops"]))
    r = extrapolation_error("chinchilla", data, compute_cutoff=cutoff)
    assert r["n_test"] == (data["flops"] > cutoff).sum()


def test_relative_errors_are_measured_against_observed_loss():
    data = _data()
    data["loss"] = data["loss"].copy()
    big = np.argmax(data["params"] * data["tokens"])
    data["loss"][big] *= 1.05  # the largest run came out 5% worse than the law
    r = extrapolation_error("chinchilla", data)
    assert r["max_relative_error"] == pytest.approx(1 - 1 / 1.05, rel=1e-5)


def test_no_run_above_the_cutoff_is_an_error():
    with pytest.raises(FitError, match="cut-off"):
        extrapolation_error("chinchilla", _data(), compute_cutoff=1e40)


def test_approach_2_has_no_loss_to_extrapolate():
    with pytest.raises(ValueError, match="does not predict loss"):
        extrapolation_error("isoflop", {**_data(), "budget": np.ones(42)})
