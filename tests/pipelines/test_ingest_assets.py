"""The Dagster assets, materialised in-process against a temporary registry, and the landing sensor."""

from __future__ import annotations

import os
import time

import dagster as dg

from pipelines.defs.landing_sensor import landing_sensor
from pipelines.defs.resources import RegistryResource
from pipelines.runner import run_job
from registry.db import reader
from tests.conftest import write_csv

SHIPPED_FAMILIES = {
    "chinchilla", "isoflop-ml-scalefit-chinchilla", "isoflop-epochai-chinchilla", "isoflop-misfitting-fineweb-c4",
    "gadre-c4", "gadre-rpj", "gadre-rw", "olmo2-ladder", "gemstones", "chinchilla-slim-gemstones",
}


def test_the_published_job_fills_the_registry_and_reports_its_checks(home):
    result = run_job(home, "ingest_published")
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"published/chinchilla", "published/isoflops", "published/gadre_overtraining",
                            "published/olmo_ladder", "published/gemstones", "runs"}
    checks = {(c.asset_key.to_user_string(), c.check_name): c.passed for c in result.get_asset_check_evaluations()}
    assert all(passed for (asset, name), passed in checks.items() if name == "no_rows_lost")
    assert checks[("published/chinchilla", "rejects_below_threshold")] is True
    # no shipped file has more than 5% of its rows rejected (the 3B ladder runs take N from the ladder code's MODEL_PARAMS)
    assert all(passed for (asset, name), passed in checks.items() if name == "rejects_below_threshold")
    with reader(home.registry) as con:
        families = {f for (f,) in con.execute("SELECT DISTINCT family FROM runs").fetchall()}
        balance = con.execute("SELECT bool_and(rows_read = rows_accepted + rows_rejected) FROM sources").fetchall()[0][0]
    assert families == SHIPPED_FAMILIES and balance


def test_materialisation_metadata_shows_counts_and_column_schema(home):
    result = run_job(home, "ingest_published")
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(["published", "chinchilla"])]
    metadata = event.materialization.metadata
    assert metadata["rows_read"].value == 245 and metadata["rows_rejected"].value == 0
    assert "params" in {c.name for c in metadata["dagster/column_schema"].schema.columns}
    (source,) = metadata["sources"].records
    assert (source.data["read"], source.data["accepted"], source.data["rejected"]) == (245, 245, 0)
    assert {c.name: c.type for c in metadata["sources"].schema.columns}["read"] == "int"
    (runs,) = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("runs")]
    per_family = {r.data["family"]: r.data["runs"] for r in runs.materialization.metadata["per_family"].records}
    assert set(per_family) == SHIPPED_FAMILIES and per_family["chinchilla"] == 245  # every Figure 4 point is a run


def test_running_the_published_job_twice_changes_nothing(home):
    run_job(home, "ingest_published")
    with reader(home.registry) as con:
        before = con.execute("SELECT (SELECT count(*) FROM sources), (SELECT count(*) FROM runs), (SELECT count(*) FROM rejects)").fetchall()
    run_job(home, "ingest_published")
    with reader(home.registry) as con:
        after = con.execute("SELECT (SELECT count(*) FROM sources), (SELECT count(*) FROM runs), (SELECT count(*) FROM rejects)").fetchall()
    assert before == after


def test_the_landing_sensor_requests_a_new_file_once_and_the_job_ingests_it(home):
    resources = {"registry": RegistryResource.for_home(home)}
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        assert isinstance(landing_sensor(context), dg.SkipReason)

        path = write_csv(home.landing / "new-runs.csv", "family,run_name,params,tokens,loss\nmy-model,a,1e8,2e9,3.1\nmy-model,b,2e8,4e9,2.8")
        finished = time.time() - 60
        os.utime(path, (finished, finished))  # complete: renamed into place a minute ago
        looked = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=context.cursor))
        assert not looked.run_requests  # a file is taken once it is seen unchanged on two ticks
        first = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=looked.cursor))
        assert len(first.run_requests) == 1
        request = first.run_requests[0]
        assert request.run_config["ops"]["landing_files"]["config"]["paths"] == ["new-runs.csv"]

        again = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor))
        assert isinstance(again, dg.SkipReason)

    result = run_job(home, "ingest_landing", run_config=request.run_config)
    assert result.success
    with reader(home.registry) as con:
        assert con.execute("SELECT family, count(*) FROM runs GROUP BY 1").fetchall() == [("my-model", 2)]
