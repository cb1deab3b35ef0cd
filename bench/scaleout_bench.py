"""Scale-out: ingest throughput with 1, 2 and 4 concurrent writers on DuckLake vs one writer on the DuckDB file,
and planners' read latency on both while the writers run.

Starts a throw-away PostgreSQL cluster (Debian's server, as the tests do). Every configuration ingests
the same files (one family each, so writers never wait for each other's claims) into a fresh registry;
writer processes import everything and wait at a barrier, so process start-up is not counted. A reader
process runs a planner's reads (coefficients and the runs table) in a loop meanwhile and records each
read's latency and any failure. Prints a Markdown table for bench/RESULTS.md.

    .venv/bin/python bench/scaleout_bench.py [--files 16] [--runs 2000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPAWN = multiprocessing.get_context("spawn")


def _writer(paths: list[str], env: dict[str, str], start, ready, done) -> None:
    os.environ.update(env)
    from registry.db import writer
    from registry.home import Home
    from registry.ingest import ingest_path

    home = Home.from_env().ensure()
    with writer(home.registry):
        pass  # attached (DuckLake) before the clock starts, as a long-running writer would be
    ready.put(os.getpid())
    start.wait()
    for path in paths:
        with writer(home.registry) as con:
            report = ingest_path(con, home, Path(path))
        assert report.status == "ingested", report
    done.put(os.getpid())


def _reader(env: dict[str, str], stop, results) -> None:
    os.environ.update(env)
    from registry.db import reader
    from registry.home import Home
    from registry.planning import coefficient_rows

    home = Home.from_env()
    latencies, failures = [], []
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with reader(home.registry, wait=10) as con:
                coefficient_rows(con)
                con.execute("SELECT family, count(*) FROM runs GROUP BY 1").fetchall()
            latencies.append(time.perf_counter() - started)
        except Exception as error:  # noqa: BLE001 - a failed read is what we count
            failures.append(f"{type(error).__name__}: {str(error)[:120]}")
        time.sleep(0.1)
    results.put((latencies, failures))


def run(label: str, files: list[Path], writers: int, env: dict[str, str], rows_per_file: int) -> dict:
    """Ingest ``files`` with ``writers`` processes (files dealt round-robin); throughput and read latencies."""
    start, stop = SPAWN.Event(), SPAWN.Event()
    done, ready, results = SPAWN.Queue(), SPAWN.Queue(), SPAWN.Queue()
    # the registry exists (and is migrated) before the clock starts, as it would for a team
    os.environ.update(env)
    from registry.db import writer
    from registry.home import Home

    with writer(Home.from_env().ensure().registry):
        pass
    shares = [[str(p) for p in files[i::writers]] for i in range(writers)]
    procs = [SPAWN.Process(target=_writer, args=(share, env, start, ready, done)) for share in shares]
    reading = SPAWN.Process(target=_reader, args=(env, stop, results))
    for p in procs + [reading]:
        p.start()
    for _ in procs:  # every writer has imported and attached before the barrier opens
        ready.get(timeout=600)
    started = time.perf_counter()
    start.set()
    for _ in procs:
        done.get(timeout=1800)
    seconds = time.perf_counter() - started
    stop.set()
    latencies, failures = results.get(timeout=120)
    for p in procs + [reading]:
        p.join()
    rows = rows_per_file * len(files)
    return {
        "label": label, "writers": writers, "seconds": seconds, "rows_per_second": rows / seconds,
        "reads": len(latencies), "failures": failures,
        "read_median_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "read_max_ms": 1000 * max(latencies) if latencies else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--runs", type=int, default=2000, help="runs per file")
    args = parser.parse_args()

    from tests.services.postgres import postgres_server
    from tests.synthetic import chinchilla_runs, write_runs

    work = Path(tempfile.mkdtemp(prefix="scaleout-bench-"))
    n_tokens = 40
    files = [
        write_runs(work / f"f{i}.csv", chinchilla_runs(f"bench-{i}", n_sizes=args.runs // n_tokens, n_tokens=n_tokens, seed=i))
        for i in range(args.files)
    ]
    rows_per_file = (args.runs // n_tokens) * n_tokens
    results = []
    with postgres_server(Path(tempfile.mkdtemp(prefix="scaleout-bench-pg-"))) as server:  # the postgres user must reach it
        base = {"SCALEREG_BUSY_WAIT": "60"}
        results.append(run("DuckDB file", files, 1, base | {"SCALEREG_HOME": str(work / "file"), "SCALEREG_CATALOG": ""}, rows_per_file))
        for writers in (1, 2, 4):
            dsn = server.create_database(f"bench_{uuid.uuid4().hex[:8]}")
            env = base | {"SCALEREG_HOME": str(work / f"lake{writers}"), "SCALEREG_CATALOG": f"postgres:{dsn}",
                          "SCALEREG_DATA_PATH": str(work / f"lake{writers}-data")}
            results.append(run("DuckLake", files, writers, env, rows_per_file))
    one_lake = next(r for r in results if r["label"] == "DuckLake" and r["writers"] == 1)
    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; {args.files} files x {rows_per_file} runs\n")
    print("| backend | writers | seconds | runs/s | vs 1 DuckLake writer | reads | failed reads | read median ms | read max ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['label']} | {r['writers']} | {r['seconds']:.1f} | {r['rows_per_second']:.0f} | "
              f"{r['rows_per_second'] / one_lake['rows_per_second']:.2f}x | {r['reads']} | {len(r['failures'])} | "
              f"{r['read_median_ms']:.0f} | {r['read_max_ms']:.0f} |")
    for r in results:
        for failure in r["failures"][:3]:
            print(f"- {r['label']} x{r['writers']}: {failure}")


if __name__ == "__main__":
    main()
