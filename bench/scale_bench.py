"""Scale benchmark: a lab's worth of runs on one machine (issue 12).

A seeded synthetic lab drawn from known laws: ``--families`` families (default 1,000) of 30-200
runs each, each family with its own Chinchilla truth (E, A, B, alpha, beta), a fifth of them with
per-step curves (about 10M curve points in all at full size), written over 50 files. Then, each
phase in its own process (its peak RSS is its own, pool workers included):

1. ingest every file, each timed against a bare DuckDB ``read_csv`` load of the same file
   (interleaved, alternating which goes first);
2. the nightly refit of all families through the Dagster job (``pipelines.runner.refit``), wall time;
3. the same fits' pure ``laws/`` compute (fit + bootstrap + extrapolation check + profiles, the data
   already in memory, no registry, no orchestration) in a process pool of the same size, wall time;
4. a second nightly refit (nothing changed: no new version, a small share of the first);
5. planners' reads: ``scalereg coefficients --family F --format json`` and the Python API against a
   bare ``python -c`` DuckDB query of the same rows (median of interleaved runs);
6. how many families' truth lies inside their 95% intervals.

Run: ``.venv/bin/python bench/scale_bench.py [--families N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: 50 files: the final-value families spread over 40, the curve families over 10 (about 1M points each).
FINAL_FILES, CURVE_FILES = 40, 10
CURVE_SHARE = 5  # one family in five has per-step curves
#: Curve points per curve family at full size: 10M points over 200 curve families.
POINTS_PER_CURVE_FAMILY = 50_000
PARAMETERS = ("E", "A", "B", "alpha", "beta")


# -- the synthetic lab --------------------------------------------------------------------------
def family_truth(rng: np.random.Generator) -> dict[str, float]:
    return {"E": rng.uniform(1.5, 2.2), "A": rng.uniform(200, 800), "B": rng.uniform(200, 1200),
            "alpha": rng.uniform(0.28, 0.42), "beta": rng.uniform(0.26, 0.40)}


def law_loss(truth: dict[str, float], N: np.ndarray, D: np.ndarray) -> np.ndarray:
    return truth["E"] + truth["A"] / N ** truth["alpha"] + truth["B"] / D ** truth["beta"]


def make_lab(folder: Path, n_families: int, seed: int) -> tuple[list[Path], dict[str, dict], int]:
    """Write the lab's files; returns them, each family's truth, and the number of curve points."""
    import polars as pl

    rng = np.random.default_rng(seed)
    truths, finals, curves = {}, [[] for _ in range(FINAL_FILES)], [[] for _ in range(CURVE_FILES)]
    points = 0
    for i in range(n_families):
        family = f"lab-{i:04d}"
        truth = truths[family] = family_truth(rng)
        n = int(rng.integers(30, 201))
        N = 10 ** rng.uniform(7.0, 9.7, n)
        D = N * 10 ** rng.uniform(0.3, 2.7, n)  # 2-500 tokens per parameter
        noise = 0.004
        curved = i % CURVE_SHARE == 0
        k = i // CURVE_SHARE if curved else i - i // CURVE_SHARE - 1  # the family's number among its kind
        target = curves[k % CURVE_FILES] if curved else finals[k % FINAL_FILES]
        if curved:
            steps = max(2, POINTS_PER_CURVE_FAMILY // n)
            fraction = np.linspace(1.0 / steps, 1.0, steps)
            run = np.repeat(np.arange(n), steps)
            tokens = np.repeat(D, steps) * np.tile(fraction, n)
            loss = law_loss(truth, np.repeat(N, steps), tokens) * np.exp(rng.normal(0, noise, run.size))
            frame = pl.DataFrame({"family": family, "run_name": [f"r{k}" for k in run], "params": np.repeat(N, steps),
                                  "tokens": tokens, "loss": loss, "step": np.tile(np.arange(1, steps + 1), n)})
            points += frame.height
        else:
            loss = law_loss(truth, N, D) * np.exp(rng.normal(0, noise, n))
            frame = pl.DataFrame({"family": family, "run_name": [f"r{k}" for k in range(n)], "params": N,
                                  "tokens": D, "loss": loss})
        target.append(frame)
    files = []
    for kind, groups in (("final", finals), ("curves", curves)):
        for k, frames in enumerate(groups):
            if frames:
                path = folder / f"lab-{kind}-{k:02d}.csv"
                pl.concat(frames).write_csv(path)
                files.append(path)
    return files, truths, points


# -- phases, each run in its own process -----------------------------------------------------------
def peak_rss_mib() -> float:
    """Peak RSS of this process and of its (waited-for) children, whichever is larger, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def phase_ingest(home_dir: Path, files: list[Path]) -> dict:
    import duckdb

    import registry.family_settings  # noqa: F401 - imported by the first ingest (scipy, via the laws): not timed
    from registry.db import writer
    from registry.home import Home
    from registry.ingest import ingest_path
    from registry.progress import Progress, progress_bar, report

    home = Home.from_env(home_dir).ensure()
    bare_dir = home_dir.parent / "bare"
    bare_dir.mkdir(exist_ok=True)
    bare_total = ingest_total = 0.0
    rows = 0
    started = time.perf_counter()
    with progress_bar("ingest"):
        for k, path in enumerate(files):
            def bare() -> float:
                t = time.perf_counter()
                con = duckdb.connect(str(bare_dir / f"{path.stem}-{time.monotonic_ns()}.duckdb"))
                con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?)", [str(path)])
                con.close()
                return time.perf_counter() - t

            def ours() -> float:
                nonlocal rows
                t = time.perf_counter()
                with writer(home.registry) as con:
                    got = ingest_path(con, home, path)
                rows += got.rows_read
                return time.perf_counter() - t

            if k % 2:  # alternate which goes first, so neither always meets a warm cache
                ingest_total += ours()
                bare_total += bare()
            else:
                bare_total += bare()
                ingest_total += ours()
            report(Progress(done=k + 1, total=len(files), elapsed=time.perf_counter() - started, unit="files"))
    shutil.rmtree(bare_dir)
    return {"rows": rows, "ingest_s": ingest_total, "bare_s": bare_total, "peak_rss_mib": peak_rss_mib()}


def _versions(home_dir: Path) -> int:
    from registry.db import reader
    from registry.home import Home

    with reader(Home.from_env(home_dir).registry) as con:
        return con.execute("SELECT count(*) FROM fits").fetchall()[0][0]


def phase_refit(home_dir: Path, bootstrap: int) -> dict:
    from pipelines.runner import refit
    from registry.home import Home
    from registry.progress import progress_bar

    before = _versions(home_dir)
    config = {"ops": {"fits": {"config": {"bootstrap_resamples": bootstrap}}}}
    started = time.perf_counter()
    with progress_bar("nightly refit"):
        refit(Home.from_env(home_dir), None, run_config=config)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "new_fits": _versions(home_dir) - before, "peak_rss_mib": peak_rss_mib()}


def _pure_compute(job) -> float:
    """The science of one family's refit, timed: every law's fit with its bootstrap, its extrapolation check,
    and the primary law's profiles (the data prepared before the clock starts)."""
    from laws.bootstrap import bootstrap
    from laws.extrapolation import extrapolation_error
    from laws.profiles import PARAMETERS as PROFILED
    from laws.profiles import profile
    from registry.refit import FIT_FAILURES

    context = job.context
    prepared = [(law, context.data(law), context.options(law), context.groups(law), context.resamples(law))
                for law in job.laws]
    started = time.perf_counter()
    for law, data, options, groups, resamples in prepared:
        try:
            boot = bootstrap(law, data, options, n_resamples=resamples, seed=context.settings.seed,
                             level=context.settings.interval_level, groups=groups)
            if law.predicts == "loss":
                extrapolation_error(law, data, options)
            if law.profiled:
                for parameter in PROFILED:
                    profile(parameter, data["params"], data["tokens"], data["loss"], budgets=context.budgets,
                            options=options, start=boot.fit.params, n_grid=context.settings.profile_points)
        except FIT_FAILURES:
            continue
    return time.perf_counter() - started


def phase_pure(home_dir: Path, bootstrap: int, n_workers: int) -> dict:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from registry.db import reader
    from registry.family_settings import shipped_family_settings, settings_for
    from registry.fit_store import families
    from registry.home import Home
    from registry.refit import prepare_families
    from registry.refit_batch import one_blas_thread
    from registry.settings import FitSettings

    settings = FitSettings(bootstrap_resamples=bootstrap)
    declared = shipped_family_settings()
    with reader(Home.from_env(home_dir).registry) as con:
        jobs = prepare_families(con, [settings_for(f, declared) for f in families(con)], settings, code_version="bench")
    started = time.perf_counter()
    # the refit's own worker set-up (one BLAS thread each), so the two differ only by what surrounds the science
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=get_context("spawn"), initializer=one_blas_thread) as pool:
        per_family = list(pool.map(_pure_compute, jobs, chunksize=4))
    return {"wall_s": time.perf_counter() - started, "serial_s": sum(per_family), "families": len(jobs),
            "peak_rss_mib": peak_rss_mib()}


def phase_coverage(home_dir: Path, truths_file: Path) -> dict:
    from registry.db import reader
    from registry.home import Home

    truths = json.loads(truths_file.read_text())
    with reader(Home.from_env(home_dir).registry) as con:
        rows = con.execute(
            "SELECT family, name, value, ci_lo, ci_hi FROM coefficients_latest WHERE law = 'chinchilla'"
        ).fetchall()
    inside: dict[str, dict[str, bool]] = {}
    for family, name, value, lo, hi in rows:
        if name in PARAMETERS and lo is not None and hi is not None:
            inside.setdefault(family, {})[name] = lo <= truths[family][name] <= hi
    every = [all(found.get(p, False) for p in PARAMETERS) for found in inside.values()]
    return {
        "families": len(truths), "published": len(inside),
        "all_five": sum(every) / len(truths),
        **{p: sum(found.get(p, False) for found in inside.values()) / len(truths) for p in PARAMETERS},
    }


# -- planners' reads --------------------------------------------------------------------------
def read_latencies(home_dir: Path, family: str, repeats: int) -> dict:
    env = {**os.environ, "SCALEREG_HOME": str(home_dir)}
    scalereg = [str(Path(sys.executable).parent / "scalereg"), "coefficients", "--family", family, "--format", "json"]
    registry = str(home_dir / "registry.duckdb")
    bare = [sys.executable, "-c",
            "import duckdb,json,sys; con = duckdb.connect(sys.argv[1], read_only=True); "
            "print(json.dumps(con.execute('SELECT family, law, version, name, value, ci_lo, ci_hi "
            "FROM coefficients_latest WHERE family = ?', [sys.argv[2]]).fetchall()))", registry, family]

    def timed(command: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        return time.perf_counter() - t

    timed(bare), timed(scalereg)  # warm the page cache
    cli, raw = [], []
    for k in range(repeats):
        for command, into in ((scalereg, cli), (bare, raw)) if k % 2 else ((bare, raw), (scalereg, cli)):
            into.append(timed(command))
    api = subprocess.run(
        [sys.executable, __file__, "--phase", "api", "--home", str(home_dir), "--family", family],
        env=env, check=True, capture_output=True, text=True,
    )
    return {"cli_s": statistics.median(cli), "bare_s": statistics.median(raw), **json.loads(api.stdout)}


def phase_api(home_dir: Path, family: str) -> dict:
    """A notebook's view: the first (cold) call and then warm calls of the read API on an open connection."""
    t = time.perf_counter()
    from registry.db import reader
    from registry.home import Home
    from registry.planning import coefficients

    with reader(Home.from_env(home_dir).registry) as con:
        coefficients(con, family)
        cold = time.perf_counter() - t
        warm = []
        for _ in range(20):
            t = time.perf_counter()
            coefficients(con, family)
            warm.append(time.perf_counter() - t)
    return {"api_cold_s": cold, "api_warm_s": statistics.median(warm)}


def run_phase(name: str, home: Path, *extra: str) -> dict:
    """A phase in its own process: its result (and its own peak RSS) comes back as JSON on the last line."""
    out = subprocess.run([sys.executable, __file__, "--phase", name, "--home", str(home), *extra],
                         check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {cpu}, {memory:.0f} GiB; Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", type=int, default=1000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions of the read latencies")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--files", type=Path, nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--family", help=argparse.SUPPRESS)
    parser.add_argument("--truths", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = {
            "ingest": lambda: phase_ingest(args.home, args.files),
            "refit": lambda: phase_refit(args.home, args.bootstrap),
            "pure": lambda: phase_pure(args.home, args.bootstrap, args.workers),
            "coverage": lambda: phase_coverage(args.home, args.truths),
            "api": lambda: phase_api(args.home, args.family),
        }[args.phase]()
        print(json.dumps(result))
        return

    from registry.refit_batch import workers

    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    n_workers = workers()
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        work = Path(tmp)
        home = work / "home"
        os.environ["SCALEREG_HOME"] = str(home)
        t = time.perf_counter()
        files, truths, points = make_lab(work, args.families, args.seed)
        truths_file = work / "truths.json"
        truths_file.write_text(json.dumps(truths))
        size = sum(f.stat().st_size for f in files) / 2**20
        print(f"machine: {machine()}; {n_workers} refit workers")
        print(f"lab: {args.families:,} families, {points:,} curve points, {len(files)} files ({size:,.0f} MiB), "
              f"written in {time.perf_counter() - t:.0f} s")

        ingest = run_phase("ingest", home, "--files", *map(str, files))
        print(f"ingest: {ingest['rows']:,} rows in {ingest['ingest_s']:.1f} s ({ingest['rows'] / ingest['ingest_s']:,.0f} rows/s); "
              f"bare read_csv {ingest['bare_s']:.1f} s; ratio {ingest['ingest_s'] / ingest['bare_s']:.2f}x; "
              f"peak RSS {ingest['peak_rss_mib']:,.0f} MiB")

        first = run_phase("refit", home, "--bootstrap", str(args.bootstrap))
        print(f"nightly refit: {first['seconds']:.1f} s, {first['new_fits']:,} new fits; peak RSS {first['peak_rss_mib']:,.0f} MiB")
        pure = run_phase("pure", home, "--bootstrap", str(args.bootstrap), "--workers", str(n_workers))
        print(f"pure laws/ compute of the same fits: {pure['wall_s']:.1f} s wall in {n_workers} processes "
              f"({pure['serial_s']:.1f} s summed over families); refit / pure = {first['seconds'] / pure['wall_s']:.2f}x "
              f"(target <= 3x); peak RSS {pure['peak_rss_mib']:,.0f} MiB")
        second = run_phase("refit", home, "--bootstrap", str(args.bootstrap))
        print(f"second nightly refit: {second['seconds']:.1f} s ({100 * second['seconds'] / first['seconds']:.1f}% of the first), "
              f"{second['new_fits']} new fits; peak RSS {second['peak_rss_mib']:,.0f} MiB")
        registry_size = sum(p.stat().st_size for p in home.glob("registry.duckdb*")) / 2**20
        print(f"registry on disk: {registry_size:,.0f} MiB")

        coverage = run_phase("coverage", home, "--truths", str(truths_file))
        print(f"truth inside the 95% interval: all five parameters {100 * coverage['all_five']:.1f}% of families; "
              + ", ".join(f"{p} {100 * coverage[p]:.1f}%" for p in PARAMETERS)
              + f" ({coverage['published']:,} of {coverage['families']:,} families published)")

        reads = read_latencies(home, "lab-0001", args.repeats)
        print(f"planners' reads: scalereg coefficients --format json {reads['cli_s']:.3f} s, bare python -c DuckDB "
              f"{reads['bare_s']:.3f} s (ratio {reads['cli_s'] / reads['bare_s']:.2f}x, median of {args.repeats} interleaved); "
              f"Python API first call {reads['api_cold_s'] * 1e3:.0f} ms (imports included), warm {reads['api_warm_s'] * 1e3:.1f} ms")
        print(f"bench process peak RSS (children included): {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
