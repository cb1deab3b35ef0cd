"""Fitting benchmark: our Chinchilla fit vs the published multi-start procedure.

On the shipped Chinchilla points (Besiroglu et al.; five highest losses
excluded; Huber delta = 1e-3 on log L, summed):

1. reference -- a re-implementation of Besiroglu et al.'s procedure: scipy's
   L-BFGS-B with finite-difference gradients started from every point of the
   grid alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1},
   a, b in {0, 5, ..., 25} (4,500 starts), keeping the lowest objective;
2. ours -- ``laws.chinchilla.fit`` (variable-projection grid, L-BFGS-B with
   analytic gradients, Newton finish);
3. a 4,000-resample bootstrap of ours (``laws.bootstrap.bootstrap``).

BLAS is single-threaded for both (set before numpy is imported).  Usage:

    python bench/fit_bench.py            # print the figures
    python bench/fit_bench.py --record   # also write the "Fitting" section of bench/RESULTS.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import itertools  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import scipy  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from laws import chinchilla  # noqa: E402
from laws.bootstrap import bootstrap  # noqa: E402
from laws.chinchilla import ChinchillaOptions  # noqa: E402

DATA = ROOT / "data" / "published" / "chinchilla" / "svg_extracted_data.csv"
RESULTS = ROOT / "bench" / "RESULTS.md"
DELTA = 1e-3


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 240 points: D = C / (6 N), the five highest losses dropped."""
    df = pl.read_csv(DATA)
    N = df["Model Size"].to_numpy()
    D = df["Training FLOP"].to_numpy() / (6 * N)
    L = df["loss"].to_numpy()
    keep = np.argsort(L, kind="stable")[:-5]
    keep.sort()
    return N[keep], D[keep], L[keep]


# --- the reference procedure --------------------------------------------------
def _reference_objective(params: np.ndarray, lN: np.ndarray, lD: np.ndarray, lL: np.ndarray) -> float:
    a, b, e, alpha, beta = params
    pred = np.log(np.exp(a - alpha * lN) + np.exp(b - beta * lD) + np.exp(e))
    r = lL - pred
    ar = np.abs(r)
    return float(np.sum(np.where(ar <= DELTA, 0.5 * r * r, DELTA * (ar - 0.5 * DELTA))))


def reference_fit(N: np.ndarray, D: np.ndarray, L: np.ndarray, limit: int | None = None) -> dict:
    """Besiroglu et al.'s grid of 4,500 L-BFGS-B starts, best objective kept."""
    lN, lD, lL = np.log(N), np.log(D), np.log(L)
    grid = itertools.product(
        np.arange(0, 2.5, 0.5),  # alpha
        np.arange(0, 2.5, 0.5),  # beta
        np.arange(-1, 1.5, 0.5),  # e
        np.arange(0, 30, 5),  # a
        np.arange(0, 30, 5),  # b
    )
    starts = [np.array([a, b, e, al, be], float) for al, be, e, a, b in grid]
    if limit:
        starts = starts[:limit]
    best = None
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):
        for x0 in starts:
            res = minimize(_reference_objective, x0, args=(lN, lD, lL), method="L-BFGS-B")
            if best is None or res.fun < best.fun:
                best = res
    seconds = time.perf_counter() - t0
    a, b, e, al, be = best.x
    return {
        "seconds": seconds,
        "objective": float(best.fun),
        "starts": len(starts),
        "params": {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)), "alpha": float(al), "beta": float(be)},
    }


# --- ours -----------------------------------------------------------------------
def our_fit(N: np.ndarray, D: np.ndarray, L: np.ndarray, repeats: int = 7) -> dict:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit = chinchilla.fit(N, D, L, ChinchillaOptions(huber_delta=DELTA))
        times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "all_seconds": times, "objective": fit.objective,
            "params": fit.params, "converged": fit.converged, "message": fit.message}


def our_bootstrap(N: np.ndarray, D: np.ndarray, L: np.ndarray, n_resamples: int = 4000, repeats: int = 3) -> dict:
    data = {"params": N, "tokens": D, "loss": L}
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        boot = bootstrap("chinchilla", data, {"huber_delta": DELTA}, n_resamples=n_resamples, seed=0)
        times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "all_seconds": times, "ci": boot.ci,
            "converged_fraction": boot.converged_fraction, "n_resamples": n_resamples}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores (nproc), {cpu}; Python {platform.python_version()}, "
            f"numpy {np.__version__}, scipy {scipy.__version__}; single-threaded BLAS")


def section(ref: dict, ours: dict, boot: dict) -> str:
    ratio = ref["seconds"] / ours["seconds"]
    today = datetime.date.today().isoformat()
    p, q = ref["params"], ours["params"]
    ci = boot["ci"]
    return f"""## Fitting

`bench/fit_bench.py`: Chinchilla Approach 3 on the shipped points of Besiroglu et al. (240
runs after dropping the five highest losses; Huber delta = 1e-3 on log L, summed).
Reference: a re-implementation of their procedure, scipy L-BFGS-B with finite-difference
gradients from each of the {ref['starts']:,} grid starts (alpha, beta in 0..2 step 0.5; e in -1..1
step 0.5; a, b in 0..25 step 5), best kept. Ours: `laws.chinchilla.fit` (64 x 64
variable-projection grid over the exponents with batched NNLS, L-BFGS-B polish with analytic
gradients from the best basins, Newton finish); median of {len(ours['all_seconds'])} runs, half before and
half after the reference. Bootstrap:
`laws.bootstrap.bootstrap`, {boot['n_resamples']:,} resamples as multinomial weights, all refined
together by batched Newton from the full-data optimum; median of {len(boot['all_seconds'])} runs.
Targets: >= 400x faster with an objective no worse; bootstrap < 5 s.

| date | machine | reference | ours | speed-up | objective (reference) | objective (ours) | 4,000-resample bootstrap |
|---|---|---:|---:|---:|---:|---:|---:|
| {today} | {machine()} | {ref['seconds']:.1f} s | {ours['seconds'] * 1e3:.1f} ms | {ratio:,.0f}x | {ref['objective']:.8e} | {ours['objective']:.8e} | {boot['seconds']:.2f} s |

Parameters: reference E = {p['E']:.4f}, A = {p['A']:.1f}, B = {p['B']:.1f}, alpha = {p['alpha']:.4f},
beta = {p['beta']:.4f}; ours E = {q['E']:.4f}, A = {q['A']:.1f}, B = {q['B']:.1f}, alpha = {q['alpha']:.4f},
beta = {q['beta']:.4f}. Bootstrap 95% intervals: E ({ci['E'][0]:.3f}, {ci['E'][1]:.3f}), alpha
({ci['alpha'][0]:.3f}, {ci['alpha'][1]:.3f}), beta ({ci['beta'][0]:.3f}, {ci['beta'][1]:.3f}) (Besiroglu et al.:
E (1.769, 1.871), alpha (0.317, 0.373), beta (0.331, 0.415)); {boot['converged_fraction']:.1%} of resamples converged.
What it took: profiling the exponents out (the grid costs two matrix products and a batched
3-variable NNLS by active-set enumeration), analytic gradients, and for the bootstrap a
Newton step whose curvature uses only the runs inside the Huber threshold (IRLS needed
~10x more iterations), damped towards the IRLS majoriser, on cache-sized blocks of resamples
with a parameter-major Jacobian. Single-threaded BLAS matters: with the default multi-threaded
OpenBLAS on this busy 2-core machine every small L-BFGS-B/LAPACK call was 5-10x slower.
"""


def record(text: str) -> None:
    """Write the "## Fitting" section of RESULTS.md, keeping earlier dated rows.

    Other sections (e.g. "## Ingest") are left exactly as they are.
    """
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^## Fitting\n.*?(?=^## |\Z)", re.S | re.M)
    row = re.compile(r"^\| \d{4}-\d{2}-\d{2} \|.*$", re.M)
    found = pattern.search(old)
    if found:
        earlier = [r for r in row.findall(found.group(0)) if r not in text]
        new_row = row.search(text).group(0)
        text = text.replace(new_row, "\n".join([*earlier, new_row]))
        new = pattern.sub(lambda _: text.rstrip() + "\n\n", old).rstrip() + "\n"
    else:
        new = old.rstrip() + "\n\n" + text.rstrip() + "\n"
    RESULTS.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", action="store_true", help="write the Fitting section of bench/RESULTS.md")
    ap.add_argument("--reference-starts", type=int, default=None,
                    help="run only the first K reference starts (a quick check; not for the record)")
    args = ap.parse_args()
    N, D, L = load()
    print(f"runs: {N.size}  machine: {machine()}")

    before = our_fit(N, D, L)
    ref = reference_fit(N, D, L, limit=args.reference_starts)
    after = our_fit(N, D, L)  # the machine is shared: time ours on both sides of the reference
    ours = {**after, "all_seconds": before["all_seconds"] + after["all_seconds"]}
    ours["seconds"] = statistics.median(ours["all_seconds"])
    print(f"ours:      {ours['seconds'] * 1e3:8.1f} ms  objective {ours['objective']:.10e}  {ours['message']}")
    print(f"reference: {ref['seconds']:8.1f} s   objective {ref['objective']:.10e}  ({ref['starts']} starts)")
    ratio = ref["seconds"] / ours["seconds"]
    print(f"speed-up:  {ratio:,.0f}x   objective ours - reference = {ours['objective'] - ref['objective']:+.3e}")
    boot = our_bootstrap(N, D, L)
    print(f"bootstrap: {boot['seconds']:.2f} s for {boot['n_resamples']} resamples "
          f"(runs: {', '.join(f'{t:.2f}' for t in boot['all_seconds'])} s)")
    ok = ratio >= 400 and ours["objective"] <= ref["objective"] * (1 + 1e-9) and boot["seconds"] < 5
    print("targets met" if ok else "TARGETS NOT MET")
    if args.record:
        if args.reference_starts:
            sys.exit("refusing to record a partial reference run")
        record(section(ref, ours, boot))
        print(f"recorded in {RESULTS}")


if __name__ == "__main__":
    main()
