"""Reading a family's runs for fitting and writing fits: versions, coefficients, allocations, samples.

Everything written here is append-only: a refit adds version n+1 and never edits version n.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources

import duckdb
import numpy as np
import polars as pl

from laws.intervals import Samples
from registry.db import claimed, one, registered, transaction
from registry.family_settings import Exclusion, FamilySettings, record_family_settings


def laws_code_version() -> str:
    """A hash of the source of ``laws/``: a fit is redone when the science changes, and only then."""
    digest = hashlib.sha256()
    folder = resources.files("laws")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".py"):
            digest.update(entry.name.encode() + b"\0" + entry.read_bytes())
    return digest.hexdigest()[:12]


#: Runs flagged "diverged" are left out of fits by default; they stay in the registry.
EXCLUDED_FLAGS = ("diverged",)

# A family's fitted loss is the loss its runs carry, unless its settings name another: then a run
# whose own loss is a different one contributes that loss from run_points (its final evaluation,
# else its last step). Read for many families at once (each read scans the run points). The
# parameters are: the families, flags, the settings' loss name (twice, NULL: the runs' own), the loss
# name again for the extra losses.
_FIT_RUNS = """
    WITH chosen AS (
        SELECT * FROM runs WHERE family IN (SELECT unnest(?::VARCHAR[])) AND NOT list_has_any(flags, ?::VARCHAR[])
    ),
    own AS (
        SELECT family, run_id, run_name, params, tokens, unique_tokens, flops, flops_derived, loss
        FROM chosen WHERE ?::VARCHAR IS NULL OR loss_name = ?
    ),
    extra AS (
        SELECT r.family, r.run_id, r.run_name, r.params, coalesce(p.tokens, r.tokens) AS tokens, r.unique_tokens,
               CASE WHEN p.tokens IS NULL OR p.tokens = r.tokens THEN r.flops ELSE 6 * r.params * p.tokens END AS flops,
               CASE WHEN p.tokens IS NULL OR p.tokens = r.tokens THEN r.flops_derived ELSE TRUE END AS flops_derived,
               p.loss
        FROM chosen r JOIN run_points p ON p.run_id = r.run_id AND p.loss_name = ?
        WHERE r.loss_name <> p.loss_name
        QUALIFY row_number() OVER (PARTITION BY r.run_id ORDER BY p.step DESC NULLS FIRST) = 1
    )
    SELECT * FROM own UNION ALL SELECT * FROM extra
    ORDER BY family, run_id
"""

# Every checkpoint of the fitted loss (the settings' loss, else each run's own).
_FIT_CHECKPOINTS = """
    SELECT r.family, r.run_id, r.run_name, r.params, p.tokens, r.unique_tokens, 6 * r.params * p.tokens AS flops,
           TRUE AS flops_derived, p.loss
    FROM runs r JOIN run_points p ON p.run_id = r.run_id AND p.loss_name = coalesce(?::VARCHAR, r.loss_name)
    WHERE r.family IN (SELECT unnest(?::VARCHAR[])) AND NOT list_has_any(r.flags, ?::VARCHAR[]) AND p.step > 0
    ORDER BY r.family, r.run_id, p.step
"""
_COUNTS = """
    SELECT family, count(*) FROM runs WHERE family IN (SELECT unnest(?::VARCHAR[])) AND NOT list_has_any(flags, ?::VARCHAR[])
    GROUP BY family
"""
#: With fewer distinct final token counts than this, final values cannot separate the data term
#: from the irreducible loss (every Gemstones run ends at the same D), so checkpoints are fitted.
MIN_DISTINCT_FINAL_TOKENS = 3
#: A family has training curves (for Approach 1) when at least this many runs have several points.
MIN_CURVES = 3


@dataclass(frozen=True)
class Observations:
    """What a family's fits are made on, as its settings choose, and what was left out.

    Attributes:
        runs: the fitted observations, one per run (its final point) or every checkpoint
            (column ``checkpoint`` says which).
        curves: every checkpoint of the fitted loss (for Approach 1), or None when fewer than
            :data:`MIN_CURVES` runs have a curve.
        fitted_on: "final values" or "checkpoints".
        loss_name: the loss fitted (None: each run's own).
        excluded: the runs the settings leave out that the family has, with the reasons.
        missing_exclusions: runs the settings exclude that the family does not have (misspelt?).
        without_loss: runs left out because they have no value of ``loss_name``.
    """

    runs: pl.DataFrame
    curves: pl.DataFrame | None
    fitted_on: str
    loss_name: str | None = None
    excluded: tuple[Exclusion, ...] = ()
    missing_exclusions: tuple[str, ...] = ()
    without_loss: int = 0

    def diagnostics(self) -> dict:
        """How the observations were chosen, for every fit's diagnostics."""
        return {
            "fitted_on": self.fitted_on,
            "loss_name": self.loss_name,
            "excluded_runs": [{"run": e.run, "reason": e.reason} for e in self.excluded],
            "exclusions_not_found": list(self.missing_exclusions),
            "runs_without_the_loss": self.without_loss,
        }


def _has_curves(points: pl.DataFrame) -> bool:
    per_run = points.group_by("run_id").len()
    return int((per_run.get_column("len") >= 2).sum()) >= MIN_CURVES


def family_observations(con: duckdb.DuckDBPyConnection, settings: FamilySettings) -> Observations:
    """The observations a fit of ``settings.family`` uses, in a stable order, chosen by its settings.

    ``fit_on = "auto"`` fits final values unless the runs' final points all sit at (nearly) one token
    count while the runs have curves; then each checkpoint of the fitted loss is an observation.
    """
    return families_observations(con, [settings])[settings.family]


def families_observations(con: duckdb.DuckDBPyConnection, settings: list[FamilySettings]) -> dict[str, Observations]:
    """:func:`family_observations` of many families, read together: two scans of the run points per loss
    name the families fit, rather than two per family."""
    flags = list(EXCLUDED_FLAGS)
    found: dict[str, Observations] = {}
    by_loss: dict[str | None, list[FamilySettings]] = {}
    for declared in settings:
        by_loss.setdefault(declared.loss_name, []).append(declared)
    for loss, group in by_loss.items():
        names = [declared.family for declared in group]
        every = split_by_family(con.execute(_FIT_RUNS, [names, flags, loss, loss, loss]).pl(), names)
        points = split_by_family(con.execute(_FIT_CHECKPOINTS, [loss, names, flags]).pl(), names)
        totals = dict(con.execute(_COUNTS, [names, flags]).fetchall()) if loss is not None else {}
        for declared in group:
            family = declared.family
            found[family] = _observations(declared, every[family], points[family], int(totals.get(family, 0)))
    return found


def split_by_family(frame: pl.DataFrame, families: list[str]) -> dict[str, pl.DataFrame]:
    """``frame`` split by its ``family`` column (dropped), in its order; an empty frame for a family without rows."""
    parts = {key[0]: part.drop("family") for key, part in frame.partition_by("family", as_dict=True, maintain_order=True).items()}
    empty = frame.drop("family").clear()
    return {family: parts.get(family, empty) for family in families}


def _observations(settings: FamilySettings, every: pl.DataFrame, points: pl.DataFrame, total: int) -> Observations:
    """One family's observations from its rows (``total``: its runs, for those without the fitted loss)."""
    loss = settings.loss_name
    names = settings.excluded_runs
    runs = every.filter(~pl.col("run_name").is_in(list(names)))
    points = points.filter(~pl.col("run_name").is_in(list(names)))
    present = set(every.get_column("run_name").to_list())
    excluded = tuple(e for e in sorted(settings.exclude, key=lambda e: e.run) if e.run in present)
    missing = tuple(sorted(names - present))
    without_loss = total - every.height if loss is not None else 0
    curves = points if points.height > runs.height and _has_curves(points) else None
    distinct_tokens = runs.get_column("tokens").round_sig_figs(3).n_unique() if runs.height else 0
    wanted = {"final": False, "checkpoints": True, "auto": bool(runs.height) and distinct_tokens < MIN_DISTINCT_FINAL_TOKENS}
    on_checkpoints = wanted[settings.fit_on] and curves is not None
    chosen = (curves if on_checkpoints else runs).with_columns(pl.lit(on_checkpoints).alias("checkpoint"))
    return Observations(
        runs=chosen, curves=curves, fitted_on="checkpoints" if on_checkpoints else "final values", loss_name=loss,
        excluded=excluded, missing_exclusions=missing, without_loss=without_loss,
    )


def family_runs(con: duckdb.DuckDBPyConnection, family: str, settings: FamilySettings | None = None) -> pl.DataFrame:
    """The exact observations a fit of ``family`` uses (see :func:`family_observations`; default settings)."""
    return family_observations(con, settings or FamilySettings(family=family)).runs


def data_version(runs: pl.DataFrame) -> str:
    """A hash of the fitted runs' identities and values: equal hashes mean equal fits."""
    digest = hashlib.sha256()
    for row in runs.select("run_id", "params", "tokens", "unique_tokens", "flops", "loss").iter_rows():
        digest.update(repr(row).encode())
    return digest.hexdigest()[:16]


def input_fingerprints(con: duckdb.DuckDBPyConnection, wanted: list[str] | None = None) -> dict[str, str]:
    """A cheap hash of every run and run point each family has (all of ``wanted``, or every family), in one query.

    Whatever subset a fit takes (its loss, exclusions, checkpoints), it is unchanged when this is, so the
    nightly refit skips such a family without reading its runs. Rows are unique, so an order-free
    aggregate (xor and sum of row hashes, with the counts) is enough.
    """
    rows = con.execute(
        """
        WITH r AS (
            SELECT family, count(*) AS n, bit_xor(h) AS x, sum(h::HUGEINT) AS s FROM (
                SELECT family, hash(run_id, run_name, params, tokens, unique_tokens, flops, flops_derived, loss,
                                    loss_name, flags) AS h
                FROM runs WHERE ?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], family)
            ) GROUP BY family
        ),
        p AS (
            SELECT r.family, count(*) AS n, bit_xor(hash(p.run_id, p.step, p.tokens, p.loss_name, p.loss)) AS x,
                   sum(hash(p.run_id, p.step, p.tokens, p.loss_name, p.loss)::HUGEINT) AS s
            FROM run_points p JOIN runs r USING (run_id)
            WHERE ?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], r.family)
            GROUP BY r.family
        )
        SELECT r.family, concat_ws('-', r.n, r.x, r.s, coalesce(p.n, 0), coalesce(p.x, 0), coalesce(p.s, 0))
        FROM r LEFT JOIN p USING (family)
        """,
        [wanted, wanted, wanted, wanted],
    ).fetchall()
    return {family: hashlib.sha256(text.encode()).hexdigest()[:16] for family, text in rows}


def latest_fits_state(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str, str, str | None, int]]]:
    """Per family, its newest fit of each law: ``(law, data_version, code_version, input fingerprint, n_runs)``."""
    rows = con.execute(
        """
        SELECT family, law, data_version, code_version, json_extract_string(diagnostics, '$.input_fingerprint'), n_runs
        FROM fits QUALIFY row_number() OVER (PARTITION BY family, law ORDER BY version DESC) = 1
        """
    ).fetchall()
    state: dict[str, list] = {}
    for family, *rest in rows:
        state.setdefault(family, []).append(tuple(rest))
    return state


def families(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [f for (f,) in con.execute("SELECT DISTINCT family FROM runs ORDER BY family").fetchall()]


def latest_refit(con: duckdb.DuckDBPyConnection, family: str) -> tuple | None:
    """(data_version, code_version) the family's newest refit saw, or None if it was never refit."""
    return one(
        con, "SELECT data_version, code_version FROM refits WHERE family = ? ORDER BY checked_at DESC LIMIT 1", [family]
    )


@dataclass(frozen=True)
class FitRecord:
    """One fit, ready to be stored: what was fitted, how it did, what a planner may read.

    ``samples`` are the bootstrap draws behind ``ci``; planners recompute allocation intervals
    at any budget from them. ``allocations`` carry each row's ``status`` and ``reason``;
    ``profiles`` are the profiles of the objective behind them (long, as ``fit_profiles``).
    """

    family: str
    law: str
    data_version: str
    code_version: str
    run_ids: list[str]
    status: str
    reason: str | None
    params: dict[str, float] = field(default_factory=dict)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    objective: float | None = None
    rmse_log: float | None = None
    extrapolation_error: float | None = None
    converged: bool | None = None
    bootstrap_resamples: int | None = None
    checks: list[dict] = field(default_factory=list)
    diagnostics: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    allocations: pl.DataFrame | None = None
    samples: Samples | None = None
    profiles: pl.DataFrame | None = None


def _json(value: object) -> str:
    def clean(v: object) -> object:
        if isinstance(v, float) and not np.isfinite(v):
            return None
        if isinstance(v, (np.floating, np.integer)):
            return clean(v.item())
        if isinstance(v, np.ndarray):
            return [clean(x) for x in v.tolist()]
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value))


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def record_unchanged(con: duckdb.DuckDBPyConnection, family: str, law: str, data_version: str, code_version: str) -> None:
    con.execute(
        "INSERT INTO refits VALUES (?, ?, ?, ?, ?, 'unchanged', NULL)",
        [datetime.now(timezone.utc), family, law, data_version, code_version],
    )


def latest_attempt(con: duckdb.DuckDBPyConnection, family: str, law: str) -> tuple | None:
    """(data_version, code_version, fit_id) of the newest fit of any status, or None."""
    return one(
        con,
        "SELECT data_version, code_version, fit_id FROM fits WHERE family = ? AND law = ? ORDER BY version DESC LIMIT 1",
        [family, law],
    )


def _insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Append ``frame`` to ``table`` by column name (registered by name on the connection, not found by
    variable name)."""
    with registered(con, new_rows=frame):
        con.execute(_INSERTS[table])


_INSERTS = {
    "fits": "INSERT INTO fits BY NAME SELECT * FROM new_rows",
    "coefficients": "INSERT INTO coefficients BY NAME SELECT * FROM new_rows",
    "allocations": "INSERT INTO allocations BY NAME SELECT * FROM new_rows",
    "fit_profiles": "INSERT INTO fit_profiles BY NAME SELECT * FROM new_rows",
    "bootstrap_samples": "INSERT INTO bootstrap_samples BY NAME SELECT * FROM new_rows",
    "refits": "INSERT INTO refits BY NAME SELECT * FROM new_rows",
}


def store_fits(
    con: duckdb.DuckDBPyConnection, records: list[FitRecord], family_settings: FamilySettings | None = None
) -> list[str]:
    """Append the fits of one family in one transaction (see :func:`store_records`); returns their fit ids.

    The family is claimed first, so concurrent writers on DuckLake number its versions one after another."""
    with claimed(con, *sorted({f"family:{r.family}" for r in records})), transaction(con):
        return store_records(con, records, family_settings)


def store_records(
    con: duckdb.DuckDBPyConnection, records: list[FitRecord], family_settings: FamilySettings | None = None
) -> list[str]:
    """Append the fits of one family (with the family's settings, when they are a version the table does not
    hold yet); returns their fit ids. The caller chooses the transaction (a batch stores many families in one)."""
    return store_many_records(con, [(records, family_settings)])[0]


_FIT_COLUMNS = {
    "fit_id": pl.String, "family": pl.String, "law": pl.String, "version": pl.Int32, "data_version": pl.String,
    "code_version": pl.String, "fitted_at": pl.Datetime("us", "UTC"), "n_runs": pl.Int32, "run_ids": pl.List(pl.String),
    "objective": pl.Float64, "rmse_log": pl.Float64, "extrapolation_error": pl.Float64, "converged": pl.Boolean,
    "bootstrap_resamples": pl.Int32, "status": pl.String, "reason": pl.String, "checks": pl.String,
    "diagnostics": pl.String, "options": pl.String,
}
_COEFFICIENT_COLUMNS = {"fit_id": pl.String, "family": pl.String, "law": pl.String, "version": pl.Int32, "name": pl.String,
                        "value": pl.Float64, "ci_lo": pl.Float64, "ci_hi": pl.Float64}
_SAMPLE_COLUMNS = {"fit_id": pl.String, "param_names": pl.List(pl.String), "samples": pl.List(pl.List(pl.Float64))}
_REFIT_COLUMNS = {"checked_at": pl.Datetime("us", "UTC"), "family": pl.String, "law": pl.String, "data_version": pl.String,
                  "code_version": pl.String, "outcome": pl.String, "fit_id": pl.String}


def _next_versions(con: duckdb.DuckDBPyConnection, records: list[FitRecord]) -> list[int]:
    """Each record's version: one past the newest of its family and law (and past an earlier record of the same)."""
    wanted = pl.DataFrame({"family": [r.family for r in records], "law": [r.law for r in records]}).unique()
    with registered(con, wanted=wanted):
        newest = {(family, law): version for family, law, version in con.execute(
            "SELECT w.family, w.law, coalesce(max(f.version), 0) FROM wanted w "
            "LEFT JOIN fits f ON f.family = w.family AND f.law = w.law GROUP BY w.family, w.law"
        ).fetchall()}
    versions = []
    for record in records:
        newest[(record.family, record.law)] += 1
        versions.append(newest[(record.family, record.law)])
    return versions


def store_many_records(
    con: duckdb.DuckDBPyConnection, batch: list[tuple[list[FitRecord], FamilySettings | None]]
) -> list[list[str]]:
    """:func:`store_records` for many families at once: one statement per table for all of them (a statement
    per fit and table cost a refit of a thousand families more than a minute). Returns each family's fit ids."""
    declared = [settings for _, settings in batch if settings is not None]
    if declared:
        record_family_settings(con, declared)
    records = [record for family_records, _ in batch for record in family_records]
    if not records:
        return [[] for _ in batch]
    now = datetime.now(timezone.utc)
    versions = _next_versions(con, records)
    fit_ids = [f"{r.family}/{r.law}/v{v}" for r, v in zip(records, versions)]
    fits = pl.DataFrame([
        {"fit_id": fit_id, "family": r.family, "law": r.law, "version": version, "data_version": r.data_version,
         "code_version": r.code_version, "fitted_at": now, "n_runs": len(r.run_ids), "run_ids": list(r.run_ids),
         "objective": _finite(r.objective), "rmse_log": _finite(r.rmse_log), "extrapolation_error": _finite(r.extrapolation_error),
         "converged": r.converged, "bootstrap_resamples": r.bootstrap_resamples, "status": r.status, "reason": r.reason,
         "checks": _json(r.checks), "diagnostics": _json(r.diagnostics), "options": _json(r.options)}
        for r, version, fit_id in zip(records, versions, fit_ids)
    ], schema=_FIT_COLUMNS)
    coefficients = pl.DataFrame([
        {"fit_id": fit_id, "family": r.family, "law": r.law, "version": version, "name": name, "value": _finite(value),
         "ci_lo": _finite(r.ci.get(name, (None, None))[0]), "ci_hi": _finite(r.ci.get(name, (None, None))[1])}
        for r, version, fit_id in zip(records, versions, fit_ids) for name, value in r.params.items()
    ], schema=_COEFFICIENT_COLUMNS)
    allocations = [r.allocations.with_columns(pl.lit(fit_id).alias("fit_id"), pl.lit(r.family).alias("family"),
                                              pl.lit(r.law).alias("law"), pl.lit(version).alias("version"))
                   for r, version, fit_id in zip(records, versions, fit_ids) if r.allocations is not None and r.allocations.height]
    profiles = [r.profiles.with_columns(pl.lit(fit_id).alias("fit_id"))
                for r, fit_id in zip(records, fit_ids) if r.profiles is not None and r.profiles.height]
    samples = pl.DataFrame([
        {"fit_id": fit_id, "param_names": list(r.samples.names),
         "samples": np.where(np.isfinite(r.samples.values), r.samples.values, np.nan).tolist()}
        for r, fit_id in zip(records, fit_ids) if r.samples is not None
    ], schema=_SAMPLE_COLUMNS)
    refits = pl.DataFrame([
        {"checked_at": now, "family": r.family, "law": r.law, "data_version": r.data_version, "code_version": r.code_version,
         "outcome": "fitted", "fit_id": fit_id} for r, fit_id in zip(records, fit_ids)
    ], schema=_REFIT_COLUMNS)
    tables = {"fits": fits, "coefficients": coefficients, "bootstrap_samples": samples, "refits": refits,
              "allocations": pl.concat(allocations, how="diagonal_relaxed") if allocations else None,
              "fit_profiles": pl.concat(profiles, how="diagonal_relaxed") if profiles else None}
    for table, frame in tables.items():
        if frame is not None and frame.height:
            _insert_frame(con, table, frame)
    in_order = iter(fit_ids)
    return [[next(in_order) for _ in family_records] for family_records, _ in batch]
