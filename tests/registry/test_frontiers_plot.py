"""The frontiers picture of the allocations table: every family drawn, a lab's worth without a warning."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from registry.plots import LABELLED_FAMILIES, frontiers_png


def allocations(n_families: int) -> pl.DataFrame:
    compute = 10.0 ** np.arange(18, 27.5, 0.5)
    rows = []
    for k in range(n_families):
        n_opt = 0.1 * (compute / 6) ** 0.5 * (1 + k / n_families)
        rows += [{"family": f"lab-{k:04d}", "law": "chinchilla", "inference_tokens": 0.0, "compute": c, "n_opt": n,
                  "n_opt_lo": 0.8 * n, "n_opt_hi": 1.2 * n, "status": "trusted" if c < 1e23 else "extrapolated"}
                 for c, n in zip(compute, n_opt)]
    return pl.DataFrame(rows)


@pytest.mark.parametrize("n_families", [3, LABELLED_FAMILIES + 1, 1000])
def test_the_frontiers_plot_draws_any_number_of_families_without_a_warning(n_families):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "tight_layout cannot make margins" for a legend of 1,000 names
        png = frontiers_png(allocations(n_families))
    assert png is not None and png.startswith(b"\x89PNG")


def test_no_published_allocation_draws_nothing():
    assert frontiers_png(allocations(2).filter(pl.col("law") == "kaplan")) is None
