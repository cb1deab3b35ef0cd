"""Planners read every verdict: the allocation's status and reason, and the loss law's.

Families are drawn from Hoffmann et al.'s law (known truth) and refitted for real; the rule for
budgets between the stored grid is checked on a fit whose verdicts are written by hand.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest

from registry.db import writer
from registry.exports import write_exports
from registry.ingest import ingest_path
from registry.planning import (
    NoPublishedFit,
    allocate,
    allocation_verdict,
    allocations_latest,
    coefficients,
    loss_law_statuses,
)
from registry.refit import refit_family
from registry.settings import FitSettings, GateSettings
from tests.synthetic import HOFFMANN, chinchilla_runs, write_runs

STATUSES = {"trusted", "extrapolated", "unidentified", "approaches_disagree"}
QUICK = FitSettings(bootstrap_resamples=100, other_law_resamples=20)


def true_tokens_per_param(compute: float) -> float:
    """Hoffmann et al.'s closed form: N_opt = G (C/6)^(beta/(alpha+beta)), G = (alpha A / (beta B))^(1/(alpha+beta))."""
    E, A, B, alpha, beta = (HOFFMANN[k] for k in ("E", "A", "B", "alpha", "beta"))
    g = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    n_opt = g * (compute / 6) ** (beta / (alpha + beta))
    return compute / 6 / n_opt**2


def fitted(home, tmp_path, frame: pl.DataFrame, settings: FitSettings = QUICK):
    family = frame.get_column("family")[0]
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / f"{family}.csv", frame))
    return refit_family(lambda: writer(home.registry), family, settings)


def test_a_family_over_three_decades_is_trusted_at_1e22_and_its_interval_holds_the_truth(home, tmp_path):
    # N 1e7-1e10 and D 1e9-1e12: the largest run is 6e22 FLOPs
    fitted(home, tmp_path, chinchilla_runs("wide", n_sizes=8, n_tokens=7, size_range=(7, 10), token_range=(9, 12)))
    with writer(home.registry) as con:
        answer = allocate(con, "wide", 1e22)
    assert (answer["status"], answer["reason"]) == ("trusted", None)
    lo, hi = answer["ci"]["tokens_per_param"]
    assert lo < true_tokens_per_param(1e22) < hi  # 63 tokens/param


def test_a_family_over_under_a_decade_of_n_is_not_trusted_at_1e24_and_says_why(home, tmp_path):
    fitted(home, tmp_path, chinchilla_runs("narrow", n_sizes=6, n_tokens=5, size_range=(8.0, 8.8)))
    with writer(home.registry) as con:
        answer = allocate(con, "narrow", 1e24)
    assert answer["status"] in STATUSES - {"trusted"}
    assert "add runs" in answer["reason"]


def test_every_published_allocation_row_carries_a_status_and_reason_null_only_when_trusted(home, tmp_path):
    fitted(home, tmp_path, chinchilla_runs("family-a"))
    with writer(home.registry) as con:
        rows = allocations_latest(con)
    assert rows.height > 0 and {"status", "reason"} <= set(rows.columns)
    assert set(rows.get_column("status").unique()) <= STATUSES
    trusted = rows.get_column("status") == "trusted"
    assert (rows.get_column("reason").is_null() == trusted).all()


def test_the_exports_carry_the_status_and_reason_of_every_allocation_row(home, tmp_path):
    fitted(home, tmp_path, chinchilla_runs("family-a"))
    with writer(home.registry) as con:
        expected = allocations_latest(con).select("family", "law", "compute", "inference_tokens", "status", "reason")
        write_exports(con, home)
    key = ["family", "law", "compute", "inference_tokens"]
    parquet = pl.read_parquet(home.exports / "allocations.parquet")
    csv = pl.read_csv(home.exports / "allocations.csv", infer_schema_length=None)
    records = pl.DataFrame(json.loads((home.exports / "allocations.json").read_text(encoding="utf-8")))
    for exported in (parquet, csv, records):
        shown = exported.select(*key, "status", "reason").with_columns(pl.col("compute", "inference_tokens").cast(pl.Float64))
        assert shown.sort(key).equals(expected.sort(key))
    coefficient_records = json.loads((home.exports / "coefficients.json").read_text(encoding="utf-8"))
    assert coefficient_records and all(r["status"] == "published" for r in coefficient_records)
    flat = pl.read_parquet(home.exports / "coefficients.parquet")
    assert flat.height and set(flat.get_column("status")) == {"published"} and "reason" in flat.columns


def test_an_inference_aware_answer_carries_the_verdict_of_the_budget_whose_loss_it_targets(home, tmp_path):
    fitted(home, tmp_path, chinchilla_runs("family-a"))
    with writer(home.registry) as con:
        plain, aware = allocate(con, "family-a", 1e24), allocate(con, "family-a", 1e24, inference_tokens=1e12)
    assert aware["status"] == plain["status"] != "trusted"
    assert plain["reason"] in aware["reason"]


def test_a_held_family_has_no_allocation_and_allocate_names_its_held_fit_and_the_cause(home, tmp_path):
    # twelve runs, all at N = 1e8: the size term cannot be fitted
    refit = fitted(home, tmp_path, chinchilla_runs("one-size", n_sizes=1, n_tokens=12, size_range=(8, 8)))
    assert {f.record.status for f in refit.fitted} == {"held"}
    with writer(home.registry) as con:
        (stored_reason,) = con.execute(
            "SELECT reason FROM fits WHERE family = 'one-size' AND law = 'chinchilla'"
        ).fetchall()[0]
        with pytest.raises(NoPublishedFit) as missing:
            allocate(con, "one-size", 1e24)
        assert coefficients(con, "one-size") == []
        verdicts = {v.law: v for v in loss_law_statuses(con, "one-size")}
    assert "held" in str(missing.value) and stored_reason in str(missing.value)
    assert "1e+08" in stored_reason
    assert verdicts["chinchilla"].status == "held" and verdicts["chinchilla"].published_version is None


def test_coefficients_say_when_a_newer_fit_was_held_and_serve_the_last_published(home, tmp_path):
    fitted(home, tmp_path, chinchilla_runs("family-a"))
    # a stricter extrapolation threshold is a new code version: the refit is held by it
    strict = FitSettings(bootstrap_resamples=100, other_law_resamples=20, gates=GateSettings(max_extrapolation_error=1e-9))
    refit = refit_family(lambda: writer(home.registry), "family-a", strict)
    held = next(f.record for f in refit.fitted if f.record.law == "chinchilla")
    assert held.status == "held"
    with writer(home.registry) as con:
        (record,) = coefficients(con, "family-a", "chinchilla")
    assert record["version"] == 1 and record["status"] == "published"
    assert record["reason"].startswith("the newest fit, v2, was held: ") and held.reason in record["reason"]


def _hand_written_fit(con, statuses: dict[float, tuple[str, str | None]]) -> str:
    """A published fit of Hoffmann et al.'s coefficients with verdicts chosen per budget."""
    fit_id = "hand/chinchilla/v1"
    con.execute(
        "INSERT INTO fits (fit_id, family, law, version, data_version, code_version, fitted_at, n_runs, run_ids, status) "
        "VALUES (?, 'hand', 'chinchilla', 1, 'd', 'c', ?, 0, [], 'published')",
        [fit_id, datetime.now(timezone.utc)],
    )
    con.executemany(
        "INSERT INTO coefficients (fit_id, family, law, version, name, value) VALUES (?, 'hand', 'chinchilla', 1, ?, ?)",
        [[fit_id, name, value] for name, value in HOFFMANN.items()],
    )
    con.executemany(
        "INSERT INTO allocations (fit_id, family, law, version, compute, inference_tokens, status, reason) "
        "VALUES (?, 'hand', 'chinchilla', 1, ?, 0, ?, ?)",
        [[fit_id, budget, status, reason] for budget, (status, reason) in statuses.items()],
    )
    return fit_id


def test_between_grid_budgets_the_less_trusted_neighbour_applies_and_outside_at_best_extrapolated(con):
    grid = {1e21: ("trusted", None), 1e22: ("trusted", None), 1e23: ("unidentified", "E is not identified; add runs")}
    fit_id = _hand_written_fit(con, grid)
    assert allocation_verdict(con, fit_id, 1e22) == ("trusted", None)
    assert allocation_verdict(con, fit_id, 3e21) == ("trusted", None)
    status, reason = allocation_verdict(con, fit_id, 3e22)
    assert status == "unidentified" and "1e+22" in reason and "1e+23" in reason and "E is not identified" in reason
    # below the grid nothing was checked: extrapolated, not trusted
    status, reason = allocation_verdict(con, fit_id, 1e20)
    assert status == "extrapolated" and "outside the budgets" in reason
    # above it, the nearest verdict is worse than extrapolated and stays
    status, reason = allocation_verdict(con, fit_id, 1e25)
    assert status == "unidentified" and "E is not identified" in reason
    # and allocate answers with the same verdict at any budget
    answer = allocate(con, "hand", 3e22)
    assert (answer["status"], answer["reason"]) == allocation_verdict(con, fit_id, 3e22)
    assert np.isclose(answer["n_opt"] * answer["d_opt"] * 6, 3e22)
