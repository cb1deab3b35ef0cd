"""The read API for planning tools: latest coefficients, allocations at any budget, history.

Returns plain dicts in the documented JSON contract (README, "For planning tools"), or polars
frames; never imports Dagster, never writes.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import polars as pl

from laws.catalog import get_law
from laws.intervals import ALLOCATION_FIELDS, DEFAULT_LEVEL, Samples

_COEFFICIENT_SOURCES = {
    "latest": "SELECT * FROM coefficients_latest",
    "as_of": "SELECT * FROM coefficients_as_of(?::TIMESTAMPTZ)",
}
_COEFFICIENT_FILTER = " WHERE (?::VARCHAR IS NULL OR family = ?) AND (?::VARCHAR IS NULL OR law = ?) ORDER BY family, law, name"


def coefficient_rows(
    con: duckdb.DuckDBPyConnection, family: str | None = None, law: str | None = None, as_of: datetime | str | None = None
) -> pl.DataFrame:
    """Long table: one row per (family, law, parameter) of the newest published fit (at ``as_of``)."""
    query = _COEFFICIENT_SOURCES["as_of" if as_of is not None else "latest"]
    # the filters are parameters too: a missing family or law matches every row
    params = ([str(as_of)] if as_of is not None else []) + [family, family, law, law]
    return con.sql(query + _COEFFICIENT_FILTER, params=params).pl()


def coefficients(
    con: duckdb.DuckDBPyConnection, family: str | None = None, law: str | None = None, as_of: datetime | str | None = None
) -> list[dict]:
    """The JSON contract: ``[{family, law, version, fitted_at, data_version, n_runs, params, ci}]``."""
    rows = coefficient_rows(con, family, law, as_of)
    out: dict[tuple[str, str], dict] = {}
    for row in rows.iter_rows(named=True):
        key = (row["family"], row["law"])
        entry = out.setdefault(
            key,
            {
                "family": row["family"], "law": row["law"], "version": row["version"],
                "fitted_at": row["fitted_at"].isoformat(), "data_version": row["data_version"],
                "n_runs": row["n_runs"], "params": {}, "ci": {},
            },
        )
        entry["params"][row["name"]] = row["value"]
        if row["ci_lo"] is not None and row["ci_hi"] is not None:
            entry["ci"][row["name"]] = [row["ci_lo"], row["ci_hi"]]
    return list(out.values())


class NoPublishedFit(LookupError):
    pass


def allocate(
    con: duckdb.DuckDBPyConnection, family: str, compute: float, inference_tokens: float | None = None,
    law: str = "chinchilla", level: float = DEFAULT_LEVEL,
) -> dict:
    """Compute-optimal N and D for a budget from the latest published fit, with bootstrap intervals.

    With ``inference_tokens`` the answer is inference-aware (Sardana et al.): the model reaching the
    loss this budget buys at the least training-plus-inference cost. ``level`` is the coverage of the
    intervals (the refits' default unless the caller asks for another).
    """
    found = con.sql(
        "SELECT f.fit_id, f.version, s.param_names, s.samples FROM fits_published f "
        "LEFT JOIN bootstrap_samples s USING (fit_id) WHERE f.family = ? AND f.law = ?",
        params=[family, law],
    ).fetchall()
    if not found:
        raise NoPublishedFit(f"no published {law} fit for family {family!r}; run 'scalereg refit --family {family}'")
    spec = get_law(law)  # the law says whether it has an (inference-aware) allocation rule
    fit_id, version, names, samples = found[0]
    params = {n: v for n, v in con.execute("SELECT name, value FROM coefficients WHERE fit_id = ?", [fit_id]).fetchall()}
    # the law's own parameters; stored derived values (the exponents a, b of a Chinchilla fit) are left out
    law_params = {k: params[k] for k in spec.param_names}
    point = spec.allocate(law_params, compute)
    result = {"family": family, "law": law, "version": version, "compute": float(compute)}
    ci: dict[str, list[float]] = {}
    if inference_tokens:
        aware = spec.allocate_inference_aware(law_params, point.predicted_loss, inference_tokens)
        chosen = {k: float(getattr(aware, k)) for k in ALLOCATION_FIELDS}
        result |= {"inference_tokens": float(inference_tokens), "training_compute": float(aware.compute)}
    else:
        chosen = {k: float(getattr(point, k)) for k in ALLOCATION_FIELDS}
        if samples:
            spread = Samples(tuple(names), np.asarray(samples, float)).allocation_interval(spec, compute, level)
            ci = {key: [float(lo), float(hi)] for key, (lo, hi) in spread.items()}
    return result | chosen | {"ci": ci}


def history(con: duckdb.DuckDBPyConnection, family: str) -> list[dict]:
    """Every fit of a family, newest first, with what changed since the previous version of its law."""
    fits = con.sql(
        "SELECT fit_id, law, version, fitted_at, status, reason, data_version, code_version, n_runs, run_ids "
        "FROM fits WHERE family = ? ORDER BY law, version",
        params=[family],
    ).pl()
    coefficients_by_fit: dict[str, dict[str, float]] = {}
    for fit_id, name, value in con.execute(
        "SELECT fit_id, name, value FROM coefficients WHERE family = ?", [family]
    ).fetchall():
        coefficients_by_fit.setdefault(fit_id, {})[name] = value
    entries, previous = [], {}
    for row in fits.iter_rows(named=True):
        before = previous.get(row["law"])
        params = coefficients_by_fit.get(row["fit_id"], {})
        change: dict = {}
        if before is not None:
            old_params = coefficients_by_fit.get(before["fit_id"], {})
            change["coefficients"] = {
                k: {"from": old_params[k], "to": v, "relative": (v - old_params[k]) / abs(old_params[k]) if old_params[k] else None}
                for k, v in params.items() if k in old_params and old_params[k] is not None and v is not None
            }
            change["runs_added"] = len(set(row["run_ids"]) - set(before["run_ids"]))
            change["runs_removed"] = len(set(before["run_ids"]) - set(row["run_ids"]))
            change["code_changed"] = row["code_version"] != before["code_version"]
        entries.append(
            {k: row[k] for k in ("law", "version", "status", "reason", "data_version", "code_version", "n_runs")}
            | {"fitted_at": row["fitted_at"].isoformat(), "params": params, "changes": change}
        )
        previous[row["law"]] = row
    return sorted(entries, key=lambda e: e["fitted_at"], reverse=True)


def allocations_latest(con: duckdb.DuckDBPyConnection, family: str | None = None) -> pl.DataFrame:
    query = "SELECT * EXCLUDE (fit_id) FROM allocations_latest"
    if family is None:
        return con.sql(query + " ORDER BY family, inference_tokens, compute").pl()
    return con.sql(query + " WHERE family = ? ORDER BY inference_tokens, compute", params=[family]).pl()
