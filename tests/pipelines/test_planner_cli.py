"""The planners' commands and their JSON contract, run as a user runs them.

Two families drawn from Hoffmann et al.'s law: ``family-a`` (final values on a grid of N and D)
and ``sweep`` (IsoFLOP budgets whose runs have loss curves, so Approaches 1 and 2 and Kaplan are
fitted too).
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from registry.db import writer
from registry.home import Home
from registry.refit import refit_family
from registry.settings import FitSettings
from tests.cli import scalereg
from tests.synthetic import HOFFMANN, chinchilla_runs, write_runs

COEFFICIENT_KEYS = {"family", "law", "version", "fitted_at", "data_version", "n_runs", "params", "ci", "status", "reason"}
ALLOCATE_KEYS = {
    "family", "law", "version", "compute", "n_opt", "d_opt", "tokens_per_param", "predicted_loss", "status", "reason", "ci",
}
STATUSES = {"trusted", "extrapolated", "unidentified", "approaches_disagree"}
EXIT_UNTRUSTED = 4


def sweep_runs(family: str) -> pl.DataFrame:
    """Five sizes around the optimum (0.8 decades either side) at each of four budgets, trained at a constant
    learning rate: every checkpoint's loss is the law's at the tokens seen so far (the curves Approach 1
    reads), with 0.3% noise."""
    rng = np.random.default_rng(1)
    rows = []
    for budget in (1e17, 1e18, 1e19, 1e20):
        optimum = 7.45 + 0.45 * (np.log10(budget) - 17)  # log10 N_opt of Hoffmann et al.'s law, within 0.01
        for size in np.logspace(optimum - 0.8, optimum + 0.8, 5):
            final = budget / (6 * size)
            for step, tokens in enumerate(np.geomspace(final / 30, final, 12), start=1):
                loss = HOFFMANN["E"] + HOFFMANN["A"] / size ** HOFFMANN["alpha"] + HOFFMANN["B"] / tokens ** HOFFMANN["beta"]
                rows.append({"family": family, "run_name": f"c{budget:.0e}-n{size:.3e}", "params": size, "tokens": tokens,
                             "flops": 6 * size * tokens, "step": step, "loss": loss * np.exp(rng.normal(0, 0.003))})
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("planner") / "home"
    for name, frame in (("runs.csv", chinchilla_runs("family-a")), ("sweep.csv", sweep_runs("sweep"))):
        data = write_runs(root.parent / name, frame)
        assert scalereg("ingest", str(data), home=root).returncode == 0
    home = Home.from_env(root)
    for family in ("family-a", "sweep"):
        refit = refit_family(lambda: writer(home.registry), family, FitSettings(bootstrap_resamples=100, other_law_resamples=50))
        assert f"{family}/chinchilla/v1" in refit.fit_ids
    return root


def allocate(home, *args: str):
    return scalereg("allocate", *args, "--format", "json", home=home)


def test_coefficients_json_follows_the_contract_with_the_loss_law_status(fitted_home):
    out = scalereg("coefficients", "--format", "json", home=fitted_home)
    records = json.loads(out.stdout)
    chinchilla = next(r for r in records if r["law"] == "chinchilla" and r["family"] == "family-a")
    assert set(chinchilla) == COEFFICIENT_KEYS
    assert {"E", "A", "B", "alpha", "beta"} <= set(chinchilla["params"])
    lo, hi = chinchilla["ci"]["alpha"]
    assert lo < chinchilla["params"]["alpha"] < hi
    # only published fits are served, and nothing newer was held
    assert {(r["status"], r["reason"]) for r in records} == {("published", None)}


def test_a_trusted_allocation_is_printed_with_its_status(fitted_home):
    # 1e20 FLOPs lies inside the runs of family-a (largest 1.9e21), which span 2.5 decades of N and 2 of D
    out = allocate(fitted_home, "--family", "family-a", "--compute", "1e20")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert set(answer) == ALLOCATE_KEYS and answer["compute"] == 1e20
    assert (answer["status"], answer["reason"]) == ("trusted", None)
    assert answer["n_opt"] * answer["d_opt"] * 6 == pytest.approx(1e20)
    assert set(answer["ci"]) == {"n_opt", "d_opt", "tokens_per_param", "predicted_loss"}


def test_an_allocation_far_above_the_runs_exits_4_with_one_line_and_prints_nothing(fitted_home):
    # 1e25 FLOPs is almost four decades above family-a's largest run (1.9e21): at best extrapolated
    out = allocate(fitted_home, "--family", "family-a", "--compute", "1e25")
    assert out.returncode == EXIT_UNTRUSTED and out.stdout == ""
    (line,) = out.stderr.strip().splitlines()
    assert "--allow-untrusted" in line and "Traceback" not in line
    read_anyway = allocate(fitted_home, "--family", "family-a", "--compute", "1e25", "--allow-untrusted")
    assert read_anyway.returncode == 0
    answer = json.loads(read_anyway.stdout)
    assert set(answer) == ALLOCATE_KEYS
    assert answer["status"] in STATUSES - {"trusted"}
    # the one line gives the status and the whole reason, with its figures
    assert f"is {answer['status']}: {answer['reason']}" in line
    assert "decades above the largest run" in answer["reason"]


def test_each_law_that_allocates_answers_with_its_own_status(fitted_home):
    seen = {}
    for law in ("chinchilla", "isoflop", "approach1", "kaplan"):
        out = allocate(fitted_home, "--family", "sweep", "--law", law, "--compute", "1e19", "--allow-untrusted")
        assert out.returncode == 0, (law, out.stderr)
        answer = json.loads(out.stdout)
        assert answer["law"] == law and answer["status"] in STATUSES
        assert (answer["reason"] is None) == (answer["status"] == "trusted")
        assert answer["n_opt"] * answer["d_opt"] * 6 == pytest.approx(1e19)
        seen[law] = answer["tokens_per_param"]
    # Hoffmann et al.'s law gives 32.1 tokens/param at 1e19 (N_opt = 2.28e8); Approaches 1, 2 and 3 read
    # it off these runs
    for law in ("chinchilla", "isoflop", "approach1"):
        assert seen[law] == pytest.approx(32.1, rel=0.3), seen


def test_allocate_from_given_coefficients_matches_the_paper_and_is_unverified(fitted_home):
    hoffmann = json.dumps({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28})
    out = allocate(fitted_home, "--params", hoffmann, "--compute", "5.76e23")
    assert out.returncode == 0
    answer = json.loads(out.stdout)
    # Hoffmann et al.'s rounded coefficients: N_opt = 3.219e10, D_opt = 2.982e12 at Gopher's budget
    assert answer["n_opt"] == pytest.approx(3.219e10, rel=1e-3) and answer["d_opt"] == pytest.approx(2.982e12, rel=1e-3)
    # no runs stand behind coefficients typed in: never trusted, and the reason says so
    assert answer["status"] == "unverified" and "--params" in answer["reason"]


def test_history_lists_every_version(fitted_home):
    out = scalereg("history", "--family", "family-a", "--format", "json", home=fitted_home)
    entries = {e["law"]: e for e in json.loads(out.stdout)}
    assert {(law, e["version"]) for law, e in entries.items()} == {("chinchilla", 1), ("kaplan", 1)}
    assert entries["chinchilla"]["status"] == "published"
    # a fit that was not published says why
    assert all(e["reason"] for e in entries.values() if e["status"] != "published")


def test_unknown_family_is_a_clear_message(fitted_home):
    out = scalereg("allocate", "--family", "nope", "--compute", "1e24", home=fitted_home)
    assert out.returncode == 1 and "no published chinchilla fit for family 'nope'" in out.stderr and "Traceback" not in out.stderr
