"""Wide-file benchmark: ingest time against the number of columns, and how long the registry's writer is held.

A generic-format CSV with 8 runs (one rejected) and 1,000 to 10,000 extra columns, ingested the way
``scalereg ingest`` does it: read and validated first (``read_ahead``), then reconciled and stored
under the writer. Baseline: polars reading the same file. The cost should grow linearly with the
column count (before the fix, 10,000 columns took minutes: the raw-row rebuild re-derived the
frame's schema once per column). Run: `.venv/bin/python bench/wide_file_bench.py`.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.db import writer  # noqa: E402
from registry.home import Home  # noqa: E402
from registry.ingest import ingest_path, read_ahead  # noqa: E402

COLUMNS = (1_000, 2_500, 5_000, 10_000)
ROWS = 8
REPEATS = 3


def wide_csv(path: Path, n_extra: int) -> Path:
    header = ["family", "run_name", "params", "tokens", "loss"] + [f"x{j}" for j in range(n_extra)]
    rows = [
        ["wide", f"r{i}", "-1e8" if i == ROWS - 1 else f"{1e8 * (i + 1):.0f}", "2e9", f"{3 + i / 100:.2f}"]
        + [f"{i}.{j}" for j in range(n_extra)]
        for i in range(ROWS)
    ]
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def ingest_once(csv: Path, work: Path) -> tuple[float, float]:
    """(total seconds, seconds holding the writer) for one ingest into a fresh home."""
    home = Home.from_env(work / f"home-{time.monotonic_ns()}").ensure()
    start = time.perf_counter()
    ahead = read_ahead(csv)
    taken = time.perf_counter()
    with writer(home.registry) as con:
        report = ingest_path(con, home, csv, ahead=ahead)
    end = time.perf_counter()
    assert (report.status, report.rows_accepted, report.rows_rejected) == ("ingested", ROWS - 1, 1), report
    return end - start, end - taken


def bare_read(csv: Path) -> float:
    start = time.perf_counter()
    pl.read_csv(csv, infer_schema_length=None)
    return time.perf_counter() - start


def main() -> None:
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"duckdb {duckdb.__version__}, polars {pl.__version__}; median of {REPEATS}")
    print("| extra columns | file | polars read_csv | full ingest | writer held | ratio | seconds per 1,000 columns |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ingest_once(wide_csv(work / "warm.csv", 100), work)  # imports and first-use costs out of the figures
        for n in COLUMNS:
            csv = wide_csv(work / f"wide-{n}.csv", n)
            bare, full, held = [], [], []
            for _ in range(REPEATS):  # interleaved, so load on the shared machine hits both alike
                bare.append(bare_read(csv))
                total, writer_held = ingest_once(csv, work)
                full.append(total)
                held.append(writer_held)
            b, f, h = statistics.median(bare), statistics.median(full), statistics.median(held)
            print(f"| {n:,} | {csv.stat().st_size / 1024:.0f} KiB | {b:.3f} s | {f:.3f} s | {h:.3f} s | {f / b:.1f}x | "
                  f"{f / n * 1000:.3f} s |")


if __name__ == "__main__":
    main()
