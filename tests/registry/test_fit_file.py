"""registry.fit_file: reading run tables (through the ingest reader) and the `scalereg fit` JSON contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from laws.errors import FitError
from registry.adapters.base import FileProblem
from registry.fit_file import fit_file, read_fit_table

PUBLISHED = Path(__file__).resolve().parents[2] / "data" / "published" / "chinchilla"
CHINCHILLA = PUBLISHED / "svg_extracted_data.csv"
CHINCHILLA_MAPPING = PUBLISHED / "mapping.toml"
CONTRACT = {"law", "n_runs", "params", "objective", "converged", "seconds", "allocation_exponents"}


def _runs() -> pl.DataFrame:
    N = np.repeat(np.geomspace(1e7, 1e10, 6), 5)
    D = np.tile(np.geomspace(1e9, 1e12, 5), 6)
    L = 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28
    return pl.DataFrame({"params": N, "tokens": D, "loss": L})


def test_shipped_chinchilla_export_is_read_through_its_mapping_with_tokens_from_compute():
    data = read_fit_table(CHINCHILLA, CHINCHILLA_MAPPING)
    raw = pl.read_csv(CHINCHILLA)
    assert data["params"].size == 245
    np.testing.assert_array_equal(data["params"], raw["Model Size"].to_numpy())
    np.testing.assert_array_equal(data["loss"], raw["loss"].to_numpy())
    np.testing.assert_allclose(data["tokens"], raw["Training FLOP"].to_numpy() / (6 * raw["Model Size"].to_numpy()), rtol=1e-15)


def test_the_chinchilla_export_without_its_mapping_names_the_missing_columns():
    with pytest.raises(FileProblem, match="missing required column.*'params'"):
        read_fit_table(CHINCHILLA)


def test_fit_of_shipped_chinchilla_file_returns_the_contract():
    out = fit_file(CHINCHILLA, mapping=CHINCHILLA_MAPPING, options={"exclude_top_loss": 5})
    assert set(out) == CONTRACT
    assert out["law"] == "chinchilla" and out["n_runs"] == 240
    assert set(out["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert out["params"]["E"] == pytest.approx(1.8172, rel=0.01)  # Besiroglu et al.'s 4,500-start refit
    assert out["objective"] <= 1.018275e-3
    assert out["converged"] is True
    assert set(out["allocation_exponents"]) == {"a", "b"}
    json.dumps(out)  # serialisable as is


def test_bootstrap_adds_intervals_for_every_parameter():
    out = fit_file(CHINCHILLA, mapping=CHINCHILLA_MAPPING, options={"exclude_top_loss": 5}, bootstrap=100, seed=1)
    assert set(out) == CONTRACT | {"ci"}
    assert set(out["ci"]) == {"E", "A", "B", "alpha", "beta"}
    for lo, hi in out["ci"].values():
        assert lo < hi
    json.dumps(out)


def test_csv_parquet_and_jsonl_run_tables_give_the_same_fit(tmp_path):
    df = _runs()
    df.write_csv(tmp_path / "runs.csv")
    df.write_parquet(tmp_path / "runs.parquet")
    df.write_ndjson(tmp_path / "runs.jsonl")
    fits = [fit_file(tmp_path / name) for name in ("runs.csv", "runs.parquet", "runs.jsonl")]
    for other in fits[1:]:
        assert other["params"] == pytest.approx(fits[0]["params"], rel=1e-9)
    assert fits[0]["params"]["alpha"] == pytest.approx(0.34, rel=1e-4)


def test_tokens_may_be_given_as_flops(tmp_path):
    df = _runs()
    df.with_columns(flops=6 * pl.col("params") * pl.col("tokens")).drop("tokens").write_csv(tmp_path / "r.csv")
    np.testing.assert_allclose(read_fit_table(tmp_path / "r.csv")["tokens"], df["tokens"].to_numpy())


def test_a_mapping_renames_the_files_own_columns(tmp_path):
    _runs().rename({"params": "N", "tokens": "D", "loss": "final_loss"}).write_csv(tmp_path / "runs.csv")
    (tmp_path / "map.toml").write_text('[columns]\nparams = "N"\ntokens = "D"\nloss = "final_loss"\n')
    out = fit_file(tmp_path / "runs.csv", mapping=tmp_path / "map.toml")
    assert out["params"]["alpha"] == pytest.approx(0.34, rel=1e-4)


def test_missing_columns_are_named_with_the_file_and_a_fix(tmp_path):
    path = tmp_path / "runs.csv"
    _runs().rename({"loss": "final_loss"}).write_csv(path)
    with pytest.raises(FileProblem) as err:
        read_fit_table(path)
    msg = str(err.value)
    assert path.name in msg and "'loss'" in msg and "--mapping" in msg


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("runs.csv", b"params,tokens,loss\n1e8,1e10,3.1\n2e8,,2.9\n", "'tokens' has 1 empty value"),
        ("runs.csv", b"params,tokens,loss\n1e8,1e10,3.1\n2e8,2e10,diverged\n", "row 2: loss"),
        ("runs.json", b"{}", "unsupported file type"),
        ("runs.pkl", b"\x80\x04\x95", "refused"),
        ("curves.csv", b"run_name,params,tokens,loss,step\na,1e8,1e9,3.5,100\na,1e8,2e9,3.3,200\n", "per-step curves"),
    ],
    ids=["empty value", "not a number", "unsupported type", "pickle", "curves"],
)
def test_a_file_that_cannot_be_fitted_is_refused_naming_why(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FileProblem, match=message):
        read_fit_table(path)


def test_other_laws_report_their_own_parameters(tmp_path):
    _runs().write_csv(tmp_path / "runs.csv")
    out = fit_file(tmp_path / "runs.csv", "kaplan")
    assert set(out["params"]) == {"N_c", "D_c", "alpha_N", "alpha_D"}
    assert set(out["allocation_exponents"]) == {"a", "b"}


def test_a_law_without_an_allocation_rule_reports_no_exponents(tmp_path):
    _runs().write_csv(tmp_path / "runs.csv")
    out = fit_file(tmp_path / "runs.csv", "broken_power_law")
    assert out["allocation_exponents"] is None


def test_an_option_the_law_does_not_take_is_an_error(tmp_path):
    _runs().write_csv(tmp_path / "runs.csv")
    with pytest.raises(ValueError, match="unknown option 'huber_delta' for law 'isoflop'"):
        fit_file(tmp_path / "runs.csv", "isoflop", options={"huber_delta": 1e-3})


def test_runs_that_cannot_support_the_fit_are_a_fit_error(tmp_path):
    _runs().head(4).write_csv(tmp_path / "runs.csv")
    with pytest.raises(FitError, match="at least 5"):
        fit_file(tmp_path / "runs.csv")
