"""The read API: what planners, notebooks and the CLI ask of the registry, as polars frames."""

from __future__ import annotations

import duckdb
import polars as pl


def family_summary(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Runs per family with the number of sources and the loss range, for summaries and the UI."""
    return con.sql(
        """
        SELECT family, count(*) AS runs, count(DISTINCT source_id) AS sources,
               min(loss) AS min_loss, max(loss) AS max_loss
        FROM runs GROUP BY family ORDER BY family
        """
    ).pl()


def source_summary(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.sql(
        """
        SELECT source_id, name, kind, status, rows_read, rows_accepted, rows_rejected, sha256[:12] AS sha256, error
        FROM sources ORDER BY source_id
        """
    ).pl()


def runs(con: duckdb.DuckDBPyConnection, family: str | None = None) -> pl.DataFrame:
    """Runs of one family (or all), with the name of the source each came from."""
    query = (
        "SELECT r.run_id, r.family, r.run_name, r.params, r.tokens, r.flops, r.loss, r.loss_name, r.flags, "
        "s.name AS source FROM runs r JOIN sources s USING (source_id)"
    )
    if family is None:
        return con.sql(query + " ORDER BY r.family, r.flops").pl()
    return con.sql(query + " WHERE r.family = ? ORDER BY r.flops", params=[family]).pl()


def family_rejects(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Runs per family next to the rejected rows of the sources that feed it."""
    return con.sql(
        """
        WITH fed AS (SELECT DISTINCT family, source_id FROM runs)
        SELECT f.family, (SELECT count(*) FROM runs r WHERE r.family = f.family) AS runs,
               string_agg(DISTINCT s.name, ', ') AS sources, sum(s.rows_rejected) AS rejected_rows_in_sources
        FROM fed f JOIN sources s USING (source_id)
        GROUP BY f.family ORDER BY f.family
        """
    ).pl()
