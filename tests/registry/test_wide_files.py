"""Wide files: thousands of extra columns are ingested whole, and read and validated before the writer is taken.

Speed is measured in ``bench/wide_file_bench.py`` (figures in ``bench/RESULTS.md``), not here; these
tests only bound a run the way every CLI test does (a command that hangs fails).
"""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

import registry.cli
import registry.ingest
from registry.db import reader
from tests.cli import scalereg
from tests.conftest import write_csv

N_EXTRA = 10_000
N_ROWS = 8


def wide_csv(path, n_extra: int = N_EXTRA, n_rows: int = N_ROWS):
    """A generic-format file with ``n_extra`` extra columns (about 600 KB at 10,000); its last row has a negative N.
    Extra column ``x<j>`` holds ``<row>.<j>`` so every value is distinct and checkable."""
    header = ["family", "run_name", "params", "tokens", "loss"] + [f"x{j}" for j in range(n_extra)]
    rows = []
    for i in range(n_rows):
        params = "-1e8" if i == n_rows - 1 else f"{1e8 * (i + 1):.0f}"
        rows.append(["wide", f"r{i}", params, "2e9", f"{3.0 + i / 100:.2f}"] + [f"{i}.{j}" for j in range(n_extra)])
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def test_a_file_with_ten_thousand_extra_columns_is_ingested_whole(home, tmp_path):
    data = wide_csv(tmp_path / "wide.csv")
    assert data.stat().st_size > 150_000

    done = scalereg("ingest", str(data), "--format", "json", home=home.root)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["status"], report["rows_read"], report["rows_accepted"], report["rows_rejected"]) == ("ingested", 8, 7, 1)
    with reader(home.registry) as con:
        tags = dict(con.execute("SELECT run_name, tags FROM runs WHERE family = 'wide' ORDER BY run_name").fetchall())
        raw, reasons = con.execute("SELECT raw, reasons FROM rejects").fetchall()[0]
    assert sorted(tags) == [f"r{i}" for i in range(7)]
    # every extra column is kept in tags, with its value
    kept = json.loads(tags["r3"])
    assert len(kept) == N_EXTRA and float(kept["x0"]) == 3.0 and str(kept["x9999"]) == "3.9999"
    # the rejected row is kept verbatim, every one of its 10,005 columns
    row = json.loads(raw)
    assert len(row) == N_EXTRA + 5 and row["run_name"] == "r7" and row["x9999"] == "7.9999"
    assert any("params" in reason for reason in reasons)


def test_a_file_is_read_and_validated_while_other_processes_can_still_open_the_registry(home, tmp_path, monkeypatch):
    write_csv(tmp_path / "first.csv", "family,run_name,params,tokens,loss\nwide,a,1e8,2e9,3.1")
    assert CliRunner().invoke(registry.cli.app, ["ingest", str(tmp_path / "first.csv")]).exit_code == 0
    probes = []
    validate = registry.ingest.validate

    def validate_while_another_process_opens_the_registry(batch):
        opened = subprocess.run(
            [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1], read_only=True).close()", str(home.registry)],
            capture_output=True, text=True,
        )
        probes.append(opened.returncode)
        return validate(batch)

    monkeypatch.setattr(registry.ingest, "validate", validate_while_another_process_opens_the_registry)
    result = CliRunner().invoke(registry.cli.app, ["ingest", str(wide_csv(tmp_path / "wide.csv", n_extra=500))])

    assert result.exit_code == 0, result.output
    assert "accepted 7, rejected 1" in result.output
    assert probes == [0]  # validated once, and not while holding the registry
