"""The shared optimisers: L-BFGS-B polish with and without the Newton finish."""

from __future__ import annotations

import numpy as np
import pytest

from laws import chinchilla
from laws.optimize import objective_values, polish
from laws_truth import HOFFMANN, chinchilla_loss, grid_runs


def _problem_and_starts():
    rng = np.random.default_rng(11)
    N, D = grid_runs()
    L = chinchilla_loss(HOFFMANN, N, D) * np.exp(rng.normal(0, 0.01, N.size))
    problem = chinchilla.make_problem(N, D, L)
    starts, _ = chinchilla.varpro_starts(problem)
    return problem, starts


def test_polish_without_newton_finish_returns_the_best_lbfgsb_result():
    problem, starts = _problem_and_starts()
    theta, f, converged, message, details = polish(problem, starts, newton_finish=False)
    assert f == pytest.approx(float(objective_values(problem, theta)[0]), rel=1e-12)
    assert f == details["start_objectives"].min()
    assert isinstance(converged, bool)
    assert message.startswith("L-BFGS-B:") and "Newton" not in message


def test_newton_finish_is_never_worse_than_lbfgsb_alone():
    problem, starts = _problem_and_starts()
    _, plain, *_ = polish(problem, starts, newton_finish=False)
    _, finished, converged, message, _ = polish(problem, starts)
    assert finished <= plain
    assert converged and "Newton" in message


def test_polish_reaches_the_generating_parameters_on_noise_free_runs():
    N, D = grid_runs()
    problem = chinchilla.make_problem(N, D, chinchilla_loss(HOFFMANN, N, D))
    starts, _ = chinchilla.varpro_starts(problem)
    theta, *_ = polish(problem, starts, newton_finish=False)
    np.testing.assert_allclose(problem.to_natural(theta), [HOFFMANN[k] for k in problem.param_names], rtol=1e-4)
