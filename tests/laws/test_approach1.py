"""Approach 1 (the lower envelope of loss against compute) on curves with a known optimum.

The curves (:mod:`curves_truth`) follow a Chinchilla law, so the optimal
exponent is ``a = beta / (alpha + beta)``; runs are trained to several
horizons per size with a cosine schedule, so a mid-training checkpoint is
above the loss of a run annealed at that point.
"""

from __future__ import annotations

import numpy as np
import pytest

from curves_truth import cosine_runs
from laws import approach1
from laws.approach1 import EnvelopeSettings
from laws.errors import FitError
from laws_truth import HOFFMANN, chinchilla_loss

#: Hoffmann's law (a = 0.452), one with beta > alpha (a = 0.524), one with alpha > beta (a = 0.419)
TRUTHS = (
    HOFFMANN,
    {"E": 1.8, "A": 300.0, "B": 900.0, "alpha": 0.30, "beta": 0.33},
    {"E": 1.9, "A": 900.0, "B": 300.0, "alpha": 0.36, "beta": 0.26},
)
#: 25 sizes over three decades, each trained to 2, 4, ..., 128 tokens per parameter
SIZES = np.geomspace(1e7, 1e10, 25)
HORIZONS = 2.0 ** np.arange(1, 8)


def _a(truth: dict[str, float]) -> float:
    return truth["beta"] / (truth["alpha"] + truth["beta"])


def _fit(curves: dict[str, np.ndarray], **settings) -> approach1.Approach1Result:
    return approach1.fit(
        curves["params"], curves["tokens"], curves["loss"], curves["run"], EnvelopeSettings(**settings), n_resamples=200
    )


def _envelope(curves: dict[str, np.ndarray], **settings) -> approach1.Envelope:
    return approach1.envelope(curves["params"], curves["tokens"], curves["loss"], curves["run"], EnvelopeSettings(**settings))


@pytest.mark.parametrize("truth", TRUTHS, ids=["hoffmann", "beta>alpha", "alpha>beta"])
def test_envelope_of_cosine_runs_recovers_the_optimal_exponent(truth):
    result = _fit(cosine_runs(truth, SIZES, HORIZONS), use="ends")
    assert abs(result.a - _a(truth)) < 0.02
    assert result.b == pytest.approx(1 - result.a)
    lo, hi = result.intervals["a"]
    assert lo <= result.a <= hi


@pytest.mark.parametrize("truth", TRUTHS, ids=["hoffmann", "beta>alpha", "alpha>beta"])
def test_envelope_of_annealed_checkpoints_recovers_the_optimal_exponent(truth):
    """Without a schedule penalty every checkpoint is an annealed loss: Hoffmann's envelope of all points."""
    result = _fit(cosine_runs(truth, SIZES, HORIZONS, penalty=0.0), use="checkpoints")
    assert abs(result.a - _a(truth)) < 0.02


def test_envelope_of_ends_is_annealed_and_envelope_of_checkpoints_carries_the_schedule_penalty():
    curves = cosine_runs(HOFFMANN, SIZES, HORIZONS)
    excess = {}
    for use in ("ends", "checkpoints"):
        env = _envelope(curves, use=use)
        assert np.allclose(6 * env.params * env.tokens, env.compute)
        excess[use] = env.loss - chinchilla_loss(HOFFMANN, env.params, env.tokens)
    # ends: only the error of interpolating the convex law between horizons a factor 2 apart
    assert excess["ends"].min() >= -1e-12 and excess["ends"].max() < 0.01
    # checkpoints: mid-training points win some compute while still above their annealed loss
    assert excess["checkpoints"].max() > 0.02


def test_the_envelope_keeps_only_compute_bracketed_by_smaller_and_larger_models():
    curves = cosine_runs(HOFFMANN, SIZES, HORIZONS)
    env = _envelope(curves)
    assert env.params.min() > SIZES.min() and env.params.max() < SIZES.max()
    loose = _envelope(curves, bracketed=False)
    assert loose.compute.size > env.compute.size


def test_allocation_follows_the_fitted_power_laws():
    result = _fit(cosine_runs(HOFFMANN, SIZES, HORIZONS), use="ends")
    C = np.array([1e22, 1e24])
    alloc = result.allocate(C)
    np.testing.assert_allclose(alloc.n_opt, result.k_n * C**result.a)
    np.testing.assert_allclose(6 * alloc.n_opt * alloc.d_opt, C)
    lo, hi = result.tokens_per_param_interval(C)
    assert np.all(lo <= alloc.tokens_per_param) and np.all(alloc.tokens_per_param <= hi)
    assert result.n_runs == SIZES.size * HORIZONS.size
    assert result.samples.shape == (200, 4)


def test_bootstrap_resamples_runs_not_points():
    """A resample keeps whole curves (runs); the envelope changes with the runs drawn, so the samples spread."""
    result = _fit(cosine_runs(HOFFMANN, SIZES, HORIZONS, noise=0.003))
    lo, hi = result.intervals["a"]
    assert hi - lo > 0
    assert np.isfinite(result.samples).all(axis=1).mean() > 0.95


def test_too_few_sizes_for_an_interior_minimum_is_a_fit_error():
    curves = cosine_runs(HOFFMANN, np.array([1e8, 1e9]), HORIZONS)
    with pytest.raises(FitError, match="envelope points"):
        _fit(curves)


def test_settings_refuse_an_unknown_curve_kind():
    with pytest.raises(ValueError, match="checkpoints"):
        EnvelopeSettings(use="all")


def test_a_run_with_two_sizes_is_refused():
    curves = cosine_runs(HOFFMANN, SIZES[:5], HORIZONS)
    curves["run"][:] = 0
    with pytest.raises(ValueError, match="one size"):
        _fit(curves)


# -- the law in the catalogue -------------------------------------------------------------
def test_the_catalogue_law_is_the_envelope_fit_with_the_same_run_bootstrap():
    """Through laws.bootstrap (resampling what the law names: sizes for "ends") the law gives exactly
    the point estimate and intervals of approach1.fit with the same seed."""
    from laws.bootstrap import bootstrap

    curves = cosine_runs(HOFFMANN, SIZES, HORIZONS, noise=0.003)
    direct = _fit(curves, use="ends")
    boot = bootstrap("approach1", curves, {"use": "ends"}, n_resamples=200, seed=0)
    assert boot.fit.params == pytest.approx(direct.params, rel=1e-12)
    for name, interval in direct.intervals.items():
        assert boot.ci[name] == pytest.approx(interval, rel=1e-12)
    assert boot.clustered
    assert abs(boot.fit.params["a"] - _a(HOFFMANN)) < 0.02


def test_the_catalogue_law_allocates_by_its_power_laws_and_has_no_loss():
    from laws.catalog import get_law

    law = get_law("approach1")
    params = {"a": 0.5, "k_n": 0.1, "b": 0.5, "k_d": 1 / 0.6}
    alloc = law.allocate(params, 1e24)
    assert alloc.n_opt == pytest.approx(0.1 * 1e24**0.5) and np.isnan(alloc.predicted_loss)
    assert law.predict(params, {"params": np.array([1e9]), "tokens": np.array([2e10]), "run": np.array([0])})[0] == (
        pytest.approx(0.1 * (6 * 1e9 * 2e10) ** 0.5)
    )


def test_points_given_zero_weight_leave_their_curves_out():
    from laws.catalog import get_law

    curves = cosine_runs(HOFFMANN, SIZES, HORIZONS)
    smaller = SIZES[SIZES < 3e9]
    keep = curves["params"] < 3e9
    all_but = get_law("approach1").fit(curves, {"use": "ends", "weights": keep.astype(float)})
    subset = get_law("approach1").fit({k: v[keep] for k, v in curves.items()}, {"use": "ends"})
    assert all_but.params == pytest.approx(subset.params, rel=1e-12)
    assert all_but.n_runs == int(keep.sum()) and smaller.size < SIZES.size
