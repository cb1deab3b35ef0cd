"""Families whose runs cannot support a fit are held, loss law and allocation, with a reason naming the cause.

Issue 9's degenerate families, through the registry's refit path: twelve runs all at one model size,
twelve runs with identical losses, every run at one token count, fewer than eight runs. Before the
design gate each published a law (alpha = 1.46 with a tight interval from one N; a Kaplan optimum of
42 tokens with a zero-width interval from flat losses); now every law of the family is held, a held
fit is stored for each although nothing was fitted, and no allocation is published.
"""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import polars as pl
import pytest

from registry.db import writer
from registry.ingest import ingest_path
from registry.planning import NoPublishedFit, allocate
from registry.refit import refit_family
from registry.settings import FitSettings
from tests.conftest import rows
from tests.synthetic import HOFFMANN, chinchilla_runs, write_runs

FAST = FitSettings(bootstrap_resamples=100, other_law_resamples=20)


def _one_size(family: str) -> pl.DataFrame:
    """12 runs, all at N = 1e8, over two decades of D."""
    return chinchilla_runs(family, n_sizes=1, n_tokens=12, size_range=(8.0, 8.0))


def _flat_losses(family: str) -> pl.DataFrame:
    """12 runs over 4 sizes and 3 token counts, every one reporting the same loss."""
    return chinchilla_runs(family, n_sizes=4, n_tokens=3).with_columns(loss=pl.lit(3.2))


def _one_token_count(family: str) -> pl.DataFrame:
    """12 runs over two decades of N, every one trained on 1e10 tokens."""
    return chinchilla_runs(family, n_sizes=12, n_tokens=1, token_range=(10.0, 10.0))


def _too_few(family: str) -> pl.DataFrame:
    """6 runs: 2 sizes x 3 token counts."""
    return chinchilla_runs(family, n_sizes=2, n_tokens=3)


CASES = {
    "one-size": (_one_size, "every run has the same model size N = 1e+08"),
    "flat-losses": (_flat_losses, "every observation has the same loss 3.2"),
    "one-token-count": (_one_token_count, "every observation has the same token count D = 1e+10"),
    "too-few": (_too_few, "fewer than 8 runs: the family has 6 to fit"),
}


@pytest.fixture(params=list(CASES))
def degenerate(request, home, tmp_path):
    make, cause = CASES[request.param]
    family = request.param
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / f"{family}.csv", make(family)))
    return family, cause, refit_family(partial(writer, home.registry), family, FAST)


def test_every_law_of_a_degenerate_family_is_held_naming_the_cause(degenerate):
    family, cause, result = degenerate
    assert {f.record.law for f in result.fitted} == {"chinchilla", "kaplan"}  # Kaplan too: no law escapes the gates
    for fit in result.fitted:
        assert fit.record.status == "held"
        assert fit.record.reason.startswith("design: ") and cause in fit.record.reason
        assert [(g["name"], g["passed"], g["blocking"]) for g in fit.record.checks] == [("design", False, True)]
        assert fit.record.params == {} and fit.boot is None  # nothing was fitted


def test_a_degenerate_family_stores_held_fits_and_publishes_no_allocation(degenerate, home):
    family, cause, _ = degenerate
    with writer(home.registry) as con:
        stored = rows(con, "SELECT law, version, status, reason FROM fits WHERE family = ? ORDER BY law", [family])
        assert [(law, version, status) for law, version, status, _ in stored] == [("chinchilla", 1, "held"), ("kaplan", 1, "held")]
        assert all(cause in reason for *_, reason in stored)
        assert rows(con, "SELECT count(*) FROM coefficients WHERE family = ?", [family]) == [(0,)]
        assert rows(con, "SELECT count(*) FROM allocations WHERE family = ?", [family]) == [(0,)]
        (verdict,) = rows(con, "SELECT fit_status, compute, allocation_status FROM fit_verdicts WHERE family = ? AND law = 'chinchilla'", [family])
        assert verdict == ("held", None, None)
        with pytest.raises(NoPublishedFit, match="held") as refused:
            allocate(con, family, 1e24)
    assert cause in str(refused.value)


def test_a_degenerate_family_records_what_it_was_refitted_with(degenerate, home):
    family, _, result = degenerate
    with writer(home.registry) as con:
        (diagnostics,) = rows(con, "SELECT diagnostics FROM fits WHERE family = ? AND law = 'chinchilla'", [family])[0]
        assert rows(con, "SELECT count(*) FROM family_settings WHERE family = ?", [family]) == [(1,)]
    assert json.loads(diagnostics)["fitted_on"] == "final values"
    assert result.code_version.endswith(json.loads(diagnostics)["settings_version"])


def test_the_same_runs_with_two_sizes_more_are_fitted(home, tmp_path):
    """The gate is about the design, not the family: add sizes to the one-size runs and the fit goes through."""
    family = "one-size"
    more = pl.concat([_one_size(family), chinchilla_runs(family, n_sizes=2, n_tokens=6, size_range=(7.0, 9.0), prefix="more")])
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / "more.csv", more))
    result = refit_family(partial(writer, home.registry), family, FAST)
    chinchilla = next(f.record for f in result.fitted if f.record.law == "chinchilla")
    assert chinchilla.checks[0] == {"name": "design", "passed": True, "blocking": True,
                                    "detail": "24 runs (24 observations) can support a fit"}
    assert chinchilla.params["alpha"] == pytest.approx(HOFFMANN["alpha"], rel=0.2)
    assert np.isfinite(chinchilla.objective)
