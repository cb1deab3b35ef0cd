"""Never stale: a file dropped into landing/ ends, with no manual step, in new coefficients, allocations and exports.

The daemon's work is done tick by tick, as in test_landing_reliability: the landing sensor asks for an ingest
run, the refit sensor for a refit of the new family, and the automation sensor that ships running
(`publish_automation`) evaluates the published tables' condition and asks for the run that republishes them.
Each requested run is launched as the daemon would launch it; nothing else is done by hand.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest

from pipelines.definitions import build_defs
from pipelines.defs.fit_assets import PUBLISH, publish_automation
from pipelines.defs.refit_triggers import refit_sensor
from pipelines.defs.resources import RegistryResource
from pipelines.runner import home_instance, run_job
from registry.db import reader
from tests.pipelines.test_landing_reliability import Daemon
from tests.synthetic import chinchilla_runs, write_runs

#: Fewer resamples keep the test short; the refit is otherwise the shipped one.
FAST = {"ops": {"fits": {"config": {"bootstrap_resamples": 60, "other_law_resamples": 8}}}}


@pytest.fixture
def daemon(home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster))
    monkeypatch.setenv("SCALEREG_LANDING_SETTLE", "0")
    with home_instance(home) as instance:
        yield Daemon(home, instance)


def refit_requests(daemon: Daemon) -> list[dg.RunRequest]:
    """One tick of the refit sensor; the partitions it adds are added, as the daemon does."""
    context = dg.build_sensor_context(instance=daemon.instance, resources={"registry": RegistryResource.for_home(daemon.home)})
    result = refit_sensor(context)
    assert isinstance(result, dg.SensorResult), result
    for added in result.dynamic_partitions_requests or []:
        daemon.instance.add_dynamic_partitions(added.partitions_def_name, list(added.partition_keys))
    return list(result.run_requests)


def automation_tick(daemon: Daemon, cursor):
    return dg.evaluate_automation_conditions(
        defs=build_defs(daemon.home), instance=daemon.instance,
        asset_selection=dg.AssetSelection.assets("coefficients", "allocations", "exports"), cursor=cursor,
    )


def published_families(home) -> tuple[set, set, set]:
    with reader(home.registry) as con:
        coefficients = {r[0] for r in con.execute("SELECT DISTINCT family FROM coefficients_latest").fetchall()}
        allocations = {r[0] for r in con.execute("SELECT DISTINCT family FROM allocations_latest").fetchall()}
    exported = {r["family"] for r in json.loads((home.exports / "coefficients.json").read_text(encoding="utf-8"))}
    return coefficients, allocations, exported


def test_the_shipped_automation_sensor_runs_and_targets_the_published_tables():
    assert publish_automation.default_status == dg.DefaultSensorStatus.RUNNING
    for key in ("coefficients", "allocations", "exports"):
        spec = next(s for s in build_defs().resolve_all_asset_specs() if s.key == dg.AssetKey(key))
        assert spec.automation_condition == PUBLISH


def test_a_landing_file_leads_to_new_coefficients_allocations_and_exports_without_a_manual_step(home, daemon):
    first = automation_tick(daemon, None)  # the sensor's first tick: nothing has happened yet
    assert first.total_requested == 0

    write_runs(home.landing / "sweep.csv", chinchilla_runs("dropped"))
    assert isinstance(daemon.tick(), str)  # first sight: the file must look the same on the next tick
    request = daemon.tick()
    assert isinstance(request, dg.RunRequest)
    assert daemon.run(request).success

    (refit,) = refit_requests(daemon)
    assert refit.partition_key == "dropped"
    run_job(home, "refit", run_config=FAST, tags={"dagster/partition": refit.partition_key})

    after = automation_tick(daemon, first.cursor)
    published = ("coefficients", "allocations", "exports")
    assert after.total_requested == 3
    assert all(after.get_requested_partitions(dg.AssetKey(key)) == {None} for key in published)
    run_job(home, "publish")  # the run the automation sensor asked for: exactly the publish job's assets

    assert published_families(home) == ({"dropped"}, {"dropped"}, {"dropped"})
    assert automation_tick(daemon, after.cursor).total_requested == 0  # handled: nothing more to publish


def test_a_refit_run_that_finds_nothing_new_shows_the_familys_card_again(home, daemon):
    write_runs(home.landing / "sweep.csv", chinchilla_runs("steady"))
    daemon.tick()
    assert daemon.run(daemon.tick()).success
    (request,) = refit_requests(daemon)
    first = run_job(home, "refit", run_config=FAST, tags={"dagster/partition": request.partition_key})

    again = run_job(home, "refit", run_config=FAST, tags={"dagster/partition": "steady"})  # what the nightly run does

    def card(result):
        (event,) = [e.materialization for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("fits")]
        return event
    before, after = card(first), card(again)
    assert after.partition == "steady" and after.metadata["refit"].value == "unchanged: nothing new to fit"
    assert after.metadata["coefficients"] == before.metadata["coefficients"]  # the same fit, shown again
    assert after.metadata["plot"] == before.metadata["plot"] and "alpha" in after.metadata
    checks = {c.check_name: c for c in again.get_asset_check_evaluations()}
    assert checks and all(c.partition == "steady" for c in checks.values())

