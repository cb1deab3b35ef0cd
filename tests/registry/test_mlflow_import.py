"""MLflow import against a real tracking server: runs logged as a training script logs them, then imported.

The server is ``mlflow server`` with a SQLite store in a temporary folder, on 127.0.0.1 and a free port,
in its own process group, stopped by its pid at the end of the module. Losses follow a known law along
each run's steps, so the registry's values are checked against what was logged, not against the importer.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.db import reader
from registry.home import Home
from registry.importers.mlflow import TrackerProblem, import_mlflow, read_experiment
from registry.importers.tracker_mapping import TrackerMappingProblem, load_tracker_mapping

EXPERIMENT = "sweep"
TOKENS_PER_STEP = 65_536
SIZES = (2e7, 6e7, 2e8)
LAST_STEPS = tuple(range(400, 4001, 400))  # ten token budgets per size: 30 finished runs
LOGS = 8  # values logged per run after step 0

MAPPING = """\
name = "mlflow sweep"
loss_metric = "train/loss"
loss_name = "train"
family_from = "tags.family"
params = "params.n_params"
tokens_per_step = "params.tokens_per_step"
unique_tokens = "tags.unique_tokens"
"""


def law(params: float, tokens: float) -> float:
    """The loss every run follows: a Chinchilla-shaped law with known coefficients."""
    return 1.7 + 400.0 / params**0.34 + 410.0 / tokens**0.28


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    command = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--default-artifact-root", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    log = (folder / "server.log").open("wb")
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner: only the tracking API is used
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    uri = f"http://127.0.0.1:{port}"
    import mlflow.tracking  # noqa: F401 - the client's import takes seconds: done while the server starts on the other core

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, (folder / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not answer /health in 120 s"
            time.sleep(0.25)
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # its own group: the server and its workers, nothing else
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _train(client, experiment_id: str, name: str, params: float, last_step: int, *, status: str = "FINISHED",
           tokens_per_step: str = str(TOKENS_PER_STEP)) -> str:  # noqa: ANN001
    """What a training script logs: its config as params, the family as a tag, the loss every few steps."""
    from mlflow.entities import Metric, Param, RunTag

    # two epochs over half the tokens, written as people write it (a suffix)
    unique = f"{last_step * TOKENS_PER_STEP / 2 / 1e6:.10g}M"
    run = client.create_run(experiment_id, run_name=name, tags={"family": "MLflow Sweep", "unique_tokens": unique})
    run_id = run.info.run_id
    steps = [0] + [last_step * (i + 1) // LOGS for i in range(LOGS)]
    now = int(time.time() * 1000)
    metrics = [Metric("train/loss", 10.8 if s == 0 else law(params, s * TOKENS_PER_STEP), now + s, s) for s in steps]
    client.log_batch(
        run_id, metrics=metrics,
        params=[Param("n_params", str(int(params))), Param("tokens_per_step", tokens_per_step), Param("lr", "3e-4")],
        tags=[RunTag("git_sha", "abc123")],
    )
    if status != "RUNNING":
        client.set_terminated(run_id, status=status)
    return run_id


@pytest.fixture(scope="module")
def tracker(server: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """30 finished runs of three sizes, plus a failed, a running, a deleted and an unreadable finished run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server)
    experiment_id = client.create_experiment(EXPERIMENT)
    finished = {}
    for params in SIZES:
        for last_step in LAST_STEPS:
            name = f"n{params:.0e}-s{last_step}"
            finished[name] = (_train(client, experiment_id, name, params, last_step), params, last_step)
    failed = _train(client, experiment_id, "diverged", 2e7, 800, status="FAILED")
    running = _train(client, experiment_id, "still-going", 2e7, 800, status="RUNNING")
    deleted = _train(client, experiment_id, "thrown-away", 2e7, 800)
    client.delete_run(deleted)
    unreadable = _train(client, experiment_id, "bad-config", 2e7, 800, tokens_per_step="lots")
    mapping = tmp_path_factory.mktemp("mapping") / "mlflow.toml"
    mapping.write_text(MAPPING)
    home = Home.from_env(str(tmp_path_factory.mktemp("home"))).ensure()
    return {"client": client, "uri": server, "finished": finished, "failed": failed, "running": running,
            "deleted": deleted, "unreadable": unreadable, "mapping": mapping, "home": home}


@pytest.fixture(scope="module")
def first(tracker: dict):
    return import_mlflow(tracker["home"], tracker["uri"], EXPERIMENT, load_tracker_mapping(tracker["mapping"]))


def test_finished_runs_are_imported_with_their_logged_values(tracker: dict, first) -> None:
    assert first.ingest.status == "ingested"
    assert (first.ingest.rows_accepted, first.ingest.runs_added) == (30, 30)
    with reader(tracker["home"].registry) as con:
        runs = con.execute(
            "SELECT r.run_name, r.family, r.params, r.tokens, r.unique_tokens, r.loss, r.loss_name, r.final_step, t.tracker_run_id "
            "FROM runs r JOIN tracker_runs t USING (source_id, row_number)"
        ).fetchall()
        points = dict(con.execute("SELECT r.run_name, count(*) FROM run_points p JOIN runs r USING (run_id) GROUP BY 1").fetchall())
    assert len(runs) == 30
    for name, family, params, tokens, unique_tokens, loss, loss_name, final_step, tracker_run_id in runs:
        run_id, logged_params, last_step = tracker["finished"][name]
        assert tracker_run_id == run_id
        assert (family, loss_name, final_step) == ("mlflow-sweep", "train", last_step)
        assert params == logged_params
        assert tokens == last_step * TOKENS_PER_STEP and unique_tokens == pytest.approx(tokens / 2, rel=1e-9)
        assert loss == pytest.approx(law(logged_params, last_step * TOKENS_PER_STEP), rel=1e-12)
        assert points[name] == LOGS  # the step-0 value (no token trained yet) is no point of the curve
    assert first.points_left_out == 31  # one per finished run read: the 30 and the unreadable one


def test_unfinished_and_deleted_runs_are_skipped_with_reasons_and_rows_are_conserved(tracker: dict, first) -> None:
    skipped = {s.run_id: s.reason for s in first.skipped}
    assert set(skipped) == {tracker["failed"], tracker["running"], tracker["deleted"]}
    assert "FAILED" in skipped[tracker["failed"]] and "RUNNING" in skipped[tracker["running"]]
    assert "deleted" in skipped[tracker["deleted"]]
    # 34 runs seen = 30 accepted + 1 rejected (its tokens_per_step reads "lots") + 3 skipped
    assert (first.runs_seen, first.ingest.rows_accepted, first.ingest.rows_rejected, len(first.skipped)) == (34, 30, 1, 3)
    assert first.conserved
    with reader(tracker["home"].registry) as con:
        reasons = con.execute("SELECT reasons FROM rejects r JOIN tracker_runs t USING (source_id, row_number)").fetchall()
        recorded = con.execute(
            "SELECT tracker_run_id, skipped_reason FROM tracker_runs WHERE skipped_reason IS NOT NULL"
        ).fetchall()
        source = con.execute(
            "SELECT tracker, tracking_uri, experiment, rows_read, rows_accepted, rows_rejected, runs_started_from <= runs_ended_to "
            "FROM sources"
        ).fetchall()
    assert len(reasons) == 1 and "'lots' cannot be read as a number" in reasons[0][0][0].replace(" = lots", " = 'lots'")
    assert dict(recorded) == skipped
    assert source == [("mlflow", tracker["uri"], EXPERIMENT, 31, 30, 1, True)]


def test_an_unchanged_reimport_through_the_cli_is_a_no_op(tracker: dict, first, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from registry.cli import app

    monkeypatch.setenv("SCALEREG_HOME", str(tracker["home"].root))
    result = CliRunner().invoke(app, [
        "import", "mlflow", "--uri", tracker["uri"], "--experiment", EXPERIMENT, "--mapping", str(tracker["mapping"]),
        "--format", "json",
    ])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert (answer["status"], answer["source_id"], answer["runs_seen"], answer["runs_skipped"]) == ("unchanged", first.ingest.source_id, 34, 3)
    with reader(tracker["home"].registry) as con:
        assert con.execute("SELECT count(*) FROM sources").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 30


def test_a_run_that_logged_more_steps_is_a_new_version_with_a_trace(tracker: dict, first) -> None:
    from mlflow.entities import Metric

    client, mapping = tracker["client"], load_tracker_mapping(tracker["mapping"])
    name = "n6e+07-s400"
    run_id, params, last_step = tracker["finished"][name]
    more = [last_step + 100 * i for i in range(1, 5)]  # resumed: four more evaluations, then finished again
    client.update_run(run_id, status="RUNNING")
    client.log_batch(run_id, metrics=[Metric("train/loss", law(params, s * TOKENS_PER_STEP), int(time.time() * 1000), s) for s in more])
    client.set_terminated(run_id, status="FINISHED")
    second = import_mlflow(tracker["home"], tracker["uri"], EXPERIMENT, mapping)
    assert second.ingest.status == "ingested" and second.ingest.supersedes == (first.ingest.source_id,)
    assert second.conserved and (second.ingest.rows_accepted, second.ingest.rows_rejected, len(second.skipped)) == (30, 1, 3)
    with reader(tracker["home"].registry) as con:
        final = con.execute("SELECT final_step, tokens, loss, source_id FROM runs WHERE run_name = ?", [name]).fetchone()
        curve = con.execute("SELECT count(*) FROM run_points JOIN runs USING (run_id) WHERE run_name = ?", [name]).fetchone()[0]
        versions = con.execute("SELECT source_id, superseded_by FROM sources ORDER BY source_id").fetchall()
        traced = con.execute(
            "SELECT source_id, last_step FROM tracker_runs WHERE tracker_run_id = ? ORDER BY source_id", [run_id]
        ).fetchall()
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 30
    assert final == (more[-1], more[-1] * TOKENS_PER_STEP, pytest.approx(law(params, more[-1] * TOKENS_PER_STEP)), second.ingest.source_id)
    assert curve == LOGS + len(more)
    assert versions == [(first.ingest.source_id, second.ingest.source_id), (second.ingest.source_id, None)]
    assert traced == [(first.ingest.source_id, last_step), (second.ingest.source_id, more[-1])]
    # and reading it once more changes nothing
    assert import_mlflow(tracker["home"], tracker["uri"], EXPERIMENT, mapping).ingest.status == "unchanged"


def test_an_unknown_experiment_or_an_unreachable_server_is_one_clear_problem(tracker: dict) -> None:
    mapping = load_tracker_mapping(tracker["mapping"])
    with pytest.raises(TrackerProblem, match="no experiment named 'nope'"):
        read_experiment(tracker["uri"], "nope", mapping)
    started = time.monotonic()
    with pytest.raises(TrackerProblem, match="127.0.0.1"):
        read_experiment(f"http://127.0.0.1:{_free_port()}", EXPERIMENT, mapping)
    assert time.monotonic() - started < 10  # no minutes of retries against a server that is not there


def test_credentials_in_the_tracking_uri_are_never_stored() -> None:
    from registry.importers.mlflow import public_uri

    assert public_uri("https://alice:s3cret@mlflow.example.org:8443/prefix") == "https://mlflow.example.org:8443/prefix"
    assert public_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('loss_metric = "loss"\nparams = "params.n"\ntokens = "params.d"\nfamily = "f"\nlos_name = "x"\n', 5, "unknown key 'los_name'"),
        ('loss_metric = "loss"\nparams = "params.n"\ntokens = "params.d"\nfamily = "f"\nfamily_from = "tags.family"\n', 5, "exactly one"),
        ('loss_metric = "loss"\nparams = "config.n"\ntokens = "params.d"\nfamily = "f"\n', 2, "params.NAME"),
        ('loss_metric = "loss"\nparams = "params.n"\ntokens = "params.d"\ntokens_per_step = 4096\nfamily = "f"\n', 4, "exactly one"),
        ('loss_metric = "loss"\nparams = "params.n"\ntokens = -5\nfamily = "f"\n', 3, "positive number"),
        ('loss_metric = "loss"\nparams = "params.n"\ntokens = "params.d"\nfamily = "Not A Key"\n', 4, "family"),
        ('loss_metric = "loss"\nparams = "params.n"\ntokens = "params.d"\nfamily = "f"\nrun_name = "title"\n', 5, "run_name"),
    ],
)
def test_mapping_mistakes_name_their_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "map.toml"
    path.write_text(text)
    with pytest.raises(TrackerMappingProblem, match=f"map.toml, line {line}: .*{words}"):
        load_tracker_mapping(path)


def test_the_dagster_sensor_notices_changes_and_the_asset_imports_the_experiment(tracker: dict, first) -> None:
    import dagster as dg

    from pipelines.defs import tracker_assets
    from pipelines.defs.resources import RegistryResource

    mlflow = tracker_assets.MlflowTracker(uri=tracker["uri"], experiment=EXPERIMENT, mapping=str(tracker["mapping"]))
    with dg.instance_for_test() as instance:
        asked = tracker_assets.mlflow_sensor(dg.build_sensor_context(instance=instance, resources={"mlflow": mlflow}))
        assert len(asked.run_requests) == 1
        again = tracker_assets.mlflow_sensor(dg.build_sensor_context(instance=instance, resources={"mlflow": mlflow}, cursor=asked.cursor))
        assert isinstance(again, dg.SkipReason)  # nothing finished changed since
    result = dg.materialize(
        [tracker_assets.mlflow_runs], resources={"registry": RegistryResource.for_home(tracker["home"]), "mlflow": mlflow}
    )
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert (metadata["runs_seen"].value, metadata["runs_skipped"].value, metadata["rows_accepted"].value) == (34, 3, 30)
    assert {r.data["run_id"] for r in metadata["skipped"].records} == {tracker["failed"], tracker["running"], tracker["deleted"]}
    assert all(check.passed for check in result.get_asset_check_evaluations() if check.check_name == "no_rows_lost")


def test_no_tracker_is_imported_unless_one_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.defs import tracker_assets

    for name in tracker_assets.ENV.values():
        monkeypatch.delenv(name, raising=False)
    assert tracker_assets.MlflowTracker.from_env() is None and not list(tracker_assets.defs().assets or [])
    monkeypatch.setenv("SCALEREG_MLFLOW_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("SCALEREG_MLFLOW_EXPERIMENT", "sweep")
    monkeypatch.setenv("SCALEREG_MLFLOW_MAPPING", "mlflow.toml")
    assert [a.key for a in tracker_assets.defs().assets] == [tracker_assets.MLFLOW_KEY]
