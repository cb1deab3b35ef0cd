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


def test_a_kaplan_fit_faces_gates_of_its_own(home, tmp_path):
    """Kaplan's form is not the surface the runs come from: its alpha_D is loose, and it is held for it."""
    ingest_synthetic(home, tmp_path)
    kaplan = next(f.record for f in refit(home).fitted if f.record.law == "kaplan")
    assert kaplan.status == "held"
    assert kaplan.reason.startswith("interval_width:") and "too wide: alpha_D" in kaplan.reason
    checks = {c["name"]: c["passed"] for c in kaplan.checks}
    assert checks == {"design": True, "converged": True, "finite_parameters": True, "plausible": True, "interval_width": False}


def test_allocate_from_a_kaplan_fit_spends_the_budget(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    # the interval gate relaxed so that the Kaplan fit publishes (see the test above)
    refit(home, FitSettings(bootstrap_resamples=200, other_law_resamples=20, gates=GateSettings(max_relative_interval_width=3.0)))
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
    assert status["chinchilla"][0] == "published"
    assert status["kaplan"][0] == "held" and status["kaplan"][1].startswith("interval_width:")  # as without repeats
    assert status["data_constrained"][0] == "failed"
    assert status["data_constrained"][1].startswith("FitError: the data-constrained law needs at least 5 single-epoch runs")


# -- family settings, applied by the refit ------------------------------------------------------
def settings_file(home, family: str, text: str):
    from registry.family_settings import families_folder, load_family_settings, settings_for

    folder = families_folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{family}.toml").write_text(text, encoding="utf-8")
    return settings_for(family, load_family_settings(home))


def refit_declared(home, declared, settings=FAST):
    return {f.record.law: f for f in refit_family(partial(writer, home.registry), declared.family, settings,
                                                   family_settings=declared).fitted}


def test_a_shared_exponent_in_the_settings_fits_one_exponent_and_profiles_only_E(home, tmp_path):
    shared = {"E": 1.8, "A": 500.0, "B": 900.0, "alpha": 0.3, "beta": 0.3}
    ingest_synthetic(home, tmp_path, truth=shared)
    declared = settings_file(home, "synthetic", "[constraints]\nshared_exponent = true\n")
    chinchilla = refit_declared(home, declared)["chinchilla"].record
    assert chinchilla.status == "published"
    assert chinchilla.params["alpha"] == chinchilla.params["beta"] == pytest.approx(0.3, rel=0.05)
    assert chinchilla.options["tie_exponents"] is True
    assert "shared exponent (alpha = beta) fixes a = 0.5" in chinchilla.diagnostics["profiles_not_computed"]["a"]
    assert chinchilla.code_version.endswith("-" + declared.settings_version)
    with writer(home.registry) as con:
        assert rows(con, "SELECT DISTINCT parameter FROM fit_profiles") == [("E",)]
        (stored,) = rows(con, "SELECT settings FROM family_settings WHERE family = 'synthetic'")[0]
    assert json.loads(stored)["shared_exponent"] is True


def test_changing_a_familys_settings_makes_it_stale_and_refits_it(home, tmp_path):
    from registry.refit import stale_families

    ingest_synthetic(home, tmp_path)
    first = settings_file(home, "synthetic", 'description = "v1"\n')
    refit_declared(home, first)
    with writer(home.registry) as con:
        assert stale_families(con, {"synthetic": first}) == {}
    second = settings_file(home, "synthetic", 'description = "v1"\nexclude = [{ run = "run-3", reason = "diverged" }]\n')
    with writer(home.registry) as con:
        assert list(stale_families(con, {"synthetic": second})) == ["synthetic"]
    refit_declared(home, second)
    with writer(home.registry) as con:
        assert rows(con, "SELECT version, n_runs FROM fits WHERE law = 'chinchilla' ORDER BY version") == [(1, 30), (2, 29)]
        assert rows(con, "SELECT count(*) FROM family_settings WHERE family = 'synthetic'") == [(2,)]
        assert stale_families(con, {"synthetic": second}) == {}


def test_excluded_runs_are_left_out_with_their_reasons(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    declared = settings_file(
        home, "synthetic",
        'exclude = [{ run = "run-3", reason = "diverged at step 900" }, { run = "run-99", reason = "typo" }]\n'
        'exclude_top_loss = { count = 2, reason = "the two smallest models sit off the trend" }\n',
    )
    fits = refit_declared(home, declared)
    chinchilla = fits["chinchilla"].record
    with writer(home.registry) as con:
        (excluded_id,) = rows(con, "SELECT run_id FROM runs WHERE run_name = 'run-3'")[0]
    assert excluded_id not in chinchilla.run_ids and chinchilla.objective is not None
    assert len(chinchilla.run_ids) == 27  # 30 runs, one excluded by name, the two highest losses by the top-loss rule
    assert chinchilla.diagnostics["excluded_runs"] == [{"run": "run-3", "reason": "diverged at step 900"}]
    assert chinchilla.diagnostics["exclusions_not_found"] == ["run-99"]
    assert chinchilla.diagnostics["top_loss_excluded"] == 2 and fits["kaplan"].record.options["exclude_top_loss"] == 2


def test_the_budget_range_of_the_settings_bounds_the_allocation_table(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    declared = settings_file(home, "synthetic", "[budgets]\nmin = 1e20\nmax = 1e23\n")
    refit_declared(home, declared)
    with writer(home.registry) as con:
        plain = [c for (c,) in rows(con, "SELECT compute FROM allocations WHERE law = 'chinchilla' AND inference_tokens = 0 ORDER BY 1")]
        targeted = rows(con, "SELECT count(DISTINCT target_loss) FROM allocations WHERE inference_tokens > 0")
    assert plain == pytest.approx([1e20, 10**20.5, 1e21, 10**21.5, 1e22, 10**22.5, 1e23])
    assert targeted == [(4,)]  # the decade budgets 1e20-1e23


def test_the_settings_loss_is_read_from_run_points_when_the_runs_carry_another(home, tmp_path):
    """The runs were ingested with their training loss; an evaluation loss 5% higher sits in run_points."""
    from registry.fit_store import family_observations

    ingest_synthetic(home, tmp_path)
    with writer(home.registry) as con:
        con.execute("INSERT INTO run_points (run_id, step, tokens, loss_name, loss) "
                    "SELECT run_id, NULL, tokens, 'val/other', loss * 1.05 FROM runs WHERE family = 'synthetic'")
        own = family_observations(con, settings_file(home, "synthetic", 'description = "own loss"\n')).runs
    declared = settings_file(home, "synthetic", 'loss_name = "val/other"\n')
    with writer(home.registry) as con:
        other = family_observations(con, declared).runs
    assert other.get_column("loss").to_list() == pytest.approx((own.get_column("loss") * 1.05).to_list(), rel=1e-12)
    chinchilla = refit_declared(home, declared)["chinchilla"].record
    assert chinchilla.diagnostics["loss_name"] == "val/other" and chinchilla.diagnostics["runs_without_the_loss"] == 0
    assert chinchilla.params["E"] == pytest.approx(1.05 * HOFFMANN["E"], rel=0.05)


def test_checkpoints_of_one_run_are_resampled_together(home, tmp_path):
    """Ten runs that all end at 1e11 tokens: their checkpoints are fitted, and the bootstrap draws runs."""
    sizes = np.geomspace(1e7, 1e9, 10)
    rng = np.random.default_rng(0)
    frames = []
    for i, n in enumerate(sizes):
        D = 1e11 * np.arange(1, 31) / 30
        offset = rng.normal(0, 0.01)  # one run's checkpoints share its deviation from the law
        loss = (HOFFMANN["E"] + HOFFMANN["A"] / n ** HOFFMANN["alpha"] + HOFFMANN["B"] / D ** HOFFMANN["beta"]) * np.exp(offset)
        frames.append(pl.DataFrame({"family": "synthetic", "run_name": f"run-{i}", "params": n, "tokens": D, "loss": loss,
                                    "step": np.arange(1, 31) * 100}))
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / "curves.csv", pl.concat(frames)))
    by_run = refit_declared(home, settings_file(home, "synthetic", 'bootstrap_unit = "auto"\n'))["chinchilla"].record
    by_point = refit_declared(home, settings_file(home, "synthetic", 'bootstrap_unit = "point"\n'))["chinchilla"].record
    assert by_run.diagnostics["fitted_on"] == "checkpoints" and by_run.diagnostics["n_observations"] == 300
    assert (by_run.diagnostics["bootstrap_unit"], by_point.diagnostics["bootstrap_unit"]) == ("run", "point")
    width = {name: r.ci["alpha"][1] - r.ci["alpha"][0] for name, r in (("run", by_run), ("point", by_point))}
    assert width["run"] > 2 * width["point"]  # ten independent runs, not 300 points


def test_a_family_sharing_runs_with_another_says_so_in_its_diagnostics(home, tmp_path):
    ingest_synthetic(home, tmp_path)
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / "copy.csv", chinchilla_runs("copy")))
    chinchilla = next(f.record for f in refit(home).fitted if f.record.law == "chinchilla")
    assert chinchilla.diagnostics["overlaps"] == [{"family": "copy", "n_shared": 30, "n_runs": 30}]
