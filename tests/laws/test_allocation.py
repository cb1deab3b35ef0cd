"""Compute-optimal and inference-aware allocation, as each law answers it."""

from __future__ import annotations

import numpy as np
import pytest

from laws.catalog import LAWS, get_law
from laws_truth import HOFFMANN, HOFFMANN_UNROUNDED, chinchilla_loss

GOPHER_BUDGET = 5.76e23  # FLOPs; Hoffmann et al. Table 3 / Chinchilla's budget
CHINCHILLA = get_law("chinchilla")
KAPLAN_2020 = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}


def test_unrounded_hoffmann_coefficients_give_the_published_optimum():
    a = CHINCHILLA.allocate(HOFFMANN_UNROUNDED, GOPHER_BUDGET)
    assert a.n_opt == pytest.approx(4.036e10, rel=1e-3)
    assert a.d_opt == pytest.approx(2.379e12, rel=1e-3)


def test_rounded_hoffmann_coefficients_give_their_optimum():
    a = CHINCHILLA.allocate(HOFFMANN, GOPHER_BUDGET)
    assert a.n_opt == pytest.approx(3.219e10, rel=1e-3)
    assert a.d_opt == pytest.approx(2.982e12, rel=1e-3)


def test_allocation_spends_exactly_the_budget():
    a = CHINCHILLA.allocate(HOFFMANN, 1e22)
    assert 6 * a.n_opt * a.d_opt == pytest.approx(1e22, rel=1e-12)
    assert a.compute == pytest.approx(1e22, rel=1e-12)
    assert a.tokens_per_param == pytest.approx(a.d_opt / a.n_opt)


def test_predicted_loss_is_the_minimum_along_the_isoflop_curve():
    C = 1e22
    a = CHINCHILLA.allocate(HOFFMANN, C)
    for f in (0.97, 1.03):
        N = a.n_opt * f
        assert chinchilla_loss(HOFFMANN, N, C / (6 * N)) > a.predicted_loss
    assert a.predicted_loss == pytest.approx(chinchilla_loss(HOFFMANN, a.n_opt, a.d_opt))


def test_flops_per_param_token_changes_the_budget_accounting():
    a6 = CHINCHILLA.allocate(HOFFMANN, 1e22)
    a8 = CHINCHILLA.allocate(HOFFMANN, 1e22 * 8 / 6, flops_per_param_token=8.0)
    assert a8.n_opt == pytest.approx(a6.n_opt) and a8.d_opt == pytest.approx(a6.d_opt)


def test_array_of_budgets_equals_scalar_calls():
    C = np.array([1e19, 1e21, 1e23])
    vec = CHINCHILLA.allocate(HOFFMANN, C)
    for i, c in enumerate(C):
        one = CHINCHILLA.allocate(HOFFMANN, c)
        assert vec.n_opt[i] == pytest.approx(one.n_opt, rel=1e-12)
        assert vec.d_opt[i] == pytest.approx(one.d_opt, rel=1e-12)


def test_non_positive_budget_is_rejected():
    with pytest.raises(ValueError, match="compute must be positive"):
        CHINCHILLA.allocate(HOFFMANN, np.array([1e20, 0.0]))


def test_exponents_of_unrounded_hoffmann_fit_round_to_published_046_054():
    a, b = CHINCHILLA.exponents(HOFFMANN_UNROUNDED)
    assert round(a, 2) == 0.46 and round(b, 2) == 0.54


def test_allocation_scales_with_the_exponents():
    a, b = CHINCHILLA.exponents(HOFFMANN)
    lo, hi = CHINCHILLA.allocate(HOFFMANN, np.array([1e20, 1e23])).n_opt
    assert np.log(hi / lo) / np.log(1e3) == pytest.approx(a, rel=1e-12)


def test_numeric_kaplan_allocation_matches_its_first_order_condition():
    # minimising (N_c/N)^p + D_c 6N/C over N gives N^(p+1) = p N_c^p C / (6 D_c)
    k = KAPLAN_2020
    p = k["alpha_N"] / k["alpha_D"]
    C = np.array([1e20, 1e23])
    expected = (p * k["N_c"] ** p * C / (6 * k["D_c"])) ** (1 / (p + 1))
    got = get_law("kaplan").allocate(k, C).n_opt
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_kaplan_exponents_are_alpha_d_over_the_sum():
    a, b = get_law("kaplan").exponents({"N_c": 1.0, "D_c": 1.0, "alpha_N": 0.076, "alpha_D": 0.095})
    assert a == pytest.approx(0.095 / 0.171) and b == pytest.approx(0.076 / 0.171)


def test_isoflop_allocation_is_its_fitted_power_laws_without_a_loss():
    p = {"a": 0.5, "k_n": 0.1, "b": 0.5, "k_d": 1.6}
    a = get_law("isoflop").allocate(p, 1e20)
    assert (a.n_opt, a.d_opt) == pytest.approx((1e9, 1.6e10))
    assert np.isnan(a.predicted_loss)
    assert get_law("isoflop").exponents(p) == (0.5, 0.5)


def test_data_constrained_law_with_unlimited_data_allocates_like_chinchilla():
    params = {**HOFFMANN, "R_D_star": 15.0, "R_N_star": 5.0}
    dc = get_law("data_constrained").allocate(params, 1e22)
    assert dc.n_opt == pytest.approx(CHINCHILLA.allocate(HOFFMANN, 1e22).n_opt, rel=1e-12)


@pytest.mark.parametrize("name", ["chinchilla", "kaplan", "data_constrained", "isoflop"])
def test_every_law_with_an_allocation_rule_spends_the_budget(name):
    law = LAWS[name]
    params = {
        "chinchilla": HOFFMANN,
        "kaplan": KAPLAN_2020,
        "data_constrained": {**HOFFMANN, "R_D_star": 15.0, "R_N_star": 5.0},
        "isoflop": {"a": 0.5, "k_n": 1 / np.sqrt(120), "b": 0.5, "k_d": np.sqrt(120) / 6},
    }[name]
    assert law.allocates
    a = law.allocate(params, 1e23)
    assert 6 * a.n_opt * a.d_opt == pytest.approx(1e23, rel=1e-6)


def test_broken_power_law_says_it_has_no_allocation():
    law = LAWS["broken_power_law"]
    assert not law.allocates
    with pytest.raises(ValueError, match="law 'broken_power_law' has no compute-optimal allocation"):
        law.allocate({"a": 1.0, "b": 1.0, "c0": 0.1, "c1": 0.1, "d1": 1e20, "f1": 1.0}, 1e22)
    with pytest.raises(ValueError, match="no compute-optimal allocation"):
        law.exponents({})


def test_unique_tokens_are_refused_by_a_law_that_does_not_model_them():
    with pytest.raises(ValueError, match="unique tokens"):
        CHINCHILLA.allocate(HOFFMANN, 1e22, unique_tokens=1e10)


def test_zero_inference_tokens_gives_the_compute_optimal_model():
    C = 1e22
    plain = CHINCHILLA.allocate(HOFFMANN, C)
    inf = CHINCHILLA.allocate_inference_aware(HOFFMANN, plain.predicted_loss, 0.0)
    assert inf.n_opt == pytest.approx(plain.n_opt, rel=1e-8)
    assert inf.d_opt == pytest.approx(plain.d_opt, rel=1e-8)


def test_inference_aware_model_reaches_the_target_loss():
    a = CHINCHILLA.allocate_inference_aware(HOFFMANN, 2.1, 1e13)
    assert chinchilla_loss(HOFFMANN, a.n_opt, a.d_opt) == pytest.approx(2.1, rel=1e-10)


def test_tokens_per_parameter_grow_with_inference_demand():
    demand = np.array([0.0, 1e11, 1e12, 1e13, 1e14])
    a = CHINCHILLA.allocate_inference_aware(HOFFMANN, 2.1, demand)
    assert np.all(np.diff(a.tokens_per_param) > 0)
    assert np.all(np.diff(a.n_opt) < 0)


def test_inference_aware_model_is_cheaper_over_its_lifetime():
    target, demand = 2.1, 1e13
    best = CHINCHILLA.allocate_inference_aware(HOFFMANN, target, demand)
    plain = CHINCHILLA.allocate_inference_aware(HOFFMANN, target, 0.0)
    plain_lifetime = 6 * plain.n_opt * plain.d_opt + 2 * plain.n_opt * demand
    assert best.total_flops < plain_lifetime
    assert best.total_flops == pytest.approx(6 * best.n_opt * best.d_opt + 2 * best.n_opt * demand)


def test_unreachable_target_loss_is_rejected():
    with pytest.raises(ValueError, match="irreducible"):
        CHINCHILLA.allocate_inference_aware(HOFFMANN, 1.5, 0.0)


@pytest.mark.parametrize("name", ["kaplan", "isoflop", "data_constrained", "broken_power_law"])
def test_only_the_chinchilla_law_is_inference_aware(name):
    law = LAWS[name]
    assert not law.inference_aware
    with pytest.raises(ValueError, match="inference-aware allocation; it is defined for the chinchilla law"):
        law.allocate_inference_aware(HOFFMANN, 2.1, 1e12)
