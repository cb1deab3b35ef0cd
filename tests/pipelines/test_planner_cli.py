"""The planners' commands and their JSON contract, run as a user runs them."""

from __future__ import annotations

import json

import pytest

from tests.cli import scalereg
from tests.synthetic import chinchilla_runs, write_runs

COEFFICIENT_KEYS = {"family", "law", "version", "fitted_at", "data_version", "n_runs", "params", "ci"}
ALLOCATE_KEYS = {"family", "law", "version", "compute", "n_opt", "d_opt", "tokens_per_param", "predicted_loss", "ci"}


@pytest.fixture(scope="module")
def fitted_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("planner") / "home"
    data = write_runs(root.parent / "runs.csv", chinchilla_runs("family-a"))
    assert scalereg("ingest", str(data), home=root).returncode == 0
    done = scalereg("refit", "--bootstrap", "100", home=root, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "family-a/chinchilla/v1" in done.stdout
    return root


def test_coefficients_json_follows_the_contract(fitted_home):
    out = scalereg("coefficients", "--format", "json", home=fitted_home)
    records = json.loads(out.stdout)
    chinchilla = next(r for r in records if r["law"] == "chinchilla")
    assert set(chinchilla) == COEFFICIENT_KEYS
    assert {"E", "A", "B", "alpha", "beta"} <= set(chinchilla["params"])
    lo, hi = chinchilla["ci"]["alpha"]
    assert lo < chinchilla["params"]["alpha"] < hi


def test_allocate_json_follows_the_contract(fitted_home):
    out = scalereg("allocate", "--family", "family-a", "--compute", "1e24", "--format", "json", home=fitted_home)
    answer = json.loads(out.stdout)
    assert set(answer) == ALLOCATE_KEYS and answer["compute"] == 1e24
    assert answer["n_opt"] * answer["d_opt"] * 6 == pytest.approx(1e24)
    assert set(answer["ci"]) == {"n_opt", "d_opt", "tokens_per_param", "predicted_loss"}


def test_allocate_from_given_coefficients_matches_the_paper(fitted_home):
    hoffmann = json.dumps({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28})
    out = scalereg("allocate", "--params", hoffmann, "--compute", "5.76e23", "--format", "json", home=fitted_home)
    answer = json.loads(out.stdout)
    # Hoffmann et al.'s rounded coefficients: N_opt = 3.219e10, D_opt = 2.982e12 at Gopher's budget
    assert answer["n_opt"] == pytest.approx(3.219e10, rel=1e-3) and answer["d_opt"] == pytest.approx(2.982e12, rel=1e-3)


def test_history_lists_every_version(fitted_home):
    out = scalereg("history", "--family", "family-a", "--format", "json", home=fitted_home)
    entries = json.loads(out.stdout)
    assert {(e["law"], e["version"], e["status"]) for e in entries} == {("chinchilla", 1, "published"), ("kaplan", 1, "published")}


def test_unknown_family_is_a_clear_message(fitted_home):
    out = scalereg("allocate", "--family", "nope", "--compute", "1e24", home=fitted_home)
    assert out.returncode == 1 and "no published chinchilla fit for family 'nope'" in out.stderr and "Traceback" not in out.stderr
