"""Every wrong invocation a user can type ends in exactly one line on stderr and a non-zero exit, never a traceback.

One table, run through ``scalereg``'s own entry point against a home with runs but no published fit (in
this process, so forty cases take seconds; a few run as the installed command too). Each case also names
a word its line must contain, so a message that says nothing useful fails too.
"""

from __future__ import annotations

import json
import sys
import warnings
from contextlib import nullcontext
from datetime import datetime, timezone

import pytest

import pipelines.cli
from laws.catalog import get_law
from registry.cli_input import law_params, parse_as_of
from registry.db import writer
from registry.home import Home
from registry.refit import refit_family
from tests.cli import scalereg
from tests.conftest import write_csv

HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def params(**changes) -> str:
    return json.dumps({k: v for k, v in (HOFFMANN | changes).items() if v is not None})


#: (arguments, a word the one line must contain); {runs}, {bad_mapping} and {missing} are files of the test's home.
WRONG_INVOCATIONS = [
    # points in time
    (["coefficients", "--as-of", "garbage"], "--as-of"),
    (["coefficients", "--as-of", "2026-13-45"], "2026-01-31"),
    (["coefficients", "--as-of", "2026-02-30T10:00"], "--as-of"),
    (["coefficients", "--as-of", "2020-01-01"], "no fit had been published by 2020-01-01"),
    (["coefficients", "--as-of", "yesterday"], "no fit had been published by"),
    (["coefficients", "--as-of", ""], "--as-of"),
    (["coefficients", "--as-of", "2026-01-31T25:00"], "--as-of"),
    (["coefficients", "--as-of", "last week"], "yesterday"),
    (["coefficients", "--format", "xml"], "unknown format"),
    (["coefficients", "--family", "nope"], "no published fits"),
    # budgets
    (["allocate", "--family", "fam-a", "--compute", "-1"], "--compute"),
    (["allocate", "--family", "fam-a", "--compute", "abc"], "--compute"),
    (["allocate", "--family", "fam-a", "--compute", "0"], "--compute"),
    (["allocate", "--family", "fam-a", "--compute", "inf"], "--compute"),
    (["allocate", "--family", "fam-a"], "--compute"),
    (["allocate", "--family", "fam-a", "--compute", "1e24", "--inference-tokens", "-5"], "--inference-tokens"),
    (["allocate", "--compute", "1e24"], "--params"),
    (["allocate", "--family", "fam-a", "--compute", "1e24", "--inference-tokens", "0"], "--inference-tokens"),
    (["allocate", "--family", "fam-a", "--compute", "nan"], "--compute"),
    # a family whose only fit is held: the reason, not advice to refit
    (["allocate", "--family", "fam-a", "--compute", "1e24"], "was held: design: fewer than"),
    (["allocate", "--family", "fam-a", "--compute", "1e40", "--allow-untrusted"], "was held"),
    (["allocate", "--family", "fam-a", "--compute", "1e24", "--law", "isoflop"], "no published isoflop fit"),
    # coefficients given by hand
    (["allocate", "--params", "not json", "--compute", "1e24"], "not JSON"),
    (["allocate", "--params", "[1, 2]", "--compute", "1e24"], "object"),
    (["allocate", "--params", params(beta=None), "--compute", "1e24"], "beta missing"),
    (["allocate", "--params", params(zzz=1), "--compute", "1e24"], "'zzz'"),
    (["allocate", "--params", params(alpha=-0.34), "--compute", "1e24"], "alpha"),
    (["allocate", "--params", params(A=0), "--compute", "1e24"], "positive"),
    (["allocate", "--params", params(beta="x"), "--compute", "1e24"], "finite number"),
    (["allocate", "--params", params(), "--compute", "1e24", "--law", "nope"], "unknown law"),
    (["allocate", "--params", params(), "--compute", "1e24", "--law", "isoflop"], "unknown parameter"),
    (["allocate", "--params", params(beta=5), "--compute", "1e24"], "beta must lie between"),
    (["allocate", "--params", params(E=-1), "--compute", "1e24"], "E"),
    (["allocate", "--params", "{}", "--compute", "1e24"], "missing"),
    (["allocate", "--params", params(), "--compute", "1e24", "--law", "broken_power_law"], "no compute-optimal allocation"),
    (["allocate", "--params", params(), "--family", "fam-a", "--compute", "1e24"], "either"),
    # families, laws and formats
    (["allocate", "--family", "nope", "--compute", "1e24"], "nope"),
    (["allocate", "--family", "fam-a", "--compute", "1e24", "--format", "xml"], "unknown format"),
    (["history", "--family", "nope"], "nope"),
    (["runs", "--format", "yaml"], "unknown format"),
    (["sql", "select nope"], "query failed"),
    (["refit", "--bootstrap", "0"], "bootstrap_resamples"),
    (["refit", "--bootstrap", "-1"], "bootstrap_resamples"),
    (["refit", "--bootstrap", "abc"], "--bootstrap"),
    (["refit", "--family", "nope"], "fam-a"),
    (["refit", "--family", "Not A Key!"], "not a key"),
    (["refit", "--verbose", "--family", "nope"], "fam-a"),
    (["ui", "--port", "0"], "--port"),
    (["ui", "--port", "http"], "--port"),
    (["demo", "--verbose", "now"], "now"),
    # files and mappings
    (["ingest", "{missing}"], "no such file"),
    (["ingest", "{runs}", "--mapping", "{missing}"], "no such mapping file"),
    (["ingest", "{runs}", "--family", "Bad Family"], "not a key"),
    (["fit", "{missing}"], "no such file"),
    (["fit", "{runs}", "--law", "nope"], "unknown law"),
    (["fit", "{runs}", "--bootstrap", "-1"], "--bootstrap"),
    (["fit", "{runs}", "--mapping", "{bad_mapping}"], "fit_loss"),
    (["nosuchcommand"], "nosuchcommand"),
]


@pytest.fixture(scope="module")
def a_home(tmp_path_factory):
    """A registry with one family of runs (fam-a) whose only fit is held; a mapping with a key mappings do not have."""
    folder = tmp_path_factory.mktemp("cli-errors")
    runs = write_csv(folder / "runs.csv", "family,run_name,params,tokens,loss\n" + "\n".join(
        f"fam-a,r{i},{1e8 * 2**i:.0f},{2e9 * 2**i:.0f},{3.0 - i / 10}" for i in range(4)
    ))
    bad_mapping = folder / "bad.toml"
    bad_mapping.write_text('family = "fam-b"\nfit_loss = "val"\n[columns]\nparams = "params"\n', encoding="utf-8")
    home = folder / "home"
    assert scalereg("ingest", str(runs), home=home).returncode == 0
    with writer(Home.from_env(home).registry) as con:  # its only fit: held before fitting (four runs), no Dagster needed
        held = refit_family(lambda: nullcontext(con), "fam-a").fitted
    assert {f.record.status for f in held} == {"held"}
    return {"home": home, "runs": runs, "bad_mapping": bad_mapping, "missing": folder / "missing.csv"}


def filled_in(arguments: list[str], files: dict) -> list[str]:
    return [str(files[a[1:-1]]) if a.startswith("{") and a.endswith("}") and a[1:-1] in files else a for a in arguments]


def run_scalereg(arguments: list[str], home, monkeypatch, capfd) -> tuple[int, str, str, list]:
    """``scalereg ARGS`` through its entry point: (exit code, stdout, stderr, warnings it raised).

    An exception that escapes the entry point is what a user would see as a traceback: the test fails with it.
    """
    monkeypatch.setenv("SCALEREG_HOME", str(home))
    monkeypatch.setattr(sys, "argv", ["scalereg", *arguments])
    with warnings.catch_warnings(record=True) as raised, pytest.raises(SystemExit) as ended:
        warnings.simplefilter("always")  # a warning would be one more line on a user's stderr
        pipelines.cli.main()
    out, err = capfd.readouterr()
    return ended.value.code, out, err, raised


@pytest.mark.parametrize(("arguments", "says"), WRONG_INVOCATIONS, ids=[" ".join(a)[:60] for a, _ in WRONG_INVOCATIONS])
def test_a_wrong_invocation_ends_in_one_line_on_stderr(a_home, arguments, says, monkeypatch, capfd):
    code, out, err, raised = run_scalereg(filled_in(arguments, a_home), a_home["home"], monkeypatch, capfd)

    lines = err.splitlines()
    assert code not in (0, None), out
    assert len(lines) == 1 and raised == [], err + "".join(str(w.message) for w in raised)
    assert lines[0].startswith("scalereg: ") and says in lines[0]


@pytest.mark.parametrize(
    "arguments",
    [["coefficients", "--as-of", "garbage"], ["allocate", "--params", params(zzz=1), "--compute", "1e24"], ["refit", "--bootstrap", "0"]],
)
def test_the_installed_command_says_the_same_in_one_line(a_home, arguments, monkeypatch, capfd):
    code, _, err, _ = run_scalereg(arguments, a_home["home"], monkeypatch, capfd)

    out = scalereg(*arguments, home=a_home["home"])

    assert (out.returncode, out.stderr) == (code, err)


def test_the_table_has_at_least_twenty_cases_and_no_two_alike():
    assert len(WRONG_INVOCATIONS) >= 20
    assert len({tuple(a) for a, _ in WRONG_INVOCATIONS}) == len(WRONG_INVOCATIONS)


def test_a_file_ingested_with_a_wrong_mapping_is_failed_naming_the_mapping_line(a_home, tmp_path):
    data = write_csv(tmp_path / "new.csv", "params,tokens,loss\n1e8,2e9,3.1")

    out = scalereg("ingest", str(data), "--mapping", str(a_home["bad_mapping"]), home=a_home["home"])

    assert out.returncode == 1
    assert "failed" in out.stdout and "fit_loss" in out.stdout and "line 2" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=timezone.utc)),
        ("2026-01-31T12:30", datetime(2026, 1, 31, 12, 30, tzinfo=timezone.utc)),
        ("2026-01-31 12:30:00+02:00", datetime(2026, 1, 31, 10, 30, tzinfo=timezone.utc)),
        ("now", datetime(2026, 3, 2, 15, 4, 5, tzinfo=timezone.utc)),
        ("today", datetime(2026, 3, 2, tzinfo=timezone.utc)),
        ("Yesterday", datetime(2026, 3, 1, tzinfo=timezone.utc)),
    ],
)
def test_as_of_reads_dates_datetimes_and_named_days_as_utc_moments(text, moment):
    assert parse_as_of(text, now=datetime(2026, 3, 2, 15, 4, 5, tzinfo=timezone.utc)) == moment


def test_given_coefficients_are_taken_exactly_as_given():
    assert law_params(get_law("chinchilla"), params()) == HOFFMANN


def test_sql_says_how_many_rows_a_table_left_out_and_nests_json_columns(a_home, monkeypatch, capfd):
    code, out, _, _ = run_scalereg(["sql", "select * from range(250)"], a_home["home"], monkeypatch, capfd)
    assert code == 0 and out.rstrip().endswith("50 of 250 rows not shown; --format csv or json prints them all")

    code, out, _, _ = run_scalereg(["sql", "select law, checks from fits order by law", "--format", "json"], a_home["home"],
                                   monkeypatch, capfd)
    rows = json.loads(out)
    assert code == 0 and [r["law"] for r in rows] == ["chinchilla", "kaplan"]
    assert rows[0]["checks"][0]["name"] == "design" and rows[0]["checks"][0]["passed"] is False  # a list, not JSON text
