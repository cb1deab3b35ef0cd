"""Bootstrap: reproducible, vectorised, and honest about its coverage."""

from __future__ import annotations

import numpy as np
import pytest

from laws import chinchilla
from laws.bootstrap import bootstrap
from laws.chinchilla import ChinchillaOptions
from laws.errors import FitError
from laws.intervals import Samples
from laws_truth import HOFFMANN, chinchilla_loss, grid_runs


def _noisy(seed: int, sigma: float = 0.01, n_side: int = 6):
    rng = np.random.default_rng(seed)
    N, D = grid_runs(n_side, n_side)
    L = chinchilla_loss(HOFFMANN, N, D) * np.exp(rng.normal(0, sigma, N.size))
    return {"params": N, "tokens": D, "loss": L}


@pytest.fixture(scope="module")
def boot():
    return bootstrap("chinchilla", _noisy(0), n_resamples=300, seed=7)


def test_same_seed_gives_identical_samples():
    a = bootstrap("chinchilla", _noisy(1), n_resamples=50, seed=3)
    b = bootstrap("chinchilla", _noisy(1), n_resamples=50, seed=3)
    np.testing.assert_array_equal(a.samples.values, b.samples.values)


def test_different_seeds_give_different_samples():
    a = bootstrap("chinchilla", _noisy(1), n_resamples=50, seed=3)
    b = bootstrap("chinchilla", _noisy(1), n_resamples=50, seed=4)
    assert not np.array_equal(a.samples.values, b.samples.values)


def test_samples_have_one_row_per_resample_and_one_column_per_parameter(boot):
    assert boot.samples.values.shape == (300, 5)
    assert boot.param_names == ("E", "A", "B", "alpha", "beta")
    assert set(boot.ci) == set(boot.param_names)


def test_intervals_are_the_percentiles_of_the_samples(boot):
    lo, hi = np.percentile(boot.samples.values[:, 3], [2.5, 97.5])
    assert boot.ci["alpha"] == pytest.approx((lo, hi))


def test_correlation_is_a_symmetric_matrix_with_unit_diagonal(boot):
    c = boot.correlation
    np.testing.assert_allclose(c, c.T)
    np.testing.assert_allclose(np.diag(c), 1.0)
    assert np.all(np.abs(c) <= 1 + 1e-12)


def test_every_resample_converges_on_well_posed_data(boot):
    assert boot.converged_fraction == 1.0


def test_vectorised_resamples_equal_independent_full_refits(boot):
    data = _noisy(0)
    for i in range(5):
        w = boot.resample_counts[i]
        refit = chinchilla.fit(data["params"], data["tokens"], data["loss"], ChinchillaOptions(weights=w))
        np.testing.assert_allclose(boot.samples.values[i], [refit.params[k] for k in boot.param_names], rtol=2e-5)


def test_resample_counts_draw_n_runs_with_replacement(boot):
    assert boot.resample_counts.shape == (300, 36)
    assert np.all(boot.resample_counts.sum(axis=1) == 36)


def test_exponent_intervals_are_complementary(boot):
    ex = boot.samples.exponent_interval(boot.law, 0.95)
    assert ex["a"][0] + ex["b"][1] == pytest.approx(1.0)
    assert ex["a"][1] + ex["b"][0] == pytest.approx(1.0)


def test_n_opt_interval_brackets_the_point_estimate(boot):
    C = 1e22
    point = boot.law.allocate(boot.fit.params, C).n_opt
    lo, hi = boot.samples.allocation_interval(boot.law, C, 0.95)["n_opt"]
    assert lo < point < hi


def test_d_opt_interval_is_vectorised_over_budgets(boot):
    C = np.array([1e20, 1e22, 1e24])
    lo, hi = boot.samples.allocation_interval(boot.law, C, 0.95)["d_opt"]
    assert lo.shape == hi.shape == (3,)
    assert np.all(np.diff(lo) > 0) and np.all(lo < hi)


def test_allocation_interval_is_the_percentile_of_each_draws_optimum(boot):
    level = 0.8
    per_draw = [boot.law.allocate(dict(zip(boot.param_names, row)), 1e23).tokens_per_param for row in boot.samples.values]
    expected = np.percentile(per_draw, [10, 90])
    got = boot.samples.allocation_interval(boot.law, 1e23, level)["tokens_per_param"]
    assert got == pytest.approx(tuple(expected), rel=1e-9)


def test_a_narrower_level_gives_a_narrower_interval(boot):
    wide = boot.samples.interval(0.95)["alpha"]
    narrow = boot.samples.interval(0.5)["alpha"]
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_samples_must_have_one_column_per_name():
    with pytest.raises(ValueError, match="must be"):
        Samples(("E", "A"), np.ones((4, 3)))


def test_exclusions_apply_before_resampling():
    data = _noisy(2)
    b = bootstrap("chinchilla", data, {"exclude_top_loss": 4}, n_resamples=20, seed=0)
    assert b.fit.n_runs == 32
    assert b.resample_counts.shape == (20, 32)


def test_percentile_intervals_cover_the_truth_in_at_least_90_of_100_trials():
    names = list(HOFFMANN)
    covered = np.zeros(len(names), int)
    for trial in range(100):
        b = bootstrap("chinchilla", _noisy(1000 + trial), n_resamples=200, seed=trial)
        covered += [b.ci[k][0] <= HOFFMANN[k] <= b.ci[k][1] for k in names]
    assert covered.min() >= 90, dict(zip(names, covered))


def test_looped_bootstrap_for_approach_2_brackets_its_point_estimate():
    rng = np.random.default_rng(8)
    rows = []
    for C in np.geomspace(1e18, 1e21, 5):
        n_c = np.sqrt(C / 120)
        for N in n_c * np.geomspace(0.1, 10, 9):
            rows.append((N, C / (6 * N), C))
    N, D, C = map(np.array, zip(*rows))
    L = chinchilla_loss(HOFFMANN, N, D) * np.exp(rng.normal(0, 0.002, N.size))
    b = bootstrap("isoflop", {"params": N, "tokens": D, "loss": L, "budget": C}, n_resamples=40, seed=0)
    lo, hi = b.ci["a"]
    assert lo < b.fit.params["a"] < hi


def test_invalid_level_is_rejected():
    with pytest.raises(ValueError, match="level"):
        bootstrap("chinchilla", _noisy(0), n_resamples=10, level=95)


def test_unknown_fit_option_is_an_error_not_ignored():
    with pytest.raises(ValueError, match="unknown option 'huber_delt'.*allowed: .*huber_delta"):
        bootstrap("chinchilla", _noisy(0), {"huber_delt": 1e-2}, n_resamples=10)


def test_a_full_fit_the_runs_cannot_support_is_a_fit_error():
    data = _noisy(0)
    with pytest.raises(FitError, match="runs left"):
        bootstrap("chinchilla", data, {"exclude_top_loss": data["loss"].size - 3}, n_resamples=10)
