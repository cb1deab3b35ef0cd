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
from registry.db import one, transaction


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

_FIT_RUNS = """
    SELECT run_id, params, tokens, unique_tokens, flops, flops_derived, loss
    FROM runs
    WHERE family = ? AND NOT list_has_any(flags, ?::VARCHAR[])
    ORDER BY run_id
"""


_FIT_CHECKPOINTS = """
    SELECT r.run_id, r.params, p.tokens, r.unique_tokens, 6 * r.params * p.tokens AS flops, TRUE AS flops_derived, p.loss
    FROM runs r JOIN run_points p ON p.run_id = r.run_id AND p.loss_name = r.loss_name
    WHERE r.family = ? AND NOT list_has_any(r.flags, ?::VARCHAR[]) AND p.step > 0
    ORDER BY r.run_id, p.step
"""
#: With fewer distinct final token counts than this, final values cannot separate the data term
#: from the irreducible loss (every Gemstones run ends at the same D), so checkpoints are fitted.
MIN_DISTINCT_FINAL_TOKENS = 3


def family_runs(con: duckdb.DuckDBPyConnection, family: str) -> pl.DataFrame:
    """The exact observations a fit of ``family`` uses, in a stable order.

    Normally one per run (its final point). When the runs' final points all sit at (nearly) one
    token count but the runs have curves, each checkpoint of the fitted loss is an observation
    (column ``checkpoint`` tells which was done).
    """
    runs = con.sql(_FIT_RUNS, params=[family, list(EXCLUDED_FLAGS)]).pl()
    distinct_tokens = runs.get_column("tokens").round_sig_figs(3).n_unique() if runs.height else 0
    if runs.height and distinct_tokens < MIN_DISTINCT_FINAL_TOKENS:
        points = con.sql(_FIT_CHECKPOINTS, params=[family, list(EXCLUDED_FLAGS)]).pl()
        if points.height > runs.height:
            return points.with_columns(pl.lit(True).alias("checkpoint"))
    return runs.with_columns(pl.lit(False).alias("checkpoint"))


def data_version(runs: pl.DataFrame) -> str:
    """A hash of the fitted runs' identities and values: equal hashes mean equal fits."""
    digest = hashlib.sha256()
    for row in runs.select("run_id", "params", "tokens", "unique_tokens", "flops", "loss").iter_rows():
        digest.update(repr(row).encode())
    return digest.hexdigest()[:16]


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
    at any budget from them.
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


def store_fits(con: duckdb.DuckDBPyConnection, records: list[FitRecord]) -> list[str]:
    """Append the fits of one family in one transaction; returns their fit ids."""
    fit_ids = []
    now = datetime.now(timezone.utc)
    with transaction(con):
        for record in records:
            (version,) = one(
                con, "SELECT coalesce(max(version), 0) + 1 FROM fits WHERE family = ? AND law = ?", [record.family, record.law]
            )
            fit_id = f"{record.family}/{record.law}/v{version}"
            con.execute(
                """
                INSERT INTO fits (fit_id, family, law, version, data_version, code_version, fitted_at, n_runs, run_ids,
                                  objective, rmse_log, extrapolation_error, converged, bootstrap_resamples, status, reason,
                                  checks, diagnostics, options)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    fit_id, record.family, record.law, version, record.data_version, record.code_version, now,
                    len(record.run_ids), record.run_ids, _finite(record.objective), _finite(record.rmse_log),
                    _finite(record.extrapolation_error), record.converged, record.bootstrap_resamples, record.status,
                    record.reason, _json(record.checks), _json(record.diagnostics), _json(record.options),
                ],
            )
            if record.params:
                coefficient_rows = [
                    [fit_id, record.family, record.law, version, name, _finite(value),
                     _finite(record.ci.get(name, (None, None))[0]), _finite(record.ci.get(name, (None, None))[1])]
                    for name, value in record.params.items()
                ]
                con.executemany("INSERT INTO coefficients VALUES (?, ?, ?, ?, ?, ?, ?, ?)", coefficient_rows)
            if record.allocations is not None and record.allocations.height:
                frame = record.allocations.with_columns(
                    pl.lit(fit_id).alias("fit_id"), pl.lit(record.family).alias("family"),
                    pl.lit(record.law).alias("law"), pl.lit(version).alias("version"),
                )
                con.register("new_allocations", frame)  # named on the connection, not found by variable name
                try:
                    con.execute("INSERT INTO allocations BY NAME SELECT * FROM new_allocations")
                finally:
                    con.unregister("new_allocations")
            if record.samples is not None:
                con.execute(
                    "INSERT INTO bootstrap_samples VALUES (?, ?, ?)",
                    [fit_id, list(record.samples.names), np.where(np.isfinite(record.samples.values), record.samples.values, np.nan).tolist()],
                )
            con.execute(
                "INSERT INTO refits VALUES (?, ?, ?, ?, ?, 'fitted', ?)",
                [now, record.family, record.law, record.data_version, record.code_version, fit_id],
            )
            fit_ids.append(fit_id)
    return fit_ids
