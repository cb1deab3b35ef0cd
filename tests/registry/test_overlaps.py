"""Runs shared between families: found on the shipped data, bounded by the tolerances, exact against brute force."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
import polars as pl
import pytest

from registry.db import writer
from registry.family_settings import load_family_settings, record_family_settings
from registry.home import Home
from registry.overlaps import FamilyOverlap, OverlapTolerances, overlap_tolerances, overlaps_for, set_overlap_tolerances
from registry.published import PUBLISHED, ingest_published
from tests.conftest import rows

CHINCHILLA_COPIES = {"isoflop-ml-scalefit-chinchilla", "isoflop-epochai-chinchilla", "chinchilla-slim-gemstones"}
GADRE = ("gadre-c4", "gadre-rpj", "gadre-rw")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    """Every shipped dataset ingested once, with the shipped family settings recorded."""
    home = Home(tmp_path_factory.mktemp("home")).ensure()
    with writer(home.registry) as con:
        for source in PUBLISHED:
            ingest_published(con, home, source)
        record_family_settings(con, load_family_settings(home))
        yield con


def add_runs(con: duckdb.DuckDBPyConnection, runs: list[tuple[str, str, float, float, float]]) -> None:
    """Insert (family, run_name, N, D, loss) rows directly: the views read only these columns."""
    con.register("incoming", pl.DataFrame(runs, schema=["family", "run_name", "params", "tokens", "loss"], orient="row"))
    con.execute(
        "INSERT INTO runs (run_id, family, source_id, run_name, params, tokens, flops, flops_derived, loss, loss_name, "
        "row_number, ingested_at) SELECT family || '/' || run_name, family, 0, run_name, params, tokens, "
        "6 * params * tokens, TRUE, loss, 'train', 0, now() FROM incoming"
    )
    con.unregister("incoming")


def test_chinchilla_overlaps_exactly_its_three_copies(shipped):
    overlaps = overlaps_for(shipped, "chinchilla")
    assert {o.other_family for o in overlaps} == CHINCHILLA_COPIES
    assert all(o.n_runs == 245 and o.n_shared > 0 for o in overlaps)


@pytest.mark.parametrize(
    ("family", "n_runs"),
    [("isoflop-ml-scalefit-chinchilla", 124), ("isoflop-epochai-chinchilla", 123), ("chinchilla-slim-gemstones", 28)],
)
def test_every_run_of_a_chinchilla_copy_is_found_in_chinchilla(shipped, family, n_runs):
    by_other = {o.other_family: o for o in overlaps_for(shipped, family)}
    assert by_other["chinchilla"] == FamilyOverlap("chinchilla", n_runs, n_runs)


def test_gadre_olmo_and_gemstones_share_no_runs_with_the_chinchilla_families(shipped):
    pairs = rows(shipped, "SELECT DISTINCT family_a, family_b FROM run_overlaps")
    chinchilla_like = {"chinchilla"} | CHINCHILLA_COPIES
    assert all((a in chinchilla_like) == (b in chinchilla_like) for a, b in pairs)
    for family in (*GADRE, "olmo2-ladder", "gemstones", "isoflop-misfitting-fineweb-c4"):
        assert overlaps_for(shipped, family) == []


def test_the_gadre_grid_matches_by_coincidence_and_is_declared_distinct(shipped):
    """Same N and D by design, C4 losses within 0.02 for some: the settings say they are other runs."""
    found = rows(
        shipped,
        "SELECT family_a, family_b, n_shared, declared_distinct, distinct_reason FROM family_overlaps "
        "WHERE family_a LIKE 'gadre-%' ORDER BY 1, 2",
    )
    assert found and all(b in GADRE for _, b, _, _, _ in found)
    assert all(declared and "different runs" in reason for _, _, _, declared, reason in found)
    assert {(a, b): n for a, b, n, _, _ in found}[("gadre-rpj", "gadre-rw")] == 12


def test_without_the_declaration_the_gadre_coincidences_would_show(con):
    add_runs(con, [("gadre-rpj", "r1", 4e8, 1.6e10, 3.0483), ("gadre-rw", "w1", 4e8, 1.6e10, 3.0479)])
    assert overlaps_for(con, "gadre-rpj") == [FamilyOverlap("gadre-rw", 1, 1)]


def test_each_pair_is_listed_in_both_orders_with_its_differences(con):
    add_runs(con, [("fam-a", "a1", 1.000e9, 2.0e10, 2.500), ("fam-b", "b1", 1.005e9, 2.2e10, 2.510)])
    found = rows(
        con,
        "SELECT family_a, run_name_a, family_b, run_name_b, params_difference, tokens_difference, loss_difference "
        "FROM run_overlaps ORDER BY family_a",
    )
    assert [r[:4] for r in found] == [("fam-a", "a1", "fam-b", "b1"), ("fam-b", "b1", "fam-a", "a1")]
    for row in found:
        assert row[4:] == (pytest.approx(0.005), pytest.approx(0.1), pytest.approx(0.01))


def test_runs_of_one_family_never_overlap_each_other(con):
    add_runs(con, [("fam-a", "a1", 1e9, 2e10, 2.5), ("fam-a", "a2", 1e9, 2e10, 2.5)])
    assert rows(con, "SELECT count(*) FROM run_overlaps")[0][0] == 0


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        ((1.009e9, 2.0e10, 2.5), True),  # N 0.9% apart
        ((1.011e9, 2.0e10, 2.5), False),  # N 1.1% apart
        ((1.0e9, 2.29e10, 2.5), True),  # D 14.5% apart
        ((1.0e9, 2.31e10, 2.5), False),  # D 15.5% apart
        ((1.0e9, 2.0e10, 2.519), True),  # loss 0.019 apart
        ((1.0e9, 2.0e10, 2.521), False),  # loss 0.021 apart
        ((0.991e9, 1.75e10, 2.481), True),  # all three just inside, the other way round
    ],
)
def test_the_default_tolerances_bound_what_counts_as_one_run(con, other, expected):
    add_runs(con, [("fam-a", "a1", 1.0e9, 2.0e10, 2.5), ("fam-b", "b1", *other)])
    assert (overlaps_for(con, "fam-a") == [FamilyOverlap("fam-b", 1, 1)]) is expected


def test_changing_the_tolerances_changes_the_views_and_keeps_the_old_ones(con):
    add_runs(con, [("fam-a", "a1", 1.0e9, 2.0e10, 2.5), ("fam-b", "b1", 1.02e9, 2.0e10, 2.5)])
    assert overlap_tolerances(con) == OverlapTolerances(params_rtol=0.01, tokens_rtol=0.15, loss_atol=0.02)
    assert overlaps_for(con, "fam-a") == []
    set_overlap_tolerances(con, OverlapTolerances(params_rtol=0.03))
    assert overlaps_for(con, "fam-a") == [FamilyOverlap("fam-b", 1, 1)]
    assert overlap_tolerances(con).params_rtol == 0.03
    assert rows(con, "SELECT count(*) FROM overlap_tolerances")[0][0] == 2


@pytest.mark.parametrize("bad", [{"params_rtol": -0.01}, {"tokens_rtol": float("nan")}, {"loss_atol": float("inf")},
                                 {"loss_atol": True}])
def test_tolerances_must_be_finite_and_not_negative(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        OverlapTolerances(**bad)


@pytest.mark.parametrize("tolerances", [OverlapTolerances(), OverlapTolerances(0.0, 0.0, 0.0), OverlapTolerances(0.2, 0.5, 0.1)])
def test_the_view_finds_exactly_the_pairs_a_brute_force_comparison_finds(con, tolerances):
    """The view buckets runs on log N to avoid comparing every pair; bucketing must lose no pair."""
    rng = np.random.default_rng(7)
    n = 600
    params = np.exp(rng.uniform(np.log(1e8), np.log(1.5e8), n))
    params[::10] = params[1::10]  # some exact repeats, as copied datasets have
    tokens = np.exp(rng.uniform(np.log(1e10), np.log(1.5e10), n))
    tokens[::10] = tokens[1::10]
    loss = rng.uniform(2.5, 2.7, n)
    loss[::10] = loss[1::10]
    family = np.array([f"fam-{i % 4}" for i in range(n)])
    add_runs(con, [(family[i], f"r{i}", float(params[i]), float(tokens[i]), float(loss[i])) for i in range(n)])
    set_overlap_tolerances(con, tolerances)

    ratio_n = np.maximum(params[:, None] / params[None, :], params[None, :] / params[:, None]) - 1
    ratio_d = np.maximum(tokens[:, None] / tokens[None, :], tokens[None, :] / tokens[:, None]) - 1
    same = (
        (ratio_n <= tolerances.params_rtol * (1 + 1e-12))
        & (ratio_d <= tolerances.tokens_rtol * (1 + 1e-12))
        & (np.abs(loss[:, None] - loss[None, :]) <= tolerances.loss_atol)
        & (family[:, None] != family[None, :])
    )
    expected = {(f"r{i}", f"r{j}") for i, j in zip(*np.nonzero(same))}
    found = set(rows(con, "SELECT run_name_a, run_name_b FROM run_overlaps"))
    assert len(expected) > 50 and found == expected
