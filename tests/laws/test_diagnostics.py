"""Identifiability flags from the bootstrap, on designs with known defects."""

from __future__ import annotations

import numpy as np
import pytest

from laws.bootstrap import bootstrap
from laws.diagnostics import identifiability
from laws_truth import HOFFMANN, chinchilla_loss, grid_runs


def _boot(N, D, seed=0):
    rng = np.random.default_rng(seed)
    L = chinchilla_loss(HOFFMANN, N, D) * np.exp(rng.normal(0, 0.01, N.size))
    return bootstrap("chinchilla", {"params": N, "tokens": D, "loss": L}, n_resamples=200, seed=1)


def _diagnose(N, D, seed=0):
    return identifiability(_boot(N, D, seed))


@pytest.fixture(scope="module")
def factorial_boot():
    return _boot(*grid_runs())


@pytest.fixture(scope="module")
def factorial(factorial_boot):
    return identifiability(factorial_boot)


@pytest.fixture(scope="module")
def one_ratio():
    N = np.geomspace(1e7, 1e10, 42)
    return _diagnose(N, 20 * N)  # every run at 20 tokens per parameter


@pytest.fixture(scope="module")
def narrow_sizes():
    return _diagnose(*grid_runs(n_range=(1e9, 1.3e9)))


def test_factorial_design_is_identifiable(factorial):
    assert factorial["identifiable"]
    assert not factorial["alpha_beta_confounded"]
    assert not factorial["A_E_confounded"]


def test_single_tokens_per_param_ratio_confounds_alpha_and_beta(one_ratio):
    assert one_ratio["alpha_beta_confounded"]
    assert not one_ratio["identifiable"]


def test_narrow_range_of_model_sizes_confounds_a_and_e(narrow_sizes):
    assert narrow_sizes["A_E_confounded"]
    assert not narrow_sizes["identifiable"]


def test_scale_exponent_correlation_alone_does_not_fail_a_fit(factorial):
    # A is the N-term at N = 1: it always moves with alpha
    assert factorial["A_alpha_confounded"]
    assert factorial["identifiable"]


def test_report_carries_the_correlation_matrix(factorial):
    c = factorial["correlation"]
    assert c.shape == (5, 5)
    assert factorial["param_names"] == ["E", "A", "B", "alpha", "beta"]


def test_threshold_controls_what_counts_as_confounded(factorial_boot):
    strict = identifiability(factorial_boot, threshold=0.95)
    loose = identifiability(factorial_boot, threshold=0.3)
    assert all(abs(c) > 0.95 for _, _, c in strict["confounded_pairs"])
    assert len(loose["confounded_pairs"]) > len(strict["confounded_pairs"])
    assert all(abs(c) > 0.3 for _, _, c in loose["confounded_pairs"])


def test_design_that_ties_tokens_to_parameters_is_reported(one_ratio, factorial):
    assert one_ratio["design_confounded"]
    assert one_ratio["log_design_correlation"] == pytest.approx(1.0)
    assert not factorial["design_confounded"]
