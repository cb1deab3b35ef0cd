"""Settings of a refit and its publication gates: the one declaration the registry, the CLI and Dagster share.

Dagster's run config is built from these dataclasses (``pipelines/defs/fit_config.py``), so adding a
setting here is the whole change. Every setting is part of a fit's code version: changing one refits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from laws.intervals import DEFAULT_LEVEL
from registry.fit_store import laws_code_version


@dataclass(frozen=True)
class GateSettings:
    """Thresholds of the publication gates (``registry/gates.py``) and which optional gates hold a fit."""

    max_extrapolation_error: float = 0.05
    max_relative_interval_width: float = 1.0
    max_exponent_disagreement: float = 0.1
    identifiability_blocks: bool = False
    agreement_blocks: bool = False


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
    gates: GateSettings = field(default_factory=GateSettings)

    def code_version(self) -> str:
        options = json.dumps(asdict(self), sort_keys=True)
        return f"{laws_code_version()}-{hashlib.sha256(options.encode()).hexdigest()[:6]}"
