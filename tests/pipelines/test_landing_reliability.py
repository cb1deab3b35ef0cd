"""The landing folder under hostile use: files still being written, links, folders, vanished files, failed runs.

Each test drives the real sensor and the real landing job against the home's own Dagster instance,
tick by tick, the way the daemon does.
"""

from __future__ import annotations

import json
import os
import time

import dagster as dg
import pytest

from pipelines.defs.landing_sensor import landing_sensor
from pipelines.defs.resources import RegistryResource
from pipelines.runner import home_instance, run_job
from registry.db import reader
from tests.conftest import write_csv
from tests.registry.test_concurrency import hold_write_lock

HEADER = "family,run_name,params,tokens,loss"


class Daemon:
    """Ticks of the landing sensor with its cursor carried over, as Dagster's daemon does, and the runs it asks for."""

    def __init__(self, home, instance: dg.DagsterInstance):
        self.home = home
        self.instance = instance
        self.cursor: str | None = None

    def tick(self) -> dg.RunRequest | str:
        """The run requested, or the reason given for requesting none."""
        context = dg.build_sensor_context(
            instance=self.instance, resources={"registry": RegistryResource.for_home(self.home)}, cursor=self.cursor
        )
        result = landing_sensor(context)
        if isinstance(result, dg.SkipReason):
            return result.skip_message
        self.cursor = result.cursor
        if not result.run_requests:
            return result.skip_reason.skip_message
        (request,) = result.run_requests
        return request

    def run(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """Launch the requested run, tagged with its run key as the daemon does."""
        return run_job(self.home, "ingest_landing", run_config=request.run_config, tags={"dagster/run_key": request.run_key})


@pytest.fixture
def daemon(home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster))  # restored after the test
    with home_instance(home) as instance:
        yield Daemon(home, instance)


def landing_paths(request: dg.RunRequest) -> list[str]:
    return request.run_config["ops"]["landing_files"]["config"]["paths"]


def table(home, query: str) -> list[tuple]:
    with reader(home.registry) as con:
        return con.execute(query).fetchall()


def test_a_file_still_being_written_is_taken_only_once_stable_and_then_whole(home, daemon, monkeypatch):
    monkeypatch.setenv("SCALEREG_LANDING_SETTLE", "1")
    growing = home.landing / "sweep.csv"
    growing.write_text(f"{HEADER}\nmy-model,a,1e8,2e9,3.1\nmy-model,b,2e8,4e9,2.", encoding="utf-8")  # cut mid-value
    assert isinstance(daemon.tick(), str)  # first sight: not yet known to be stable

    time.sleep(0.05)
    with growing.open("a", encoding="utf-8") as handle:
        handle.write("8\nmy-model,c,4e8,8e9,2.6\n")
    waiting = daemon.tick()
    assert isinstance(waiting, str) and "sweep.csv" in waiting and "stop changing" in waiting

    while time.time() - growing.stat().st_mtime < 1.0:  # unchanged since the last tick, but modified < 1 s ago
        assert isinstance(daemon.tick(), str)
        time.sleep(0.1)
    request = daemon.tick()
    assert isinstance(request, dg.RunRequest) and landing_paths(request) == ["sweep.csv"]
    assert daemon.run(request).success

    assert table(home, "SELECT run_name, loss FROM runs ORDER BY run_name") == [("a", 3.1), ("b", 2.8), ("c", 2.6)]
    assert table(home, "SELECT count(*) FROM rejects") == [(0,)]
    assert daemon.tick() == "no new files in the landing folder"


def test_files_being_written_under_a_partial_or_hidden_name_are_ignored_until_renamed(home, daemon, monkeypatch):
    monkeypatch.setenv("SCALEREG_LANDING_SETTLE", "0")
    partial = write_csv(home.landing / "sweep.csv.partial", f"{HEADER}\nmy-model,a,1e8,2e9,3.1")
    hidden = write_csv(home.landing / ".other.csv", f"{HEADER}\nmy-model,b,2e8,4e9,2.8")
    assert daemon.tick() == "no new files in the landing folder"
    assert daemon.tick() == "no new files in the landing folder"

    partial.rename(home.landing / "sweep.csv")
    hidden.rename(home.landing / "other.csv")
    assert isinstance(daemon.tick(), str)
    request = daemon.tick()
    assert landing_paths(request) == ["other.csv", "sweep.csv"]
    assert daemon.run(request).success
    assert table(home, "SELECT run_name FROM runs ORDER BY 1") == [("a",), ("b",)]


def test_each_landing_entry_succeeds_or_fails_on_its_own_and_every_failure_is_recorded(home, daemon, monkeypatch, tmp_path):
    monkeypatch.setenv("SCALEREG_LANDING_SETTLE", "0")
    write_csv(home.landing / "good.csv", f"{HEADER}\ngood-family,a,1e8,2e9,3.1\ngood-family,b,2e8,4e9,2.8")
    outside = write_csv(tmp_path / "outside.csv", f"{HEADER}\noutside-family,a,1e8,2e9,3.1")  # valid data, not in the home
    os.symlink(outside, home.landing / "link.csv")
    os.symlink("/etc/passwd", home.landing / "passwd.csv")
    (home.landing / "folder.csv").mkdir()
    write_csv(home.landing / "folder.csv" / "inner.csv", f"{HEADER}\ninner-family,a,1e8,2e9,3.1")
    write_csv(home.landing / "gone.csv", f"{HEADER}\ngone-family,a,1e8,2e9,3.1")
    os.mkfifo(home.landing / "pipe.csv")

    assert isinstance(daemon.tick(), str)
    request = daemon.tick()
    assert landing_paths(request) == ["folder.csv", "gone.csv", "good.csv", "link.csv", "passwd.csv", "pipe.csv"]
    (home.landing / "gone.csv").unlink()  # removed between the tick and the run
    assert daemon.run(request).success

    assert table(home, "SELECT DISTINCT family FROM runs") == [("good-family",)]
    sources = dict(table(home, "SELECT name, status || ': ' || coalesce(error, '') FROM sources"))
    assert set(sources) == {"good.csv", "link.csv", "passwd.csv", "folder.csv", "gone.csv", "pipe.csv"}
    assert sources["good.csv"] == "ingested: "
    assert sources["link.csv"].startswith("failed: link.csv: a symbolic link") and "outside the home" in sources["link.csv"]
    assert sources["passwd.csv"].startswith("failed: passwd.csv: a symbolic link (to /etc/passwd)")
    assert sources["folder.csv"].startswith("failed: folder.csv: is a folder")
    assert sources["gone.csv"].startswith("failed: gone.csv: removed from the landing folder")
    assert sources["pipe.csv"].startswith("failed: pipe.csv: not a regular file")
    assert daemon.tick() == "no new files in the landing folder"


def failed_run(daemon: Daemon, request: dg.RunRequest) -> None:
    holder = hold_write_lock(daemon.home, 60)  # another process writes the registry: the run fails as a whole
    try:
        with pytest.raises(Exception, match="busy"):
            daemon.run(request)
    finally:
        holder.kill()
        holder.wait()


def test_a_landing_run_that_fails_as_a_whole_is_retried_and_the_file_is_not_lost(home, daemon, monkeypatch):
    monkeypatch.setenv("SCALEREG_LANDING_SETTLE", "0")
    monkeypatch.setenv("SCALEREG_BUSY_WAIT", "0.5")
    write_csv(home.landing / "good.csv", f"{HEADER}\ngood-family,a,1e8,2e9,3.1")
    assert isinstance(daemon.tick(), str)
    first = daemon.tick()
    failed_run(daemon, first)

    retry = daemon.tick()  # not "no new files": the file was never ingested
    assert isinstance(retry, dg.RunRequest) and landing_paths(retry) == ["good.csv"] and retry.run_key != first.run_key
    assert daemon.run(retry).success
    assert table(home, "SELECT family, run_name FROM runs") == [("good-family", "a")]
    assert daemon.tick() == "no new files in the landing folder"


def test_after_three_failed_landing_runs_the_sensor_says_it_gave_up_and_a_changed_file_is_taken_again(home, daemon, monkeypatch):
    monkeypatch.setenv("SCALEREG_LANDING_SETTLE", "0")
    monkeypatch.setenv("SCALEREG_BUSY_WAIT", "0.5")
    good = write_csv(home.landing / "good.csv", f"{HEADER}\ngood-family,a,1e8,2e9,3.1")
    assert isinstance(daemon.tick(), str)
    request = daemon.tick()
    for _ in range(3):
        failed_run(daemon, request)
        request = daemon.tick()
    assert isinstance(request, str) and "gave up on good.csv after 3 failed landing runs" in request
    assert daemon.tick() == "no new files in the landing folder"

    write_csv(good, f"{HEADER}\ngood-family,a,1e8,2e9,3.1\ngood-family,b,2e8,4e9,2.8")
    assert isinstance(daemon.tick(), str)
    request = daemon.tick()
    assert landing_paths(request) == ["good.csv"] and daemon.run(request).success
    assert table(home, "SELECT count(*) FROM runs") == [(2,)]


def test_a_cursor_from_before_stable_landing_keeps_its_files_as_already_requested(home):
    from registry.landing import LandingState, scan_landing

    path = write_csv(home.landing / "old.csv", f"{HEADER}\nmy-model,a,1e8,2e9,3.1")
    info = path.stat()
    state = LandingState.parse(json.dumps({"old.csv": f"{info.st_size}:{info.st_mtime_ns}"}))  # the former format
    assert state.requested["old.csv"].run_key is None and state.outstanding() == set()
    scan = scan_landing(home, state, time.time() + 60, settle=0)
    assert scan.ready == {} and scan.settling == ["old.csv"]  # looked at again under the new rule, never lost
