"""Runs that appear in more than one family, so two families built from the same runs are not read as independent.

The published record repeats itself: Chinchilla's Figure 4 points are shipped as ``chinchilla``,
again inside two IsoFLOP compilations, and again as a 28-point thinned subset. A run is taken to
be the same trained model in two families when N and D agree within relative tolerances and the
fitted loss within an absolute one (the ``run_overlaps`` and ``family_overlaps`` views of migration
0003; the tolerances are the latest row of ``overlap_tolerances``).
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields
from datetime import datetime, timezone
from typing import NamedTuple

import duckdb

from registry.db import one


@dataclass(frozen=True)
class OverlapTolerances:
    """How close two runs must be to count as one: N and D relative (max/min - 1), loss absolute.

    The defaults are the migration's first row; see its comment for why D is looser than N.
    """

    params_rtol: float = 0.01
    tokens_rtol: float = 0.15
    loss_atol: float = 0.02

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"overlap tolerance {item.name} must be a finite number >= 0, got {value!r}")


class FamilyOverlap(NamedTuple):
    """``n_shared`` of the family's ``n_runs`` runs also appear in ``other_family``."""

    other_family: str
    n_shared: int
    n_runs: int


def overlap_tolerances(con: duckdb.DuckDBPyConnection) -> OverlapTolerances:
    """The tolerances the views apply now (the latest row of ``overlap_tolerances``)."""
    row = one(con, "SELECT params_rtol, tokens_rtol, loss_atol FROM overlap_tolerances ORDER BY set_at DESC LIMIT 1")
    return OverlapTolerances(*row) if row else OverlapTolerances()


def set_overlap_tolerances(con: duckdb.DuckDBPyConnection, tolerances: OverlapTolerances) -> None:
    """Make ``tolerances`` the ones the views apply; earlier values stay in the table as history."""
    con.execute(
        "INSERT INTO overlap_tolerances (params_rtol, tokens_rtol, loss_atol, set_at) VALUES (?, ?, ?, ?)",
        [*astuple(tolerances), datetime.now(timezone.utc)],
    )


def overlaps_for(con: duckdb.DuckDBPyConnection, family: str) -> list[FamilyOverlap]:
    """The other families sharing runs with ``family``, most shared first, for its fit diagnostics.

    Family pairs whose settings declare them distinct (``distinct_from``) are left out: they match
    by coincidence, not because they are the same runs.
    """
    return overlaps_of(con, [family])[family]


def overlaps_of(con: duckdb.DuckDBPyConnection, families: list[str]) -> dict[str, list[FamilyOverlap]]:
    """:func:`overlaps_for` of many families in one query (each query matches runs across the registry)."""
    rows = con.execute(
        """
        SELECT family_a, family_b, n_shared, n_runs FROM family_overlaps
        WHERE family_a IN (SELECT unnest(?::VARCHAR[])) AND NOT declared_distinct
        ORDER BY family_a, n_shared DESC, family_b
        """,
        [families],
    ).fetchall()
    found: dict[str, list[FamilyOverlap]] = {family: [] for family in families}
    for family, other, shared, total in rows:
        found[family].append(FamilyOverlap(other, int(shared), int(total)))
    return found
