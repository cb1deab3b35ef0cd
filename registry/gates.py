"""Publication gates: what a fit must show before planners may read it.

A fit that fails a blocking gate is stored as ``held`` with the reasons; the previously published
version stays the one planners see. Non-blocking gates are reported but do not hold a fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

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
        GateDefinition("converged", "the optimiser met its tolerance"),
        GateDefinition("plausible", "0 < alpha, beta < 2 and 0 < E < the smallest observed loss"),
        GateDefinition(
            "extrapolation",
            "loss on the runs above a compute cut-off is predicted within the threshold by a fit on those below",
        ),
        GateDefinition("interval_width", "the bootstrap intervals of alpha and beta are narrow enough to plan with"),
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


def law_gates(converged: bool, message: str, params: dict[str, float], settings: GateSettings) -> list[Gate]:
    """The gates for a law without its own: it converged and every parameter is a finite number."""
    finite = all(np.isfinite(value) for value in params.values())
    return [
        GATES["converged"].outcome(converged, message, settings),
        GATES["finite_parameters"].outcome(finite, "every parameter is a finite number", settings),
    ]


def verdict(gates: list[Gate]) -> tuple[str, str | None]:
    """``published`` unless a blocking gate failed; the reason names every failed blocking gate."""
    failed = [g for g in gates if g.blocking and not g.passed]
    if not failed:
        return "published", None
    return "held", "; ".join(f"{g.name}: {g.detail}" for g in failed)
