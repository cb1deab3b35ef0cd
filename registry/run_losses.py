"""Which loss a family is fitted on, and where every other loss of a run goes.

A family's fit needs one loss: its runs in ``runs`` all carry the family's *fitted loss*. Any other
loss of a run (another validation set, a second evaluation) is an extra evaluation loss, stored in
``run_points`` with the run, as the OLMo ladder's and Gadre et al.'s extra losses are. The fitted
loss is chosen once per family and then holds for every later file:

1. the loss name of the family's runs already in the registry;
2. else ``loss_name`` in the family's settings (``families/<family>.toml``);
3. else the first loss name the source gives the family (for the OLMo ladder and Gadre et al. the
   loss their adapter fits).

An extra loss joins its run only when the run is known (in the same source or in the registry) and
has the same size: ``run_points`` has no N of its own, so a loss without its run would lose it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import duckdb
import polars as pl

from registry.adapters.base import FileProblem
from registry.home import PUBLISHED_DIR, Home
from schemas.families import is_family_key
from schemas.runs import SAME_VALUE_RTOL

REJECT_SCHEMA = {"row_number": pl.Int64, "reason": pl.String}


def declared_losses(home: Home, families: Iterable[str], file_name: str) -> dict[str, str]:
    """The fitted loss each family's settings declare (the home's file first, then the shipped one)."""
    # imported here: family_settings imports registry.ingest, which imports this module
    from registry.family_settings import FAMILIES_FOLDER, FamilySettingsProblem, families_folder, read_family_file

    declared = {}
    for family in filter(is_family_key, families):
        candidates = (families_folder(home) / f"{family}.toml", PUBLISHED_DIR / FAMILIES_FOLDER / f"{family}.toml")
        settings_file = next((path for path in candidates if path.is_file()), None)
        if settings_file is None:
            continue
        try:
            loss_name = read_family_file(settings_file).loss_name
        except FamilySettingsProblem as problem:
            raise FileProblem(
                f"{file_name}: the settings of family '{family}' say which loss it is fitted on, but cannot be read "
                f"({problem}); fix them and ingest again."
            ) from None
        if loss_name:
            declared[family] = loss_name
    return declared


def _registry_losses(con: duckdb.DuckDBPyConnection, families: list[str], replacing: Sequence[int]) -> dict[str, str]:
    """The loss of each family's runs already in the registry (the most common, should a family mix them)."""
    found = con.execute(
        """
        SELECT family, loss_name FROM runs
        WHERE list_contains(?::VARCHAR[], family) AND NOT list_contains(?::BIGINT[], source_id)
        GROUP BY family, loss_name
        QUALIFY row_number() OVER (PARTITION BY family ORDER BY count(*) DESC, loss_name) = 1
        """,
        [families, list(replacing)],
    ).fetchall()
    return dict(found)


def fitted_losses(
    con: duckdb.DuckDBPyConnection,
    accepted: pl.DataFrame,
    offered: pl.DataFrame,
    declared: Mapping[str, str],
    replacing: Sequence[int] = (),
) -> dict[str, str]:
    """The fitted loss of every family in ``accepted`` (see the module's rules).

    ``offered`` is every point the source gave, before validation: the first loss name of a family
    is the first in the file, whether or not that row was accepted.
    """
    families = accepted.get_column("family").unique().to_list()
    in_registry = _registry_losses(con, families, replacing)
    # the first loss the source fits for the family (any loss, should it mark none as fitted): the smallest
    # row number, fitted losses ranked before all others; the first such point on ties (one pass, no sort; lazy,
    # so that only these four columns of a long file are read)
    after_fitted = pl.when(pl.col("fit_loss")).then(0).otherwise(pl.col("row_number").max() + 1)
    first = (
        offered.lazy().filter(pl.col("loss_name").is_not_null())
        .group_by("family").agg(pl.col("loss_name").get((pl.col("row_number") + after_fitted).arg_min()))
        .collect()
    )
    first_offered = dict(first.iter_rows())
    return {f: in_registry.get(f) or declared.get(f) or first_offered[f] for f in families}


def mark_fitted(points: pl.DataFrame, fitted: Mapping[str, str]) -> pl.DataFrame:
    """``fit_loss`` is true exactly for the points of the family's fitted loss."""
    family_loss = pl.col("family").replace_strict(dict(fitted), default=None, return_dtype=pl.String)
    return points.with_columns((pl.col("loss_name") == family_loss).fill_null(False).alias("fit_loss"))


def _other_size(points: pl.DataFrame, where: pl.Expr) -> pl.DataFrame:
    """Extra losses whose N differs from their run's: a run has one size."""
    differs = (pl.col("params") - pl.col("run_params")).abs() > SAME_VALUE_RTOL * pl.col("run_params")
    return points.filter(differs).select(
        "row_number",
        (
            pl.lit("params N=") + pl.col("params").cast(pl.String) + pl.lit(" differs from N=")
            + pl.col("run_params").cast(pl.String) + pl.lit(" of run '") + pl.col("run_name") + pl.lit("' ") + where
            + pl.lit("; a run has one size: correct the row, or give it its own run_name")
        ).alias("reason"),
    )


def _registered_runs(con: duckdb.DuckDBPyConnection, run_ids: list[str], replacing: Sequence[int]) -> pl.DataFrame:
    """The runs already in the registry among ``run_ids`` (leaving out those of sources being replaced)."""
    return con.sql(
        """
        SELECT r.run_id, r.params AS run_params, s.name AS run_source
        FROM runs r JOIN sources s USING (source_id)
        WHERE r.run_id IN (SELECT unnest(?::VARCHAR[])) AND NOT list_contains(?::BIGINT[], r.source_id)
        """,
        params=[run_ids, list(replacing)],
    ).pl()


def _stored_points(con: duckdb.DuckDBPyConnection, points: pl.DataFrame, replacing: Sequence[int]) -> pl.DataFrame:
    """The stored points at the same run, step and loss name as ``points``, with the source they came from."""
    stored = con.sql(
        """
        SELECT p.run_id, p.step, p.loss_name, p.loss AS old_loss, coalesce(s.name, 'an earlier source') AS earlier_source
        FROM run_points p LEFT JOIN sources s ON s.source_id = p.source_id
        WHERE p.run_id IN (SELECT unnest(?::VARCHAR[]))
          AND (p.source_id IS NULL OR NOT list_contains(?::BIGINT[], p.source_id))
        """,
        params=[points.get_column("run_id").unique().to_list(), list(replacing)],
    ).pl()
    return points.join(stored, on=["run_id", "step", "loss_name"], nulls_equal=True)


def extra_loss_rejects(
    con: duckdb.DuckDBPyConnection,
    points: pl.DataFrame,
    runs: pl.DataFrame,
    fitted: Mapping[str, str],
    replacing: Sequence[int] = (),
) -> pl.DataFrame:
    """Extra losses that cannot be stored, with why: no run to hold them, another size, or already stored.

    ``points`` are the accepted points with their ``run_id``; ``runs`` the runs this source adds.
    """
    extras = points.filter(~pl.col("fit_loss"))
    if extras.height == 0:
        return pl.DataFrame(schema=REJECT_SCHEMA)
    own = runs.select("run_id", pl.col("params").alias("run_params"), pl.col("row_number").alias("run_row"))
    in_source = extras.join(own, on="run_id")
    elsewhere = extras.join(own, on="run_id", how="anti")
    registered = _registered_runs(con, elsewhere.get_column("run_id").unique().to_list(), replacing)
    in_registry = elsewhere.join(registered, on="run_id")
    orphans = elsewhere.join(registered, on="run_id", how="anti")

    fitted_loss = pl.col("family").replace_strict(dict(fitted), default=None, return_dtype=pl.String)
    reasons = [
        _other_size(in_source, pl.lit("(row ") + pl.col("run_row").cast(pl.String) + pl.lit(" of this file)")),
        _other_size(in_registry, pl.lit("from source '") + pl.col("run_source") + pl.lit("'")),
        orphans.select(
            "row_number",
            (
                pl.lit("run '") + pl.col("run_name") + pl.lit("' of family '") + pl.col("family") + pl.lit("' has no '")
                + fitted_loss + pl.lit("' loss, the loss the family is fitted on, so its '") + pl.col("loss_name")
                + pl.lit("' loss has no run to join; add the run's '") + fitted_loss
                + pl.lit("' loss, or declare loss_name in families/") + pl.col("family")
                + pl.lit(".toml before the family's first ingest")
            ).alias("reason"),
        ),
    ]
    stored = _stored_points(con, in_registry, replacing)
    if stored.height:
        same = (pl.col("loss") - pl.col("old_loss")).abs() <= SAME_VALUE_RTOL * pl.col("old_loss").abs()
        reasons.append(
            stored.select(
                "row_number",
                pl.when(same)
                .then(
                    pl.lit("the ") + pl.col("loss_name") + pl.lit(" loss of run '") + pl.col("run_name")
                    + pl.lit("' is already in the registry from source '") + pl.col("earlier_source")
                    + pl.lit("' with the same value; nothing to add")
                )
                .otherwise(
                    pl.lit("conflicts with the ") + pl.col("loss_name") + pl.lit(" loss of run '") + pl.col("run_name")
                    + pl.lit("' from source '") + pl.col("earlier_source") + pl.lit("' (there: ")
                    + pl.col("old_loss").cast(pl.String) + pl.lit("; here: ") + pl.col("loss").cast(pl.String)
                    + pl.lit("); if it is another evaluation give it another loss_name")
                )
                .alias("reason"),
            )
        )
    return pl.concat([r.select(pl.col("row_number").cast(pl.Int64), "reason") for r in reasons])
