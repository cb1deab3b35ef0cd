"""Kaplan et al. (2020) joint law."""

from __future__ import annotations

import numpy as np
import pytest

from laws import kaplan
from laws_truth import grid_runs

#: Kaplan et al. 2020, Table 2 / Eq. 1.5
KAPLAN = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}


def kaplan_loss(p, N, D):
    return ((p["N_c"] / N) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / D) ** p["alpha_D"]


@pytest.mark.parametrize(
    "truth",
    [KAPLAN, {"N_c": 1e10, "D_c": 1e11, "alpha_N": 0.3, "alpha_D": 0.2}],
    ids=["kaplan_2020", "steep"],
)
def test_noise_free_runs_recover_parameters(truth):
    N, D = grid_runs()
    fit = kaplan.fit(N, D, kaplan_loss(truth, N, D))
    for k, v in truth.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-4)


def test_predict_is_kaplans_formula():
    N, D = np.array([1e8, 1e9]), np.array([1e10, 1e11])
    np.testing.assert_allclose(kaplan.predict(KAPLAN, N, D), kaplan_loss(KAPLAN, N, D), rtol=1e-14)


def test_with_unlimited_data_loss_is_a_power_law_in_n():
    N = np.array([1e8, 1e9])
    L = kaplan.predict(KAPLAN, N, np.full(2, 1e30))
    assert np.log(L[0] / L[1]) / np.log(10) == pytest.approx(KAPLAN["alpha_N"], rel=1e-6)
