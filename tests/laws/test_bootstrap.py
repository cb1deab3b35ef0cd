"""Bootstrap: reproducible, vectorised, and honest about its coverage."""

from __future__ import annotations

import numpy as np
import pytest

from laws import allocation, chinchilla
from laws.bootstrap import bootstrap
from laws_truth import HOFFMANN, chinchilla_loss, grid_runs


def _noisy(seed: int, sigma: float = 0.01, n_side: int = 6):
    rng = np.random.default_rng(seed)
    N, D = grid_runs(n_side, n_side)
    L = chinchilla_loss(HOFFMANN, N, D) * np.exp(rng.normal(0, sigma, N.size))
    return {"params": N, "tokens": D, "loss": L}


@pytest.fixture(scope="module")
def boot():
    return bootstrap(_noisy(0), n_resamples=300, seed=7)


def test_same_seed_gives_identical_samples():
    a = bootstrap(_noisy(1), n_resamples=50, seed=3)
    b = bootstrap(_noisy(1), n_resamples=50, seed=3)
    np.testing.assert_array_equal(a.samples, b.samples)


def test_different_seeds_give_different_samples():
    a = bootstrap(_noisy(1), n_resamples=50, seed=3)
    b = bootstrap(_noisy(1), n_resamples=50, seed=4)
    assert not np.array_equal(a.samples, b.samples)


def test_samples_have_one_row_per_resample_and_one_column_per_parameter(boot):
    assert boot.samples.shape == (300, 5)
    assert boot.param_names == ("E", "A", "B", "alpha", "beta")
    assert set(boot.ci) == set(boot.param_names)


def test_intervals_are_the_percentiles_of_the_samples(boot):
    lo, hi = np.percentile(boot.samples[:, 3], [2.5, 97.5])
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
        refit = chinchilla.fit(data["params"], data["tokens"], data["loss"], weights=w)
        np.testing.assert_allclose(boot.samples[i], [refit.params[k] for k in boot.param_names], rtol=2e-5)


def test_resample_counts_draw_n_runs_with_replacement(boot):
    assert boot.resample_counts.shape == (300, 36)
    assert np.all(boot.resample_counts.sum(axis=1) == 36)


def test_exponent_intervals_are_complementary(boot):
    ex = boot.exponent_intervals()
    assert ex["a"][0] + ex["b"][1] == pytest.approx(1.0)
    assert ex["a"][1] + ex["b"][0] == pytest.approx(1.0)


def test_n_opt_interval_brackets_the_point_estimate(boot):
    C = 1e22
    point = allocation.compute_optimal(boot.fit.params, C).n_opt
    lo, hi = boot.n_opt_interval(C)
    assert lo < point < hi


def test_d_opt_interval_is_vectorised_over_budgets(boot):
    C = np.array([1e20, 1e22, 1e24])
    lo, hi = boot.d_opt_interval(C)
    assert lo.shape == hi.shape == (3,)
    assert np.all(np.diff(lo) > 0) and np.all(lo < hi)


def test_prediction_interval_contains_the_confidence_interval(boot):
    ci = boot.loss_interval(3e9, 6e10)
    pi = boot.loss_interval(3e9, 6e10, prediction=True)
    assert pi[0] < ci[0] < ci[1] < pi[1]


def test_loss_interval_brackets_the_point_prediction(boot):
    lo, hi = boot.loss_interval(3e9, 6e10)
    assert lo < chinchilla.predict(boot.fit.params, 3e9, 6e10) < hi


def test_exclusions_apply_before_resampling():
    data = _noisy(2)
    b = bootstrap(data, n_resamples=20, seed=0, exclude_top_loss=4)
    assert b.fit.n_runs == 32
    assert b.resample_counts.shape == (20, 32)


def test_percentile_intervals_cover_the_truth_in_at_least_90_of_100_trials():
    names = list(HOFFMANN)
    covered = np.zeros(len(names), int)
    for trial in range(100):
        b = bootstrap(_noisy(1000 + trial), n_resamples=200, seed=trial)
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
    b = bootstrap({"params": N, "tokens": D, "loss": L, "budget": C}, law="isoflop", n_resamples=40, seed=0)
    lo, hi = b.ci["a"]
    assert lo < b.fit.params["a"] < hi


def test_invalid_level_is_rejected():
    with pytest.raises(ValueError, match="level"):
        bootstrap(_noisy(0), n_resamples=10, level=95)
