"""registry.fit_file: reading run tables and the `scalereg fit` JSON contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from registry.fit_file import fit_file, read_fit_table

CHINCHILLA = Path("/work/shared/data/chinchilla/svg_extracted_data.csv")
CONTRACT = {"law", "n_runs", "params", "objective", "converged", "seconds", "allocation_exponents"}


def _runs() -> pl.DataFrame:
    N = np.repeat(np.geomspace(1e7, 1e10, 6), 5)
    D = np.tile(np.geomspace(1e9, 1e12, 5), 6)
    L = 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28
    return pl.DataFrame({"params": N, "tokens": D, "loss": L})


def test_shipped_chinchilla_export_is_read_with_tokens_from_compute():
    data = read_fit_table(CHINCHILLA)
    raw = pl.read_csv(CHINCHILLA)
    assert data["params"].size == 245
    np.testing.assert_allclose(data["tokens"], raw["Training FLOP"].to_numpy() / (6 * raw["Model Size"].to_numpy()))


def test_fit_of_shipped_chinchilla_file_returns_the_contract():
    out = fit_file(CHINCHILLA, exclude_top_loss=5)
    assert set(out) == CONTRACT
    assert out["law"] == "chinchilla" and out["n_runs"] == 240
    assert set(out["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert out["params"]["E"] == pytest.approx(1.8172, rel=0.01)
    assert out["objective"] <= 1.018275e-3
    assert out["converged"] is True
    assert set(out["allocation_exponents"]) == {"a", "b"}
    json.dumps(out)  # serialisable as is


def test_bootstrap_adds_intervals_for_every_parameter():
    out = fit_file(CHINCHILLA, exclude_top_loss=5, bootstrap=100, seed=1)
    assert set(out) == CONTRACT | {"ci"}
    assert set(out["ci"]) == {"E", "A", "B", "alpha", "beta"}
    for lo, hi in out["ci"].values():
        assert lo < hi
    json.dumps(out)


def test_csv_and_parquet_run_tables_give_the_same_fit(tmp_path):
    df = _runs()
    df.write_csv(tmp_path / "runs.csv")
    df.write_parquet(tmp_path / "runs.parquet")
    a = fit_file(tmp_path / "runs.csv")
    b = fit_file(tmp_path / "runs.parquet")
    assert a["params"] == pytest.approx(b["params"], rel=1e-9)
    assert a["params"]["alpha"] == pytest.approx(0.34, rel=1e-4)


def test_tokens_may_be_given_as_flops(tmp_path):
    df = _runs()
    df.with_columns(flops=6 * pl.col("params") * pl.col("tokens")).drop("tokens").write_csv(tmp_path / "r.csv")
    np.testing.assert_allclose(read_fit_table(tmp_path / "r.csv")["tokens"], df["tokens"].to_numpy())


def test_missing_columns_are_named_with_the_file_and_a_fix(tmp_path):
    path = tmp_path / "runs.csv"
    _runs().rename({"loss": "final_loss"}).write_csv(path)
    with pytest.raises(ValueError) as err:
        read_fit_table(path)
    msg = str(err.value)
    assert str(path) in msg and "'loss'" in msg and "rename" in msg


def test_empty_values_are_rejected(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1e8,1e10,3.1\n2e8,,2.9\n")
    with pytest.raises(ValueError, match="tokens"):
        read_fit_table(path)


def test_unsupported_file_type_is_rejected(tmp_path):
    path = tmp_path / "runs.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match="csv or .parquet"):
        read_fit_table(path)


def test_other_laws_report_their_own_parameters(tmp_path):
    _runs().write_csv(tmp_path / "runs.csv")
    out = fit_file(tmp_path / "runs.csv", law="kaplan")
    assert set(out["params"]) == {"N_c", "D_c", "alpha_N", "alpha_D"}
    assert set(out["allocation_exponents"]) == {"a", "b"}
