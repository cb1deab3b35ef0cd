"""The catalogue: every law behind one interface."""

from __future__ import annotations

import numpy as np
import pytest

from laws.catalog import COLUMNS, LAWS, get_law
from laws.types import FitResult
from laws_truth import HOFFMANN, chinchilla_loss, grid_runs


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
    }


def test_the_five_laws_are_listed():
    assert set(LAWS) == {"chinchilla", "isoflop", "kaplan", "broken_power_law", "data_constrained"}


@pytest.mark.parametrize("name", list(LAWS))
def test_each_law_declares_known_columns_and_its_parameters(name):
    law = LAWS[name]
    assert law.name == name
    assert set(law.required_columns) <= set(COLUMNS)
    assert len(law.param_names) == len(set(law.param_names)) > 0


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
