"""Settings of a refit and its publication gates: the one declaration the registry, the CLI and Dagster share.

Dagster's run config is built from these dataclasses (``pipelines/defs/fit_config.py``), so adding a
setting here is the whole change. Every setting is part of a fit's code version: changing one refits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from laws.intervals import DEFAULT_LEVEL
from laws.trust import TrustSettings
from registry.fit_store import laws_code_version


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

    def verdict_settings(self) -> TrustSettings:
        return TrustSettings(
            tolerance=self.tolerance, factor=self.factor, max_decades_above=self.max_decades_above,
            disagreement_factor=self.disagreement_factor,
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

    def code_version(self, settings_version: str) -> str:
        """``<laws>-<these settings>-<the family's settings version>``: what a fit was made with."""
        options = json.dumps(asdict(self), sort_keys=True)
        return f"{laws_code_version()}-{hashlib.sha256(options.encode()).hexdigest()[:6]}-{settings_version}"
