"""``scalereg refit``: options refused before anything runs (the CLI and Dagster's run config alike), and a refit
that stores a failed fit ends non-zero, naming it."""

from __future__ import annotations

import sys

import pydantic
import pytest

import pipelines.cli
import registry.refit
from laws.errors import FitError
from pipelines.defs.fit_config import RefitConfig, fit_settings
from registry.db import reader, writer
from registry.ingest import ingest_path
from tests.synthetic import chinchilla_runs, write_runs


def test_dagster_run_config_refuses_the_resamples_the_cli_refuses():
    with pytest.raises(pydantic.ValidationError, match="bootstrap_resamples must be at least 1, got 0"):
        fit_settings(RefitConfig(bootstrap_resamples=0))


def test_a_refit_that_stores_a_failed_fit_exits_non_zero_naming_it(home, tmp_path, monkeypatch, capfd):
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / "runs.csv", chinchilla_runs("family-a")))

    def runs_that_cannot_be_fitted(*args, **kwargs):
        raise FitError("the runs cannot support this fit")

    monkeypatch.setattr(registry.refit, "_fit_law", runs_that_cannot_be_fitted)
    monkeypatch.setattr(sys, "argv", ["scalereg", "refit", "--family", "family-a", "--bootstrap", "20"])
    with pytest.raises(SystemExit) as ended:
        pipelines.cli.main()
    out, err = capfd.readouterr()

    with reader(home.registry) as con:
        stored = con.execute("SELECT law, status FROM fits ORDER BY law").fetchall()
    assert stored and {status for _, status in stored} == {"failed"}
    assert ended.value.code == 1
    last = err.splitlines()[-1]
    assert last.startswith(f"scalereg: {len(stored)} fit(s) failed: ") and last.endswith("their reasons are listed above")
    assert all(f"family-a/{law} v1" in last for law, _ in stored)
    assert "failed: family-a/chinchilla v1: FitError: the runs cannot support this fit" in out
