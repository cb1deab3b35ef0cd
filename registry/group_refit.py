"""Refitting a family group: one joint fit, published per member, and compared with the members alone.

A group (:mod:`registry.groups`) is refitted when any member's runs, any member's settings, the
group's own settings or the laws code changed since its last fit (its state is kept in
``group_comparisons``). The joint fit (:func:`laws.joint.bootstrap_joint`) resamples runs within
each member, whole runs where a member is fitted on checkpoints. Each member then gets an ordinary
fit row under the law ``<law>+joint:<group>``, beside its single-family fit, facing the same gates
and with allocations judged the same way (:mod:`laws.trust`). The allocation verdicts rest on the
member's own runs (its profiles and design): sharing parameters can narrow a member's intervals,
but it never makes an allocation trusted that the member's own runs do not pin down.

A member's joint fit row keeps the member's data version, its settings' code version and its input
fingerprint, so that the member's own refits still see it as unchanged; the group's state (its
settings version and every member's data) lives in ``group_comparisons``.

Compare: every member's runs above its compute cut-off are held out, the group is fitted jointly
on the runs below, and the error of the predicted losses is set beside the member's single fit's
(:func:`laws.extrapolation.extrapolation_error`). A group whose joint fit predicts its members
worse than they predict themselves fails the non-blocking ``group_sharing`` gate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import numpy as np
import polars as pl

from laws.bootstrap import BootstrapResult, spearman
from laws.chinchilla import CHINCHILLA
from laws.diagnostics import identifiability
from laws.extrapolation import compute_of, extrapolation_error
from laws.joint import JointBootstrapResult, bootstrap_joint, fit_joint
from laws.types import FitResult
from registry.db import claimed, one, transaction
from registry.family_settings import FamilySettings, settings_for, shipped_family_settings
from registry.fit_store import (
    FitRecord,
    data_version,
    families as registry_families,
    family_observations,
    input_fingerprints,
    laws_code_version,
    store_records,
)
from registry.gates import GATES, Gate, chinchilla_gates, design_gate, design_problems, verdict
from registry.groups import GroupSettings, groups_of, record_group_settings
from registry.refit import FIT_FAILURES, FitContext, LawFit, OpenWriter, _judge_allocations, prepare_family
from registry.settings import FitSettings

#: The share of a member's runs (by compute) fitted when comparing: the rest are held out.
HELD_OUT_QUANTILE = 0.75


@dataclass(frozen=True)
class GroupRefit:
    """What one refit of a group did.

    ``fitted`` holds one fit per member (empty when unchanged or skipped); ``comparison`` one row
    per member (joint and single held-out errors); ``skipped`` why nothing was fitted, or None;
    ``datasets`` the members' fitted observations and ``boot`` the joint fit, for the group's plot.
    """

    group: str
    state: str
    shared: tuple[str, ...] = ()
    fitted: tuple[LawFit, ...] = ()
    fit_ids: tuple[str, ...] = ()
    comparison: pl.DataFrame | None = None
    unchanged: bool = False
    skipped: str | None = None
    boot: JointBootstrapResult | None = None
    datasets: Mapping[str, Mapping[str, np.ndarray]] | None = None

    def line(self) -> str:
        """One line for logs."""
        if self.skipped:
            return f"group {self.group}: not fitted: {self.skipped}"
        if self.unchanged:
            return f"group {self.group}: unchanged"
        return f"group {self.group}: fitted {', '.join(self.fit_ids)}"


def _group_state(group: GroupSettings, members: Mapping[str, tuple[str, str]]) -> str:
    """What a group fit is made of: the laws code, the group's settings, every member's runs and settings
    (``members``: ``{member: (data version, settings version)}``)."""
    digest = hashlib.sha256(f"{laws_code_version()}|{group.settings_version}".encode())
    for member in sorted(members):
        digest.update(f"|{member}:{members[member][0]}:{members[member][1]}".encode())
    return digest.hexdigest()[:16]


def stale_group_members(
    con: duckdb.DuckDBPyConnection, groups: Mapping[str, GroupSettings],
    family_settings: Mapping[str, FamilySettings] | None = None,
) -> dict[str, str]:
    """The members of every group whose state changed since its last fit (a member's runs or settings, the
    group's settings, the laws), each with the group's state: refitting a member refits its groups."""
    loaded = shipped_family_settings() if family_settings is None else family_settings
    present = set(registry_families(con))
    stale: dict[str, str] = {}
    for group in groups.values():
        if not set(group.members) <= present:
            continue
        versions = {}
        for member in group.members:
            declared = settings_for(member, loaded)
            versions[member] = (data_version(family_observations(con, declared).runs), declared.settings_version)
        state = _group_state(group, versions)
        if _last_state(con, group.group) != state:
            stale |= {member: state for member in group.members}
    return stale


def _last_state(con: duckdb.DuckDBPyConnection, group: str) -> str | None:
    row = one(con, "SELECT data_version FROM group_comparisons WHERE group_name = ? ORDER BY fitted_at DESC LIMIT 1", [group])
    return None if row is None else row[0]


def _member_data(context: FitContext) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray]:
    """The member's observations as the joint fit takes them (its own top-loss exclusion applied), the run of
    each when its bootstrap draws whole runs, and the mask over the member's observations."""
    data = context.data(CHINCHILLA)
    top = context.exclude_top_loss()
    used = CHINCHILLA.make_problem(data, {"exclude_top_loss": top}).used if top else np.ones(data["loss"].size, bool)
    runs = context.groups(CHINCHILLA)
    return {k: v[used] for k, v in data.items()}, None if runs is None else runs[used], used


def compare(
    group: GroupSettings, contexts: Mapping[str, FitContext], huber_delta: float
) -> dict[str, dict]:
    """Per member: held-out (above its compute cut-off) mean relative error of the joint fit and of its single fit."""
    datasets = {m: _member_data(contexts[m])[0] for m in group.members}
    cutoffs = {m: float(np.quantile(compute_of(d), HELD_OUT_QUANTILE)) for m, d in datasets.items()}
    below = {m: {k: v[compute_of(d) <= cutoffs[m]] for k, v in d.items()} for m, d in datasets.items()}
    try:
        joint = fit_joint(below, group.shared, group.options(huber_delta)).params
    except FIT_FAILURES:
        joint = None
    out = {}
    for m, d in datasets.items():
        held = compute_of(d) > cutoffs[m]
        joint_error = None
        if joint is not None and held.any():
            predicted = CHINCHILLA.predict(joint[m], {k: v[held] for k, v in d.items()})
            joint_error = float(np.mean(np.abs(predicted - d["loss"][held]) / d["loss"][held]))
        try:
            single = extrapolation_error(CHINCHILLA, d, contexts[m].options(CHINCHILLA), compute_cutoff=cutoffs[m])
            single_error = float(single["mean_relative_error"])
        except FIT_FAILURES:
            single_error = None
        out[m] = {"compute_cutoff": cutoffs[m], "n_held_out": int(held.sum()), "joint_error": joint_error,
                  "single_error": single_error}
    return out


def _worse(comparison: Mapping[str, dict]) -> bool | None:
    """The joint fit's mean held-out error over the members exceeds their single fits' (None: not scored)."""
    pairs = [(c["joint_error"], c["single_error"]) for c in comparison.values()
             if c["joint_error"] is not None and c["single_error"] is not None]
    if not pairs:
        return None
    return float(np.mean([j for j, _ in pairs])) > float(np.mean([s for _, s in pairs]))


def _sharing_gate(group: GroupSettings, comparison: Mapping[str, dict], member: str, settings: FitSettings) -> Gate:
    worse = _worse(comparison)
    scored = [c for c in comparison.values() if c["joint_error"] is not None and c["single_error"] is not None]
    if worse is None:
        detail = "no member has runs above its compute cut-off that both fits could score"
    else:
        joint = np.mean([c["joint_error"] for c in scored])
        single = np.mean([c["single_error"] for c in scored])
        own = comparison[member]
        mine = (f"; {member}: {own['joint_error']:.2%} vs {own['single_error']:.2%}"
                if own["joint_error"] is not None and own["single_error"] is not None else "")
        detail = (f"held-out error over the members, sharing {', '.join(group.shared)}: joint {joint:.2%}, "
                  f"single fits {single:.2%}{mine}")
    return GATES["group_sharing"].outcome(worse is not True, detail, settings.gates)


def _member_fit(
    group: GroupSettings, context: FitContext, boot: JointBootstrapResult, used: np.ndarray,
    comparison: Mapping[str, dict], settings: FitSettings,
) -> LawFit:
    """One member's fit from the joint fit: gated as a single fit is, allocations judged on its own runs."""
    member, fit = context.family, boot.fit
    params, ci, level = dict(fit.params[member]), dict(boot.ci[member]), boot.level
    samples = boot.samples[member]
    own = FitResult(
        law=CHINCHILLA.name, params=dict(params), objective=fit.objective, converged=fit.converged, message=fit.message,
        n_runs=fit.n_runs[member], seconds=fit.seconds, used=used, rmse_log=fit.rmse_log[member],
    )
    member_boot = BootstrapResult(
        law=CHINCHILLA, samples=samples, ci=ci, correlation=spearman(samples.values), level=level, seed=boot.seed,
        n_resamples=boot.n_resamples, fit=own, converged_fraction=boot.converged_fraction, seconds=boot.seconds,
        resample_counts=np.empty((0, int(used.sum()))), clustered=boot.clustered[member],
    )
    data = context.data(CHINCHILLA)
    runs = context.runs
    problems = design_problems(runs.get_column("run_id").to_list(), data["params"], data["tokens"], data["loss"],
                               min_runs=settings.min_runs)
    design = design_gate(problems, runs.get_column("run_id").n_unique(), runs.height, settings.gates)
    ident = identifiability(member_boot)
    flags = {k: bool(ident[k]) for k in ("alpha_beta_confounded", "A_E_confounded", "B_E_confounded") if k in ident}
    gates = [design, *chinchilla_gates(params, ci, fit.converged, float(data["loss"][used].min()),
                                       comparison[member]["joint_error"], flags, settings.gates),
             _sharing_gate(group, comparison, member, settings)]
    status, reason = verdict(gates)
    a, b = CHINCHILLA.exponents(params)
    params |= {"a": float(a), "b": float(b)}
    ci |= samples.exponent_interval(CHINCHILLA, level)
    diagnostics = {
        **context.diagnostics(),
        "group": group.group, "group_settings_version": group.settings_version, "group_source": group.source,
        "members": list(group.members), "shared": list(group.shared),
        "shared_params": dict(fit.shared_params), "joint_objective": fit.objective, "joint_message": fit.message,
        "comparison": dict(comparison[member]), "group_worse": _worse(comparison),
        "correlation": member_boot.correlation, "param_names": list(samples.names),
        "converged_fraction": boot.converged_fraction, "bootstrap_unit": "run" if boot.clustered[member] else "point",
        **flags,
    }
    record = FitRecord(
        family=member, law=group.joint_law, data_version=context.data_version, code_version=context.code_version,
        run_ids=runs.get_column("run_id").filter(pl.Series(used)).unique(maintain_order=True).to_list(),
        status=status, reason=reason, params=params, ci=ci, objective=fit.objective, rmse_log=fit.rmse_log[member],
        extrapolation_error=comparison[member]["joint_error"], converged=fit.converged,
        bootstrap_resamples=boot.n_resamples, checks=[g.as_dict() for g in gates], diagnostics=diagnostics,
        options=group.options(settings.huber_delta) | {"shared": list(group.shared)}, samples=samples,
    )
    lawfit = LawFit(law=CHINCHILLA, record=record, boot=member_boot, gates=tuple(gates))
    (judged,) = _judge_allocations(context, [lawfit])
    return judged


def _failed(group: GroupSettings, context: FitContext, error: Exception, settings: FitSettings) -> LawFit:
    """A joint fit the members' runs could not support, recorded for the member with the reason."""
    record = FitRecord(
        family=context.family, law=group.joint_law, data_version=context.data_version, code_version=context.code_version,
        run_ids=context.run_ids(), status="failed", reason=f"{type(error).__name__}: {error}",
        diagnostics={**context.diagnostics(), "group": group.group, "shared": list(group.shared)},
        options=group.options(settings.huber_delta) | {"shared": list(group.shared)},
    )
    return LawFit(law=CHINCHILLA, record=record)


def refit_group(
    open_writer: OpenWriter, group: GroupSettings, settings: FitSettings | None = None, *,
    family_settings: Mapping[str, FamilySettings] | None = None,
) -> GroupRefit:
    """Fit ``group`` jointly if its members' runs, settings, its own settings or the laws changed; store per member.

    ``family_settings`` are every family's declared settings (default: the shipped ones).
    """
    settings = settings or FitSettings()
    loaded = shipped_family_settings() if family_settings is None else family_settings
    with open_writer() as con:
        present = {f for (f,) in con.execute("SELECT DISTINCT family FROM runs WHERE list_contains(?::VARCHAR[], family)",
                                             [list(group.members)]).fetchall()}
        missing = [m for m in group.members if m not in present]
        if missing:
            return GroupRefit(group=group.group, state="", skipped=f"member(s) {', '.join(missing)} have no runs")
        prints = input_fingerprints(con, list(group.members))
        contexts = {m: prepare_family(con, m, settings, settings_for(m, loaded), fingerprint=prints.get(m)).context
                    for m in group.members}
        state = _group_state(group, {m: (c.data_version, c.family_settings.settings_version) for m, c in contexts.items()})
        if _last_state(con, group.group) == state:
            return GroupRefit(group=group.group, state=state, unchanged=True)
        singles = dict(con.execute(
            "SELECT family, fit_id FROM fits_published WHERE law = ? AND list_contains(?::VARCHAR[], family)",
            [CHINCHILLA.name, list(group.members)],
        ).fetchall())

    members = {m: _member_data(contexts[m]) for m in group.members}
    boot = None
    try:
        boot = bootstrap_joint(
            {m: d for m, (d, _, _) in members.items()}, group.shared, group.options(settings.huber_delta),
            n_resamples=settings.bootstrap_resamples, seed=settings.seed, level=settings.interval_level,
            groups={m: runs for m, (_, runs, _) in members.items() if runs is not None},
        )
        comparison = compare(group, contexts, settings.huber_delta)
        fitted = [_member_fit(group, contexts[m], boot, members[m][2], comparison, settings) for m in group.members]
    except FIT_FAILURES as error:
        comparison = {m: {"compute_cutoff": None, "n_held_out": None, "joint_error": None, "single_error": None}
                      for m in group.members}
        fitted = [_failed(group, contexts[m], error, settings) for m in group.members]

    worse = _worse(comparison)
    with open_writer() as con, claimed(con, *(f"family:{m}" for m in group.members)), transaction(con):
        record_group_settings(con, [group])
        fit_ids = store_records(con, [f.record for f in fitted])
        now = datetime.now(timezone.utc)
        rows = [
            [group.group, now, state, contexts[m].code_version, m, fit_id, singles.get(m), c["compute_cutoff"],
             c["n_held_out"], c["joint_error"], c["single_error"], worse]
            for (m, c), fit_id in zip(comparison.items(), fit_ids)
        ]
        con.executemany("INSERT INTO group_comparisons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    table = pl.DataFrame(
        [{"family": m, **c} for m, c in comparison.items()],
        schema={"family": pl.String, "compute_cutoff": pl.Float64, "n_held_out": pl.Int64,
                "joint_error": pl.Float64, "single_error": pl.Float64},
    )
    return GroupRefit(group=group.group, state=state, shared=group.shared, fitted=tuple(fitted), fit_ids=tuple(fit_ids),
                      comparison=table, boot=boot, datasets={m: d for m, (d, _, _) in members.items()})


def refit_groups(
    open_writer: OpenWriter, families: Iterable[str], groups: Mapping[str, GroupSettings],
    settings: FitSettings | None = None, *, family_settings: Mapping[str, FamilySettings] | None = None,
) -> list[GroupRefit]:
    """Refit every group with a member among ``families`` (the families a refit just visited), each once."""
    chosen: dict[str, GroupSettings] = {}
    for family in families:
        chosen |= {g.group: g for g in groups_of(family, groups)}
    return [refit_group(open_writer, g, settings, family_settings=family_settings) for g in chosen.values()]


def group_comparison(con: duckdb.DuckDBPyConnection, group: str | None = None) -> pl.DataFrame:
    """The newest comparison of each group (or of ``group``): per member, joint vs single held-out error."""
    return con.sql(
        "SELECT group_name, family, fitted_at, compute_cutoff, n_held_out, joint_error, single_error, group_worse, "
        "joint_fit_id, single_fit_id FROM group_comparisons_latest WHERE ?::VARCHAR IS NULL OR group_name = ? "
        "ORDER BY group_name, family",
        params=[group, group],
    ).pl()
