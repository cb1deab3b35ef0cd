"""What the shipped data really are, checked on the files themselves, and how ingest labels them.

The slim "Gemstones" subset and two IsoFLOP compilations are Chinchilla's Figure 4 points again;
the six OLMo 2 3B ladder runs get their parameter count from the ladder code's table.
"""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from registry.adapters.olmo_ladder import LADDER_CODE_PARAMS
from registry.published import BY_KEY, ingest_published
from tests.conftest import rows

SLIM_FAMILY = "chinchilla-slim-gemstones"


@pytest.fixture
def figure4(published) -> dict[str, np.ndarray]:
    frame = pl.read_csv(published / "chinchilla/svg_extracted_data.csv")
    n, c, loss = (frame[col].to_numpy() for col in ("Model Size", "Training FLOP", "loss"))
    return {"N": n, "C": c, "D": c / (6 * n), "loss": loss}


def ingest(con, home, key):
    reports = ingest_published(con, home, BY_KEY[key])
    assert all(r.status == "ingested" for r in reports), [r.error for r in reports]
    return reports


def test_each_slim_row_is_a_distinct_chinchilla_figure4_point(published, figure4):
    slim = pl.read_ndjson(published / "gemstones/wandb_df_for_fitting_slim_chinchilla.jsonl")
    assert slim.height == 28
    matched = []
    for row in slim.iter_rows(named=True):
        same = (
            (np.abs(figure4["N"] / row["params_active_precise"] - 1) < 1e-12)
            & (np.abs(figure4["C"] / row["FLOPs"] - 1) < 1e-9)
            & (np.abs(figure4["loss"] - row["final_loss"]) < 1e-9)
            & (np.abs(figure4["D"] / row["tokens"] - 1) < 1e-12)
        )
        assert same.sum() == 1, row
        matched.append(int(np.flatnonzero(same)[0]))
    assert len(set(matched)) == 28


def test_the_slim_subset_is_ingested_as_a_chinchilla_family_with_chinchillas_loss(con, home):
    ingest(con, home, "gemstones")
    families = dict(rows(con, "SELECT family, list_distinct(list(loss_name)) FROM runs GROUP BY family"))
    assert set(families) == {"gemstones", SLIM_FAMILY}
    assert families["gemstones"] == ["train"]
    # its loss is the one plotted in Chinchilla's Figure 4, not a Gemstones training loss
    assert families[SLIM_FAMILY] == ["chinchilla-fig4"]
    (n,) = rows(con, "SELECT count(*) FROM runs WHERE family = ?", [SLIM_FAMILY])[0]
    (citation,) = rows(con, "SELECT citation FROM sources WHERE name = ?", [SLIM_FAMILY])[0]
    assert n == 28 and "Hoffmann" in citation and "Gemstones" in citation


def _figure4_match(figure4, params, tokens, loss):
    """For one point: the smallest loss gap to a Figure 4 point of the same N, and the smallest D gap
    (max/min - 1) among the same-N points whose loss equals it (Figure 4 repeats some N and loss)."""
    same_n = np.abs(figure4["N"] / params - 1) < 1e-6
    if not same_n.any():
        return np.inf, np.inf
    gaps = np.abs(figure4["loss"][same_n] - loss)
    ratios = figure4["D"][same_n][gaps < 1e-9] / tokens
    return gaps.min(), (np.maximum(ratios, 1 / ratios) - 1).min(initial=np.inf)


@pytest.mark.parametrize(
    ("experiment", "n_points", "max_tokens_gap"),
    [
        ("ml_scalefit__massivetext__chinchilla", 124, 1e-9),  # D as in Figure 4
        ("epochai_chinchilla__massivetext__chinchilla", 123, 0.12),  # D recomputed from the nominal budget
    ],
)
def test_the_chinchilla_isoflop_families_are_figure4_points(published, figure4, experiment, n_points, max_tokens_gap):
    isoflops = pl.read_csv(published / "isoflops/isoflops.csv").filter(pl.col("experiment") == experiment)
    assert isoflops.height == n_points
    matches = [_figure4_match(figure4, r["params"], r["tokens"], r["loss"]) for r in isoflops.iter_rows(named=True)]
    loss_gaps, tokens_gaps = np.array(matches).T
    assert loss_gaps.max() <= 0.017  # the issue's figure; in fact the losses are Figure 4's to 1e-9
    assert loss_gaps.max() < 1e-9
    assert tokens_gaps.max() <= max_tokens_gap


def test_the_fineweb_isoflop_family_is_not_chinchilla_data(published, figure4):
    """The control: the same check fails on runs that are not Figure 4's."""
    isoflops = pl.read_csv(published / "isoflops/isoflops.csv").filter(
        pl.col("experiment") == "misfitting__fineweb_c4__transformer"
    )
    gaps = [_figure4_match(figure4, r["params"], r["tokens"], r["loss"])[0] for r in isoflops.iter_rows(named=True)]
    assert sum(gap <= 0.017 for gap in gaps) == 0


def test_the_ladder_codes_parameter_table_agrees_with_the_shipped_config(published):
    config = json.loads((published / "olmo_ladder/configs/final.json").read_text())
    by_label = {entry["label"]: entry["n"] for entry in config.values()}
    # the config labels 1B as "1.3B" and has no 3B entry at all
    assert "3B" not in by_label and "3.2B" not in by_label
    for size, label in (("190M", "190M"), ("370M", "370M"), ("760M", "760M"), ("1B", "1.3B")):
        assert LADDER_CODE_PARAMS[size] == by_label[label]


def test_every_ladder_size_was_trained_to_its_multiple_of_20_tokens_per_parameter(published):
    """The curves' own token counts confirm N = 3,169,537,280 for 3B, as they confirm the config for the others."""
    for file in sorted((published / "olmo_ladder/ladder-runs").glob("*.csv")):
        size, multiple = re.match(r"^([0-9.]+[MB])-([0-9.]+)xC", file.stem).groups()
        final_tokens = pl.read_csv(file, infer_schema_length=None)["throughput/total_tokens"][-1]
        implied_params = final_tokens / (20 * float(multiple))
        assert implied_params == pytest.approx(LADDER_CODE_PARAMS[size], rel=5e-3), file.name


def test_the_olmo_ladder_has_30_runs_and_the_3b_ones_say_where_n_comes_from(con, home):
    (report,) = ingest(con, home, "olmo_ladder")
    assert report.conserved and report.rows_rejected == 0
    by_size = dict(
        rows(
            con,
            "SELECT tags->>'size', list_distinct(list(params)) FROM runs WHERE family = 'olmo2-ladder' GROUP BY 1",
        )
    )
    assert sorted(by_size) == ["190M", "1B", "370M", "3B", "760M"]
    (n_runs,) = rows(con, "SELECT count(*) FROM runs WHERE family = 'olmo2-ladder'")[0]
    assert n_runs == 30
    assert by_size["3B"] == [3_169_537_280.0]
    sources = dict(rows(con, "SELECT tags->>'size', list_distinct(list(tags->>'params_source')) FROM runs GROUP BY 1"))
    assert sources["3B"] == ["OLMo-ladder src/scaling/utils.py MODEL_PARAMS"]
    assert all(found == ["configs/final.json"] for size, found in sources.items() if size != "3B")
    (n_3b,) = rows(con, "SELECT count(*) FROM runs WHERE tags->>'size' = '3B'")[0]
    assert n_3b == 6
