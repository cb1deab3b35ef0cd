"""Publication gates: what a fit must show before planners may read it.

A fit that fails a blocking gate is stored as ``held`` with the reasons; the previously published
version stays the one planners see. Non-blocking gates are reported but do not hold a fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class GateSettings:
    """Thresholds, configurable per run (Dagster config) or per call."""

    max_extrapolation_error: float = 0.05
    max_relative_interval_width: float = 1.0
    max_exponent_disagreement: float = 0.1
    identifiability_blocks: bool = False
    agreement_blocks: bool = False


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    blocking: bool
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


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
    gates = [
        Gate("converged", bool(converged), True, "the optimiser met its tolerance" if converged else "the optimiser did not converge"),
        Gate(
            "plausible",
            plausible,
            True,
            f"alpha={alpha:.4g}, beta={beta:.4g} in (0, 2); E={E:.4g} in (0, min loss {min_observed_loss:.4g})",
        ),
        Gate(
            "extrapolation",
            extrapolation_error is not None and extrapolation_error <= settings.max_extrapolation_error,
            True,
            "no runs above the cut-off to score" if extrapolation_error is None
            else f"mean relative error above the compute cut-off {extrapolation_error:.2%} (limit {settings.max_extrapolation_error:.0%})",
        ),
        Gate(
            "interval_width",
            widest <= settings.max_relative_interval_width,
            True,
            f"widest 95% interval of alpha, beta relative to the value: {widest:.2f} (limit {settings.max_relative_interval_width:.2f})",
        ),
    ]
    confounded = [k for k, v in identifiability.items() if k.endswith("_confounded") and v]
    gates.append(
        Gate(
            "identifiability",
            not confounded,
            settings.identifiability_blocks,
            "parameters are told apart by the runs" if not confounded else "cannot be told apart: " + ", ".join(confounded),
        )
    )
    if isoflop_a is not None:
        a3 = beta / (alpha + beta)
        gap = abs(a3 - isoflop_a)
        gates.append(
            Gate(
                "approaches_agree",
                gap <= settings.max_exponent_disagreement,
                settings.agreement_blocks,
                f"allocation exponent a: Approach 3 {a3:.3f}, Approach 2 {isoflop_a:.3f} (tolerance {settings.max_exponent_disagreement})",
            )
        )
    return gates


def verdict(gates: list[Gate]) -> tuple[str, str | None]:
    """``published`` unless a blocking gate failed; the reason names every failed blocking gate."""
    failed = [g for g in gates if g.blocking and not g.passed]
    if not failed:
        return "published", None
    return "held", "; ".join(f"{g.name}: {g.detail}" for g in failed)
