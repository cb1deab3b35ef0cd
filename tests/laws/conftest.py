"""Shared data for the laws specification tests.

Published data are read from the copies shipped in the repository under
``data/published/`` (see PROVENANCE.md there); synthetic runs are generated from known parameters so that every expected
value in these tests comes from the truth, never from the code under test.
"""

from __future__ import annotations

import os

# The fits make many small BLAS/LAPACK calls (L-BFGS-B's, the batched Newton's);
# multi-threaded OpenBLAS makes them 5-10x slower on a busy 2-core machine.  Takes
# effect only if numpy/scipy are not loaded yet (true when tests/laws runs alone).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "data" / "published"
CHINCHILLA_CSV = DATA / "chinchilla" / "svg_extracted_data.csv"
ISOFLOPS_CSV = DATA / "isoflops" / "isoflops.csv"


@pytest.fixture(scope="session")
def chinchilla_runs() -> dict[str, np.ndarray]:
    """The 245 points of Besiroglu et al.; D = C / (6 N)."""
    df = pl.read_csv(CHINCHILLA_CSV)
    N = df["Model Size"].to_numpy()
    C = df["Training FLOP"].to_numpy()
    return {"params": N, "tokens": C / (6 * N), "loss": df["loss"].to_numpy()}


@pytest.fixture(scope="session")
def isoflops() -> pl.DataFrame:
    return pl.read_csv(ISOFLOPS_CSV)
