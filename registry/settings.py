"""Settings of a refit and its publication gates: the one declaration the registry, the CLI and Dagster share.

Dagster's run config is built from these dataclasses (``pipelines/defs/fit_config.py``), so adding a
setting here is the whole change. Every setting is part of a fit's code version: changing one refits.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass

from laws.intervals import DEFAULT_LEVEL
from laws.trust import TrustSettings
from registry.fit_store import laws_code_version


#: Bounds tighter than the one every number has (finite, not negative); checked when FitSettings is made.
_AT_LEAST_ONE = frozenset({"bootstrap_resamples", "other_law_resamples", "min_runs"})
_ABOVE_ZERO = frozenset({"huber_delta"})
_FRACTIONS = frozenset({"interval_level"})


def settings_problem(settings: object, prefix: str = "") -> str | None:
    """Why a settings record (and the records inside it) cannot be used, in one line naming the setting; or None.

    Checked when :class:`FitSettings` is made, so ``scalereg refit`` and Dagster's run config both refuse a
    bad value before anything is fitted, rather than storing a failed fit for it.
    """
    for item in fields(settings):
        value, name = getattr(settings, item.name), prefix + item.name
        if is_dataclass(value):
            if problem := settings_problem(value, f"{name}."):
                return problem
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if item.name in _AT_LEAST_ONE:
            fits, bound = value >= 1, "at least 1"
        elif item.name in _ABOVE_ZERO:
            fits, bound = value > 0, "above 0"
        elif item.name in _FRACTIONS:
            fits, bound = 0 < value < 1, "between 0 and 1 (0.95, not 95)"
        else:
            fits, bound = value >= 0, "at least 0"
        if not (math.isfinite(value) and fits):
            return f"setting {name} must be {bound}, got {value!r}"
    return None


@dataclass(frozen=True)
class GateSettings:
    """Thresholds of the publication gates (``registry/gates.py``) and which optional gates hold a fit."""

    max_extrapolation_error: float = 0.05
    max_relative_interval_width: float = 1.0
    #: a scale's interval (Kaplan's N_c, D_c) spanning more decades than this is too wide to plan with
    max_scale_interval_decades: float = 4.0
    max_exponent_disagreement: float = 0.1
    identifiability_blocks: bool = False
    agreement_blocks: bool = False


@dataclass(frozen=True)
class AllocationTrustSettings:
    """Thresholds of the allocation verdict (:mod:`laws.trust`): when an allocation row is ``trusted``."""

    #: relative objective excess that counts as fitting as well as the optimum on a profile
    tolerance: float = 0.01
    #: unidentified when an equally good fit's tokens/param lies more than this factor from the fit's
    factor: float = 2.0
    #: budgets more than this many decades above the family's largest run are extrapolated
    max_decades_above: float = 2.0
    #: approaches disagree when their tokens/param differ by more than this factor
    disagreement_factor: float = 2.0
    #: widen the tolerance to the 95% likelihood-ratio bound for families with few runs (1.92 / runs)
    calibrated_tolerance: bool = True

    def verdict_settings(self) -> TrustSettings:
        return TrustSettings(
            tolerance=self.tolerance, factor=self.factor, max_decades_above=self.max_decades_above,
            disagreement_factor=self.disagreement_factor, calibrated=self.calibrated_tolerance,
        )


@dataclass(frozen=True)
class FitSettings:
    """What a refit does; part of the code version, so changing a setting refits."""

    bootstrap_resamples: int = 1000
    other_law_resamples: int = 200
    seed: int = 0
    huber_delta: float = 1e-3
    exclude_top_loss: int = 0
    min_runs: int = 8
    #: coverage of every published interval (coefficients, exponents, allocations)
    interval_level: float = DEFAULT_LEVEL
    #: grid points of each profile of the objective (over E and over a)
    profile_points: int = 20
    gates: GateSettings = field(default_factory=GateSettings)
    trust: AllocationTrustSettings = field(default_factory=AllocationTrustSettings)

    def __post_init__(self) -> None:
        if problem := settings_problem(self):
            raise ValueError(problem)

    def code_version(self, settings_version: str) -> str:
        """``<laws>-<these settings>-<the family's settings version>``: what a fit was made with."""
        options = json.dumps(asdict(self), sort_keys=True)
        return f"{laws_code_version()}-{hashlib.sha256(options.encode()).hexdigest()[:6]}-{settings_version}"
