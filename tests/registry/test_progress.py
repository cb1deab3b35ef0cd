"""Progress of long work: a bar on a terminal, nothing with --quiet or when the output is not a terminal."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from registry.progress import Progress, progress_bar, report
from tests.synthetic import chinchilla_runs, write_runs

ROOT = Path(__file__).resolve().parents[2]


def _read_all(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the other end closed
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def test_a_bar_on_a_terminal_shows_done_of_total_and_the_rate():
    main, secondary = pty.openpty()
    with os.fdopen(secondary, "w", closefd=True) as terminal:
        with progress_bar("refit", stream=terminal):
            report(Progress(done=3, total=10, elapsed=1.5))
    shown = _read_all(main)
    os.close(main)
    assert "refit" in shown and "3/10" in shown and "2.0/s" in shown


def test_quiet_and_not_a_terminal_draw_nothing():
    main, secondary = pty.openpty()
    with os.fdopen(secondary, "w", closefd=True) as terminal:
        with progress_bar("refit", stream=terminal, quiet=True):
            report(Progress(done=3, total=10, elapsed=1.5))
    assert _read_all(main) == ""
    os.close(main)
    piped = io.StringIO()
    with progress_bar("refit", stream=piped):
        report(Progress(done=3, total=10, elapsed=1.5))
    assert piped.getvalue() == ""


def _ingest(tmp_path: Path, *options: str, terminal: bool) -> tuple[str, str]:
    """``scalereg ingest`` of a small file, its stderr on a pseudo-terminal (or a pipe); (stdout, stderr)."""
    csv = write_runs(tmp_path / f"runs-{len(options)}-{terminal}.csv", chinchilla_runs(f"family-{len(options)}{int(terminal)}"))
    env = {**os.environ, "SCALEREG_HOME": str(tmp_path / "home"), "COLUMNS": "120"}
    command = [str(Path(sys.executable).parent / "scalereg"), "ingest", str(csv), *options]
    if not terminal:
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        return done.stdout, done.stderr
    main, secondary = pty.openpty()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=secondary, text=True)
    os.close(secondary)
    shown = []
    while process.poll() is None:  # keep reading the terminal, or a full terminal buffer stops the command
        shown.append(_read_all(main))
    out = process.stdout.read()
    process.stdout.close()
    err = "".join(shown) + _read_all(main)
    os.close(main)
    assert process.returncode == 0, err
    return out, err


def test_ingest_shows_progress_on_a_terminal_only(tmp_path):
    out, err = _ingest(tmp_path, terminal=True)
    assert "ingest runs-0-True.csv" in err and "2/2" in err  # the bar, on the terminal's stderr
    assert out.startswith("runs-0-True.csv: ingested")  # the answer itself stays plain
    quiet_out, quiet_err = _ingest(tmp_path, "--quiet", terminal=True)
    assert quiet_err == "" and quiet_out.startswith("runs-1-True.csv: ingested")
    piped_out, piped_err = _ingest(tmp_path, terminal=False)
    assert piped_err == "" and piped_out.startswith("runs-0-False.csv: ingested")


def test_a_throttled_listener_hears_the_first_and_last_reports_and_at_most_one_per_interval():
    from registry.progress import Progress, every

    heard: list[int] = []
    listener = every(10.0, lambda p: heard.append(p.done))
    for done, elapsed in ((1, 0.5), (2, 3.0), (3, 9.0), (4, 10.6), (5, 12.0), (6, 21.0), (7, 22.0), (8, 23.0)):
        listener(Progress(done=done, total=8, elapsed=elapsed))
    assert heard == [1, 4, 6, 8]
