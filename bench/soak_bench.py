"""Concurrency soak: planners read while ingests and refits write, each in its own process.

A writer process runs W writes (alternating an ingest of a new file and a refit of that family);
a reader process makes R reads meanwhile (coefficients, an allocation, a SQL count), each through
a read-only connection with the bounded wait. Prints reads, writes, busy answers and the longest
wait as one JSON line; the soak passes when there are no errors other than documented busy
answers and no row is lost. Run: `.venv/bin/python bench/soak_bench.py [reads] [writes]`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent

WRITER = textwrap.dedent(
    """
    import json, sys, time
    from functools import partial
    from pathlib import Path
    from registry.db import writer
    from registry.home import Home
    from registry.ingest import ingest_path
    from registry.refit import FitSettings, refit_family
    from tests.synthetic import chinchilla_runs

    writes, files = int(sys.argv[1]), Path(sys.argv[2])
    home = Home.from_env()
    done, errors = 0, []
    for i in range(writes):
        family = f"soak-{(i // 2) % 3}"
        try:
            if i % 2 == 0:
                frame = chinchilla_runs(family, seed=i, prefix=f"w{i}")
                text = frame.write_csv() + f"{family},w{i}-bad,-1,2e9,3.1\\n"
                path = files / f"write-{i}.csv"
                path.write_text(text)
                with writer(home.registry) as con:
                    ingest_path(con, home, path)
            else:
                refit_family(partial(writer, home.registry), family, FitSettings(bootstrap_resamples=50, other_law_resamples=5))
            done += 1
        except Exception as error:  # every failure is reported, none is hidden
            errors.append(f"{type(error).__name__}: {error}")
    print(json.dumps({"writes": done, "write_errors": errors}))
    """
)

READER = textwrap.dedent(
    """
    import json, random, sys, time
    from registry.db import RegistryBusy, reader
    from registry.home import Home
    from registry.planning import NoPublishedFit, allocate, coefficients

    reads = int(sys.argv[1])
    home = Home.from_env()
    rng = random.Random(0)
    answered, busy, errors, waits = 0, 0, [], []
    for i in range(reads):
        start = time.perf_counter()
        try:
            with reader(home.registry) as con:
                waits.append(time.perf_counter() - start)
                kind = i % 3
                if kind == 0:
                    coefficients(con)
                elif kind == 1:
                    try:
                        allocate(con, "soak-0", 1e22)
                    except NoPublishedFit:
                        pass
                else:
                    con.execute("SELECT count(*) FROM runs").fetchall()
            answered += 1
        except RegistryBusy as error:
            busy += 1
            waits.append(error.waited)
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")
        time.sleep(rng.uniform(0.0, 0.08))
    print(json.dumps({"reads": reads, "answered": answered, "busy": busy, "read_errors": errors,
                      "max_wait_s": round(max(waits, default=0.0), 3), "mean_wait_s": round(sum(waits) / max(len(waits), 1), 4)}))
    """
)


def run_soak(home_root: Path, reads: int = 200, writes: int = 20) -> dict:
    """Run the soak against a fresh home; returns the figures and the row accounting."""
    from registry.db import reader, writer
    from registry.home import Home

    home = Home.from_env(home_root).ensure()
    with writer(home.registry):
        pass  # create and migrate before either process starts
    files = home_root / "inputs"
    files.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"SCALEREG_HOME": str(home.root), "PYTHONPATH": str(PROJECT)}
    write_proc = subprocess.Popen([sys.executable, "-c", WRITER, str(writes), str(files)], stdout=subprocess.PIPE, text=True, env=env, cwd=PROJECT)
    read_proc = subprocess.Popen([sys.executable, "-c", READER, str(reads)], stdout=subprocess.PIPE, text=True, env=env, cwd=PROJECT)
    read_out, _ = read_proc.communicate(timeout=600)
    write_out, _ = write_proc.communicate(timeout=600)
    figures = json.loads(read_out.strip().splitlines()[-1]) | json.loads(write_out.strip().splitlines()[-1])
    with reader(home.registry) as con:
        read_, accepted, rejected = con.execute("SELECT sum(rows_read), sum(rows_accepted), sum(rows_rejected) FROM sources").fetchall()[0]
        runs = con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
        rejects = con.execute("SELECT count(*) FROM rejects").fetchall()[0][0]
        fits = con.execute("SELECT count(*) FROM fits").fetchall()[0][0]
    ingests = (writes + 1) // 2
    figures |= {"rows_read": int(read_ or 0), "rows_accepted": int(accepted or 0), "rows_rejected": int(rejected or 0),
                "runs": runs, "rejects": rejects, "fits": fits, "expected_runs": ingests * 30, "expected_rejects": ingests}
    return figures


def main() -> None:
    sys.path.insert(0, str(PROJECT))
    reads = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    writes = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run_soak(Path(tmp) / "home", reads, writes)))


if __name__ == "__main__":
    main()
