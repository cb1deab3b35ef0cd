"""`scalereg sql` is bounded in time and memory, and a busy registry names who holds it and what it is doing."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from registry.db import RegistryBusy, reader, writer
from registry.home import Home
from tests.cli import SCALEREG, scalereg
from tests.registry.test_concurrency import hold_write_lock

#: A cross join of a million rows with a million rows: runs for hours unless something stops it.
CROSS_JOIN = "select sum(a.range * b.range) from range(1000000) a, range(1000000) b"
#: One list of 20 million BIGINTs (160 MB) in a single group: an aggregate that cannot spill to disk.
BIG_LIST = "select len(list(i)) as n from range(20000000) t(i)"


@pytest.fixture
def registry_home(home: Home) -> Home:
    with writer(home.registry):
        pass  # an empty, migrated registry
    return home


def test_a_query_running_past_the_time_limit_is_stopped_with_one_line(registry_home):
    started = time.monotonic()
    out = scalereg("sql", CROSS_JOIN, home=registry_home.root, env={"SCALEREG_SQL_TIMEOUT": "1"}, timeout=60)
    elapsed = time.monotonic() - started
    assert out.returncode == 1 and elapsed < 30
    assert "stopped after 1 s" in out.stderr and "SCALEREG_SQL_TIMEOUT" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_query_needing_more_memory_than_the_limit_is_stopped_and_runs_with_a_larger_one(registry_home):
    small = scalereg("sql", BIG_LIST, home=registry_home.root, env={"SCALEREG_SQL_MEMORY": "64MB"})
    assert small.returncode == 1 and "Traceback" not in small.stderr
    assert "more memory than 64MB" in small.stderr and "SCALEREG_SQL_MEMORY" in small.stderr
    assert len(small.stderr.strip().splitlines()) == 1

    large = scalereg("sql", BIG_LIST, "--format", "csv", home=registry_home.root, env={"SCALEREG_SQL_MEMORY": "2GB"})
    assert large.returncode == 0, large.stderr
    assert large.stdout.splitlines() == ["n", "20000000"]


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [("SCALEREG_SQL_TIMEOUT", "soon", "SCALEREG_SQL_TIMEOUT"), ("SCALEREG_SQL_TIMEOUT", "-5", "SCALEREG_SQL_TIMEOUT"),
     ("SCALEREG_SQL_MEMORY", "lots", "SCALEREG_SQL_MEMORY")],
)
def test_a_bad_bound_setting_is_refused_naming_it(registry_home, setting, value, named):
    out = scalereg("sql", "select 1", home=registry_home.root, env={setting: value})
    assert out.returncode == 1 and named in out.stderr and repr(value) in out.stderr and "Traceback" not in out.stderr


def test_the_defaults_are_a_bounded_time_and_memory(monkeypatch):
    from registry.sql_bounds import QueryBounds

    monkeypatch.delenv("SCALEREG_SQL_TIMEOUT", raising=False)
    monkeypatch.delenv("SCALEREG_SQL_MEMORY", raising=False)
    bounds = QueryBounds.from_env()
    assert 0 < bounds.seconds <= 60 and bounds.memory.endswith("GB")


def wait_until_held(path: Path, deadline: float) -> None:
    """Until another process has the registry open (our own brief attempts to write are refused)."""
    while time.monotonic() < deadline:
        try:
            with writer(path, wait=0):
                pass
        except RegistryBusy:
            return
        time.sleep(0.2)
    raise AssertionError("the other process never opened the registry")


def test_a_writer_blocked_by_a_long_query_names_the_reader_and_gets_in_after_the_time_limit(registry_home):
    env = os.environ | {"SCALEREG_HOME": str(registry_home.root), "SCALEREG_SQL_TIMEOUT": "8"}
    query = subprocess.Popen([SCALEREG, "sql", CROSS_JOIN], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_held(registry_home.registry, time.monotonic() + 30)
        with pytest.raises(RegistryBusy) as busy:
            with writer(registry_home.registry, wait=0.5):
                pass
        message = str(busy.value)
        assert f"process {query.pid} (scalereg sql) is reading it" in message
        assert "refit" not in message and "writing" not in message
        # the query is stopped by its time limit, and then the writer gets in
        _, err = query.communicate(timeout=60)
    finally:
        if query.poll() is None:
            query.kill()
    assert query.returncode == 1 and "stopped after 8 s" in err
    with writer(registry_home.registry, wait=5):
        pass


def test_a_reader_blocked_by_a_writer_names_the_writer(registry_home):
    holder = hold_write_lock(registry_home, 30)
    try:
        with pytest.raises(RegistryBusy) as busy:
            with reader(registry_home.registry, wait=0.3):
                pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert f"process {holder.pid} (python -c) is writing it" in str(busy.value)
    assert busy.value.waited >= 0.3
