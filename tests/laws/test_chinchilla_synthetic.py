"""Approach 3 recovers known parameters from synthetic runs."""

from __future__ import annotations

import numpy as np
import pytest

from laws import chinchilla
from laws.chinchilla import ChinchillaOptions
from laws.errors import FitError

from laws_truth import HOFFMANN, chinchilla_loss, grid_runs

TRUTHS = {
    "hoffmann": HOFFMANN,
    "alpha_above_beta": {"E": 2.1, "A": 900.0, "B": 150.0, "alpha": 0.5, "beta": 0.2},
    "beta_above_alpha": {"E": 1.2, "A": 80.0, "B": 6000.0, "alpha": 0.22, "beta": 0.45},
    "besiroglu_like": {"E": 1.82, "A": 482.0, "B": 2085.4, "alpha": 0.348, "beta": 0.366},
    "small_irreducible": {"E": 0.3, "A": 1200.0, "B": 900.0, "alpha": 0.4, "beta": 0.33},
}


def _rel(fit, truth):
    return {k: abs(fit.params[k] / truth[k] - 1) for k in truth}


@pytest.mark.parametrize("name", list(TRUTHS))
def test_noise_free_runs_recover_parameters_to_1e_4(name):
    truth = TRUTHS[name]
    N, D = grid_runs()
    fit = chinchilla.fit(N, D, chinchilla_loss(truth, N, D))
    assert max(_rel(fit, truth).values()) < 1e-4


@pytest.mark.parametrize("objective", ["least_squares", "huber", "least_squares_log"])
def test_every_objective_recovers_noise_free_parameters(objective):
    N, D = grid_runs()
    fit = chinchilla.fit(N, D, chinchilla_loss(HOFFMANN, N, D), ChinchillaOptions(objective=objective, huber_delta=1e-3))
    assert max(_rel(fit, HOFFMANN).values()) < 1e-4


def test_unknown_objective_is_rejected_with_the_choices():
    N, D = grid_runs()
    with pytest.raises(ValueError, match="huber_log"):
        chinchilla.fit(N, D, chinchilla_loss(HOFFMANN, N, D), ChinchillaOptions(objective="l1"))


def test_objective_is_the_summed_huber_of_log_residuals():
    from scipy.special import huber

    rng = np.random.default_rng(3)
    N, D = grid_runs()
    L = chinchilla_loss(HOFFMANN, N, D) * np.exp(rng.normal(0, 0.01, N.size))
    fit = chinchilla.fit(N, D, L, ChinchillaOptions(huber_delta=1e-3))
    pred = chinchilla_loss(fit.params, N, D)
    assert fit.objective == pytest.approx(huber(1e-3, np.log(L) - np.log(pred)).sum(), rel=1e-9)


def test_fixed_parameter_is_held_at_its_value_and_the_rest_recovered():
    N, D = grid_runs()
    fit = chinchilla.fit(N, D, chinchilla_loss(HOFFMANN, N, D), ChinchillaOptions(fixed={"E": 1.69}))
    assert fit.params["E"] == 1.69
    assert max(_rel(fit, HOFFMANN).values()) < 1e-4


def test_fixed_exponents_leave_a_linear_fit_of_the_coefficients():
    N, D = grid_runs()
    fit = chinchilla.fit(N, D, chinchilla_loss(HOFFMANN, N, D), ChinchillaOptions(fixed={"alpha": 0.34, "beta": 0.28}))
    assert (fit.params["alpha"], fit.params["beta"]) == (0.34, 0.28)
    assert max(_rel(fit, HOFFMANN).values()) < 1e-6


def test_bounds_are_respected_when_the_truth_lies_outside():
    N, D = grid_runs()
    fit = chinchilla.fit(N, D, chinchilla_loss(HOFFMANN, N, D), ChinchillaOptions(bounds={"beta": (None, 0.25)}))
    assert fit.params["beta"] <= 0.25 + 1e-12
    assert fit.params["beta"] == pytest.approx(0.25, abs=1e-6)


def test_exclude_top_loss_drops_exactly_the_highest_losses():
    N, D = grid_runs()
    L = chinchilla_loss(HOFFMANN, N, D)
    fit = chinchilla.fit(N, D, L, ChinchillaOptions(exclude_top_loss=3))
    assert fit.n_runs == N.size - 3
    assert set(np.flatnonzero(~fit.used)) == set(np.argsort(L)[-3:])


def test_zero_weight_is_the_same_as_leaving_a_run_out():
    rng = np.random.default_rng(4)
    N, D = grid_runs()
    L = chinchilla_loss(HOFFMANN, N, D) * np.exp(rng.normal(0, 0.01, N.size))
    w = np.ones(N.size)
    w[[2, 9, 30]] = 0
    keep = w > 0
    a = chinchilla.fit(N, D, L, ChinchillaOptions(weights=w))
    b = chinchilla.fit(N[keep], D[keep], L[keep])
    assert a.n_runs == b.n_runs == keep.sum()
    for k in HOFFMANN:
        assert a.params[k] == pytest.approx(b.params[k], rel=1e-6)


def test_integer_weights_are_the_same_as_duplicating_runs():
    rng = np.random.default_rng(5)
    N, D = grid_runs()
    L = chinchilla_loss(HOFFMANN, N, D) * np.exp(rng.normal(0, 0.01, N.size))
    w = rng.integers(1, 4, N.size)
    idx = np.repeat(np.arange(N.size), w)
    a = chinchilla.fit(N, D, L, ChinchillaOptions(weights=w))
    b = chinchilla.fit(N[idx], D[idx], L[idx])
    assert a.objective == pytest.approx(b.objective, rel=1e-7)
    for k in HOFFMANN:
        assert a.params[k] == pytest.approx(b.params[k], rel=1e-5)


def test_huber_resists_corrupted_runs_that_mislead_least_squares():
    N, D = grid_runs()
    L = chinchilla_loss(HOFFMANN, N, D)
    L[[0, 13, 27]] *= 1.3  # three diverged runs
    robust = chinchilla.fit(N, D, L, ChinchillaOptions(objective="huber_log"))
    plain = chinchilla.fit(N, D, L, ChinchillaOptions(objective="least_squares_log"))
    # each corrupted run pulls on a Huber fit with force delta only
    assert max(_rel(robust, HOFFMANN).values()) < 5e-3
    assert max(_rel(plain, HOFFMANN).values()) > 5e-2


def test_result_does_not_depend_on_run_order():
    rng = np.random.default_rng(6)
    N, D = grid_runs()
    L = chinchilla_loss(HOFFMANN, N, D) * np.exp(rng.normal(0, 0.02, N.size))
    perm = rng.permutation(N.size)
    a = chinchilla.fit(N, D, L)
    b = chinchilla.fit(N[perm], D[perm], L[perm])
    assert a.objective == pytest.approx(b.objective, rel=1e-9)


def test_predict_is_the_chinchilla_formula():
    N = np.array([1e8, 7e10])
    D = np.array([2e9, 1.4e12])
    expected = 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28
    np.testing.assert_allclose(chinchilla.predict(HOFFMANN, N, D), expected, rtol=1e-15)


def test_used_mask_and_residuals_cover_the_input_runs():
    N, D = grid_runs()
    fit = chinchilla.fit(N, D, chinchilla_loss(HOFFMANN, N, D), ChinchillaOptions(exclude_top_loss=2))
    assert fit.used.shape == N.shape and fit.used.dtype == bool
    assert fit.residuals_log.shape == (N.size - 2,)


@pytest.mark.parametrize(
    "bad",
    [
        {"L": -1.0},
        {"L": np.nan},
        {"N": 0.0},
    ],
)
def test_non_positive_or_missing_values_are_rejected(bad):
    N, D = grid_runs()
    L = chinchilla_loss(HOFFMANN, N, D)
    arrays = {"N": N.copy(), "D": D.copy(), "L": L.copy()}
    (key, value), = bad.items()
    arrays[key][0] = value
    with pytest.raises(FitError, match="finite and positive"):
        chinchilla.fit(arrays["N"], arrays["D"], arrays["L"])


def test_arrays_of_different_lengths_are_rejected():
    N, D = grid_runs()
    with pytest.raises(ValueError, match="expected"):
        chinchilla.fit(N[:-1], D, chinchilla_loss(HOFFMANN, N, D))


def test_fit_result_is_frozen():
    import dataclasses

    N, D = grid_runs()
    fit = chinchilla.fit(N, D, chinchilla_loss(HOFFMANN, N, D))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.objective = 0.0  # type: ignore[misc]


def test_excluding_every_run_is_a_fit_error():
    N, D = grid_runs()
    with pytest.raises(FitError, match="only 0 runs left"):
        chinchilla.fit(N, D, chinchilla_loss(HOFFMANN, N, D), ChinchillaOptions(exclude_top_loss=N.size + 3))


def test_fewer_runs_than_free_parameters_is_a_fit_error():
    N, D = grid_runs()
    with pytest.raises(FitError, match="at least 5"):
        chinchilla.fit(N[:4], D[:4], chinchilla_loss(HOFFMANN, N[:4], D[:4]))


def test_a_bad_option_value_is_a_programming_error_not_a_fit_error():
    N, D = grid_runs()
    with pytest.raises(ValueError, match="exclude_top_loss must be >= 0") as err:
        chinchilla.fit(N, D, chinchilla_loss(HOFFMANN, N, D), ChinchillaOptions(exclude_top_loss=-1))
    assert not isinstance(err.value, FitError)


def test_warm_start_from_the_truth_stays_there():
    N, D = grid_runs()
    fit = chinchilla.fit(N, D, chinchilla_loss(HOFFMANN, N, D), ChinchillaOptions(init=HOFFMANN))
    assert max(_rel(fit, HOFFMANN).values()) < 1e-6
    assert fit.extras["grid"] == {}  # no global search was run
