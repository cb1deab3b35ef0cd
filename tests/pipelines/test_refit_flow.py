"""End to end through Dagster: a file dropped in landing refits only its family; the nightly schedule; the refit sensor."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone

import dagster as dg

from pipelines.defs.fit_assets import FAMILIES
from pipelines.defs.landing_sensor import landing_sensor
from pipelines.defs.refit_triggers import nightly_refit, refit_sensor
from pipelines.defs.resources import RegistryResource
from pipelines.runner import home_instance, refit, run_job
from registry.db import reader
from registry.planning import coefficients
from tests.synthetic import chinchilla_runs, write_runs

FAST = {"ops": {"fits": {"config": {"bootstrap_resamples": 100, "other_law_resamples": 10}}}}


def versions(home) -> dict[str, int]:
    with reader(home.registry) as con:
        return {(r["family"]): r["version"] for r in coefficients(con, law="chinchilla")}


def drop_and_ingest(home, instance, resources, name, frame):
    path = write_runs(home.landing / name, frame)
    finished = time.time() - 60
    os.utime(path, (finished, finished))  # complete: renamed into place a minute ago
    for _ in range(2):  # a file is taken once it is seen unchanged on two ticks
        result = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=drop_and_ingest.cursor))
        drop_and_ingest.cursor = result.cursor
    (request,) = result.run_requests
    assert run_job(home, "ingest_landing", run_config=request.run_config).success


drop_and_ingest.cursor = None


def requested_families(home, instance, resources) -> list[str]:
    result = refit_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    if isinstance(result, dg.SkipReason):
        return []
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(FAMILIES.name, list(request.partition_keys))
    return sorted(r.partition_key for r in result.run_requests)


def test_a_dropped_file_refits_only_its_family_and_updates_exports(home):
    drop_and_ingest.cursor = None
    resources = {"registry": RegistryResource.for_home(home)}
    with dg.instance_for_test() as instance:
        drop_and_ingest(home, instance, resources, "alpha.csv", chinchilla_runs("family-a"))
        drop_and_ingest(home, instance, resources, "beta.csv", chinchilla_runs("family-b", seed=3))
        assert requested_families(home, instance, resources) == ["family-a", "family-b"]
        refit(home, run_config=FAST)
        assert versions(home) == {"family-a": 1, "family-b": 1}
        assert requested_families(home, instance, resources) == []
        exported_before = json.loads((home.exports / "coefficients.json").read_text())

        time.sleep(0.01)
        before_drop = datetime.now(timezone.utc)
        more = chinchilla_runs("family-a", seed=5, size_range=(9.6, 10.0), n_sizes=2, prefix="big")
        drop_and_ingest(home, instance, resources, "alpha-more.csv", more)
        assert requested_families(home, instance, resources) == ["family-a"]
        refit(home, ["family-a"], run_config=FAST)

    assert versions(home) == {"family-a": 2, "family-b": 1}
    exported = {(r["family"], r["law"]): r for r in json.loads((home.exports / "coefficients.json").read_text())}
    assert exported[("family-a", "chinchilla")]["version"] == 2 and exported[("family-a", "chinchilla")]["n_runs"] == 40
    old = {(r["family"], r["law"]): r for r in exported_before}
    with reader(home.registry) as con:
        (believed,) = coefficients(con, "family-a", "chinchilla", as_of=before_drop)
    assert believed["version"] == 1 and believed["params"] == old[("family-a", "chinchilla")]["params"]


def test_the_nightly_schedule_requests_every_family_in_one_run_and_adds_no_versions_without_new_data(home, tmp_path):
    from registry.db import writer
    from registry.ingest import ingest_path

    with writer(home.registry) as con:
        for family, seed in (("family-a", 0), ("family-b", 1), ("family-c", 2)):
            ingest_path(con, home, write_runs(tmp_path / f"{family}.csv", chinchilla_runs(family, seed=seed)))
    resources = {"registry": RegistryResource.for_home(home)}
    with home_instance(home) as instance:
        request = nightly_refit(dg.build_schedule_context(instance=instance, resources=resources))
        assert set(instance.get_dynamic_partitions(FAMILIES.name)) == {"family-a", "family-b", "family-c"}
    assert request.tags["dagster/asset_partition_range_start"] == "family-a"
    assert request.tags["dagster/asset_partition_range_end"] == "family-c"

    run_job(home, "refit", run_config=FAST, tags=dict(request.tags))
    run_job(home, "refit", run_config=FAST, tags=dict(request.tags))
    with reader(home.registry) as con:
        fits = con.execute("SELECT family, max(version) FROM fits WHERE law = 'chinchilla' GROUP BY 1 ORDER BY 1").fetchall()
        outcomes = con.execute("SELECT outcome, count(*) FROM refits WHERE law = 'chinchilla' GROUP BY 1 ORDER BY 1").fetchall()
    assert fits == [("family-a", 1), ("family-b", 1), ("family-c", 1)]
    assert outcomes == [("fitted", 3), ("unchanged", 3)]


def ingest(home, tmp_path, frame):
    from registry.db import writer
    from registry.ingest import ingest_path

    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / f"{frame['run_name'][0]}.csv", frame))


def fit_event(result: dg.ExecuteInProcessResult):
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "fits"]
    return event.materialization.metadata


def test_a_fit_materialisation_shows_coefficients_as_a_table_the_plot_and_check_results(home, tmp_path):
    ingest(home, tmp_path, chinchilla_runs("family-a"))
    (result, published) = refit(home, ["family-a"], run_config=FAST)
    metadata = fit_event(result)
    rows = {(r.data["law"], r.data["parameter"]): r.data for r in metadata["coefficients"].records}
    alpha = rows[("chinchilla", "alpha")]
    assert alpha["version"] == "v1" and alpha["status"] == "published"
    # the runs come from Hoffmann et al.'s surface (alpha = 0.34): the table shows the fit and its interval
    assert float(alpha["ci_lo"]) < 0.34 < float(alpha["ci_hi"]) and abs(float(alpha["value"]) - 0.34) < 0.05
    assert {c.name for c in metadata["coefficients"].schema.columns} >= {"law", "parameter", "value", "ci_lo", "ci_hi"}
    assert metadata["plot"].value.startswith("![family-a fit](data:image/png;base64,")
    assert metadata["n_runs"].value == 30
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    # one evaluation per gate the family's laws face, for the family's partition (no Approach 2: nothing to agree with)
    assert set(checks) == {
        "design", "converged", "plausible", "extrapolation", "interval_width", "identifiability", "finite_parameters",
    }
    assert {c.partition for c in checks.values()} == {"family-a"}
    assert checks["converged"].passed and checks["plausible"].passed
    fits_of_converged = {r.data["fit"] for r in checks["converged"].metadata["fits"].records}
    assert fits_of_converged == {"family-a/chinchilla", "family-a/kaplan"}
    assert {e.asset_key.to_user_string() for e in published.get_asset_materialization_events()} == {
        "coefficients", "allocations", "exports",
    }


def test_the_checks_of_gates_that_hold_a_fit_are_blocking_and_the_others_are_not():
    from pipelines.defs.fit_assets import fits

    specs = {spec.name: spec.blocking for spec in fits.check_specs}
    # the README's blocking checks: design, converged, plausible, extrapolation, interval width (and finite parameters)
    assert {name for name, blocking in specs.items() if blocking} == {
        "design", "converged", "plausible", "extrapolation", "interval_width", "finite_parameters",
    }
    assert {name for name, blocking in specs.items() if not blocking} == {"identifiability", "approaches_agree", "group_sharing"}


def test_a_held_fit_fails_its_blocking_check_and_the_published_version_stays(home, tmp_path):
    from pipelines.definitions import build_defs

    ingest(home, tmp_path, chinchilla_runs("family-a"))
    refit(home, ["family-a"], run_config=FAST)
    # stricter gates are new settings, hence a new code version: the family is refit and now held
    strict = {"ops": {"fits": {"config": {**FAST["ops"]["fits"]["config"], "gates": {"max_extrapolation_error": 1e-9}}}}}
    with home_instance(home) as instance:
        job = build_defs(home).resolve_job_def("refit")
        result = job.execute_in_process(run_config=strict, instance=instance, partition_key="family-a", raise_on_error=False)

    assert not result.success  # Dagster's own blocking: nothing downstream may run on a held fit
    (extrapolation,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "extrapolation"]
    assert not extrapolation.passed and extrapolation.severity == dg.AssetCheckSeverity.ERROR and extrapolation.blocking
    assert "family-a/chinchilla" in extrapolation.description
    held = {r.data["law"]: r.data["status"] for r in fit_event(result)["coefficients"].records}
    assert held["chinchilla"] == "held" and "extrapolation" in fit_event(result)["not_published"].value
    assert versions(home) == {"family-a": 1}


def test_a_refit_with_held_fits_is_not_an_error_and_publish_still_runs(home, tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    ingest(home, tmp_path, chinchilla_runs("family-a"))
    ingest(home, tmp_path, chinchilla_runs("tiny", n_sizes=2, n_tokens=3, prefix="tiny"))  # 6 runs: too few to fit
    (held, published) = refit(home, ["family-a", "tiny"], run_config=FAST)
    assert not held.success  # Dagster's own verdict on the run: blocking checks failed
    assert {e.asset_key.to_user_string() for e in published.get_asset_materialization_events()} == {
        "coefficients", "allocations", "exports",
    }
    assert versions(home) == {"family-a": 1}
    # the command says what was held and why, and succeeds (a new version: the settings of the run differ)
    result = CliRunner().invoke(app, ["refit", "--family", "tiny", "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert "held: tiny/chinchilla v2: design: fewer than 8 runs: the family has 6 to fit" in result.output


def test_the_automation_sensor_republishes_after_a_refit(home, tmp_path):
    from pipelines.definitions import build_defs

    ingest(home, tmp_path, chinchilla_runs("family-a"))
    refit(home, ["family-a"], run_config=FAST)
    with home_instance(home) as instance:
        defs = build_defs(home)
        sensors = {s.name: s for s in defs.sensors}
        assert sensors["publish_automation"].default_status == dg.DefaultSensorStatus.RUNNING
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0  # the publish job already ran after the refit
        ingest(home, tmp_path, chinchilla_runs("family-a", seed=5, size_range=(9.6, 10.0), n_sizes=2, prefix="big"))
        refitted = defs.resolve_job_def("refit").execute_in_process(run_config=FAST, instance=instance, partition_key="family-a")
        assert "family-a/chinchilla/v2" in fit_event(refitted)["fitted"].value
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    published = ("coefficients", "allocations", "exports")
    assert after.total_requested == 3
    assert all(after.get_requested_partitions(dg.AssetKey(key)) == {None} for key in published)


def test_a_refit_of_many_families_records_again_only_the_cards_that_changed(home, tmp_path, monkeypatch):
    """Above PLOTS_UP_TO families (lowered here to two) an unchanged family keeps its last card and checks."""
    from pipelines.defs import fit_assets

    monkeypatch.setattr(fit_assets, "PLOTS_UP_TO", 2)
    for family, seed in (("family-a", 0), ("family-b", 1), ("family-c", 2)):
        ingest(home, tmp_path, chinchilla_runs(family, seed=seed))
    with home_instance(home) as instance:
        instance.add_dynamic_partitions(FAMILIES.name, ["family-a", "family-b", "family-c"])
    tags = {"dagster/asset_partition_range_start": "family-a", "dagster/asset_partition_range_end": "family-c"}

    def cards(result) -> dict[str, dict]:
        return {e.partition: e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == "fits"}

    first = cards(run_job(home, "refit", run_config=FAST, tags=tags))
    assert set(first) == {"family-a", "family-b", "family-c"}
    assert "plot" not in first["family-a"] and first["family-a"]["coefficients"].records
    ingest(home, tmp_path, chinchilla_runs("family-b", seed=7, size_range=(9.6, 10.0), n_sizes=2, prefix="big"))
    second = run_job(home, "refit", run_config=FAST, tags=tags)
    assert set(cards(second)) == {"family-b"}  # the two unchanged families keep their cards
    assert {c.partition for c in second.get_asset_check_evaluations()} == {"family-b"}
    with home_instance(home) as instance:
        assert instance.get_materialized_partitions(dg.AssetKey("fits")) == {"family-a", "family-b", "family-c"}
