"""Refitting one family: which laws its runs support, fit with uncertainty, gate, judge the allocations, store.

A refit publishes two claims per law with separate verdicts: the loss law (gated: the design of the
runs, convergence, plausible parameters, narrow enough intervals; ``fits.status``) and, for a
published law that allocates, the allocation at every budget (``allocations.status``: trusted only
where profiles of the objective pin it down, the budget is within reach of the runs and the
approaches the runs support agree; :mod:`laws.trust`). How the family is fitted (the loss, runs left
out, constraints such as a shared exponent, checkpoints or final values, the bootstrap unit, the
budgets) is declared in its settings (:mod:`registry.family_settings`), whose version is part of
every fit's code version.

Fitting happens outside any registry connection (it can take seconds); the registry is opened
only to read the runs and, at the end, to append the results in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

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
from laws.profiles import PARAMETERS, Profile, profile
from laws.trust import AllocationVerdict, Design, allocation_verdicts
from registry.family_settings import FamilySettings, settings_for, shipped_family_settings
from registry.fit_store import (
    FitRecord,
    Observations,
    data_version,
    families,
    families_observations,
    family_observations,
    latest_attempt,
    input_fingerprints,
    latest_fits_state,
    latest_refit,
    laws_code_version,
    record_unchanged,
    store_many_records,
)
from registry.db import claimed, transaction
from registry.gates import Gate, chinchilla_gates, design_gate, design_problems, law_gates, verdict
from registry.overlaps import FamilyOverlap, overlaps_of
from registry.settings import FitSettings

OpenWriter = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

#: Budgets of the allocation table: 1e18 to 1e27 FLOPs, every half decade (a family's settings narrow them).
BUDGETS = 10.0 ** np.arange(18.0, 27.01, 0.5)
#: Inference demand of the inference-aware rows, and the budgets whose loss they target.
INFERENCE_TOKENS = (1e9, 1e10, 1e11, 1e12, 1e13)
INFERENCE_BUDGETS = 10.0 ** np.arange(20.0, 26.01, 1.0)
#: The budget a fit's diagnostics summarise its allocation verdict at.
SUMMARY_BUDGET = 1e24
#: IsoFLOP groups: runs whose compute agrees to three significant digits share a budget.
MIN_RUNS_PER_BUDGET = 3
MIN_BUDGETS = 3
#: What a fit may raise when the runs cannot support it: the laws' FitError, and numpy's
#: LinAlgError from a least-squares design that is singular (e.g. IsoFLOP minima at one budget).
#: Anything else is a bug and is not caught.
FIT_FAILURES = (FitError, np.linalg.LinAlgError)


def budget_grid(low: float, high: float) -> np.ndarray:
    """The half-decade grid of :data:`BUDGETS` within ``[low, high]``, with the ends themselves when off the grid."""
    inside = BUDGETS[(BUDGETS >= low * (1 - 1e-9)) & (BUDGETS <= high * (1 + 1e-9))]
    ends = [b for b in (low, high) if not np.isclose(inside, b, rtol=1e-9, atol=0).any()]
    return np.unique(np.concatenate([inside, ends]))


@dataclass(frozen=True)
class FitContext:
    """One family being refitted: what every law's fit needs besides the law itself.

    ``family_settings`` are the family's declared settings (applied here: loss, exclusions,
    constraints, checkpoints, bootstrap unit, budgets); ``settings`` the refit's own.
    """

    family: str
    data_version: str
    code_version: str
    settings: FitSettings
    family_settings: FamilySettings
    observations: Observations
    overlaps: tuple[dict, ...] = ()
    #: a cheap hash of every row the family has (:func:`registry.fit_store.input_fingerprints`), stored with
    #: each fit so the nightly refit can tell an unchanged family without reading its runs
    input_fingerprint: str | None = None

    @property
    def runs(self) -> pl.DataFrame:
        """The fitted observations (one per run, or every checkpoint)."""
        return self.observations.runs

    @property
    def budgets(self) -> np.ndarray:
        """The training budgets whose allocation is published and judged."""
        return budget_grid(self.family_settings.budget_min, self.family_settings.budget_max)

    def data(self, law: Law) -> dict[str, np.ndarray]:
        """The runs as the columns ``law`` takes (budgets, unique tokens and run numbers only where it needs them).

        A law of training curves (Approach 1) gets every checkpoint of the fitted loss, ``run``
        numbering the run of each.
        """
        curves = "run" in law.required_columns
        runs = self.observations.curves if curves else self.runs
        data = {name: runs.get_column(name).to_numpy().astype(float) for name in ("params", "tokens", "loss", "flops")}
        if curves:
            data["run"] = np.unique(runs.get_column("run_id").to_numpy(), return_inverse=True)[1].astype(float)
        if "budget" in law.required_columns:
            data["budget"] = budgets_of(data["flops"])
        if "unique_tokens" in law.required_columns:
            data["unique_tokens"] = runs.get_column("unique_tokens").fill_null(runs.get_column("tokens")).to_numpy().astype(float)
        return data

    def exclude_top_loss(self) -> int:
        """The refit's own setting when given, else the family's."""
        return self.settings.exclude_top_loss or self.family_settings.exclude_top_loss

    def options(self, law: Law) -> dict[str, Any]:
        """The law's fit options from the settings.

        The primary law gets the refit's Huber threshold; every loss law the highest-loss
        exclusion; every law the constraints naming its parameters (a shared exponent: Chinchilla's
        ``tie_exponents``, with a fixed or bounded beta read as alpha); Approach 1 reads the curves
        the loss law treats as evidence (checkpoints when the family is fitted on them, else the
        runs' final points per size, which a decaying schedule makes the only annealed ones).
        """
        allowed = law.options_type.allowed()
        family = self.family_settings
        options: dict[str, Any] = {}
        if law.primary:
            options["huber_delta"] = self.settings.huber_delta
        if law.predicts == "loss" and self.exclude_top_loss():
            options["exclude_top_loss"] = self.exclude_top_loss()
        tie = family.shared_exponent and "tie_exponents" in allowed
        renamed = (lambda name: "alpha" if name == "beta" else name) if tie else (lambda name: name)
        fixed = {renamed(k): v for k, v in sorted(family.fixed.items()) if k in law.param_names}
        bounds = {renamed(k): tuple(v) for k, v in sorted(family.bounds.items()) if k in law.param_names}
        if fixed and "fixed" in allowed:
            options["fixed"] = fixed
        if bounds and "bounds" in allowed:
            options["bounds"] = bounds
        if tie:
            options["tie_exponents"] = True
        if "use" in allowed:
            options["use"] = "checkpoints" if self.observations.fitted_on == "checkpoints" else "ends"
        return options

    def groups(self, law: Law) -> np.ndarray | None:
        """Run per observation when the bootstrap resamples runs: checkpoints fitted and the unit not ``point``.

        Approach 1 resamples its curves whatever the setting (:meth:`laws.law.Law.resample_groups`).
        """
        if "run" in law.required_columns or self.family_settings.bootstrap_unit == "point":
            return None
        if self.observations.fitted_on != "checkpoints" and self.family_settings.bootstrap_unit == "auto":
            return None
        return self.run_of_points(law)

    def resamples(self, law: Law) -> int:
        """The primary law gets the full bootstrap; the others a smaller one."""
        return self.settings.bootstrap_resamples if law.primary else self.settings.other_law_resamples

    def diagnostics(self) -> dict:
        """What every fit of this refit reports: how its observations were chosen, the settings applied, overlaps."""
        family = self.family_settings
        return {
            **self.observations.diagnostics(),
            "settings_version": family.settings_version,
            "settings_source": family.source,
            "constraints": {"shared_exponent": family.shared_exponent, "fixed": dict(family.fixed),
                            "bounds": {k: list(v) for k, v in family.bounds.items()}},
            "overlaps": list(self.overlaps),
        } | ({"input_fingerprint": self.input_fingerprint} if self.input_fingerprint else {})

    def record(self, law: Law, **fields: Any) -> FitRecord:
        """A record of this family and versions for ``law``; ``fields`` fill the rest."""
        return FitRecord(
            family=self.family, law=law.name, data_version=self.data_version, code_version=self.code_version, **fields
        )

    def failed(self, law: Law, error: Exception) -> LawFit:
        """A fit the runs could not support, recorded with every run and the reason."""
        record = self.record(
            law, run_ids=self.run_ids(), status="failed", reason=f"{type(error).__name__}: {error}",
            diagnostics=self.diagnostics(), options=self.options(law),
        )
        return LawFit(law=law, record=record)

    def held_by_design(self, law: Law, problems: list[str], gate: Gate) -> LawFit:
        """A fit not attempted because the runs cannot support any fit: held, naming every cause."""
        record = self.record(
            law, run_ids=self.run_ids(), status="held", reason=f"design: {'; '.join(problems)}",
            checks=[gate.as_dict()], diagnostics=self.diagnostics(), options=self.options(law),
        )
        return LawFit(law=law, record=record, gates=(gate,))

    def run_of_points(self, law: Law) -> np.ndarray:
        """The run of each of ``law``'s observations (a run fitted on its checkpoints gives several)."""
        runs = self.observations.curves if "run" in law.required_columns else self.runs
        return runs.get_column("run_id").to_numpy()

    def run_ids(self) -> list[str]:
        return self.runs.get_column("run_id").unique(maintain_order=True).to_list()


@dataclass(frozen=True)
class LawFit:
    """A stored fit plus what the UI needs to draw it (not stored)."""

    law: Law
    record: FitRecord
    boot: BootstrapResult | None = None
    gates: tuple[Gate, ...] = ()
    profiles: tuple[Profile, ...] = ()


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

    def held(self) -> list[tuple[str, str]]:
        """``(law, reason)`` of every fit of this refit that was held or failed."""
        return [(f.record.law, f"{f.record.status}: {f.record.reason}") for f in self.fitted if f.record.status != "published"]


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


def informative_columns(observations: Observations) -> set[str]:
    """The columns a family's runs can inform a law with.

    Every run has N, D, loss and compute; budgets count only when the runs form enough IsoFLOP
    groups, unique tokens only when some run repeated its data, and runs (curves) only when the
    runs have training curves.
    """
    runs = observations.runs
    columns = {"params", "tokens", "loss", "flops"}
    if isoflop_budgets(runs) is not None:
        columns.add("budget")
    unique = runs.get_column("unique_tokens")
    if unique.null_count() < runs.height and (runs.get_column("tokens") > unique).any():
        columns.add("unique_tokens")
    if observations.curves is not None:
        columns.add("run")
    return columns


def supported_laws(observations: Observations) -> list[Law]:
    """The laws a family's runs carry the columns of, in catalogue order (the primary law first).

    How many runs there are is the design gate's question, not this one's: a family too small to
    fit still gets a held fit saying so.
    """
    columns = informative_columns(observations)
    return [law for law in LAWS.values() if law.fitted_per_family and set(law.required_columns) <= columns]


def _extrapolation(law: Law, data: dict[str, np.ndarray], options: dict) -> float | None:
    """Mean relative error on the runs above the compute cut-off, or None where it cannot be scored."""
    try:
        value = extrapolation_error(law, data, options)["mean_relative_error"]
    except FIT_FAILURES:
        return None
    return float(value) if np.isfinite(value) else None


def _used_run_ids(runs: pl.DataFrame, used: np.ndarray) -> list[str]:
    """The runs behind the used observations (a run fitted on its checkpoints is listed once)."""
    return runs.get_column("run_id").filter(pl.Series(used)).unique(maintain_order=True).to_list()


def _fit_law(context: FitContext, law: Law, reference_exponent: float | None, design: Gate) -> LawFit:
    """Fit one law with its bootstrap, gate it and make its record (allocations come later).

    The primary law is gated as a planner's law (plausibility, extrapolation, interval width,
    identifiability, agreement with ``reference_exponent``) and carries its allocation exponents;
    every other law must converge to finite, plausible parameters with narrow enough intervals.
    """
    settings = context.settings
    level = settings.interval_level
    data = context.data(law)
    options = context.options(law)
    boot = bootstrap(
        law, data, options, n_resamples=context.resamples(law), seed=settings.seed, level=level, groups=context.groups(law)
    )
    fit = boot.fit
    extrapolation = _extrapolation(law, data, options) if law.predicts == "loss" else None
    params, ci = dict(fit.params), dict(boot.ci)
    min_loss = float(data["loss"][fit.used].min())
    on_curves = "run" in law.required_columns
    diagnostics = {
        "message": fit.message, **context.diagnostics(), "n_observations": int(np.sum(fit.used)),
        "bootstrap_unit": "run" if boot.clustered else "point",
        "top_loss_excluded": int(np.sum(~fit.used)) if options.get("exclude_top_loss") else 0,
    }
    if on_curves:
        diagnostics["curves"] = int(fit.extras["n_curves"])
    if law.primary:
        ident = identifiability(boot)
        # (A, alpha) and (B, beta) always move together; only these pairs make a fit unusable for planning
        flags = {k: bool(ident[k]) for k in ("alpha_beta_confounded", "A_E_confounded", "B_E_confounded") if k in ident}
        gates = chinchilla_gates(
            fit.params, boot.ci, fit.converged, min_loss, extrapolation, flags, settings.gates, reference_exponent,
        )
        a, b = law.exponents(fit.params)
        params |= {"a": float(a), "b": float(b)}
        ci |= boot.samples.exponent_interval(law, level)
        diagnostics = {"correlation": boot.correlation, "param_names": list(boot.param_names),
                       "converged_fraction": boot.converged_fraction, **flags, **diagnostics}
    else:
        gates = law_gates(law, fit.params, boot.ci, fit.converged, fit.message or "", min_loss, settings.gates)
    gates = [design, *gates]
    status, reason = verdict(gates)
    runs = context.observations.curves if on_curves else context.runs
    record = context.record(
        law, run_ids=_used_run_ids(runs, fit.used), status=status, reason=reason, params=params, ci=ci,
        objective=fit.objective, rmse_log=fit.rmse_log, extrapolation_error=extrapolation, converged=fit.converged,
        bootstrap_resamples=boot.n_resamples, checks=[g.as_dict() for g in gates], diagnostics=diagnostics,
        options=options, samples=boot.samples,
    )
    return LawFit(law=law, record=record, boot=boot, gates=tuple(gates))


# -- the allocation's verdict ---------------------------------------------------------------
def _profile_not_applicable(parameter: str, options: Mapping[str, Any]) -> str | None:
    """Why the fit's constraints leave no profile over ``parameter`` to compute, or None."""
    fixed, bounds = set(options.get("fixed", {})), set(options.get("bounds", {}))
    if fixed & {"A", "B"}:
        return "A or B is fixed by the family's settings: profiles fix E or a with A and B free"
    if parameter == "E" and "E" in fixed:
        return None  # a fixed E is a one-point profile: identified by construction
    if parameter == "a" and options.get("tie_exponents"):
        return "the shared exponent (alpha = beta) fixes a = 0.5: there is no a to profile"
    if parameter == "a" and (fixed | bounds) & {"alpha", "beta"}:
        return "alpha or beta is fixed or bounded by the family's settings, which pins a to the other"
    return None


def _profiles(context: FitContext, lawfit: LawFit, budgets: np.ndarray) -> tuple[list[Profile], dict[str, str]]:
    """The fit's profiles over E and a at ``budgets``, and why any was not computed."""
    data, options = context.data(lawfit.law), context.options(lawfit.law)
    profiles, skipped = [], {}
    for parameter in PARAMETERS:
        if why := _profile_not_applicable(parameter, options):
            skipped[parameter] = why
            continue
        try:
            profiles.append(
                profile(parameter, data["params"], data["tokens"], data["loss"], budgets=budgets, options=options,
                        start=lawfit.record.params, n_grid=context.settings.profile_points)
            )
        except FIT_FAILURES as error:
            skipped[parameter] = f"the profile could not be fitted: {error}"
    return profiles, skipped


def _profile_rows(profiles: list[Profile]) -> pl.DataFrame:
    """Profiles in ``fit_profiles``' long form: one row per grid point and budget."""
    def finite(x: np.ndarray) -> pl.Series:
        x = np.asarray(x, float)
        return pl.Series(np.where(np.isfinite(x), x, np.nan)).fill_nan(None)

    frames = []
    for p in profiles:
        G, K = p.tokens_per_param.shape
        frames.append(pl.DataFrame({
            "parameter": [p.parameter] * (G * K),
            "value": np.repeat(p.grid, K),
            "objective": finite(np.repeat(p.objective, K)),
            "relative_excess": finite(np.repeat(p.excess(), K)),
            "compute": np.tile(p.budgets, G),
            "tokens_per_param": finite(p.tokens_per_param.ravel()),
        }))
    return pl.concat(frames)


def _verdict_columns(verdicts: list[AllocationVerdict] | tuple[AllocationVerdict, ...]) -> dict[str, pl.Series]:
    """``status`` and ``reason`` (NULL when trusted) of allocation rows."""
    return {
        "status": pl.Series([v.status for v in verdicts], dtype=pl.String),
        "reason": pl.Series([None if v.status == "trusted" else v.reason for v in verdicts], dtype=pl.String),
    }


def _allocation_rows(
    law: Law, boot: BootstrapResult, params: dict[str, float], level: float, budgets: np.ndarray,
    verdicts: tuple[AllocationVerdict, ...],
) -> pl.DataFrame:
    """Compute-optimal N, D, D/N and loss on the budgets, each with its bootstrap interval and verdict.

    Inference-aware rows (for a law with that rule) target the loss the decade budgets buy and carry
    the verdict of the budget they target.
    """
    point = law.allocate(params, budgets)
    spread = boot.samples.allocation_interval(law, budgets, level)
    judged = {float(v.budget): v for v in verdicts}
    columns: dict[str, object] = {"compute": budgets, "inference_tokens": np.zeros_like(budgets), **_verdict_columns(verdicts)}
    for name in ALLOCATION_FIELDS:
        lo, hi = spread[name]
        columns[name], columns[f"{name}_lo"], columns[f"{name}_hi"] = np.asarray(getattr(point, name)), lo, hi
    rows = [pl.DataFrame(columns)]
    inference_budgets = [b for b in INFERENCE_BUDGETS if any(np.isclose(b, c, rtol=1e-9) for c in judged)]
    if law.inference_aware and inference_budgets:
        # The cheapest model over its lifetime reaching the loss a budget buys.
        targeted = np.array(inference_budgets)
        behind = [judged[next(c for c in judged if np.isclose(b, c, rtol=1e-9))] for b in targeted]
        targets = law.allocate(params, targeted).predicted_loss
        for tokens in INFERENCE_TOKENS:
            aware = law.allocate_inference_aware(params, targets, tokens)
            rows.append(
                pl.DataFrame(
                    {"inference_tokens": np.full(targeted.size, tokens), "target_loss": np.asarray(targets, float),
                     **_verdict_columns(behind)}
                    | {name: np.asarray(getattr(aware, name), float) for name in ("compute", *ALLOCATION_FIELDS)}
                )
            )
    return pl.concat(rows, how="diagonal_relaxed")


def _summary(verdicts: tuple[AllocationVerdict, ...], budget: float = SUMMARY_BUDGET) -> dict | None:
    """The verdict at ``budget`` with the profile figures behind it, for the fit's diagnostics."""
    at = [v for v in verdicts if np.isclose(v.budget, budget, rtol=1e-9)]
    if not at:
        return None
    (v,) = at
    return {
        "compute": v.budget, "tokens_per_param": v.tokens_per_param, "status": v.status, "reason": v.reason,
        "profiles": {
            c.parameter: {"value_range": list(c.value_range), "tokens_per_param_range": list(c.tokens_per_param_range),
                          "spread": c.spread, "identified": c.identified, "at_grid_edge": c.at_grid_edge,
                          "tolerance": c.tolerance}
            for c in v.profile_checks
        },
    }


def _judge_allocations(context: FitContext, fitted: list[LawFit]) -> list[LawFit]:
    """Allocation rows, with their verdicts, for every published fit of a law that allocates.

    Each approach the runs support (Approach 1, 2, 3) is compared with the others at every budget.
    A profiled fit held by its gates (it has parameters) is judged too and its profiles stored, so
    its page shows why its allocation would not be trusted either; it publishes no allocation rows.
    """
    budgets = context.budgets
    level, trust = context.settings.interval_level, context.settings.trust.verdict_settings()

    def published(f: LawFit) -> bool:
        return f.law.allocates and f.record.status == "published" and f.boot is not None

    def judged(f: LawFit) -> bool:
        return published(f) or (f.law.allocates and f.law.profiled and f.record.status == "held" and f.boot is not None)

    tokens_per_param = {
        f.law.name: np.asarray(f.law.allocate(f.boot.fit.params, budgets).tokens_per_param, float)
        for f in fitted if judged(f)
    }
    answers = {f.law.approach: tokens_per_param[f.law.name] for f in fitted if published(f) and f.law.approach}
    out = []
    for f in fitted:
        if not judged(f):
            out.append(f)
            continue
        law, params = f.law, f.boot.fit.params
        tpp = tokens_per_param[law.name]
        profiles, skipped = _profiles(context, f, budgets) if law.profiled else ([], {})
        intervals = None
        if law.predicts != "loss":  # no loss surface to profile: the bootstrap interval of the optimum itself
            intervals = f.boot.samples.allocation_interval(law, budgets, level)["tokens_per_param"]
        data = context.data(law)
        used = f.boot.fit.used
        verdicts = allocation_verdicts(
            budgets, tpp, profiles=profiles,
            design=Design.of(data["params"][used], data["tokens"][used], groups=context.run_of_points(law)[used]),
            approaches={k: v for k, v in answers.items() if k != law.approach}, own_name=law.approach or law.name,
            settings=trust, intervals=intervals,
        )
        diagnostics = {
            **f.record.diagnostics,
            "allocation": _summary(verdicts),
            "profiles_not_computed": skipped,
            "profile_seconds": float(sum(p.seconds for p in profiles)),
        }
        rows = _allocation_rows(law, f.boot, params, level, budgets, verdicts) if published(f) else None
        record = replace(
            f.record, diagnostics=diagnostics, allocations=rows, profiles=_profile_rows(profiles) if profiles else None,
        )
        out.append(replace(f, record=record, profiles=tuple(profiles)))
    return out


# -- what is stale, and the refit itself ------------------------------------------------------
def _loaded(family_settings: Mapping[str, FamilySettings] | None) -> Mapping[str, FamilySettings]:
    return shipped_family_settings() if family_settings is None else family_settings


def stale_families(
    con: duckdb.DuckDBPyConnection, family_settings: Mapping[str, FamilySettings] | None = None
) -> dict[str, str]:
    """Families whose runs, the laws code or their own settings changed since their last refit, each with
    the state a refit would fit (``<data version>-<laws code>-<settings version>``: a run key that
    changes with any of the three).

    ``family_settings`` are every family's settings as loaded (default: the shipped ones). The
    refit's own settings are not compared: a refit run with other settings (more resamples,
    stricter gates) does not make a family stale for the sensor; new data, new science or new
    family settings do.
    """
    loaded = _loaded(family_settings)
    science = laws_code_version()
    fingerprints, newest_fits = input_fingerprints(con), latest_fits_state(con)
    stale = {}
    for family in families(con):
        declared = settings_for(family, loaded)
        newest = newest_fits.get(family)
        if newest and all(  # the family's rows, the science and its settings are those of its newest fits: no need to read
            f is not None and f == fingerprints.get(family) and c.split("-")[0] == science and c.split("-")[-1] == declared.settings_version
            for _, _, c, f, _ in newest
        ):
            continue
        version = data_version(family_observations(con, declared).runs)
        last = latest_refit(con, family)
        code = last[1].split("-") if last is not None else []
        if last is None or last[0] != version or code[0] != science or code[-1] != declared.settings_version:
            stale[family] = f"{version}-{science}-{declared.settings_version}"
    return stale


@dataclass(frozen=True)
class FamilyJob:
    """One family's refit as read from the registry: what to fit (sent to a worker) and what was unchanged."""

    context: FitContext
    laws: tuple[Law, ...]
    to_fit: tuple[str, ...]
    unchanged: tuple[str, ...]


def prepare_family(
    con: duckdb.DuckDBPyConnection, family: str, settings: FitSettings, declared: FamilySettings,
    code_version: str | None = None, fingerprint: str | None = None,
) -> FamilyJob:
    """Read one family's observations and decide which of its laws changed (their data, code or settings)."""
    (job,) = prepare_families(con, [declared], settings, code_version=code_version,
                              fingerprints={family: fingerprint} if fingerprint else None)
    return job


def prepare_families(
    con: duckdb.DuckDBPyConnection, declared: list[FamilySettings], settings: FitSettings,
    code_version: str | None = None, fingerprints: Mapping[str, str] | None = None,
    overlaps: Mapping[str, list[FamilyOverlap]] | None = None,
) -> list[FamilyJob]:
    """:func:`prepare_family` for many families, their runs and overlaps read together (each read scans the
    registry's run points or matches runs across it, whatever the number of families asked for).

    ``overlaps``: every family's, when the caller read them once for many calls (see :func:`registry.overlaps.overlaps_of`).
    """
    observed = families_observations(con, declared)
    overlapping = overlaps if overlaps is not None else overlaps_of(con, [d.family for d in declared])
    jobs = []
    for family_settings in declared:
        family = family_settings.family
        code = code_version or settings.code_version(family_settings.settings_version)
        observations = observed[family]
        version = data_version(observations.runs)
        laws = supported_laws(observations)
        attempts = {law.name: latest_attempt(con, family, law.name) for law in laws}
        overlaps = tuple({"family": o.other_family, "n_shared": o.n_shared, "n_runs": o.n_runs} for o in overlapping[family])
        context = FitContext(
            family=family, data_version=version, code_version=code, settings=settings, family_settings=family_settings,
            observations=observations, overlaps=overlaps, input_fingerprint=(fingerprints or {}).get(family),
        )
        to_fit = tuple(law.name for law in laws if attempts[law.name] is None or attempts[law.name][:2] != (version, code))
        unchanged = tuple(law.name for law in laws if law.name not in to_fit)
        jobs.append(FamilyJob(context=context, laws=tuple(laws), to_fit=to_fit, unchanged=unchanged))
    return jobs


def fit_family(job: FamilyJob) -> list[LawFit]:
    """Fit, gate and judge every law of ``job`` that changed; no registry connection is needed (workers call this)."""
    context, laws, settings = job.context, list(job.laws), job.context.settings
    to_fit = [law for law in laws if law.name in job.to_fit]
    started = time.perf_counter()
    runs = context.observations.runs
    problems = design_problems(
        runs.get_column("run_id").to_list(), *(runs.get_column(c).to_numpy().astype(float) for c in ("params", "tokens", "loss")),
        min_runs=settings.min_runs,
    )
    design = design_gate(problems, runs.get_column("run_id").n_unique(), runs.height, settings.gates)
    fitted: list[LawFit] = []
    if problems:
        fitted = [context.held_by_design(law, problems, design) for law in to_fit]
    else:
        reference_exponent = None
        # a law that cross-checks the allocation exponent first: the primary law's agreement gate compares with it
        for law in sorted(to_fit, key=lambda law: not law.cross_checks_exponent):
            try:
                done = _fit_law(context, law, reference_exponent, design)
            except FIT_FAILURES as error:
                done = context.failed(law, error)
            if law.cross_checks_exponent and done.record.status == "published":
                reference_exponent = float(law.exponents(done.record.params)[0])
            fitted.append(done)
        fitted = _judge_allocations(context, fitted)
    seconds = time.perf_counter() - started
    return [
        replace(f, record=replace(f.record, diagnostics={**f.record.diagnostics, "family_refit_seconds": seconds}))
        for f in sorted(fitted, key=lambda f: laws.index(f.law))
    ]


def store_family(con: duckdb.DuckDBPyConnection, job: FamilyJob, fitted: list[LawFit]) -> FamilyRefit:
    """Append one family's new fits and its unchanged laws; the caller chooses the transaction."""
    (refit,) = store_families(con, [(job, fitted)])
    return refit


def store_families(con: duckdb.DuckDBPyConnection, batch: list[tuple[FamilyJob, list[LawFit]]]) -> list[FamilyRefit]:
    """:func:`store_family` for many families, one statement per table for all of them."""
    fit_ids = store_many_records(con, [([f.record for f in fitted], job.context.family_settings if fitted else None)
                                       for job, fitted in batch])
    refits = []
    for (job, fitted), ids in zip(batch, fit_ids):
        context = job.context
        for name in job.unchanged:
            record_unchanged(con, context.family, name, context.data_version, context.code_version)
        runs = context.observations.runs
        refits.append(FamilyRefit(
            family=context.family, data_version=context.data_version, code_version=context.code_version,
            n_runs=runs.get_column("run_id").n_unique(), fitted=tuple(fitted), unchanged=job.unchanged,
            fit_ids=tuple(ids), runs=runs,
        ))
    return refits


def refit_family(
    open_writer: OpenWriter, family: str, settings: FitSettings | None = None, *,
    family_settings: FamilySettings | None = None,
) -> FamilyRefit:
    """Fit every law the family supports whose data, code or settings changed since its last fit; store the results.

    ``family_settings`` are the family's declared settings (default: the shipped ones for it, else
    the defaults); the Dagster asset passes those loaded from the home. Many families at once:
    :func:`registry.refit_batch.refit_families`.
    """
    settings = settings or FitSettings()
    declared = family_settings or settings_for(family, shipped_family_settings())
    with open_writer() as con:
        job = prepare_family(con, family, settings, declared, fingerprint=input_fingerprints(con, [family]).get(family))
    fitted = fit_family(job)
    with open_writer() as con, claimed(con, f"family:{family}"), transaction(con):  # DuckLake: versions in turn
        return store_family(con, job, fitted)
