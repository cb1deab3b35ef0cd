"""Smoothly broken power law (Caballero et al. 2022)."""

from __future__ import annotations

import numpy as np
import pytest

from laws import broken_power_law as bpl

X = np.geomspace(1e17, 1e23, 40)


def bnsl(p, x, breaks):
    """y = a + b x^-c0 prod (1 + (x/d_i)^(1/f_i))^(-c_i f_i), written out."""
    y = p["b"] * x ** -p["c0"]
    for i in range(1, breaks + 1):
        y = y * (1 + (x / p[f"d{i}"]) ** (1 / p[f"f{i}"])) ** (-p[f"c{i}"] * p[f"f{i}"])
    return p["a"] + y


ONE_BREAK = {"a": 1.6, "b": 3e3, "c0": 0.2, "c1": 0.3, "d1": 1e20, "f1": 0.5}


def test_one_break_is_recovered_from_noise_free_series():
    fit = bpl.fit(X, bnsl(ONE_BREAK, X, 1))
    for k, v in ONE_BREAK.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-4)


def test_zero_breaks_is_a_power_law_with_offset():
    truth = {"a": 1.6, "b": 3e3, "c0": 0.2}
    fit = bpl.fit(X, bnsl(truth, X, 0), bpl.BrokenPowerLawOptions(n_breaks=0))
    assert set(fit.params) == {"a", "b", "c0"}
    for k, v in truth.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-6)


def test_two_breaks_are_recovered_when_asked_for():
    truth = {"a": 1.6, "b": 3e3, "c0": 0.2, "c1": 0.3, "c2": -0.2, "d1": 1e19, "d2": 1e21, "f1": 0.5, "f2": 0.3}
    fit = bpl.fit(X, bnsl(truth, X, 2), bpl.BrokenPowerLawOptions(n_breaks=2))
    for k, v in truth.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-3)


def test_predict_matches_the_formula():
    np.testing.assert_allclose(bpl.predict(ONE_BREAK, X), bnsl(ONE_BREAK, X, 1), rtol=1e-12)


def test_slope_changes_by_c1_across_the_break():
    p = {**ONE_BREAK, "a": 0.0}
    x = np.array([1e12, 1e13, 1e27, 1e28])
    y = bpl.predict(p, x)
    before = -np.log10(y[1] / y[0])
    after = -np.log10(y[3] / y[2])
    assert before == pytest.approx(p["c0"], rel=1e-4)
    assert after == pytest.approx(p["c0"] + p["c1"], rel=1e-4)
