"""The read API for planning tools: latest coefficients, allocations at any budget, history.

Returns plain dicts in the documented JSON contract (README, "For planning tools"), or polars
frames; never imports Dagster, never writes. Every answer carries its verdict: a coefficient record
the loss law's status, an allocation the allocation's status (``trusted``, ``extrapolated``,
``unidentified``, ``approaches_disagree``) and the reason, so no planner reads a number without it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime

import duckdb
import numpy as np
import polars as pl

from laws.catalog import get_law
from laws.intervals import ALLOCATION_FIELDS, DEFAULT_LEVEL, Samples
from laws.joint import base_law_name
from laws.trust import PRECEDENCE
from registry.coefficients_read import LossLawStatus, coefficient_query, coefficients, loss_law_statuses

__all__ = ["LossLawStatus", "coefficients", "loss_law_statuses"]  # the planners' API, kept light in coefficients_read

#: The one allocation status a planner may act on without reading the reason.
TRUSTED = "trusted"
#: The status of an allocation no stored verdict stands behind: coefficients given by hand
#: (``scalereg allocate --params``), or a fit stored before allocation verdicts existed.
UNVERIFIED = "unverified"

def coefficient_rows(
    con: duckdb.DuckDBPyConnection, family: str | None = None, law: str | None = None, as_of: datetime | str | None = None
) -> pl.DataFrame:
    """Long table: one row per (family, law, parameter) of the newest published fit (at ``as_of``)."""
    query, params = coefficient_query(family, law, as_of)
    return con.sql(query, params=params).pl()  # DuckDB takes params by keyword only


class NoPublishedFit(LookupError):
    """The family has no published fit of the law (never fitted, or every fit held or failed)."""


def _severity(status: str) -> int:
    """Position in the precedence of statuses, most serious first; an unknown status counts as most serious."""
    return PRECEDENCE.index(status) if status in PRECEDENCE else -1


def _less_trusted(*verdicts: tuple[str, str | None]) -> tuple[str, str | None]:
    return min(verdicts, key=lambda verdict: _severity(verdict[0]))


def allocation_verdict(con: duckdb.DuckDBPyConnection, fit_id: str, compute: float) -> tuple[str, str | None]:
    """The stored verdict ``(status, reason)`` on a fit's allocation at ``compute`` FLOPs.

    Verdicts are stored on the budget grid. At a grid budget the answer is the stored one; between
    two, the less trusted of the two neighbours (what is unidentified or extrapolated at the next
    budget is not vouched for just below it); outside the grid, at best ``extrapolated``, since
    nothing was checked there.
    """
    rows = con.execute(
        "SELECT compute, status, reason FROM allocations WHERE fit_id = ? AND inference_tokens = 0 AND status IS NOT NULL "
        "ORDER BY compute",
        [fit_id],
    ).fetchall()
    if not rows:
        return UNVERIFIED, "this fit was stored without an allocation verdict; refit the family ('scalereg refit --family F')"
    budgets = np.array([row[0] for row in rows])
    verdicts = [(row[1], row[2]) for row in rows]
    exact = np.flatnonzero(np.isclose(budgets, compute, rtol=1e-9, atol=0))
    if exact.size:
        return verdicts[exact[0]]
    above = int(np.searchsorted(budgets, compute))
    if 0 < above < budgets.size:
        status, reason = _less_trusted(verdicts[above - 1], verdicts[above])
        if status == TRUSTED:
            return status, reason
        return status, f"between the checked budgets {budgets[above - 1]:.2g} and {budgets[above]:.2g} FLOPs: {reason}"
    nearest = verdicts[0] if above == 0 else verdicts[-1]
    outside = (
        f"{compute:.2g} FLOPs lies outside the budgets whose allocation was checked "
        f"({budgets[0]:.2g}-{budgets[-1]:.2g} FLOPs); plan within them"
    )
    status, reason = _less_trusted(nearest, ("extrapolated", None))
    return status, outside + (f"; at {budgets[0 if above == 0 else -1]:.2g} FLOPs: {reason}" if reason else "")


def _not_published(con: duckdb.DuckDBPyConnection, family: str, law: str) -> NoPublishedFit:
    """Why there is nothing to serve: the newest fit's verdict when there is one."""
    advice = f"run 'scalereg refit --family {family}'"
    newest = loss_law_statuses(con, family, law)
    if newest:
        (fit,) = newest
        return NoPublishedFit(f"no published {law} fit for family {family!r}: its newest fit, v{fit.version}, was "
                              f"{fit.status}: {fit.reason}")
    return NoPublishedFit(f"no published {law} fit for family {family!r}; {advice}")


def allocate(
    con: duckdb.DuckDBPyConnection, family: str, compute: float, inference_tokens: float | None = None,
    law: str = "chinchilla", level: float = DEFAULT_LEVEL,
) -> dict:
    """Compute-optimal N and D for a budget from the latest published fit, with bootstrap intervals.

    With ``inference_tokens`` the answer is inference-aware (Sardana et al.): the model reaching the
    loss this budget buys at the least training-plus-inference cost. ``level`` is the coverage of the
    intervals (the refits' default unless the caller asks for another). ``status`` and ``reason``
    are the allocation's verdict at ``compute`` (:func:`allocation_verdict`); an inference-aware
    answer rests on the law's allocation at ``compute`` (its target loss), so it carries that verdict.
    """
    found = con.sql(
        "SELECT f.fit_id, f.version, s.param_names, s.samples FROM fits_published f "
        "LEFT JOIN bootstrap_samples s USING (fit_id) WHERE f.family = ? AND f.law = ?",
        params=[family, law],
    ).fetchall()
    if not found:
        raise _not_published(con, family, law)
    spec = get_law(base_law_name(law))  # the law (a group's joint fit: its base law) says how it allocates
    fit_id, version, names, samples = found[0]
    params = {n: v for n, v in con.execute("SELECT name, value FROM coefficients WHERE fit_id = ?", [fit_id]).fetchall()}
    # the law's own parameters; stored derived values (the exponents a, b of a Chinchilla fit) are left out
    law_params = {k: params[k] for k in spec.param_names}
    point = spec.allocate(law_params, compute)
    result = {"family": family, "law": law, "version": version, "compute": float(compute)}
    draws = Samples(tuple(names), np.asarray(samples, float)) if samples else None
    if inference_tokens:
        flops = inference_flops(spec, law_params, compute, inference_tokens)
        chosen = {k: flops[k] for k in ALLOCATION_FIELDS}
        result |= {"inference_tokens": float(inference_tokens), "target_loss": float(point.predicted_loss)}
        result |= {k: flops[k] for k in ("training_flops", "inference_flops", "total_flops")}
        ci = _inference_intervals(spec, draws, compute, inference_tokens, level) if draws is not None else {}
    else:
        chosen = {k: float(getattr(point, k)) for k in ALLOCATION_FIELDS}
        ci = {}
        if draws is not None:
            with warnings.catch_warnings():  # a law whose draws all failed has no interval (NaN), not a warning
                warnings.simplefilter("ignore", RuntimeWarning)
                spread = draws.allocation_interval(spec, compute, level)
            ci = {key: [float(lo), float(hi)] for key, (lo, hi) in spread.items() if np.isfinite(lo) and np.isfinite(hi)}
    status, reason = allocation_verdict(con, fit_id, float(compute))
    if inference_tokens and reason:
        reason = f"the inference-aware answer targets the loss of the allocation at {compute:.2g} FLOPs: {reason}"
    return result | chosen | {"status": status, "reason": reason, "ci": ci}


#: FLOPs per parameter and token of a forward pass (serving) and of training, for a dense transformer.
SERVE_FLOPS_PER_PARAM_TOKEN = 2.0
TRAIN_FLOPS_PER_PARAM_TOKEN = 6.0


def inference_flops(spec, params: dict[str, float], compute: float, inference_tokens: float) -> dict[str, float]:
    """The inference-aware model for the loss ``compute`` buys, serving ``inference_tokens``: its N, D, D/N,
    loss, and its training, inference and total FLOPs (training may exceed ``compute``: a smaller model
    trained longer reaches the same loss and is cheaper to serve)."""
    target = spec.allocate(params, compute).predicted_loss
    aware = spec.allocate_inference_aware(params, target, inference_tokens)
    out = {k: float(getattr(aware, k)) for k in ALLOCATION_FIELDS}
    training = TRAIN_FLOPS_PER_PARAM_TOKEN * out["n_opt"] * out["d_opt"]
    serving = SERVE_FLOPS_PER_PARAM_TOKEN * out["n_opt"] * float(inference_tokens)
    return out | {"training_flops": training, "inference_flops": serving, "total_flops": training + serving}


#: Draws an inference-aware interval is computed from (each solves its own bisection).
MAX_INFERENCE_DRAWS = 250


def _inference_intervals(spec, draws: Samples, compute: float, inference_tokens: float, level: float) -> dict[str, list[float]]:
    """Percentile intervals of the inference-aware answer over the bootstrap draws (each draw its own target)."""
    answers = []
    for row in draws.values[:: max(1, len(draws.values) // MAX_INFERENCE_DRAWS)]:
        if not np.all(np.isfinite(row)):
            continue
        try:
            answers.append(inference_flops(spec, dict(zip(draws.names, map(float, row))), compute, inference_tokens))
        except (ValueError, FloatingPointError):
            continue  # a draw whose target the law cannot reach adds nothing
    if len(answers) < 2:
        return {}
    lo_q, hi_q = 50 * (1 - level), 50 * (1 + level)
    return {k: [float(np.percentile([a[k] for a in answers], lo_q)), float(np.percentile([a[k] for a in answers], hi_q))]
            for k in answers[0]}


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
    """The newest published allocation table per family and law, each row with its status and reason."""
    query = "SELECT * EXCLUDE (fit_id) FROM allocations_latest"
    if family is None:
        return con.sql(query + " ORDER BY family, inference_tokens, compute").pl()
    return con.sql(query + " WHERE family = ? ORDER BY inference_tokens, compute", params=[family]).pl()


def allocation_statuses(con: duckdb.DuckDBPyConnection, fit_id: str, budgets: Sequence[float]) -> pl.DataFrame:
    """A fit's stored allocation at ``budgets`` (those on its grid): tokens per parameter, status and reason."""
    return con.sql(
        "SELECT compute, tokens_per_param, status, reason FROM allocations "
        "WHERE fit_id = ? AND inference_tokens = 0 AND list_contains(?::DOUBLE[], compute) ORDER BY compute",
        params=[fit_id, [float(b) for b in budgets]],
    ).pl()


def fit_profiles(con: duckdb.DuckDBPyConnection, fit_id: str) -> pl.DataFrame:
    """The stored profiles of a fit (long: parameter, value, objective, relative excess, budget, tokens/param)."""
    return con.sql(
        "SELECT parameter, value, objective, relative_excess, compute, tokens_per_param FROM fit_profiles "
        "WHERE fit_id = ? ORDER BY parameter, compute, value",
        params=[fit_id],
    ).pl()
