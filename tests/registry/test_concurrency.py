"""Readers while a writer holds the registry; two writers at once; the soak of reads against ingests and refits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from registry.db import RegistryBusy, reader, writer
from registry.ingest import ingest_path
from tests.cli import scalereg
from tests.synthetic import chinchilla_runs, write_runs

PROJECT = Path(__file__).resolve().parents[2]
HOLD = textwrap.dedent(
    """
    import sys, time
    from registry.db import writer
    from registry.home import Home
    with writer(Home.from_env().registry) as con:
        con.execute("BEGIN TRANSACTION")
        print("holding", flush=True)
        time.sleep(float(sys.argv[1]))
    """
)


def hold_write_lock(home, seconds: float) -> subprocess.Popen:
    env = os.environ | {"SCALEREG_HOME": str(home.root), "PYTHONPATH": str(PROJECT)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(seconds)], stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout.readline().strip() == "holding"
    return holder


@pytest.fixture
def published_home(home, tmp_path):
    from functools import partial

    from registry.exports import write_exports
    from registry.refit import FitSettings, refit_family

    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / "a.csv", chinchilla_runs("family-a")))
    refit_family(partial(writer, home.registry), "family-a", FitSettings(bootstrap_resamples=50, other_law_resamples=5))
    with writer(home.registry) as con:
        write_exports(con, home)
    return home


def test_while_a_writer_holds_the_file_coefficients_answer_from_the_exports(published_home):
    holder = hold_write_lock(published_home, 30)
    try:
        started = time.monotonic()
        out = scalereg("coefficients", "--format", "json", home=published_home.root, env={"SCALEREG_BUSY_WAIT": "1"})
        assert time.monotonic() - started < 20
    finally:
        holder.kill()
    assert out.returncode == 0, out.stderr
    assert "registry busy after" in out.stderr and "answering from" in out.stderr
    assert {r["family"] for r in json.loads(out.stdout)} == {"family-a"}


def test_while_a_writer_holds_the_file_sql_says_busy_and_how_long_it_waited(published_home):
    holder = hold_write_lock(published_home, 30)
    try:
        out = scalereg("sql", "select count(*) from runs", home=published_home.root, env={"SCALEREG_BUSY_WAIT": "1.5"})
        with pytest.raises(RegistryBusy) as busy:
            with reader(published_home.registry, wait=0.5):
                pass
    finally:
        holder.kill()
    assert out.returncode == 3 and "is busy" in out.stderr and "waited 1." in out.stderr and "Traceback" not in out.stderr
    assert busy.value.waited >= 0.5


def test_a_reader_waits_for_a_short_write_and_then_answers(published_home):
    holder = hold_write_lock(published_home, 1.5)
    try:
        out = scalereg("sql", "select count(*) as n from runs", "--format", "csv", home=published_home.root, env={"SCALEREG_BUSY_WAIT": "20"})
    finally:
        holder.wait(timeout=30)
    assert out.returncode == 0 and out.stdout.splitlines() == ["n", "30"]


def test_two_writers_at_once_serialise(home, tmp_path):
    files = [write_runs(tmp_path / f"{f}.csv", chinchilla_runs(f, seed=i)) for i, f in enumerate(("family-a", "family-b"))]
    env = os.environ | {"SCALEREG_HOME": str(home.root)}
    procs = [subprocess.Popen([str(Path(sys.executable).parent / "scalereg"), "ingest", str(f)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in files]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with reader(home.registry) as con:
        assert con.execute("SELECT family, count(*) FROM runs GROUP BY 1 ORDER BY 1").fetchall() == [("family-a", 30), ("family-b", 30)]


def test_soak_of_200_reads_against_20_ingests_and_refits_loses_nothing(tmp_path):
    sys.path.insert(0, str(PROJECT / "bench"))
    from soak_bench import run_soak

    figures = run_soak(tmp_path / "soak", reads=200, writes=20)
    print("soak:", json.dumps(figures))
    assert figures["read_errors"] == [] and figures["write_errors"] == []
    assert figures["answered"] + figures["busy"] == 200 and figures["writes"] == 20
    assert figures["rows_read"] == figures["rows_accepted"] + figures["rows_rejected"]
    assert (figures["runs"], figures["rejects"]) == (figures["expected_runs"], figures["expected_rejects"])
