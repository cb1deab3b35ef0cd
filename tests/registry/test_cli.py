"""The scalereg command: ingest, read-only SQL, runs; clear messages, never a traceback."""

from __future__ import annotations

import json

from tests.cli import scalereg
from tests.conftest import write_csv


def test_ingest_then_query_with_sql(home, tmp_path):
    data = write_csv(tmp_path / "runs.csv", "family,run_name,params,tokens,loss\nmy-model,a,1e8,2e9,3.1\nmy-model,b,2e8,-4e9,2.8")
    done = scalereg("ingest", str(data), home=home.root)
    assert done.returncode == 0, done.stderr
    assert "rows read 2, accepted 1, rejected 1" in done.stdout
    out = scalereg("sql", "select family, count(*) as n from runs group by 1", "--format", "json", home=home.root)
    assert json.loads(out.stdout) == [{"family": "my-model", "n": 1}]


def test_sql_cannot_modify_the_registry(home, tmp_path):
    data = write_csv(tmp_path / "runs.csv", "family,run_name,params,tokens,loss\nmy-model,a,1e8,2e9,3.1")
    scalereg("ingest", str(data), home=home.root)
    out = scalereg("sql", "delete from runs", home=home.root)
    assert out.returncode == 1 and "read-only" in out.stderr and "Traceback" not in out.stderr
    count = scalereg("sql", "select count(*) as n from runs", "--format", "csv", home=home.root)
    assert count.stdout.splitlines() == ["n", "1"]


def test_a_bad_query_is_one_line_not_a_traceback(home, tmp_path):
    data = write_csv(tmp_path / "runs.csv", "family,run_name,params,tokens,loss\nmy-model,a,1e8,2e9,3.1")
    scalereg("ingest", str(data), home=home.root)
    out = scalereg("sql", "select nope from runs", home=home.root)
    assert out.returncode == 1 and out.stderr.startswith("scalereg: query failed:") and "Traceback" not in out.stderr


def test_a_failed_file_exits_non_zero_with_the_reason(home, tmp_path):
    data = write_csv(tmp_path / "bad.csv", "a;b;c\n1;2;3")
    out = scalereg("ingest", str(data), home=home.root)
    assert out.returncode == 1 and "bad.csv" in out.stdout and "delimiter" in out.stdout


def test_sql_before_any_ingest_says_what_to_do(home):
    out = scalereg("sql", "select 1", home=home.root)
    assert out.returncode == 1 and "make demo" in out.stderr


def test_runs_lists_a_family(home, tmp_path):
    data = write_csv(tmp_path / "runs.csv", "family,run_name,params,tokens,loss\nmy-model,a,1e8,2e9,3.1\nother,b,1e8,2e9,3.0")
    scalereg("ingest", str(data), home=home.root)
    out = scalereg("runs", "--family", "my-model", "--format", "json", home=home.root)
    listed = json.loads(out.stdout)
    assert [r["run_name"] for r in listed] == ["a"] and listed[0]["source"] == "runs.csv"


def test_the_command_line_has_every_command_once_and_the_registry_part_needs_no_dagster():
    import subprocess
    import sys

    import typer

    from pipelines.cli import app

    registry_commands = {"ingest", "suggest-mapping", "sql", "runs", "coefficients", "allocate", "history", "fit", "import"}
    assert set(typer.main.get_command(app).commands) == registry_commands | {"demo", "refit", "ui"}
    probe = (
        "import sys, typer, registry.cli as cli; "
        "print(sorted(typer.main.get_command(cli.app).commands), 'dagster' in sys.modules, 'pipelines' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"{sorted(registry_commands)} False False"
