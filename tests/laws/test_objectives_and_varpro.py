"""Building blocks: penalties and the batched NNLS behind the global search."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import nnls
from scipy.special import huber

from laws.objectives import OBJECTIVES, get_objective, majorizer_weight, psi, rho
from laws.varpro import local_minima, nnls_gram


def test_huber_penalty_equals_scipy_special_huber():
    r = np.linspace(-0.01, 0.01, 101)
    np.testing.assert_allclose(rho(r, 1e-3, robust=True), huber(1e-3, r), rtol=1e-15)


def test_squared_penalty_is_half_the_square():
    r = np.array([-2.0, 0.5])
    np.testing.assert_allclose(rho(r, 1e-3, robust=False), 0.5 * r**2)


def test_psi_is_the_derivative_of_the_penalty():
    r = np.array([-0.02, -5e-4, 3e-4, 0.05])
    h = 1e-8
    numeric = (rho(r + h, 1e-3, True) - rho(r - h, 1e-3, True)) / (2 * h)
    np.testing.assert_allclose(psi(r, 1e-3, True), numeric, rtol=1e-6)


def test_irls_weight_majorises_huber():
    # the quadratic w r^2/2 + const touching Huber at r0 lies above it everywhere
    r0, delta = 0.02, 1e-3
    w = majorizer_weight(np.array([r0]), delta, True)[0]
    r = np.linspace(-0.1, 0.1, 1001)
    quad = rho(np.array([r0]), delta, True)[0] + 0.5 * w * (r**2 - r0**2)
    assert np.all(quad >= rho(r, delta, True) - 1e-15)


def test_objectives_cover_log_and_plain_residuals():
    assert {o.log_space for o in OBJECTIVES.values()} == {True, False}
    assert get_objective("huber_log").robust and not get_objective("least_squares").robust


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4))
def test_batched_nnls_matches_scipy_nnls(seed, k):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, k))
    y = rng.normal(size=30) + X @ rng.normal(size=k)
    coef, rss = nnls_gram(X.T @ X, X.T @ y, y @ y)
    expected, res = nnls(X, y)
    np.testing.assert_allclose(coef, expected, atol=1e-8)
    assert rss == pytest.approx(res**2, abs=1e-8)


def test_batched_nnls_solves_many_problems_at_once():
    rng = np.random.default_rng(0)
    Xs = rng.uniform(size=(7, 20, 3))
    ys = rng.uniform(size=(7, 20))
    coef, rss = nnls_gram(np.einsum("bni,bnj->bij", Xs, Xs), np.einsum("bni,bn->bi", Xs, ys), (ys * ys).sum(1))
    for i in range(7):
        np.testing.assert_allclose(coef[i], nnls(Xs[i], ys[i])[0], atol=1e-8)


def test_local_minima_finds_separate_basins_best_first():
    x = np.linspace(-3, 3, 61)
    v = np.add.outer((x**2 - 4) ** 2, x**2) + np.add.outer(0.5 * x, 0 * x)  # basins near x = -2 and 2
    mins = local_minima(v, 5)
    assert len(mins) == 2
    assert x[mins[0][0]] == pytest.approx(-2, abs=0.1) and x[mins[1][0]] == pytest.approx(2, abs=0.1)
