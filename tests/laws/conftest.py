"""Shared data for the laws specification tests.

Published data are read from /work/shared/data (see PROVENANCE.md there);
synthetic runs are generated from known parameters so that every expected
value in these tests comes from the truth, never from the code under test.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest


DATA = Path(os.environ.get("SCALEREG_SHARED_DATA", "/work/shared/data"))
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
