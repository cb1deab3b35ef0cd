"""A full disk, on a real tiny file system: the user is told which folder is full, nothing is half-written,
and once space is freed the same command completes.

Each test mounts its own small tmpfs (CI runs as root), fills it to a chosen number of free bytes and runs
``scalereg`` on a home inside it, as a user would.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.db import reader
from registry.home import Home
from tests.cli import scalereg
from tests.synthetic import chinchilla_runs, write_runs

PAGE = 4096
DISK_SIZE = "4m"  # an empty registry takes about 1.8 MB (DuckDB allocates 256 KiB blocks)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted for this test alone, unmounted afterwards whatever happened."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def free_bytes(folder: Path) -> int:
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


def fill(disk: Path, leave: int) -> Path:
    """Take all but ``leave`` bytes (rounded down to whole pages) of the disk with a filler file."""
    filler = disk / "filler"
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, free_bytes(disk) - leave))
    assert free_bytes(disk) <= leave
    return filler


def runs_file(folder: Path, family: str, n: int) -> Path:
    lines = ["family,run_name,params,tokens,loss"] + [f"{family},r{i},{1e8 + i:.0f},2e9,3.1" for i in range(n)]
    path = folder / f"{family}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def registry_state(home: Home) -> tuple[int, list[tuple]]:
    with reader(home.registry) as con:
        runs = con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
        sources = con.execute("SELECT name, status FROM sources WHERE status = 'ingested' ORDER BY source_id").fetchall()
    return runs, sources


def partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".partial")]


def an_ingested_home(disk: Path, tmp_path: Path) -> Home:
    home = Home(disk / "home")
    done = scalereg("ingest", str(runs_file(tmp_path, "small", 4)), home=home.root)
    assert done.returncode == 0, done.stderr
    return home


def nothing_was_kept_and_the_ingest_completes_once_there_is_room(home: Home, big: Path, filler: Path) -> None:
    """No partial file, nothing of big.csv in the archive (a copy made for it is removed again), the registry as
    it was; with the filler gone, the same ingest completes."""
    assert partial_files(home.root) == []
    assert [p.name for p in home.archive.rglob("*.csv")] == ["small.csv"]
    assert registry_state(home) == (4, [("small.csv", "ingested")])

    filler.unlink()
    again = scalereg("ingest", str(big), home=home.root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert registry_state(home) == (2004, [("small.csv", "ingested"), ("big.csv", "ingested")])


def test_an_archive_copy_that_fills_the_disk_names_the_folder_and_leaves_no_partial_file(disk, tmp_path):
    home = an_ingested_home(disk, tmp_path)
    big = runs_file(tmp_path, "big", 2000)  # about 60 KB: more than the 16 KB left
    filler = fill(disk, leave=4 * PAGE)

    out = scalereg("ingest", str(big), home=home.root)

    assert out.returncode == 1
    said = out.stdout + out.stderr
    assert f"no space left on {home.archive}:" in said
    assert "Traceback" not in said and "bug" not in said and "cannot be read" not in said
    nothing_was_kept_and_the_ingest_completes_once_there_is_room(home, big, filler)


def test_a_write_ahead_log_that_cannot_grow_is_a_full_disk_not_a_bug_and_the_file_is_not_kept(disk, tmp_path):
    home = an_ingested_home(disk, tmp_path)
    big = runs_file(tmp_path, "big", 2000)
    # room for the archive copy (whole pages) and a little more: DuckDB's log of 2,000 new runs does not fit
    copy_pages = -(-big.stat().st_size // PAGE)
    filler = fill(disk, leave=(copy_pages + 4) * PAGE)

    out = scalereg("ingest", str(big), home=home.root)

    assert out.returncode == 1
    said = out.stdout + out.stderr
    assert f"no space left on {home.root}:" in said  # the registry's folder, where its log is
    assert "Traceback" not in said and "bug" not in said
    nothing_was_kept_and_the_ingest_completes_once_there_is_room(home, big, filler)


def test_a_refit_on_a_full_disk_says_so_without_a_traceback_and_writes_no_partial_configuration(disk, tmp_path):
    home = Home(disk / "home")
    data = write_runs(tmp_path / "runs.csv", chinchilla_runs("family-a"))
    assert scalereg("ingest", str(data), home=home.root).returncode == 0
    fill(disk, leave=0)

    out = scalereg("refit", "--bootstrap", "20", home=home.root, timeout=300)

    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"scalereg: no space left on {home.dagster}:")
    assert partial_files(home.root) == []
    configuration = home.dagster / "dagster.yaml"
    assert not configuration.exists() or configuration.read_bytes() == (Path(__file__).parents[2] / "dagster.yaml").read_bytes()
    with reader(home.registry) as con:
        assert con.execute("SELECT count(*) FROM fits").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(30,)]


def test_a_partial_copy_left_by_a_killed_ingest_is_removed_by_the_next_ingest(tmp_path, home):
    ended = subprocess.Popen(["true"])
    ended.wait()  # its pid belongs to no running process now
    stale = home.archive / "ab" / ("ab" + "0" * 62) / f".lost.csv.{ended.pid}.partial"
    stale.parent.mkdir(parents=True)
    stale.write_text("family,run_name,params,tok", encoding="utf-8")

    done = scalereg("ingest", str(runs_file(tmp_path, "small", 4)), home=home.root)

    assert done.returncode == 0, done.stderr
    assert partial_files(home.archive) == []
