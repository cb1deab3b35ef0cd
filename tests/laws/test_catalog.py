"""The catalogue: every law behind one interface, its options and its parameters."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from laws.catalog import COLUMNS, LAWS, get_law
from laws.chinchilla import ChinchillaOptions
from laws.isoflop import IsoflopOptions
from laws.types import FitResult
from laws_truth import HOFFMANN, chinchilla_loss, grid_runs

#: a parameter set of every law (values within each law's natural range)
PARAMS = {
    "chinchilla": HOFFMANN,
    "isoflop": {"a": 0.49, "k_n": 0.08, "b": 0.51, "k_d": 2.1},
    "kaplan": {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095},
    "broken_power_law": {"a": 1.6, "b": 3e3, "c0": 0.2, "c1": 0.3, "d1": 1e20, "f1": 0.5},
    "data_constrained": {**HOFFMANN, "R_D_star": 15.4, "R_N_star": 5.3},
    "approach1": {"a": 0.5, "k_n": 0.1, "b": 0.5, "k_d": 1.6},
}


def _data():
    N, D = grid_runs()
    # compute-optimal-ish budgets for the isoflop law: group runs by 6ND decade
    C = 6 * N * D
    return {
        "params": N,
        "tokens": D,
        "loss": chinchilla_loss(HOFFMANN, N, D),
        "unique_tokens": D,
        "flops": C,
        "budget": C,
        "run": np.arange(N.size),
    }


def test_the_six_laws_are_listed():
    assert set(LAWS) == {"chinchilla", "isoflop", "approach1", "kaplan", "broken_power_law", "data_constrained"}


@pytest.mark.parametrize("name", list(LAWS))
def test_each_law_declares_known_columns_and_its_parameters(name):
    law = LAWS[name]
    assert law.name == name
    assert set(law.required_columns) <= set(COLUMNS)
    assert len(law.param_names) == len(set(law.param_names)) > 0
    assert law.log_params <= set(law.param_names)


@pytest.mark.parametrize("name", list(LAWS))
def test_to_theta_and_to_natural_round_trip(name):
    law = LAWS[name]
    params = PARAMS[name]
    theta = law.to_theta(params)
    assert theta.shape == (len(law.param_names),)
    for i, p in enumerate(law.param_names):  # scales travel as logs, the rest as they are
        expected = np.log(params[p]) if p in law.log_params else params[p]
        assert theta[i] == pytest.approx(expected, rel=1e-15)
    back = law.to_natural(theta)
    np.testing.assert_allclose(back, [params[p] for p in law.param_names], rtol=1e-14)
    # a batch of vectors maps row by row
    np.testing.assert_allclose(law.to_natural(np.stack([theta, theta])), np.stack([back, back]), rtol=0)


def test_broken_power_law_parameters_follow_the_number_of_breaks():
    law = LAWS["broken_power_law"]
    two = {**PARAMS["broken_power_law"], "c2": -0.2, "d2": 1e21, "f2": 0.3}
    theta = law.to_theta(two, {"n_breaks": 2})
    assert theta.size == 9
    names = law.space({"n_breaks": 2}).names
    np.testing.assert_allclose(law.to_natural(theta, {"n_breaks": 2}), [two[n] for n in names], rtol=1e-14)


@pytest.mark.parametrize("name", ["chinchilla", "kaplan", "broken_power_law"])
def test_loss_laws_fit_and_predict_through_the_catalog(name):
    law = LAWS[name]
    data = _data()
    fit = law.fit(data)
    assert isinstance(fit, FitResult) and fit.law == name
    assert tuple(fit.params) == law.param_names
    pred = law.predict(fit.params, data)
    assert pred.shape == data["loss"].shape
    assert np.sqrt(np.mean(np.log(pred / data["loss"]) ** 2)) == pytest.approx(fit.rmse_log, rel=1e-6)


def test_chinchilla_law_through_the_catalog_recovers_the_truth():
    fit = LAWS["chinchilla"].fit(_data())
    for k, v in HOFFMANN.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-4)


def test_data_constrained_law_predicts_chinchilla_when_data_is_fresh():
    params = {**HOFFMANN, "R_D_star": 15.0, "R_N_star": 5.0}
    data = {"params": np.array([1e8]), "tokens": np.array([1e11]), "unique_tokens": np.array([1e11])}
    assert LAWS["data_constrained"].predict(params, data)[0] == pytest.approx(chinchilla_loss(HOFFMANN, 1e8, 1e11))


def test_isoflop_law_predicts_optimal_size_not_loss():
    law = LAWS["isoflop"]
    assert law.predicts == "n_opt"
    p = {"a": 0.5, "k_n": 0.1, "b": 0.5, "k_d": 1.6}
    assert law.predict(p, {"budget": np.array([1e20])})[0] == pytest.approx(1e9)


def test_missing_column_is_named_in_the_error():
    data = _data()
    del data["tokens"]
    with pytest.raises(ValueError, match="tokens"):
        LAWS["chinchilla"].fit(data)


def test_unknown_law_lists_the_known_ones():
    with pytest.raises(ValueError, match="chinchilla"):
        get_law("hoffmann")


def test_get_law_returns_a_law_given_as_is():
    assert get_law(LAWS["kaplan"]) is LAWS["kaplan"]


@pytest.mark.parametrize("name", list(LAWS))
def test_an_unknown_option_is_an_error_naming_it_and_the_allowed_ones(name):
    law = LAWS[name]
    with pytest.raises(ValueError) as err:
        law.fit(_data(), {"exclude_top_loss": 0, "grid": 10})
    message = str(err.value)
    assert "unknown option 'grid'" in message and repr(name) in message
    assert "exclude_top_loss" in message  # the allowed keys are listed


def test_approach_2_refuses_a_huber_threshold_it_would_not_use():
    with pytest.raises(ValueError, match="unknown option 'huber_delta'"):
        LAWS["isoflop"].options({"huber_delta": 1e-3})


def test_options_from_a_mapping_equal_the_record():
    opts = LAWS["chinchilla"].options({"huber_delta": 1e-2, "exclude_top_loss": 5})
    assert isinstance(opts, ChinchillaOptions)
    assert (opts.huber_delta, opts.exclude_top_loss, opts.grid_size) == (1e-2, 5, 64)


def test_another_laws_options_record_is_refused():
    with pytest.raises(TypeError, match="IsoflopOptions"):
        LAWS["chinchilla"].options(IsoflopOptions())


def test_options_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ChinchillaOptions().huber_delta = 1.0  # type: ignore[misc]


def test_refit_roles_are_attributes_of_the_laws():
    assert [n for n, law in LAWS.items() if law.primary] == ["chinchilla"]
    assert [n for n, law in LAWS.items() if law.cross_checks_exponent] == ["isoflop"]
    assert [n for n, law in LAWS.items() if not law.fitted_per_family] == ["broken_power_law"]
    assert {n: law.approach for n, law in LAWS.items() if law.approach} == {
        "approach1": "Approach 1", "isoflop": "Approach 2", "chinchilla": "Approach 3",
    }
    assert [n for n, law in LAWS.items() if law.profiled] == ["chinchilla"]


@pytest.mark.parametrize("name", [n for n, law in LAWS.items() if law.fitted_per_family])
def test_every_law_a_refit_fits_declares_plausible_ranges_and_gated_intervals(name):
    law = LAWS[name]
    assert law.plausible and set(law.plausible) <= set(law.param_names)
    assert law.gated_intervals and set(law.gated_intervals) <= set(law.param_names)
    assert all(lo < hi for lo, hi in law.plausible.values())
