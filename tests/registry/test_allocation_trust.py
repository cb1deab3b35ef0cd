"""A fit publishes two verdicts: the loss law's (``fits.status``) and, per budget, the allocation's
(``allocations.status``), through the registry's refit path.

Families are drawn from Hoffmann et al.'s law (optimum 97.7 tokens/param at 1e24 FLOPs, written out
in ``tests/laws/allocation_truth.py``): a ladder over three decades of N with training curves, whose
allocation both approaches identify, and a family over under one decade of N, whose allocation the
profiles show undetermined.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from registry.db import writer
from registry.gates import GateSettings
from registry.ingest import ingest_path
from registry.refit import BUDGETS, INFERENCE_BUDGETS, INFERENCE_TOKENS, refit_family
from registry.settings import FitSettings
from tests.conftest import rows
from tests.synthetic import HOFFMANN, chinchilla_runs, write_runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "laws"))
from allocation_truth import optimal_tokens_per_param  # noqa: E402
from curves_truth import cosine_runs  # noqa: E402

FAST = FitSettings(bootstrap_resamples=200, other_law_resamples=100)
TRUTH = optimal_tokens_per_param(HOFFMANN, 1e24)


def _ladder() -> pl.DataFrame:
    """25 sizes over 1e7-1e10, each trained to 2-128 tokens/param with a cosine schedule: a mid-run
    checkpoint and the final point per run (175 runs; the largest 7.7e22 FLOPs)."""
    c = cosine_runs(HOFFMANN, np.geomspace(1e7, 1e10, 25), 2.0 ** np.arange(1, 8), n_checkpoints=2, noise=0.002)
    return pl.DataFrame({
        "family": "ladder", "run_name": [f"r{int(r)}" for r in c["run"]], "params": c["params"], "tokens": c["tokens"],
        "loss": c["loss"], "step": np.tile([500, 1000], c["params"].size // 2),
    })


@pytest.fixture
def ladder(home, tmp_path):
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / "ladder.csv", _ladder()))
    result = refit_family(partial(writer, home.registry), "ladder", FAST)
    return {f.record.law: f for f in result.fitted}


def test_a_ladder_over_three_decades_publishes_a_trusted_allocation_holding_the_truth(ladder, home):
    chinchilla = ladder["chinchilla"].record
    assert chinchilla.status == "published"
    with writer(home.registry) as con:
        (row,) = rows(con, "SELECT status, reason, tokens_per_param, tokens_per_param_lo, tokens_per_param_hi FROM allocations "
                           "WHERE law = 'chinchilla' AND compute = 1e24 AND inference_tokens = 0")
    status, reason, tpp, lo, hi = row
    assert status == "trusted" and reason is None
    assert lo <= TRUTH <= hi and tpp == pytest.approx(TRUTH, rel=0.3)
    summary = chinchilla.diagnostics["allocation"]
    assert summary["status"] == "trusted" and "2 approaches agree within 2x" in summary["reason"]
    assert set(summary["profiles"]) == {"E", "a"} and all(p["identified"] for p in summary["profiles"].values())


def test_every_allocation_row_carries_a_status_and_budgets_far_above_the_runs_are_extrapolated(ladder, home):
    with writer(home.registry) as con:
        verdicts = dict(rows(con, "SELECT compute, status FROM allocations WHERE law = 'chinchilla' AND inference_tokens = 0"))
        reasons = dict(rows(con, "SELECT compute, reason FROM allocations WHERE law = 'chinchilla' AND inference_tokens = 0"))
        unset = rows(con, "SELECT count(*) FROM allocations WHERE status IS NULL")
    assert sorted(verdicts) == pytest.approx(list(BUDGETS)) and unset == [(0,)]
    # the largest run is 7.7e22 FLOPs: 1e25 is 2.1 decades above it
    assert verdicts[1e24] == "trusted" and verdicts[1e25] == "extrapolated"
    assert "2.1 decades above the largest run (7.7e+22 FLOPs; limit 2)" in reasons[1e25]


def test_approach_1_is_fitted_on_the_curves_with_a_bootstrap_by_curve_and_its_own_verdicts(ladder, home):
    approach1 = ladder["approach1"].record
    assert approach1.status == "published"
    assert approach1.options == {"use": "ends"}  # final values fitted: the runs' final points per size
    assert approach1.diagnostics["bootstrap_unit"] == "run" and approach1.diagnostics["curves"] == 25
    assert abs(approach1.params["a"] - HOFFMANN["beta"] / (HOFFMANN["alpha"] + HOFFMANN["beta"])) < 0.03
    with writer(home.registry) as con:
        (row,) = rows(con, "SELECT status, tokens_per_param FROM allocations WHERE law = 'approach1' AND compute = 1e24")
        (three,) = rows(con, "SELECT tokens_per_param FROM allocations WHERE law = 'chinchilla' AND compute = 1e24 AND inference_tokens = 0")
    assert row[0] == "trusted" and 0.5 < row[1] / three[0] < 2.0
    assert "bootstrap interval of tokens/param" in approach1.diagnostics["allocation"]["reason"]


def test_a_law_with_no_profile_publishes_an_allocation_that_is_never_trusted(ladder, home):
    with writer(home.registry) as con:
        statuses = rows(con, "SELECT DISTINCT status FROM allocations WHERE law = 'kaplan'")
        (reason,) = rows(con, "SELECT reason FROM allocations WHERE law = 'kaplan' AND compute = 1e24")[0]
    assert statuses == [("unidentified",)]
    assert reason.startswith("identification was not checked")


def test_profiles_are_stored_long_for_every_budget(ladder, home):
    points = FAST.profile_points
    with writer(home.registry) as con:
        stored = dict(rows(con, "SELECT parameter, count(DISTINCT compute) FROM fit_profiles GROUP BY 1"))
        per_budget = rows(con, "SELECT parameter, count(*) FROM fit_profiles WHERE compute = 1e24 GROUP BY 1 ORDER BY 1")
        (best,) = rows(con, "SELECT min(relative_excess) FROM fit_profiles WHERE parameter = 'E'")[0]
    assert stored == {"E": BUDGETS.size, "a": BUDGETS.size}
    assert all(count >= points for _, count in per_budget)  # the grid, the free fit's value, any zoom points
    assert best == pytest.approx(0.0, abs=1e-9)  # the free fit lies on its own profile


def test_fit_verdicts_show_both_verdicts_side_by_side(ladder, home):
    with writer(home.registry) as con:
        seen = rows(con, "SELECT law, fit_status, allocation_status FROM fit_verdicts WHERE compute = 1e24 ORDER BY law")
    assert seen == [("approach1", "published", "trusted"), ("chinchilla", "published", "trusted"),
                    ("kaplan", "published", "unidentified")]


def _narrow(home, tmp_path, settings: FitSettings):
    """49 runs over a factor 4 of N (2e9-8e9) and three decades of D."""
    runs = chinchilla_runs("narrow", n_sizes=7, n_tokens=7, size_range=(9.3, 9.9), token_range=(9.0, 12.0), noise=0.005)
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / "narrow.csv", runs))
    return next(f for f in refit_family(partial(writer, home.registry), "narrow", settings).fitted if f.record.law == "chinchilla")


def test_under_one_decade_of_N_a_published_loss_law_has_an_unidentified_allocation(home, tmp_path):
    """Two verdicts: the loss law passes its (here relaxed) gates; its allocation is not identified."""
    relaxed = FitSettings(bootstrap_resamples=200, other_law_resamples=100, gates=GateSettings(max_relative_interval_width=5.0))
    fit = _narrow(home, tmp_path, relaxed).record
    assert fit.status == "published"
    with writer(home.registry) as con:
        (status, reason), = rows(con, "SELECT status, reason FROM allocations WHERE compute = 1e24 AND inference_tokens = 0")
        # an inference-aware row targets the loss a budget buys, and carries that budget's verdict
        aware = rows(con, "SELECT i.status = b.status FROM allocations i JOIN allocations b "
                          "ON b.inference_tokens = 0 AND b.predicted_loss = i.target_loss WHERE i.inference_tokens > 0")
    assert status == "unidentified"
    assert reason.startswith("E is not identified: fixing E anywhere in ") and "add runs at larger N or fix E" in reason
    assert len(aware) == len(INFERENCE_BUDGETS) * len(INFERENCE_TOKENS) and all(same for (same,) in aware)


def test_a_held_fit_keeps_its_profiles_and_verdict_but_publishes_no_allocation(home, tmp_path):
    fit = _narrow(home, tmp_path, FAST)
    assert fit.record.status == "held" and fit.record.reason.startswith("interval_width:")
    assert fit.record.diagnostics["allocation"]["status"] == "unidentified"
    with writer(home.registry) as con:
        assert rows(con, "SELECT count(*) FROM allocations") == [(0,)]
        assert rows(con, "SELECT DISTINCT parameter FROM fit_profiles ORDER BY 1") == [("E",), ("a",)]
        (diagnostics,) = rows(con, "SELECT diagnostics FROM fits WHERE law = 'chinchilla'")[0]
    assert json.loads(diagnostics)["allocation"]["profiles"]["E"]["identified"] is False


@pytest.mark.parametrize(
    "runs",
    [
        chinchilla_runs("narrow-noisy", n_sizes=4, n_tokens=3, size_range=(8.0, 8.2), token_range=(9.0, 9.3), noise=0.02),
        chinchilla_runs("flipped", n_sizes=4, n_tokens=3).with_columns(pl.col("params").reverse()),
    ],
    ids=["narrow-noisy", "flipped"],
)
def test_runs_whose_profiles_give_no_finite_allocation_are_judged_not_crashed(runs, home, tmp_path):
    """Twelve runs over a sliver of N and D (or with N scrambled against the losses): whatever the loss
    law's verdict, the refit completes and no allocation the runs cannot pin down is trusted."""
    family = runs.get_column("family")[0]
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / f"{family}.csv", runs))
    result = refit_family(partial(writer, home.registry), family, FAST)
    chinchilla = next(f.record for f in result.fitted if f.record.law == "chinchilla")
    assert chinchilla.status in ("published", "held")
    with writer(home.registry) as con:
        statuses = {s for (s,) in rows(con, "SELECT DISTINCT status FROM allocations WHERE family = ?", [family])}
    assert "trusted" not in statuses
    verdict = chinchilla.diagnostics.get("allocation")
    assert verdict is None or verdict["status"] != "trusted"
