"""Refitting one family: which laws its runs support, fit with uncertainty, gate, store.

Fitting happens outside any registry connection (it can take seconds); the registry is opened
only to read the runs and, at the end, to append the results in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

import duckdb
import numpy as np
import polars as pl

from laws.bootstrap import BootstrapResult, bootstrap
from laws.catalog import LAWS
from laws.diagnostics import identifiability
from laws.errors import FitError
from laws.extrapolation import extrapolation_error
from laws.intervals import ALLOCATION_FIELDS
from laws.law import Law
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
#: What a fit may raise when the runs cannot support it: the laws' FitError, and numpy's
#: LinAlgError from a least-squares design that is singular (e.g. IsoFLOP minima at one budget).
#: Anything else is a bug and is not caught.
FIT_FAILURES = (FitError, np.linalg.LinAlgError)


@dataclass(frozen=True)
class FitContext:
    """One family being refitted: what every law's fit needs besides the law itself."""

    family: str
    data_version: str
    code_version: str
    settings: FitSettings
    runs: pl.DataFrame

    def data(self, law: Law) -> dict[str, np.ndarray]:
        """The runs as the columns ``law`` takes (budgets and unique tokens only where it needs them)."""
        runs = self.runs
        data = {name: runs.get_column(name).to_numpy().astype(float) for name in ("params", "tokens", "loss", "flops")}
        if "budget" in law.required_columns:
            data["budget"] = budgets_of(data["flops"])
        if "unique_tokens" in law.required_columns:
            data["unique_tokens"] = runs.get_column("unique_tokens").fill_null(runs.get_column("tokens")).to_numpy().astype(float)
        return data

    def options(self, law: Law) -> dict[str, float]:
        """Fit options from the settings: the primary law gets the family's Huber threshold and exclusions."""
        if not law.primary:
            return {}
        return {"huber_delta": self.settings.huber_delta, "exclude_top_loss": self.settings.exclude_top_loss}

    def resamples(self, law: Law) -> int:
        """The primary law gets the full bootstrap; the others a smaller one."""
        return self.settings.bootstrap_resamples if law.primary else self.settings.other_law_resamples

    def failed(self, law: Law, error: Exception) -> LawFit:
        """A fit the runs could not support, recorded with every run and the reason."""
        record = FitRecord(
            family=self.family, law=law.name, data_version=self.data_version, code_version=self.code_version,
            run_ids=self.runs.get_column("run_id").to_list(), status="failed", reason=f"{type(error).__name__}: {error}",
        )
        return LawFit(law=law, record=record)


@dataclass(frozen=True)
class LawFit:
    """A stored fit plus what the UI needs to draw it (not stored)."""

    law: Law
    record: FitRecord
    boot: BootstrapResult | None = None
    gates: tuple[Gate, ...] = ()


@dataclass(frozen=True)
class FamilyRefit:
    """What one refit of a family did: the fits it stored and the laws whose fits were unchanged."""

    family: str
    data_version: str
    code_version: str
    n_runs: int
    fitted: tuple[LawFit, ...] = ()
    unchanged: tuple[str, ...] = ()
    fit_ids: tuple[str, ...] = ()
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


def isoflop_budgets(runs: pl.DataFrame) -> np.ndarray | None:
    """Each run's IsoFLOP budget where the runs form enough IsoFLOP groups, else None."""
    return budgets_of(runs.get_column("flops").to_numpy()) if isoflop_groups(runs) >= MIN_BUDGETS else None


def informative_columns(runs: pl.DataFrame) -> set[str]:
    """The columns a family's runs can inform a law with.

    Every run has N, D, loss and compute; budgets count only when the runs form enough IsoFLOP
    groups, and unique tokens only when some run repeated its data.
    """
    columns = {"params", "tokens", "loss", "flops"}
    if isoflop_budgets(runs) is not None:
        columns.add("budget")
    unique = runs.get_column("unique_tokens")
    if unique.null_count() < runs.height and (runs.get_column("tokens") > unique).any():
        columns.add("unique_tokens")
    return columns


def supported_laws(runs: pl.DataFrame, settings: FitSettings) -> list[Law]:
    """The laws a family's runs can support, in catalogue order (the primary law first)."""
    if runs.height < settings.min_runs:
        return []
    columns = informative_columns(runs)
    return [law for law in LAWS.values() if law.fitted_per_family and set(law.required_columns) <= columns]


def _extrapolation(law: Law, data: dict[str, np.ndarray]) -> float | None:
    """Mean relative error on the runs above the compute cut-off, or None where it cannot be scored."""
    try:
        value = extrapolation_error(law, data)["mean_relative_error"]
    except FIT_FAILURES:
        return None
    return float(value) if np.isfinite(value) else None


def _used_run_ids(runs: pl.DataFrame, used: np.ndarray) -> list[str]:
    """The runs behind the used observations (a run fitted on its checkpoints is listed once)."""
    return runs.get_column("run_id").filter(pl.Series(used)).unique(maintain_order=True).to_list()


def _observations(runs: pl.DataFrame, used: np.ndarray) -> dict:
    checkpoint = bool(runs.height and runs.get_column("checkpoint").any())
    return {"fitted_on": "checkpoints" if checkpoint else "final values", "n_observations": int(np.sum(used))}


def _allocation_rows(law: Law, boot: BootstrapResult, params: dict[str, float], level: float) -> pl.DataFrame:
    """Compute-optimal N, D, D/N and loss on the budget grid, each with its bootstrap interval."""
    point = law.allocate(params, BUDGETS)
    spread = boot.samples.allocation_interval(law, BUDGETS, level)
    columns: dict[str, object] = {"compute": BUDGETS, "inference_tokens": np.zeros_like(BUDGETS)}
    for name in ALLOCATION_FIELDS:
        lo, hi = spread[name]
        columns[name], columns[f"{name}_lo"], columns[f"{name}_hi"] = np.asarray(getattr(point, name)), lo, hi
    rows = [pl.DataFrame(columns)]
    if law.inference_aware:
        # The cheapest model over its lifetime reaching the loss a budget buys.
        targets = law.allocate(params, INFERENCE_BUDGETS).predicted_loss
        for tokens in INFERENCE_TOKENS:
            aware = law.allocate_inference_aware(params, targets, tokens)
            rows.append(
                pl.DataFrame(
                    {"inference_tokens": np.full(INFERENCE_BUDGETS.size, tokens), "target_loss": np.asarray(targets, float)}
                    | {name: np.asarray(getattr(aware, name), float) for name in ("compute", *ALLOCATION_FIELDS)}
                )
            )
    return pl.concat(rows, how="diagonal_relaxed")


def _fit_law(context: FitContext, law: Law, reference_exponent: float | None) -> LawFit:
    """Fit one law with its bootstrap, gate it and make its record.

    The primary law is gated as a planner's law (plausibility, extrapolation, interval width,
    identifiability, agreement with ``reference_exponent``) and carries its allocation exponents
    and, once published, its allocation table; other laws must converge to finite parameters.
    """
    settings, runs = context.settings, context.runs
    level = settings.interval_level
    data = context.data(law)
    options = context.options(law)
    boot = bootstrap(law, data, options, n_resamples=context.resamples(law), seed=settings.seed, level=level)
    fit = boot.fit
    extrapolation = _extrapolation(law, data) if law.predicts == "loss" else None
    params, ci = dict(fit.params), dict(boot.ci)
    diagnostics = {"message": fit.message, **_observations(runs, fit.used)}
    if law.primary:
        ident = identifiability(boot)
        # (A, alpha) and (B, beta) always move together; only these pairs make a fit unusable for planning
        flags = {k: bool(ident[k]) for k in ("alpha_beta_confounded", "A_E_confounded", "B_E_confounded") if k in ident}
        gates = chinchilla_gates(
            fit.params, boot.ci, fit.converged, float(data["loss"][fit.used].min()), extrapolation, flags,
            settings.gates, reference_exponent,
        )
        a, b = law.exponents(fit.params)
        params |= {"a": float(a), "b": float(b)}
        ci |= boot.samples.exponent_interval(law, level)
        diagnostics = {"correlation": boot.correlation, "param_names": list(boot.param_names),
                       "converged_fraction": boot.converged_fraction, **flags, **diagnostics}
    else:
        gates = law_gates(fit.converged, fit.message or "", fit.params, settings.gates)
    status, reason = verdict(gates)
    record = FitRecord(
        family=context.family, law=law.name, data_version=context.data_version, code_version=context.code_version,
        run_ids=_used_run_ids(runs, fit.used), status=status, reason=reason, params=params, ci=ci,
        objective=fit.objective, rmse_log=fit.rmse_log, extrapolation_error=extrapolation, converged=fit.converged,
        bootstrap_resamples=boot.n_resamples, checks=[g.as_dict() for g in gates], diagnostics=diagnostics,
        options=options, samples=boot.samples,
        allocations=_allocation_rows(law, boot, fit.params, level) if law.primary and status == "published" else None,
    )
    return LawFit(law=law, record=record, boot=boot, gates=tuple(gates))


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
        attempts = {law.name: latest_attempt(con, family, law.name) for law in laws}
    context = FitContext(family=family, data_version=version, code_version=code, settings=settings, runs=runs)
    to_fit = [law for law in laws if attempts[law.name] is None or attempts[law.name][:2] != (version, code)]
    unchanged = tuple(law.name for law in laws if law not in to_fit)

    started = time.perf_counter()
    reference_exponent = None
    fitted: list[LawFit] = []
    # a law that cross-checks the allocation exponent first: the primary law's agreement gate compares with it
    for law in sorted(to_fit, key=lambda law: not law.cross_checks_exponent):
        try:
            done = _fit_law(context, law, reference_exponent)
        except FIT_FAILURES as error:
            done = context.failed(law, error)
        if law.cross_checks_exponent and done.record.status == "published":
            reference_exponent = float(law.exponents(done.record.params)[0])
        fitted.append(done)
    seconds = time.perf_counter() - started
    fitted = [
        replace(f, record=replace(f.record, diagnostics={**f.record.diagnostics, "family_refit_seconds": seconds}))
        for f in sorted(fitted, key=lambda f: laws.index(f.law))
    ]

    with open_writer() as con:
        fit_ids = store_fits(con, [f.record for f in fitted]) if fitted else []
        for name in unchanged:
            record_unchanged(con, family, name, version, code)
    return FamilyRefit(
        family=family, data_version=version, code_version=code, n_runs=runs.get_column("run_id").n_unique(),
        fitted=tuple(fitted), unchanged=unchanged, fit_ids=tuple(fit_ids), runs=runs,
    )
