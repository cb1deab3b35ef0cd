"""A family's card: what its page shows after every refit, read back from the registry.

Read from what is stored rather than from what a refit returned, so a family whose runs and code
did not change (nothing new fitted) shows the same card as the refit that fitted it: the newest fit
of every law with its status and reason, coefficients with intervals, allocations at a few budgets
with their verdicts, the gates, and what the plots need (runs, bootstrap draws, profiles).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import duckdb
import numpy as np
import polars as pl

from laws.catalog import LAWS
from laws.intervals import Samples
from registry.family_settings import FamilySettings
from registry.fit_store import family_observations, split_by_family
from registry.overlaps import FamilyOverlap, overlaps_of

#: Budgets whose allocation a family's card lists (FLOPs); the key numbers are read at KEY_BUDGET.
CARD_BUDGETS = (1e20, 1e22, 1e24, 1e26)
KEY_BUDGET = 1e24
PRIMARY_LAW = next(law.name for law in LAWS.values() if law.primary)

#: A card's reads, for any number of families at once (a refit of many families shows cards without pictures).
_NEWEST_FITS_OF = """
    SELECT family, fit_id, law, version, status, reason, data_version, code_version, n_runs, extrapolation_error,
           checks::VARCHAR AS checks, diagnostics::VARCHAR AS diagnostics, fitted_at
    FROM fits WHERE family IN (SELECT unnest(?::VARCHAR[]))
    QUALIFY row_number() OVER (PARTITION BY family, law ORDER BY version DESC) = 1
    ORDER BY family, law
"""
_COEFFICIENTS_OF = """
    SELECT f.family, f.law, 'v' || f.version AS version, f.status, c.name AS parameter, c.value, c.ci_lo, c.ci_hi
    FROM coefficients c JOIN fits f USING (fit_id)
    WHERE list_contains(?::VARCHAR[], fit_id) ORDER BY f.family, f.law, c.name
"""
_ALLOCATIONS_OF = """
    SELECT family, law, 'v' || version AS version, compute, n_opt, n_opt_lo, n_opt_hi, tokens_per_param,
           tokens_per_param_lo, tokens_per_param_hi, predicted_loss, status, reason
    FROM allocations
    WHERE list_contains(?::VARCHAR[], fit_id) AND inference_tokens = 0 ORDER BY family, law, compute
"""
_LOSS_NAMES_OF = """
    SELECT family, loss_name FROM runs WHERE family IN (SELECT unnest(?::VARCHAR[])) GROUP BY family, loss_name
    QUALIFY row_number() OVER (PARTITION BY family ORDER BY count(*) DESC, loss_name) = 1
"""


@dataclass(frozen=True)
class GateOutcome:
    """One stored gate result of one law's newest fit."""

    law: str
    version: int
    name: str
    passed: bool
    blocking: bool
    detail: str


@dataclass(frozen=True)
class FamilyCard:
    """A family's newest fits as its page shows them.

    ``fits``: newest fit per law (any status); ``coefficients``: their parameters with intervals;
    ``allocations``: their allocation rows (published fits only) on the grid, every budget;
    ``runs``: the fitted observations; ``samples``/``profiles``: of the primary law's newest fit;
    ``overlaps``: other families holding the same runs (not independent evidence).
    """

    family: str
    loss_name: str
    fits: pl.DataFrame
    coefficients: pl.DataFrame
    allocations: pl.DataFrame
    runs: pl.DataFrame
    samples: Samples | None
    profiles: pl.DataFrame
    overlaps: pl.DataFrame

    @property
    def primary(self) -> dict | None:
        """The newest fit of the primary law (Chinchilla Approach 3), if there is one."""
        rows = self.fits.filter(pl.col("law") == PRIMARY_LAW).to_dicts()
        return rows[0] if rows else None

    def at_budgets(self, budgets: tuple[float, ...] = CARD_BUDGETS) -> pl.DataFrame:
        """Allocation rows at ``budgets`` (those on the published grid), every law, with status and reason."""
        return self.allocations.filter(pl.col("compute").is_in(list(budgets)))

    def gates(self) -> list[GateOutcome]:
        """Every gate of every law's newest fit, as stored with the fit."""
        out = []
        for row in self.fits.iter_rows(named=True):
            for gate in json.loads(row["checks"] or "[]"):
                out.append(GateOutcome(row["law"], row["version"], gate["name"], bool(gate["passed"]),
                                       bool(gate["blocking"]), gate["detail"]))
        return out

    def key_numbers(self) -> dict[str, float]:
        """The primary fit's E, alpha, beta, a; N_opt and tokens/param at :data:`KEY_BUDGET`; extrapolation error.

        Only finite numbers: a held fit has no allocation, a fit held by design no parameters.
        """
        primary = self.primary
        if primary is None:
            return {}
        values = self.coefficients.filter((pl.col("law") == PRIMARY_LAW) & pl.col("parameter").is_in(["E", "alpha", "beta", "a"]))
        numbers = {row["parameter"]: row["value"] for row in values.iter_rows(named=True)}
        at = self.allocations.filter((pl.col("law") == PRIMARY_LAW) & (pl.col("compute") == KEY_BUDGET)).to_dicts()
        if at:
            numbers |= {"n_opt_at_1e24": at[0]["n_opt"], "tokens_per_param_at_1e24": at[0]["tokens_per_param"]}
        numbers["extrapolation_error"] = primary["extrapolation_error"]
        return {k: float(v) for k, v in numbers.items() if v is not None and math.isfinite(v)}

    def largest_budget(self) -> float | None:
        """The largest budget the allocation table publishes for this family (None: no published allocation)."""
        return float(self.allocations.get_column("compute").max()) if self.allocations.height else None


def _overlaps_frame(overlaps: list[FamilyOverlap]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"family": o.other_family, "n_shared": o.n_shared, "n_runs": o.n_runs} for o in overlaps],
        schema={"family": pl.String, "n_shared": pl.Int64, "n_runs": pl.Int64},
    )


def family_card(con: duckdb.DuckDBPyConnection, settings: FamilySettings) -> FamilyCard:
    """The card of ``settings.family`` from the registry (its settings choose the observations shown), with
    what its pictures need: the fitted runs and the primary fit's bootstrap draws and profiles."""
    (card,) = family_cards(con, [settings])
    samples, profiles = None, pl.DataFrame()
    if primary := card.primary:
        found = con.execute("SELECT param_names, samples FROM bootstrap_samples WHERE fit_id = ?", [primary["fit_id"]]).fetchall()
        if found and found[0][1]:
            samples = Samples(tuple(found[0][0]), np.asarray(found[0][1], float))
        profiles = con.execute(
            "SELECT parameter, value, objective, relative_excess, compute, tokens_per_param FROM fit_profiles "
            "WHERE fit_id = ? ORDER BY parameter, compute, value", [primary["fit_id"]],
        ).pl()
    return replace(card, runs=family_observations(con, settings).runs, samples=samples, profiles=profiles)


def family_cards(
    con: duckdb.DuckDBPyConnection, settings: list[FamilySettings], overlaps: Mapping[str, list[FamilyOverlap]] | None = None,
) -> list[FamilyCard]:
    """The cards of many families without what only their pictures need (runs, bootstrap draws, profiles),
    in a handful of queries for all of them: what a refit of a whole lab shows on each family's page
    (read one by one with the pictures' data, a thousand cards took longer than the families' fits).
    ``overlaps``: every family's, when the caller read them once for many calls.
    """
    names = [s.family for s in settings]
    fits = con.execute(_NEWEST_FITS_OF, [names]).pl()
    fit_ids = fits.get_column("fit_id").to_list()
    parts = {
        "fits": fits,
        "coefficients": con.execute(_COEFFICIENTS_OF, [fit_ids]).pl(),
        "allocations": con.execute(_ALLOCATIONS_OF, [fit_ids]).pl(),
    }
    per = {name: split_by_family(frame, names) for name, frame in parts.items()}
    overlapping = overlaps if overlaps is not None else overlaps_of(con, names)
    loss_names = dict(con.execute(_LOSS_NAMES_OF, [names]).fetchall())
    return [
        FamilyCard(
            family=s.family, loss_name=s.loss_name or loss_names.get(s.family) or "loss",
            fits=per["fits"][s.family], coefficients=per["coefficients"][s.family],
            allocations=per["allocations"][s.family], overlaps=_overlaps_frame(overlapping[s.family]),
            runs=pl.DataFrame(), samples=None, profiles=pl.DataFrame(),
        )
        for s in settings
    ]
