"""scalereg suggest-mapping: a draft that names the right columns, says what it rejected and why, and is
valid input to --mapping; and the real sweep files shipped under data/published/sweeps/, each ingested
through its hand-edited mapping with counts read from the file independently of the ingest code.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry.adapters.mapping import load_mapping, read_with_mapping
from registry.cli import app
from registry.home import PUBLISHED_DIR
from registry.ingest import ingest_path
from registry.suggest_mapping import suggest
from tests.conftest import rows, write_csv

SWEEPS = sorted(p for p in (PUBLISHED_DIR / "sweeps").iterdir() if p.is_dir())


def data_file(folder: Path) -> Path:
    (found,) = [p for p in folder.iterdir() if p.suffix in (".csv", ".jsonl", ".parquet")]
    return found


def draft_of(path: Path, tmp_path: Path) -> tuple[dict, Path]:
    text = suggest(path).toml()
    saved = tmp_path / "draft.toml"
    saved.write_text(text, encoding="utf-8")
    return tomllib.loads(text), saved


def test_the_shipped_sweeps_are_the_documented_ones():
    provenance = (PUBLISHED_DIR / "PROVENANCE.md").read_text(encoding="utf-8")
    assert len(SWEEPS) >= 3
    for folder in SWEEPS:
        assert f"sweeps/{folder.name}/" in provenance
        assert (folder / "mapping.toml").is_file() and (folder / "mapping.draft.toml").is_file()


@pytest.mark.parametrize("folder", SWEEPS, ids=lambda p: p.name)
def test_each_shipped_sweep_ingests_through_its_mapping(con, home, folder):
    """Expected counts from reading the JSON lines directly: a row is good when N, D and the loss are
    positive numbers inside the physical bounds and its (run, step) appears once."""
    mapping = tomllib.loads((folder / "mapping.toml").read_text(encoding="utf-8"))["columns"]
    records = [json.loads(line) for line in data_file(folder).read_text(encoding="utf-8").splitlines() if line.strip()]
    keys = [(r[mapping["run_name"]], r[mapping["step"]]) for r in records]

    def good(r: dict) -> bool:
        n, d, loss = (r.get(mapping[c]) for c in ("params", "tokens", "loss"))
        numbers = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (n, d, loss))
        return numbers and 1e3 <= n <= 1e15 and 1e3 <= d <= 1e17 and 0.001 <= loss <= 20

    expected_accepted = sum(good(r) and keys.count(k) == 1 for r, k in zip(records, keys))
    report = ingest_path(con, home, data_file(folder), mapping=folder / "mapping.toml")
    assert report.status == "ingested", report.error
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (
        len(records), expected_accepted, len(records) - expected_accepted,
    )
    assert rows(con, "SELECT count(*) FROM runs") == [(len({k[0] for k, r in zip(keys, records) if good(r)}),)]


@pytest.mark.parametrize("folder", SWEEPS, ids=lambda p: p.name)
def test_the_draft_for_each_shipped_sweep_names_its_columns_and_is_valid_input(folder, tmp_path):
    edited = tomllib.loads((folder / "mapping.toml").read_text(encoding="utf-8"))["columns"]
    draft, saved = draft_of(data_file(folder), tmp_path)
    assert {k: draft["columns"].get(k) for k in ("params", "tokens", "loss")} == {k: edited[k] for k in ("params", "tokens", "loss")}
    load_mapping(saved)  # valid as it stands


SPREADSHEET = """
model,Params,log10_tokens,epochs,checkpoint,C4 Eval PPL,train_loss_x100,State
a,70M,9.0,1,c1,60.3,410,finished
a,70M,9.0,2,c1,58.1,400,finished
a,70M,9.3,1,c2,50.2,390,finished
a,70M,9.3,2,c2,49.0,385,crashed
b,2.8B,9.0,1,c1,30.3,350,finished
b,2.8B,9.0,2,c1,29.1,340,finished
b,2.8B,9.3,1,c2,25.2,330,finished
b,2.8B,9.3,2,c2,24.0,325,finished
"""


def test_a_spreadsheet_gets_suffixes_log10_ln_a_run_identity_a_filter_and_rejections_with_reasons(tmp_path):
    path = write_csv(tmp_path / "sheet.csv", SPREADSHEET)
    draft, saved = draft_of(path, tmp_path)
    assert draft["columns"] == {"params": "Params", "tokens": "log10_tokens", "loss": "C4 Eval PPL"}
    assert draft["transforms"] == {"params": "suffix", "tokens": "log10", "loss": "ln"}
    # N and D repeat (two rows each); with no step the run is named by N and D, and epochs alone tells the
    # rows apart (checkpoint follows D here)
    assert draft["run_name"] == ["Params", "log10_tokens", "epochs"]
    assert draft["where"] == 'State == "finished"'
    text = saved.read_text(encoding="utf-8")
    assert "'train_loss_x100' as loss: median 367.5, outside 0.5-15 nats" in text
    batch = read_with_mapping(path, load_mapping(saved))
    points = batch.points.sort("row_number")
    assert points.get_column("params").to_list()[::4] == [70e6, 2.8e9]
    assert points.get_column("tokens").to_list()[:3] == pytest.approx([1e9, 1e9, 10**9.3])
    assert points.get_column("loss").to_list()[0] == pytest.approx(math.log(60.3))
    assert batch.parse_errors.get_column("row_number").to_list() == [4]  # the crashed run, left out by where


def test_suggest_mapping_prints_the_draft_and_names_a_missing_loss(tmp_path):
    """In process (the registry's command line, without Dagster): a subprocess would cost seconds of imports."""
    path = write_csv(
        tmp_path / "w.csv",
        "Name,data,num_params,train_tokens,accuracy\nr1,c4,1.2e8,2.4e9,0.41\nr2,c4,3.5e8,7e9,0.52\n"
        "r3,pile,1.2e8,2.4e9,0.43\nr4,pile,3.5e8,7e9,0.55",
    )
    done = CliRunner().invoke(app, ["suggest-mapping", str(path)])
    assert done.exit_code == 0, done.output
    assert 'params = "num_params"' in done.output and 'tokens = "train_tokens"' in done.output
    assert 'family_column = "data"' in done.output  # two datasets, each shared by two runs
    assert '# loss = "?"  no column looks like loss: name it here' in done.output
    missing = CliRunner().invoke(app, ["suggest-mapping", str(tmp_path / "nope.csv")])
    assert missing.exit_code != 0 and "no such file" in missing.output


def test_a_count_whose_name_gives_its_unit_is_read_in_that_unit_not_as_log10(tmp_path):
    """7 in a column "N (B)" is 7e9 parameters; read as log10 it would be 1e7, also a plausible size."""
    draft, _ = draft_of(write_csv(tmp_path / "u.csv", "N (B),tokens_b,loss\n7,140,2.1\n13,260,2.0\n1,20,2.5"), tmp_path)
    assert draft["columns"] == {"params": "N (B)", "tokens": "tokens_b", "loss": "loss"}
    assert draft["transforms"] == {"params": "billions", "tokens": "billions"}
