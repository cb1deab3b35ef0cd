"""Refitting one family: which laws its runs support, fit with uncertainty, gate, store.

Fitting happens outside any registry connection (it can take seconds); the registry is opened
only to read the runs and, at the end, to append the results in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace

import duckdb
import numpy as np
import polars as pl

from laws import allocation
from laws.bootstrap import BootstrapResult, bootstrap
from laws.catalog import LAWS
from registry.fit_store import (
    FitRecord,
    data_version,
    families,
    family_runs,
    latest_refit,
    latest_attempt,
    laws_code_version,
    record_unchanged,
    store_fits,
)
from registry.gates import Gate, chinchilla_gates, law_gates, verdict
from registry.published import FAMILY_FIT_OPTIONS
from registry.settings import FitSettings

OpenWriter = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

#: Budgets of the allocation table: 1e18 to 1e27 FLOPs, every half decade.
BUDGETS = 10.0 ** np.arange(18.0, 27.01, 0.5)
#: Inference demand of the inference-aware rows, and the budgets whose loss they target.
INFERENCE_TOKENS = (1e9, 1e10, 1e11, 1e12, 1e13)
INFERENCE_BUDGETS = 10.0 ** np.arange(20.0, 26.01, 1.0)
#: IsoFLOP groups: runs whose compute agrees to three significant digits share a budget.
MIN_RUNS_PER_BUDGET = 3
MIN_BUDGETS = 3


@dataclass
class LawFit:
    """A stored fit plus what the UI needs to draw it (not stored)."""

    record: FitRecord
    boot: BootstrapResult | None = None
    gates: list[Gate] = field(default_factory=list)


@dataclass
class FamilyRefit:
    family: str
    data_version: str
    code_version: str
    n_runs: int
    fitted: list[LawFit] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    fit_ids: list[str] = field(default_factory=list)
    runs: pl.DataFrame | None = None


def budgets_of(flops: np.ndarray) -> np.ndarray:
    """Round compute to three significant digits so an IsoFLOP group's runs share one budget."""
    exponent = np.floor(np.log10(flops))
    return np.round(flops / 10**exponent, 2) * 10**exponent


def isoflop_groups(runs: pl.DataFrame) -> int:
    """Number of compute budgets with enough distinct model sizes to fit a parabola."""
    if runs.height == 0 or runs.get_column("flops_derived").all():
        return 0
    frame = runs.with_columns(pl.Series("budget", budgets_of(runs.get_column("flops").to_numpy())))
    sizes = frame.group_by("budget").agg(pl.col("params").n_unique().alias("sizes"))
    return int((sizes.get_column("sizes") >= MIN_RUNS_PER_BUDGET).sum())


def supported_laws(runs: pl.DataFrame, settings: FitSettings) -> list[str]:
    """The laws a family's runs can support, primary (Chinchilla) first."""
    if runs.height < settings.min_runs:
        return []
    supported = ["chinchilla"]
    if isoflop_groups(runs) >= MIN_BUDGETS:
        supported.append("isoflop")
    supported.append("kaplan")
    unique = runs.get_column("unique_tokens")
    if unique.null_count() < runs.height and (runs.get_column("tokens") > unique).any():
        supported.append("data_constrained")
    return supported


def _data(runs: pl.DataFrame, law: str) -> dict[str, np.ndarray]:
    data = {name: runs.get_column(name).to_numpy().astype(float) for name in ("params", "tokens", "loss", "flops")}
    if law == "isoflop":
        data["budget"] = budgets_of(data["flops"])
    if law == "data_constrained":
        unique = runs.get_column("unique_tokens").fill_null(runs.get_column("tokens")).to_numpy().astype(float)
        data["unique_tokens"] = unique
    return data


def _extrapolation(law: str, data: dict[str, np.ndarray]) -> float | None:
    from laws.extrapolation import extrapolation_error

    try:
        scored = extrapolation_error(law, data)
    except (ValueError, RuntimeError, np.linalg.LinAlgError):
        return None
    value = scored.get("mean_relative_error") if isinstance(scored, dict) else None
    return None if value is None or not np.isfinite(value) else float(value)


def _used_run_ids(runs: pl.DataFrame, used: np.ndarray) -> list[str]:
    """The runs behind the used observations (a run fitted on its checkpoints is listed once)."""
    return runs.get_column("run_id").filter(pl.Series(used)).unique(maintain_order=True).to_list()


def _observations(runs: pl.DataFrame, used: np.ndarray) -> dict:
    checkpoint = bool(runs.height and runs.get_column("checkpoint").any())
    return {"fitted_on": "checkpoints" if checkpoint else "final values", "n_observations": int(np.sum(used))}


def _allocation_rows(boot: BootstrapResult, params: dict[str, float]) -> pl.DataFrame:
    """Compute-optimal N, D, D/N and loss on the budget grid, each with its bootstrap interval."""
    point = allocation.compute_optimal(params, BUDGETS, law="chinchilla")
    spread = allocation.compute_optimal(boot.param_samples(), BUDGETS[None, :], law="chinchilla")
    columns: dict[str, object] = {"compute": BUDGETS, "inference_tokens": np.zeros_like(BUDGETS)}
    for name in ("n_opt", "d_opt", "tokens_per_param", "predicted_loss"):
        values = np.broadcast_to(getattr(spread, name), (boot.samples.shape[0], BUDGETS.size))
        lo, hi = np.nanpercentile(values, [2.5, 97.5], axis=0)
        columns[name], columns[f"{name}_lo"], columns[f"{name}_hi"] = np.asarray(getattr(point, name)), lo, hi
    rows = [pl.DataFrame(columns)]
    # Inference-aware: the cheapest model over its lifetime reaching the loss a budget buys.
    targets = allocation.compute_optimal(params, INFERENCE_BUDGETS, law="chinchilla").predicted_loss
    for tokens in INFERENCE_TOKENS:
        aware = allocation.inference_aware(params, targets, tokens)
        rows.append(
            pl.DataFrame(
                {
                    "compute": np.asarray(aware.compute, float),
                    "inference_tokens": np.full(INFERENCE_BUDGETS.size, tokens),
                    "n_opt": np.asarray(aware.n_opt, float),
                    "d_opt": np.asarray(aware.d_opt, float),
                    "tokens_per_param": np.asarray(aware.tokens_per_param, float),
                    "predicted_loss": np.asarray(aware.predicted_loss, float),
                    "target_loss": np.asarray(targets, float),
                }
            )
        )
    return pl.concat(rows, how="diagonal_relaxed")


def _fit_chinchilla(runs, family, version, code, settings, isoflop_a) -> LawFit:
    data = _data(runs, "chinchilla")
    options = {"huber_delta": settings.huber_delta, "exclude_top_loss": settings.exclude_top_loss}
    boot = bootstrap(data, "chinchilla", n_resamples=settings.bootstrap_resamples, seed=settings.seed, **options)
    fit = boot.fit
    from laws.diagnostics import identifiability

    ident = identifiability(boot)
    # (A, alpha) and (B, beta) always move together; only these pairs make a fit unusable for planning
    flags = {k: bool(ident[k]) for k in ("alpha_beta_confounded", "A_E_confounded", "B_E_confounded") if k in ident}
    extrapolation = _extrapolation("chinchilla", data)
    gates = chinchilla_gates(
        fit.params, boot.ci, fit.converged, float(data["loss"][fit.used].min()), extrapolation, flags,
        settings.gates, isoflop_a,
    )
    status, reason = verdict(gates)
    a, b = allocation.exponents(fit.params)
    exponent_ci = boot.exponent_intervals()
    record = FitRecord(
        family=family, law="chinchilla", data_version=version, code_version=code,
        run_ids=_used_run_ids(runs, fit.used), status=status, reason=reason,
        params={**fit.params, "a": float(a), "b": float(b)},
        ci={**boot.ci, **exponent_ci},
        objective=fit.objective, rmse_log=fit.rmse_log, extrapolation_error=extrapolation, converged=fit.converged,
        bootstrap_resamples=settings.bootstrap_resamples, checks=[g.as_dict() for g in gates],
        diagnostics={"correlation": boot.correlation, "param_names": list(boot.param_names),
                     "converged_fraction": boot.converged_fraction, **flags, "message": fit.message,
                     **_observations(runs, fit.used)},
        options=options, samples=boot.samples, sample_names=tuple(boot.param_names),
    )
    if status == "published":
        record.allocations = _allocation_rows(boot, fit.params)
    return LawFit(record=record, boot=boot, gates=gates)


def _fit_other(law: str, runs, family, version, code, settings) -> LawFit:
    data = _data(runs, law)
    spec = LAWS[law]
    boot = bootstrap(data, law, n_resamples=settings.other_law_resamples, seed=settings.seed)
    fit = boot.fit
    extrapolation = _extrapolation(law, data) if spec.predicts == "loss" else None
    gates = law_gates(fit.converged, fit.message or "", fit.params, settings.gates)
    status, reason = verdict(gates)
    record = FitRecord(
        family=family, law=law, data_version=version, code_version=code,
        run_ids=_used_run_ids(runs, fit.used), status=status, reason=reason,
        params=dict(fit.params), ci=dict(boot.ci), objective=fit.objective, rmse_log=fit.rmse_log,
        extrapolation_error=extrapolation, converged=fit.converged, bootstrap_resamples=settings.other_law_resamples,
        checks=[g.as_dict() for g in gates], diagnostics={"message": fit.message, **_observations(runs, fit.used)}, options={},
        samples=boot.samples, sample_names=tuple(boot.param_names),
    )
    return LawFit(record=record, boot=boot, gates=gates)


def _failed(law: str, runs, family, version, code, error: Exception) -> LawFit:
    record = FitRecord(
        family=family, law=law, data_version=version, code_version=code, run_ids=runs.get_column("run_id").to_list(),
        status="failed", reason=f"{type(error).__name__}: {error}",
    )
    return LawFit(record=record)


def settings_for(family: str, settings: FitSettings) -> FitSettings:
    """The settings with what the family's own paper prescribes, unless the caller chose otherwise."""
    prescribed = FAMILY_FIT_OPTIONS.get(family, {})
    if prescribed and settings.exclude_top_loss == 0:
        return replace(settings, **prescribed)
    return settings


def stale_families(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Families whose runs, or the laws code, changed since their last refit, with their data version.

    Settings are not compared: a refit run with other settings (more resamples, stricter gates)
    does not make a family stale for the sensor; only new data or new science does.
    """
    science = laws_code_version()
    stale = {}
    for family in families(con):
        version = data_version(family_runs(con, family))
        last = latest_refit(con, family)
        if last is None or last[0] != version or last[1].split("-")[0] != science:
            stale[family] = version
    return stale


def refit_family(open_writer: OpenWriter, family: str, settings: FitSettings | None = None) -> FamilyRefit:
    """Fit every law the family supports whose data or code changed since its last fit; store the results."""
    settings = settings_for(family, settings or FitSettings())
    code = settings.code_version()
    with open_writer() as con:
        runs = family_runs(con, family)
        version = data_version(runs)
        laws = supported_laws(runs, settings)
        attempts = {law: latest_attempt(con, family, law) for law in laws}
    result = FamilyRefit(
        family=family, data_version=version, code_version=code, n_runs=runs.get_column("run_id").n_unique(), runs=runs
    )
    to_fit = [law for law in laws if attempts[law] is None or attempts[law][:2] != (version, code)]
    result.unchanged = [law for law in laws if law not in to_fit]

    started = time.perf_counter()
    isoflop_a = None
    ordered = sorted(to_fit, key=lambda law: law != "isoflop")  # Approach 2 first: Approach 3's gate compares with it
    for law in ordered:
        try:
            if law == "chinchilla":
                fitted = _fit_chinchilla(runs, family, version, code, settings, isoflop_a)
            else:
                fitted = _fit_other(law, runs, family, version, code, settings)
                if law == "isoflop" and fitted.record.status == "published":
                    isoflop_a = fitted.record.params.get("a")
        except (ValueError, RuntimeError, FloatingPointError, np.linalg.LinAlgError) as error:
            fitted = _failed(law, runs, family, version, code, error)
        result.fitted.append(fitted)
    result.fitted.sort(key=lambda f: laws.index(f.record.law))
    seconds = time.perf_counter() - started
    for fitted in result.fitted:
        fitted.record.diagnostics["family_refit_seconds"] = seconds

    with open_writer() as con:
        result.fit_ids = store_fits(con, [f.record for f in result.fitted]) if result.fitted else []
        for law in result.unchanged:
            record_unchanged(con, family, law, version, code)
    return result
