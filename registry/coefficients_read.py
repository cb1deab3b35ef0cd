"""The planners' coefficient reads, kept light: DuckDB and the standard library only.

``scalereg coefficients`` and a notebook's first call import nothing else (no polars, numpy, scipy or
Dagster), so a read answers in about the time of a bare DuckDB query. :mod:`registry.planning` re-exports
these with the rest of the read API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

_COEFFICIENT_SOURCES = {
    "latest": "SELECT * FROM coefficients_latest",
    "as_of": "SELECT * FROM coefficients_as_of(?::TIMESTAMPTZ)",
}
_COEFFICIENT_FILTER = " WHERE (?::VARCHAR IS NULL OR family = ?) AND (?::VARCHAR IS NULL OR law = ?) ORDER BY family, law, name"


def coefficient_query(family: str | None, law: str | None, as_of: datetime | str | None) -> tuple[str, list]:
    """The query (and its parameters) of the newest published coefficients, one row per parameter (at ``as_of``)."""
    query = _COEFFICIENT_SOURCES["as_of" if as_of is not None else "latest"]
    # the filters are parameters too: a missing family or law matches every row
    params = ([str(as_of)] if as_of is not None else []) + [family, family, law, law]
    return query + _COEFFICIENT_FILTER, params


@dataclass(frozen=True)
class LossLawStatus:
    """The loss-law verdict of a family's law: its newest fit, and the version planners are served.

    ``status`` and ``reason`` are the newest fit's (``published``, ``held``, ``failed``);
    ``published_version`` is the version the read API serves (None: none was ever published).
    """

    family: str
    law: str
    version: int
    status: str
    reason: str | None
    published_version: int | None

    def served_reason(self) -> str | None:
        """Why the served version is not the newest fit, or the newest fit's own reason."""
        if self.status == "published" or self.published_version is None:
            return self.reason
        return (f"the newest fit, v{self.version}, was {self.status}: {self.reason}; "
                f"v{self.published_version}, the last one published, is served")


_LOSS_LAW_STATUS = """
    WITH attempts AS (
        SELECT family, law, version, status, reason,
               max(version) FILTER (WHERE status = 'published') OVER (PARTITION BY family, law) AS published_version
        FROM fits
        WHERE (?::TIMESTAMPTZ IS NULL OR fitted_at <= ?::TIMESTAMPTZ)
          AND (?::VARCHAR IS NULL OR family = ?) AND (?::VARCHAR IS NULL OR law = ?)
    )
    SELECT family, law, version, status, reason, published_version FROM attempts
    QUALIFY row_number() OVER (PARTITION BY family, law ORDER BY version DESC) = 1
    ORDER BY family, law
"""


def loss_law_statuses(
    con: duckdb.DuckDBPyConnection, family: str | None = None, law: str | None = None, as_of: datetime | str | None = None
) -> list[LossLawStatus]:
    """Per family and law, the newest fit's loss-law verdict (at ``as_of``), held and failed fits included."""
    stamp = str(as_of) if as_of is not None else None
    rows = con.execute(_LOSS_LAW_STATUS, [stamp, stamp, family, family, law, law]).fetchall()
    return [LossLawStatus(*row) for row in rows]


def coefficients(
    con: duckdb.DuckDBPyConnection, family: str | None = None, law: str | None = None, as_of: datetime | str | None = None
) -> list[dict]:
    """The JSON contract: ``[{family, law, version, fitted_at, data_version, n_runs, params, ci, status, reason}]``.

    ``status`` is the loss law's verdict of the served fit (``published``); ``reason`` says why a
    newer fit of the same law was not published (held or failed), or is null.
    """
    cursor = con.execute(*coefficient_query(family, law, as_of))
    names = [column[0] for column in cursor.description]
    rows = [dict(zip(names, values)) for values in cursor.fetchall()]
    newest = {(s.family, s.law): s for s in loss_law_statuses(con, family, law, as_of)}
    out: dict[tuple[str, str], dict] = {}
    for row in rows:
        key = (row["family"], row["law"])
        verdict = newest.get(key)
        entry = out.setdefault(
            key,
            {
                "family": row["family"], "law": row["law"], "version": row["version"],
                "fitted_at": row["fitted_at"].isoformat(), "data_version": row["data_version"],
                "n_runs": row["n_runs"], "params": {}, "ci": {},
                "status": "published", "reason": verdict.served_reason() if verdict is not None else None,
            },
        )
        entry["params"][row["name"]] = row["value"]
        if row["ci_lo"] is not None and row["ci_hi"] is not None:
            entry["ci"][row["name"]] = [row["ci_lo"], row["ci_hi"]]
    return list(out.values())
