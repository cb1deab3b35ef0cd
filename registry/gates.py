"""Publication gates: what a fit must show before planners may read it.

A fit that fails a blocking gate is stored as ``held`` with the reasons; the previously published
version stays the one planners see. Non-blocking gates are reported but do not hold a fit. Every
law faces gates: the design of the runs first (checked before anything is fitted), then
convergence, plausible parameters and narrow enough intervals, each as the law declares them
(:attr:`laws.law.Law.plausible`, :attr:`laws.law.Law.gated_intervals`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from laws.law import Law
from registry.settings import GateSettings


@dataclass(frozen=True)
class Gate:
    """One gate's outcome for one fit, stored with the fit in ``fits.checks``."""

    name: str
    passed: bool
    blocking: bool
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def _always(settings: GateSettings) -> bool:
    return True


@dataclass(frozen=True)
class GateDefinition:
    """A gate as the catalogue declares it: what it asks of a fit, and whether failing it holds the fit."""

    name: str
    description: str
    holds: Callable[[GateSettings], bool] = _always

    def outcome(self, passed: bool, detail: str, settings: GateSettings) -> Gate:
        return Gate(self.name, bool(passed), self.holds(settings), detail)


#: Every gate a fit can face, in the order the UI lists them; the one place that says which gates hold a fit.
GATES: dict[str, GateDefinition] = {
    gate.name: gate
    for gate in (
        GateDefinition(
            "design",
            "the runs can support a fit: enough runs, more than one model size N and token count D, losses that differ",
        ),
        GateDefinition("converged", "the optimiser met its tolerance"),
        GateDefinition(
            "plausible",
            "every parameter in its law's plausible range (Chinchilla: 0 < alpha, beta < 2 and 0 < E < the smallest "
            "observed loss; Kaplan: exponents in (0, 2), N_c and D_c in (1e3, 1e22))",
        ),
        GateDefinition(
            "extrapolation",
            "loss on the runs above a compute cut-off is predicted within the threshold by a fit on those below",
        ),
        GateDefinition(
            "interval_width",
            "the bootstrap intervals of the law's exponents (and of its scales, in decades) are narrow enough to plan with",
        ),
        GateDefinition(
            "identifiability",
            "alpha and beta (and A and E) can be told apart on these runs",
            holds=lambda settings: settings.identifiability_blocks,
        ),
        GateDefinition(
            "approaches_agree",
            "Approach 2 and Approach 3 agree on the allocation exponent a, where both apply",
            holds=lambda settings: settings.agreement_blocks,
        ),
        GateDefinition("finite_parameters", "every parameter of the fit is a finite number"),
        GateDefinition(
            "group_sharing",
            "a group's joint fit predicts its members' runs above the compute cut-off no worse than their single fits "
            "(registry/group_refit.py; never holds a fit: it says the shared parameters may be a bad choice)",
            holds=lambda settings: False,
        ),
    )
}


def _relative_width(ci: tuple[float, float], value: float) -> float:
    lo, hi = ci
    if not (np.isfinite(lo) and np.isfinite(hi)) or value == 0:
        return float("inf")
    return (hi - lo) / abs(value)


def chinchilla_gates(
    params: dict[str, float],
    ci: dict[str, tuple[float, float]],
    converged: bool,
    min_observed_loss: float,
    extrapolation_error: float | None,
    identifiability: dict,
    settings: GateSettings,
    isoflop_a: float | None = None,
) -> list[Gate]:
    """The gates for a Chinchilla-form fit, in the order the UI lists them."""
    alpha, beta, E = params.get("alpha", np.nan), params.get("beta", np.nan), params.get("E", np.nan)
    plausible = bool(0 < alpha < 2 and 0 < beta < 2 and 0 < E < min_observed_loss)
    widths = {name: _relative_width(ci[name], params[name]) for name in ("alpha", "beta") if name in ci}
    widest = max(widths.values()) if widths else float("inf")
    confounded = [k for k, v in identifiability.items() if k.endswith("_confounded") and v]
    gates = [
        GATES["converged"].outcome(
            converged, "the optimiser met its tolerance" if converged else "the optimiser did not converge", settings
        ),
        GATES["plausible"].outcome(
            plausible,
            f"alpha={alpha:.4g}, beta={beta:.4g} in (0, 2); E={E:.4g} in (0, min loss {min_observed_loss:.4g})",
            settings,
        ),
        GATES["extrapolation"].outcome(
            extrapolation_error is not None and extrapolation_error <= settings.max_extrapolation_error,
            "no runs above the cut-off to score" if extrapolation_error is None
            else f"mean relative error above the compute cut-off {extrapolation_error:.2%} (limit {settings.max_extrapolation_error:.0%})",
            settings,
        ),
        GATES["interval_width"].outcome(
            widest <= settings.max_relative_interval_width,
            f"widest 95% interval of alpha, beta relative to the value: {widest:.2f} (limit {settings.max_relative_interval_width:.2f})",
            settings,
        ),
        GATES["identifiability"].outcome(
            not confounded,
            "parameters are told apart by the runs" if not confounded else "cannot be told apart: " + ", ".join(confounded),
            settings,
        ),
    ]
    if isoflop_a is not None:
        a3 = beta / (alpha + beta)
        gates.append(
            GATES["approaches_agree"].outcome(
                abs(a3 - isoflop_a) <= settings.max_exponent_disagreement,
                f"allocation exponent a: Approach 3 {a3:.3f}, Approach 2 {isoflop_a:.3f} (tolerance {settings.max_exponent_disagreement})",
                settings,
            )
        )
    return gates


def design_problems(
    run_ids: Sequence[str], N: np.ndarray, D: np.ndarray, L: np.ndarray, min_runs: int
) -> list[str]:
    """What makes these observations unable to support any fit, one sentence per cause (empty: none).

    Checked before fitting: on such runs an optimiser still returns numbers (alpha = 1.46 from twelve
    runs at one N, a zero-width interval from identical losses), and they must not be published.
    """
    problems = []
    n_runs = len(set(run_ids))
    if n_runs < min_runs:
        problems.append(f"fewer than {min_runs} runs: the family has {n_runs} to fit; add runs")
    if L.size == 0:
        return problems

    def one_value(x: np.ndarray) -> bool:
        return bool(np.ptp(np.log(x)) <= 1e-9)

    if one_value(N):
        problems.append(
            f"every run has the same model size N = {N[0]:.3g}: the size term cannot be fitted; add runs at other sizes"
        )
    if one_value(D):
        problems.append(
            f"every observation has the same token count D = {D[0]:.3g}: the data term cannot be fitted; "
            "add runs trained on other token counts"
        )
    if one_value(L):
        problems.append(f"every observation has the same loss {L[0]:.4g}: there is nothing to fit; check the loss column")
    return problems


def design_gate(problems: list[str], n_runs: int, n_observations: int, settings: GateSettings) -> Gate:
    """The design gate from :func:`design_problems`: held, naming every cause, when any applies."""
    detail = "; ".join(problems) if problems else f"{n_runs} runs ({n_observations} observations) can support a fit"
    return GATES["design"].outcome(not problems, detail, settings)


def _plausible(law: Law, params: dict[str, float], min_observed_loss: float) -> tuple[bool, str]:
    ranges = dict(law.plausible)
    if "E" in params:  # an irreducible loss above an observed loss cannot be
        ranges["E"] = (0.0, min_observed_loss)
    if not ranges:
        return True, f"law {law.name} declares no plausible range"
    outside = [name for name, (lo, hi) in ranges.items() if not lo < params.get(name, np.nan) < hi]
    detail = ", ".join(f"{name}={params.get(name, np.nan):.4g} in ({lo:.4g}, {hi:.4g})" for name, (lo, hi) in ranges.items())
    return not outside, (f"outside: {', '.join(outside)}; " if outside else "") + detail


def _interval_widths(law: Law, params: dict[str, float], ci: dict[str, tuple[float, float]], settings: GateSettings) -> tuple[bool, str]:
    """Exponents: width relative to the value; scales (fitted as logs): width in decades."""
    if not law.gated_intervals:
        return True, f"law {law.name} gates no interval"
    too_wide, shown = [], []
    for name in law.gated_intervals:
        lo, hi = ci.get(name, (np.nan, np.nan))
        if name in law.log_params:
            with np.errstate(divide="ignore", invalid="ignore"):
                width = float(np.log10(hi / lo)) if lo > 0 and np.isfinite(hi) else float("inf")
            limit, unit = settings.max_scale_interval_decades, " decades"
        else:
            width, limit, unit = _relative_width((lo, hi), params.get(name, np.nan)), settings.max_relative_interval_width, ""
        if not width <= limit:
            too_wide.append(name)
        shown.append(f"{name} {width:.2f}{unit} (limit {limit:.2f})")
    return not too_wide, (f"too wide: {', '.join(too_wide)}; " if too_wide else "") + "; ".join(shown)


def law_gates(
    law: Law, fit_params: dict[str, float], ci: dict[str, tuple[float, float]], converged: bool, message: str,
    min_observed_loss: float, settings: GateSettings,
) -> list[Gate]:
    """The gates for every law but the primary: it converged, every parameter is a finite number in the
    law's plausible range, and the intervals it gates are narrow enough to plan with."""
    finite = all(np.isfinite(value) for value in fit_params.values())
    plausible, plausible_detail = _plausible(law, fit_params, min_observed_loss)
    narrow, width_detail = _interval_widths(law, fit_params, ci, settings)
    return [
        GATES["converged"].outcome(converged, message, settings),
        GATES["finite_parameters"].outcome(finite, "every parameter is a finite number", settings),
        GATES["plausible"].outcome(plausible, plausible_detail, settings),
        GATES["interval_width"].outcome(narrow, f"bootstrap interval widths: {width_detail}", settings),
    ]


def verdict(gates: list[Gate]) -> tuple[str, str | None]:
    """``published`` unless a blocking gate failed; the reason names every failed blocking gate."""
    failed = [g for g in gates if g.blocking and not g.passed]
    if not failed:
        return "published", None
    return "held", "; ".join(f"{g.name}: {g.detail}" for g in failed)
