"""Refitting a family: versions, unchanged refits, publication gates, allocations, exports, as-of queries."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from functools import partial

import numpy as np
import polars as pl
import pytest

from registry.db import writer
from registry.exports import write_exports
from registry.gates import GateSettings
from registry.ingest import ingest_path
from registry.planning import allocate, coefficients
from registry.refit import BUDGETS, INFERENCE_BUDGETS, INFERENCE_TOKENS, refit_family
from registry.settings import FitSettings
from tests.conftest import rows
from tests.synthetic import HOFFMANN, chinchilla_runs, write_runs

FAST = FitSettings(bootstrap_resamples=200, other_law_resamples=20)


def ingest_synthetic(home, tmp_path, name="runs.csv", **kwargs):
    with writer(home.registry) as con:
        return ingest_path(con, home, write_runs(tmp_path / name, chinchilla_runs("synthetic", **kwargs)))


def refit(home, settings=FAST):
    return refit_family(partial(writer, home.registry), "synthetic", settings)


def test_a_family_from_a_known_surface_is_published_with_the_truth_inside_its_intervals(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    result = refit(home)
    chinchilla = next(f.record for f in result.fitted if f.record.law == "chinchilla")
    assert chinchilla.status == "published", chinchilla.reason
    for name in ("alpha", "beta", "E"):
        lo, hi = chinchilla.ci[name]
        assert lo <= HOFFMANN[name] <= hi, (name, lo, hi)
    with writer(home.registry) as con:
        (published,) = coefficients(con, "synthetic", "chinchilla")
    assert published["version"] == 1 and published["n_runs"] == 30
    assert published["params"]["alpha"] == pytest.approx(HOFFMANN["alpha"], rel=0.1)


def test_refitting_unchanged_runs_records_unchanged_and_adds_no_version(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    first = refit(home)
    second = refit(home)
    assert [f.record.law for f in first.fitted] == ["chinchilla", "kaplan"]
    assert second.fitted == () and second.unchanged == ("chinchilla", "kaplan")
    with writer(home.registry) as con:
        assert rows(con, "SELECT max(version), count(*) FROM fits WHERE law = 'chinchilla'") == [(1, 1)]
        assert rows(con, "SELECT outcome, count(*) FROM refits GROUP BY 1 ORDER BY 1") == [("fitted", 2), ("unchanged", 2)]


def test_new_runs_give_a_new_version_and_the_old_one_is_kept(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    refit(home)
    ingest_synthetic(home, tmp_path, name="more.csv", seed=1, size_range=(9.6, 10.0), n_sizes=2, prefix="big")
    refit(home)
    with writer(home.registry) as con:
        assert rows(con, "SELECT version, n_runs, status FROM fits WHERE law = 'chinchilla' ORDER BY version") == [
            (1, 30, "published"), (2, 40, "published")
        ]
        (latest,) = coefficients(con, "synthetic", "chinchilla")
    assert latest["version"] == 2


def test_a_fit_failing_a_blocking_gate_is_held_and_the_previous_version_stays_published(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    refit(home)
    ingest_synthetic(home, tmp_path, name="more.csv", seed=1, size_range=(9.6, 10.0), n_sizes=2, prefix="big")
    strict = FitSettings(bootstrap_resamples=200, other_law_resamples=20, gates=GateSettings(max_extrapolation_error=1e-9))
    result = refit(home, strict)
    held = next(f.record for f in result.fitted if f.record.law == "chinchilla")
    assert held.status == "held" and held.reason.startswith("extrapolation:")
    with writer(home.registry) as con:
        (latest,) = coefficients(con, "synthetic", "chinchilla")
        assert latest["version"] == 1
        assert rows(con, "SELECT version, status FROM fits WHERE law = 'chinchilla' ORDER BY version") == [(1, "published"), (2, "held")]
        # a held fit publishes no allocations either
        assert rows(con, "SELECT DISTINCT version FROM allocations_latest WHERE family = 'synthetic'") == [(1,)]


def test_coefficients_as_of_answers_what_was_believed_then(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    refit(home)
    time.sleep(0.01)
    between = datetime.now(timezone.utc)
    time.sleep(0.01)
    ingest_synthetic(home, tmp_path, name="more.csv", seed=1, size_range=(9.6, 10.0), n_sizes=2, prefix="big")
    refit(home)
    with writer(home.registry) as con:
        then = coefficients(con, "synthetic", "chinchilla", as_of=between)
        now = coefficients(con, "synthetic", "chinchilla")
        before_anything = coefficients(con, "synthetic", "chinchilla", as_of="2000-01-01")
    assert (then[0]["version"], now[0]["version"], before_anything) == (1, 2, [])


def test_allocations_cover_the_budget_grid_with_intervals_and_inference_rows(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    refit(home)
    with writer(home.registry) as con:
        plain = rows(con, "SELECT compute, n_opt_lo <= n_opt AND n_opt <= n_opt_hi FROM allocations_latest WHERE inference_tokens = 0 ORDER BY compute")
        aware = rows(con, "SELECT count(*), count(DISTINCT inference_tokens) FROM allocations_latest WHERE inference_tokens > 0")[0]
    assert [c for c, _ in plain] == pytest.approx(list(BUDGETS)) and plain[0][0] == 1e18 and plain[-1][0] == 1e27
    assert all(inside for _, inside in plain)
    assert aware == (len(INFERENCE_BUDGETS) * len(INFERENCE_TOKENS), len(INFERENCE_TOKENS))


def test_allocate_follows_the_closed_form_of_the_published_coefficients(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    refit(home)
    with writer(home.registry) as con:
        (fit,) = coefficients(con, "synthetic", "chinchilla")
        answer = allocate(con, "synthetic", 1e24)
    p = fit["params"]
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    assert answer["n_opt"] == pytest.approx(G * (1e24 / 6) ** (p["beta"] / (p["alpha"] + p["beta"])), rel=1e-9)
    assert answer["n_opt"] * answer["d_opt"] * 6 == pytest.approx(1e24, rel=1e-9)
    lo, hi = answer["ci"]["n_opt"]
    assert lo < answer["n_opt"] < hi


def test_exports_hold_the_latest_coefficients_in_three_formats_plus_a_dated_copy(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    refit(home)
    with writer(home.registry) as con:
        write_exports(con, home)
        expected = coefficients(con)
    assert json.loads((home.exports / "coefficients.json").read_text()) == json.loads(json.dumps(expected, default=str))
    for stem in ("coefficients", "allocations"):
        assert all((home.exports / f"{stem}.{ext}").stat().st_size > 0 for ext in ("parquet", "csv", "json"))
    assert len(list((home.exports / "versions").glob("coefficients-*.json"))) == 1
    assert not list(home.exports.glob(".*.tmp"))


def test_exports_are_not_rewritten_when_nothing_was_published(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    refit(home)
    with writer(home.registry) as con:
        first = write_exports(con, home)
        again = write_exports(con, home)
    assert first and again == []
    assert len(list((home.exports / "versions").glob("coefficients-*.json"))) == 1


def test_allocate_from_a_kaplan_fit_spends_the_budget(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    refit(home)
    with writer(home.registry) as con:
        answer = allocate(con, "synthetic", 1e23, law="kaplan")
        with pytest.raises(ValueError, match="chinchilla"):
            allocate(con, "synthetic", 1e23, inference_tokens=1e12, law="kaplan")
    assert answer["law"] == "kaplan" and answer["n_opt"] * answer["d_opt"] * 6 == pytest.approx(1e23, rel=1e-6)


def test_every_published_interval_has_the_coverage_the_settings_ask_for(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    refit(home, FitSettings(bootstrap_resamples=200, other_law_resamples=20, interval_level=0.8))
    with writer(home.registry) as con:
        ((names, samples),) = rows(
            con, "SELECT s.param_names, s.samples FROM bootstrap_samples s JOIN fits_published f USING (fit_id) WHERE f.law = 'chinchilla'"
        )
        (fit,) = coefficients(con, "synthetic", "chinchilla")
        (row,) = rows(con, "SELECT n_opt_lo, n_opt_hi FROM allocations_latest WHERE inference_tokens = 0 AND compute = 1e24")
    draws = dict(zip(names, np.asarray(samples).T))
    # the 10th and 90th percentiles of the draws, and of each draw's closed-form N_opt (Hoffmann et al. D.2)
    assert fit["ci"]["alpha"] == pytest.approx(list(np.percentile(draws["alpha"], [10, 90])), rel=1e-12)
    al, be, A, B = draws["alpha"], draws["beta"], draws["A"], draws["B"]
    n_opt = (al * A / (be * B)) ** (1 / (al + be)) * (1e24 / 6) ** (be / (al + be))
    assert row == pytest.approx(tuple(np.percentile(n_opt, [10, 90])), rel=1e-9)


def test_a_law_the_runs_cannot_support_is_recorded_as_failed_and_the_others_publish(home, tmp_path):
    # every run saw its data twice: the data-constrained law has no single-epoch runs to anchor it
    runs = chinchilla_runs("synthetic").with_columns(unique_tokens=pl.col("tokens") / 2)
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / "repeated.csv", runs))
    result = refit(home)
    status = {f.record.law: (f.record.status, f.record.reason) for f in result.fitted}
    assert status["chinchilla"][0] == "published" and status["kaplan"][0] == "published"
    assert status["data_constrained"][0] == "failed"
    assert status["data_constrained"][1].startswith("FitError: the data-constrained law needs at least 5 single-epoch runs")
