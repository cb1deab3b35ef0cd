"""One exponent for N and D (Gadre et al. 2024: L = E + A N^-eta + B D^-eta): ``tie_exponents``.

The tied fit is checked against an independent route to the same optimum: the
Chinchilla fit with alpha = beta = x held fixed, minimised over x by a scalar
search.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from laws.bootstrap import bootstrap
from laws.chinchilla import CHINCHILLA
from laws.profiles import profile
from laws_truth import chinchilla_loss, grid_runs

#: a law with one exponent, as Gadre et al. fit it
SHARED = {"E": 1.8, "A": 500.0, "B": 900.0, "alpha": 0.3, "beta": 0.3}
TIED = {"tie_exponents": True}


def _data(truth=SHARED, seed: int = 0, sigma: float = 0.005):
    N, D = grid_runs(7, 6)
    L = chinchilla_loss(truth, N, D) * np.exp(np.random.default_rng(seed).normal(0, sigma, N.size))
    return {"params": N, "tokens": D, "loss": L}


def test_the_tied_fit_is_the_best_fit_with_alpha_equal_to_beta():
    data = _data({"E": 1.7, "A": 400.0, "B": 1200.0, "alpha": 0.32, "beta": 0.27})  # truth not tied

    def objective(x: float) -> float:
        return CHINCHILLA.fit(data, {"fixed": {"alpha": x, "beta": x}}).objective

    reference = minimize_scalar(objective, bounds=(0.1, 0.6), method="bounded", options={"xatol": 1e-7})
    tied = CHINCHILLA.fit(data, TIED)
    assert tied.params["alpha"] == tied.params["beta"]
    assert tied.params["alpha"] == pytest.approx(reference.x, abs=1e-4)
    assert tied.objective == pytest.approx(reference.fun, rel=1e-6)
    assert tied.objective >= CHINCHILLA.fit(data).objective  # one constraint more
    assert tied.converged


def test_a_shared_exponent_law_is_recovered():
    fit = CHINCHILLA.fit(_data(), TIED)
    assert fit.params["alpha"] == pytest.approx(SHARED["alpha"], rel=0.05)
    assert fit.params["E"] == pytest.approx(SHARED["E"], rel=0.05)


def test_bootstrap_draws_keep_beta_equal_to_alpha_and_cover_the_truth():
    boot = bootstrap("chinchilla", _data(), TIED, n_resamples=200, seed=1)
    draws = dict(zip(boot.param_names, boot.samples.values.T))
    np.testing.assert_array_equal(draws["alpha"], draws["beta"])
    lo, hi = boot.ci["alpha"]
    assert lo <= SHARED["alpha"] <= hi
    assert boot.converged_fraction > 0.95


def test_the_tied_space_names_alpha_for_bounds_and_fixed_values():
    data = _data()
    fixed = CHINCHILLA.fit(data, {**TIED, "fixed": {"alpha": 0.3}})
    assert fixed.params["alpha"] == fixed.params["beta"] == 0.3
    with pytest.raises(ValueError, match="beta is tied to alpha"):
        CHINCHILLA.fit(data, {**TIED, "fixed": {"beta": 0.3}})
    theta = CHINCHILLA.to_theta({"E": 1.8, "A": 500.0, "B": 900.0, "alpha": 0.3}, TIED)
    assert CHINCHILLA.to_natural(theta, TIED)[4] == 0.3


def test_the_E_profile_keeps_the_exponents_tied_and_the_a_profile_does_not_apply():
    data = _data()
    fit = CHINCHILLA.fit(data, TIED)
    N, D, L = data["params"], data["tokens"], data["loss"]
    p = profile("E", N, D, L, budgets=[1e24], options=TIED, start=fit.params)
    assert np.allclose(p.params["alpha"], p.params["beta"])
    assert p.best_objective == pytest.approx(fit.objective, rel=1e-9)
    for E, objective in zip(p.grid[::4], p.objective[::4]):
        reference = CHINCHILLA.fit(data, {**TIED, "fixed": {"E": float(E)}})
        assert objective == pytest.approx(reference.objective, rel=1e-6)
    with pytest.raises(ValueError, match="a is 0.5 by construction"):
        profile("a", N, D, L, budgets=[1e24], options=TIED)
