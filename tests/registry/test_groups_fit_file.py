"""`scalereg fit FILE --family-column --shared`: a joint fit of a file's families, no registry needed."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from laws.joint import fit_joint
from registry.adapters.base import FileProblem
from registry.fit_file import fit_file_joint
from typer.testing import CliRunner

from registry.cli import app

#: three corpora with one irreducible loss and their own terms (the known truth)
TRUTH = {
    "web": {"E": 1.8, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28},
    "code": {"E": 1.8, "A": 250.0, "B": 800.0, "alpha": 0.30, "beta": 0.32},
    "books": {"E": 1.8, "A": 600.0, "B": 300.0, "alpha": 0.38, "beta": 0.26},
}
CONTRACT = {"law", "shared", "shared_params", "families", "objective", "converged", "seconds"}


@pytest.fixture(scope="module")
def runs_file(tmp_path_factory) -> tuple:
    """A CSV of the three families' runs (the family in a column named ``corpus``) and the arrays behind it."""
    N = np.repeat(np.geomspace(1e7, 3e9, 6), 5)
    D = np.tile(np.geomspace(2e8, 1e11, 5), 6)
    frames, datasets = [], {}
    for name, p in TRUTH.items():
        L = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
        datasets[name] = {"params": N, "tokens": D, "loss": L}
        frames.append(pl.DataFrame({"corpus": name, "params": N, "tokens": D, "loss": L}))
    path = tmp_path_factory.mktemp("joint") / "runs.csv"
    pl.concat(frames).write_csv(path)
    return path, datasets


def test_the_command_prints_the_contract_and_its_shared_e_is_the_joint_fits(runs_file):
    path, datasets = runs_file
    done = CliRunner().invoke(
        app, ["fit", str(path), "--law", "chinchilla", "--family-column", "corpus", "--shared", "E", "--format", "json"]
    )
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert set(out) == CONTRACT
    assert out["shared"] == ["E"]
    direct = fit_joint(datasets, shared=("E",))
    assert out["shared_params"]["E"] == pytest.approx(direct.shared_params["E"], rel=1e-9)
    assert out["shared_params"]["E"] == pytest.approx(1.8, rel=1e-4)
    assert set(out["families"]) == set(TRUTH)
    for name, truth in TRUTH.items():
        assert set(out["families"][name]) == {"params", "ci", "n_runs"}
        assert out["families"][name]["n_runs"] == 30
        assert out["families"][name]["params"]["alpha"] == pytest.approx(truth["alpha"], rel=1e-4)


def test_bootstrap_intervals_are_per_family_and_share_the_shared_parameters_interval(runs_file):
    path, _ = runs_file
    out = fit_file_joint(path, family_column="corpus", shared=["E", "alpha"], bootstrap=50)
    assert out["shared"] == ["E", "alpha"]
    intervals = [out["families"][name]["ci"]["E"] for name in TRUTH]
    assert intervals[0] == intervals[1] == intervals[2]
    for name in TRUTH:  # alpha is shared but the truth's alphas differ: the others absorb the misfit
        lo, hi = out["families"][name]["ci"]["B"]
        assert lo < hi


def test_a_missing_family_column_is_named(runs_file):
    path, _ = runs_file
    with pytest.raises(FileProblem, match="no column 'family'"):
        fit_file_joint(path, family_column="family", shared=["E"])


def test_only_the_chinchilla_law_is_fitted_jointly(runs_file):
    path, _ = runs_file
    with pytest.raises(ValueError, match="joint fits take the chinchilla law"):
        fit_file_joint(path, "kaplan", family_column="corpus", shared=["E"])
