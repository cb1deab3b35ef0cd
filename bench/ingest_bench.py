"""Ingest benchmark: a million per-step curve rows, full ingest vs DuckDB's bare read_csv load.

The full ingest does everything a user relies on (content hash, archive copy, pandera
validation, reasons for rejects, run ids, curve splitting into runs and run_points, one
transaction); the baseline only loads the same CSV into a DuckDB table. Both write a DuckDB
file on the same disk; each run ingests into a registry of its own, created (its tables made)
before the clock starts, as a user's registry is before their first file. The two are
interleaved, alternating which goes first, and the medians of five runs compared (target: the
ingest takes at most 1.5x the bare load). Run: `.venv/bin/python bench/ingest_bench.py [rows]`.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.db import writer  # noqa: E402
from registry.home import Home  # noqa: E402
from registry.ingest import ingest_path  # noqa: E402

STEPS_PER_RUN = 1000
RUNS = 5
TARGET = 1.5


def make_curves(path: Path, n_rows: int, seed: int = 0) -> None:
    """Synthetic curves from a Chinchilla-like surface; 0.1% of rows corrupted so rejects are exercised."""
    rng = np.random.default_rng(seed)
    n_runs = n_rows // STEPS_PER_RUN
    run = np.repeat(np.arange(n_runs), STEPS_PER_RUN)
    step = np.tile(np.arange(1, STEPS_PER_RUN + 1), n_runs)
    params = np.repeat(10 ** rng.uniform(7, 10, n_runs), STEPS_PER_RUN)
    tokens = step * np.repeat(20 * 10 ** rng.uniform(7, 10, n_runs) / STEPS_PER_RUN, STEPS_PER_RUN)
    loss = 1.7 + 400 / params**0.34 + 410 / tokens**0.28 + rng.normal(0, 0.01, run.size)
    bad = rng.random(run.size) < 0.001
    loss[bad] = -1.0
    pl.DataFrame(
        {
            "family": np.where(run % 4 == 0, "bench-a", "bench-b"),
            "run_name": [f"run-{i}" for i in run],
            "params": params,
            "tokens": tokens,
            "loss": loss,
            "loss_name": "train",
            "step": step,
        }
    ).write_csv(path)


def bare_load(csv: Path, work: Path) -> float:
    db = work / f"bare-{time.monotonic_ns()}.duckdb"
    start = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE curves AS SELECT * FROM read_csv(?)", [str(csv)])
    con.close()
    return time.perf_counter() - start


def full_ingest(csv: Path, work: Path) -> tuple[float, object]:
    home = Home.from_env(work / f"home-{time.monotonic_ns()}").ensure()
    with writer(home.registry):
        pass  # a new registry: its tables are made here, not timed
    start = time.perf_counter()
    with writer(home.registry) as con:
        report = ingest_path(con, home, csv)
    return time.perf_counter() - start, report


def main() -> None:
    n_rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv = work / "curves.csv"
        make_curves(csv, n_rows)
        print(f"file: {n_rows:,} rows, {csv.stat().st_size / 2**20:.1f} MiB; machine: {platform.processor() or platform.machine()}, "
              f"python {platform.python_version()}, duckdb {duckdb.__version__}, polars {pl.__version__}")
        bare_load(csv, work)  # untimed runs of each first: the page cache and the imports are warm
        full_ingest(csv, work)
        bares, fulls = [], []
        for run in range(RUNS):
            if run % 2:  # alternate which goes first, so neither always meets the other's leftovers
                seconds, report = full_ingest(csv, work)
                fulls.append(seconds)
                bares.append(bare_load(csv, work))
            else:
                bares.append(bare_load(csv, work))
                seconds, report = full_ingest(csv, work)
                fulls.append(seconds)
        bare, full = statistics.median(bares), statistics.median(fulls)
        print(f"bare DuckDB read_csv load : {bare:.3f} s (median of {RUNS}: {', '.join(f'{b:.3f}' for b in bares)})")
        print(f"full scalereg ingest      : {full:.3f} s (median of {RUNS}: {', '.join(f'{f:.3f}' for f in fulls)})")
        print(f"  rows read {report.rows_read:,}, accepted {report.rows_accepted:,}, rejected {report.rows_rejected:,}, runs {report.runs_added:,}")
        print(f"ratio full / bare         : {full / bare:.2f}x (target <= {TARGET}x)")


if __name__ == "__main__":
    main()
