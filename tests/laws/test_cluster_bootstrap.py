"""Bootstrap by run: checkpoints of one run are not independent evidence.

The coverage test is issue 9's cluster-bootstrap "done when" line: 10 runs of
50 checkpoints each, whose deviations from the law are correlated within a
run (a per-run offset, as from the run's seed, plus AR(1) noise along the
run).  Each seed fits the law to all 500 points and refines 200 resamples by
run and 200 by point, all at once (multinomial-count weights over the same
points, as :mod:`laws.bootstrap` does).  The full-data fit is polished from
the true parameters rather than found by the global search (tested
elsewhere): what is tested here is the spread of the resamples, and this
keeps 100 seeds near half a minute.
"""

from __future__ import annotations

import numpy as np
import pytest

from laws.bootstrap import bootstrap
from laws.chinchilla import CHINCHILLA
from laws.optimize import newton
from laws.resample import cluster_counts, n_clusters, point_counts, resample_counts
from laws_truth import HOFFMANN, chinchilla_loss

RUNS, CHECKPOINTS, RESAMPLES = 10, 50, 200
RUN_OFFSET, STEP_NOISE, CORRELATION = 0.01, 0.003, 0.95


def _checkpoints(seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """10 sizes over two decades, each checkpointed every 2% of 100 tokens per parameter."""
    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(1e7, 1e9, RUNS), CHECKPOINTS)
    D = N * 100 * np.tile(np.arange(1, CHECKPOINTS + 1) / CHECKPOINTS, RUNS)
    along = np.empty((RUNS, CHECKPOINTS))
    along[:, 0] = rng.normal(0, STEP_NOISE / np.sqrt(1 - CORRELATION**2), RUNS)
    for k in range(1, CHECKPOINTS):
        along[:, k] = CORRELATION * along[:, k - 1] + rng.normal(0, STEP_NOISE, RUNS)
    log_noise = np.repeat(rng.normal(0, RUN_OFFSET, RUNS), CHECKPOINTS) + along.ravel()
    L = chinchilla_loss(HOFFMANN, N, D) * np.exp(log_noise)
    return {"params": N, "tokens": D, "loss": L}, np.repeat(np.arange(RUNS), CHECKPOINTS)


def _intervals(problem, theta: np.ndarray, counts: np.ndarray) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of alpha and a = beta/(alpha+beta) over count-weighted refits from ``theta``."""
    refits = newton(problem, np.tile(theta, (counts.shape[0], 1)), weights=counts * problem.weights)
    alpha, beta = refits.theta[:, 3], refits.theta[:, 4]
    out = {}
    for name, values in (("alpha", alpha), ("a", beta / (alpha + beta))):
        lo, hi = np.nanpercentile(values, [2.5, 97.5])
        out[name] = (lo, hi)
    return out


def test_run_bootstrap_covers_the_truth_and_the_point_bootstrap_does_not():
    truth = {"alpha": HOFFMANN["alpha"], "a": HOFFMANN["beta"] / (HOFFMANN["alpha"] + HOFFMANN["beta"])}
    covered = {(unit, name): 0 for unit in ("run", "point") for name in truth}
    for seed in range(100):
        data, runs = _checkpoints(seed)
        theta = CHINCHILLA.fit(data, {"init": HOFFMANN}).extras["theta"]
        problem = CHINCHILLA.make_problem(data)
        for unit, counts in (
            ("run", cluster_counts(runs, RESAMPLES, seed)),
            ("point", point_counts(runs.size, RESAMPLES, seed)),
        ):
            for name, (lo, hi) in _intervals(problem, theta, counts).items():
                covered[unit, name] += lo <= truth[name] <= hi
    for name in truth:
        assert covered["run", name] >= 90, covered
        assert covered["point", name] < 60, covered


def test_every_checkpoint_of_a_run_gets_the_run_count():
    runs = np.array(["b", "a", "b", "c", "a", "b"])
    counts = cluster_counts(runs, 500, seed=1)
    for run in np.unique(runs):
        mine = counts[:, runs == run]
        assert np.all(mine == mine[:, :1])
    per_run = np.stack([counts[:, runs == r][:, 0] for r in np.unique(runs)], axis=1)
    assert np.all(per_run.sum(axis=1) == 3)  # three runs drawn per resample
    assert np.all(np.isin(per_run, [0, 1, 2, 3]))
    assert n_clusters(runs) == 3


def test_point_counts_are_the_draws_of_the_existing_bootstrap():
    from laws_truth import grid_runs

    N, D = grid_runs(4, 4)
    data = {"params": N, "tokens": D, "loss": chinchilla_loss(HOFFMANN, N, D) * 1.001}
    boot = bootstrap("chinchilla", data, n_resamples=20, seed=5)
    np.testing.assert_array_equal(point_counts(N.size, 20, 5), boot.resample_counts)


def test_one_run_per_point_makes_the_run_bootstrap_the_point_bootstrap():
    np.testing.assert_array_equal(cluster_counts(np.arange(7), 30, 2), point_counts(7, 30, 2))


def test_resample_counts_dispatches_on_groups():
    runs = np.repeat(np.arange(4), 3)
    np.testing.assert_array_equal(resample_counts(12, 10, groups=runs, seed=3), cluster_counts(runs, 10, 3))
    np.testing.assert_array_equal(resample_counts(12, 10, seed=3), point_counts(12, 10, 3))
    with pytest.raises(ValueError):
        resample_counts(11, 10, groups=runs)
    with pytest.raises(ValueError):
        cluster_counts(runs, 0)


def test_bootstrap_with_groups_draws_whole_runs():
    data, runs = _checkpoints(0)
    boot = bootstrap("chinchilla", data, {"init": HOFFMANN}, n_resamples=50, seed=4, groups=runs)
    np.testing.assert_array_equal(boot.resample_counts, cluster_counts(runs, 50, 4))
    assert boot.clustered
    plain = bootstrap("chinchilla", data, {"init": HOFFMANN}, n_resamples=50, seed=4)
    assert not plain.clustered
    # ten independent runs, not 500 points: the run bootstrap's interval of alpha is wider
    width = {name: np.subtract(*b.ci["alpha"][::-1]) for name, b in (("run", boot), ("point", plain))}
    assert width["run"] > 2 * width["point"]
