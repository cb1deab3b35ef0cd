"""A refit of many families reads their cards in a few queries: the same cards, less their pictures' data."""

from __future__ import annotations

import polars as pl

from registry.db import writer
from registry.family_card import family_card, family_cards
from registry.family_settings import settings_for, shipped_family_settings
from registry.ingest import ingest_path
from registry.overlaps import overlaps_of
from registry.refit_batch import refit_families
from registry.settings import FitSettings
from tests.synthetic import chinchilla_runs, write_runs


def test_cards_read_together_equal_cards_read_one_by_one(home, tmp_path):
    same = chinchilla_runs("family-a")
    frames = [same, same.with_columns(pl.lit("family-copy").alias("family")),  # the same runs again: an overlap
              chinchilla_runs("family-b", seed=4, noise=0.01), chinchilla_runs("family-small", n_sizes=2, n_tokens=2)]
    with writer(home.registry) as con:
        for k, frame in enumerate(frames):
            ingest_path(con, home, write_runs(tmp_path / f"f{k}.csv", frame))
    families = ["family-a", "family-b", "family-copy", "family-small", "family-unknown"]
    refit_families(lambda: writer(home.registry), families[:-1], FitSettings(bootstrap_resamples=50, other_law_resamples=10),
                   n_workers=1)
    declared = shipped_family_settings()
    settings = [settings_for(f, declared) for f in families]
    with writer(home.registry) as con:
        together = family_cards(con, settings)
        alone = [family_card(con, s) for s in settings]
        read_once = family_cards(con, settings, overlaps_of(con, families))  # a lab's refit reads the overlaps once
    assert [c.overlaps.to_dicts() for c in read_once] == [c.overlaps.to_dicts() for c in together]
    assert [c.family for c in together] == families
    for batch, single in zip(together, alone):
        for part in ("fits", "coefficients", "allocations", "overlaps"):
            assert getattr(batch, part).to_dicts() == getattr(single, part).to_dicts(), (batch.family, part)
        assert batch.loss_name == single.loss_name
        assert batch.gates() == single.gates() and batch.key_numbers() == single.key_numbers()
    cards = {c.family: c for c in together}
    # what the comparison rests on is there: every fitted family has fits and coefficients, the copy its overlap
    assert cards["family-a"].fits.height >= 2 and cards["family-a"].coefficients.height >= 5
    assert cards["family-a"].at_budgets().height > 0
    assert cards["family-copy"].overlaps.row(0, named=True) == {"family": "family-a", "n_shared": 30, "n_runs": 30}
    assert cards["family-unknown"].fits.height == 0 and cards["family-unknown"].primary is None
