"""W&B exports through presets: a runs table, run histories (Gemstones' shipped W&B history and per-run files
in the API's shape built from it) and an offline run written by the ``wandb`` package itself, read without a network.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from registry.cli import app
from registry.db import reader, writer
from registry.home import Home
from registry.ingest import ingest_path

ROOT = Path(__file__).resolve().parents[2]
GEMSTONES = ROOT / "data" / "published" / "gemstones"
GEMSTONES_HISTORY = GEMSTONES / "wandb_df_for_fitting_hot_100b+_477.jsonl"


def law(params: float, tokens: float) -> float:
    return 1.7 + 400.0 / params**0.34 + 410.0 / tokens**0.28


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.setenv("SCALEREG_HOME", str(tmp_path / "home"))
    return Home.from_env(str(tmp_path / "home")).ensure()


def _ingest(path: Path, mapping: Path, preset: str) -> dict:
    result = CliRunner().invoke(app, ["ingest", str(path), "--preset", preset, "--mapping", str(mapping), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# The W&B runs table as the project page's "Export as CSV" writes it: its own columns first, then the
# config (nested keys joined with dots) and the summary metrics (names with slashes).
RUNS_TABLE = [
    {"Name": "n20m-d1b", "State": "finished", "Notes": "-", "User": "ada", "Tags": "sweep,small", "Created": "2025-03-01T10:00:00.000Z",
     "Runtime": 3600, "Sweep": "abc123", "model.n_params": 2e7, "data.train_tokens": 1e9, "optimizer/lr": 3e-4, "_step": 15258},
    {"Name": "n20m-d4b", "State": "finished", "Notes": "-", "User": "ada", "Tags": "sweep,small", "Created": "2025-03-01T11:00:00.000Z",
     "Runtime": 14000, "Sweep": "abc123", "model.n_params": 2e7, "data.train_tokens": 4e9, "optimizer/lr": 3e-4, "_step": 61035},
    {"Name": "n100m-d2b", "State": "finished", "Notes": "-", "User": "ada", "Tags": "sweep", "Created": "2025-03-02T09:00:00.000Z",
     "Runtime": 20000, "Sweep": "abc123", "model.n_params": 1e8, "data.train_tokens": 2e9, "optimizer/lr": 2e-4, "_step": 30517},
    {"Name": "n100m-d8b", "State": "finished", "Notes": "-", "User": "bo", "Tags": "sweep", "Created": "2025-03-02T10:00:00.000Z",
     "Runtime": 80000, "Sweep": "abc123", "model.n_params": 1e8, "data.train_tokens": 8e9, "optimizer/lr": 2e-4, "_step": 122070},
    {"Name": "n100m-d8b-lr", "State": "crashed", "Notes": "OOM", "User": "bo", "Tags": "sweep", "Created": "2025-03-03T10:00:00.000Z",
     "Runtime": 900, "Sweep": "abc123", "model.n_params": 1e8, "data.train_tokens": 8e9, "optimizer/lr": 6e-4, "_step": 2000},
    {"Name": "n400m-d8b", "State": "running", "Notes": "-", "User": "bo", "Tags": "sweep", "Created": "2025-03-04T10:00:00.000Z",
     "Runtime": 5000, "Sweep": "abc123", "model.n_params": 4e8, "data.train_tokens": 8e9, "optimizer/lr": 1e-4, "_step": 9000},
]
RUNS_MAPPING = """\
family = "wandb-sweep"
loss_name = "eval/c4"

[columns]
params = "model.n_params"
tokens = "data.train_tokens"
loss = "eval/loss"
"""


def test_a_runs_table_export_ingests_finished_runs_and_rejects_the_others_naming_their_state(tmp_path: Path, home: Home) -> None:
    table = pl.DataFrame(RUNS_TABLE).with_columns(
        pl.struct("model.n_params", "data.train_tokens").map_elements(lambda r: law(r["model.n_params"], r["data.train_tokens"]),
                                                                      return_dtype=pl.Float64).alias("eval/loss"),
        pl.lit(3.1).alias("train/loss"),
    )
    export = tmp_path / "wandb_export_2025-03-05.csv"
    table.write_csv(export)
    (tmp_path / "map.toml").write_text(RUNS_MAPPING)
    report = _ingest(export, tmp_path / "map.toml", "wandb-runs")
    assert (report["rows_read"], report["rows_accepted"], report["rows_rejected"]) == (6, 4, 2)
    with reader(home.registry) as con:
        runs = con.execute("SELECT run_name, family, params, tokens, loss, loss_name FROM runs ORDER BY run_name").fetchall()
        reasons = dict(con.execute("SELECT row_number, reasons FROM rejects").fetchall())
    expected = sorted((r["Name"], r["model.n_params"], r["data.train_tokens"]) for r in RUNS_TABLE if r["State"] == "finished")
    assert [(name, params, tokens) for name, _, params, tokens, _, _ in runs] == expected
    for _, family, params, tokens, loss, loss_name in runs:
        assert (family, loss_name) == ("wandb-sweep", "eval/c4") and loss == pytest.approx(law(params, tokens), rel=1e-12)
    assert reasons[5] == ["W&B State is crashed: only finished runs are ingested (a crashed, failed, killed or running run is not a trained model)"]
    assert reasons[6][0].startswith("W&B State is running")


def test_a_file_that_is_not_a_runs_table_is_refused_naming_the_missing_columns(tmp_path: Path, home: Home) -> None:
    export = tmp_path / "runs.csv"
    pl.DataFrame({"run": ["a"], "model.n_params": [2e7], "data.train_tokens": [1e9], "eval/loss": [3.0]}).write_csv(export)
    (tmp_path / "map.toml").write_text(RUNS_MAPPING)
    result = CliRunner().invoke(app, ["ingest", str(export), "--preset", "wandb-runs", "--mapping", str(tmp_path / "map.toml")])
    assert result.exit_code == 1
    assert "runs.csv: not a W&B runs table (no 'Name', 'State' column)" in result.output


def test_gemstones_shipped_wandb_history_ingests_every_checkpoint_as_published(home: Home) -> None:
    with writer(home.registry) as con:
        report = ingest_path(con, home, GEMSTONES_HISTORY, adapter="wandb-history", mapping=GEMSTONES / "mapping.toml")
        stored = con.execute(
            "SELECT r.run_name, p.step, p.loss FROM run_points p JOIN runs r USING (run_id) ORDER BY 1, 2"
        ).pl()
    published = pl.read_ndjson(GEMSTONES_HISTORY).select("run_name", "step", loss="final_loss").sort("run_name", "step")
    assert report.status == "ingested" and report.conserved
    assert (report.rows_read, report.rows_accepted) == (published.height, published.height)
    assert stored.equals(published)


def test_per_run_history_files_in_the_api_shape_are_each_one_run_named_after_the_file(tmp_path: Path, home: Home) -> None:
    published = pl.read_ndjson(GEMSTONES_HISTORY)
    names = published.get_column("run_name").unique(maintain_order=True).to_list()[:2]
    (tmp_path / "map.toml").write_text(
        'family = "gemstones-api"\nloss_name = "train"\n\n[columns]\nparams = "params_active_precise"\ntokens = "tokens"\n'
        'loss = "train/loss"\n'
    )
    for name in names:
        run = published.filter(pl.col("run_name") == name)
        # run.history() written out: _step, _runtime, _timestamp, then the logged metrics
        history = run.select(
            pl.col("step").alias("_step"), (pl.col("step") * pl.col("seconds_per_step")).alias("_runtime"),
            (1.74e9 + pl.col("step") * pl.col("seconds_per_step")).alias("_timestamp"),
            pl.col("final_loss").alias("train/loss"), "tokens", "params_active_precise",
        )
        history.write_csv(tmp_path / f"{name}.csv")
        report = _ingest(tmp_path / f"{name}.csv", tmp_path / "map.toml", "wandb-history")
        assert (report["rows_read"], report["rows_accepted"]) == (run.height, run.height)
    with reader(home.registry) as con:
        runs = con.execute("SELECT run_name, final_step, loss FROM runs ORDER BY run_name").fetchall()
    for name, final_step, loss in runs:
        last = published.filter(pl.col("run_name") == name).sort("step").tail(1)
        assert (final_step, loss) == (last.item(0, "step"), last.item(0, "final_loss"))
    assert sorted(name for name, _, _ in runs) == sorted(names)


def test_offline_wandb_runs_are_read_from_their_folder_without_a_network(tmp_path: Path, home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    for name, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path),
                        "WANDB_CONFIG_DIR": str(tmp_path / "config"), "WANDB_CACHE_DIR": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    params, tokens_per_step = 3e7, 131_072
    steps = [250 * i for i in range(1, 9)]
    folders = {}
    for name, exit_code in (("n30m", 0), ("n30m-crashed", 1)):
        run = wandb.init(project="sweep", name=name, dir=str(tmp_path), config={"model": {"n_params": params}, "lr": 3e-4},
                         settings=wandb.Settings(console="off", x_disable_stats=True))
        for step in steps:
            run.log({"train/loss": law(params, step * tokens_per_step), "tokens": step * tokens_per_step}, step=step)
        run.finish(exit_code=exit_code)
        folders[name] = Path(run.dir).parent
    wandb.teardown()
    (tmp_path / "map.toml").write_text(
        'family = "wandb-offline"\nloss_name = "train"\n\n[columns]\nparams = "model.n_params"\ntokens = "tokens"\nloss = "train/loss"\n'
    )
    finished = _ingest(folders["n30m"], tmp_path / "map.toml", "wandb-offline")
    crashed = _ingest(folders["n30m-crashed"], tmp_path / "map.toml", "wandb-offline")
    assert (finished["rows_read"], finished["rows_accepted"], finished["rows_rejected"]) == (len(steps), len(steps), 0)
    assert (crashed["rows_accepted"], crashed["rows_rejected"]) == (0, len(steps))
    with reader(home.registry) as con:
        run = con.execute("SELECT run_name, params, tokens, loss, final_step FROM runs").fetchall()
        points = con.execute("SELECT step, tokens, loss FROM run_points ORDER BY step").fetchall()
        reasons = con.execute("SELECT DISTINCT unnest(reasons) FROM rejects").fetchall()
    assert run == [("n30m", params, steps[-1] * tokens_per_step, pytest.approx(law(params, steps[-1] * tokens_per_step)), steps[-1])]
    assert points == [(s, s * tokens_per_step, pytest.approx(law(params, s * tokens_per_step))) for s in steps]
    assert reasons == [("the offline W&B run exited with code 1: only finished runs are ingested",)]
