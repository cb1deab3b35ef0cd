"""A refit's settings are checked when they are made: a value no refit can use is refused, naming the setting."""

from __future__ import annotations

import pytest

from registry.settings import FitSettings, GateSettings, settings_problem


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"bootstrap_resamples": 0}, "bootstrap_resamples must be at least 1, got 0"),
        ({"bootstrap_resamples": -1}, "bootstrap_resamples must be at least 1, got -1"),
        ({"other_law_resamples": 0}, "other_law_resamples must be at least 1"),
        ({"min_runs": 0}, "min_runs must be at least 1"),
        ({"huber_delta": 0.0}, "huber_delta must be above 0"),
        ({"interval_level": 95}, "interval_level must be between 0 and 1 (0.95, not 95), got 95"),
        ({"interval_level": 0.0}, "interval_level must be between 0 and 1"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"exclude_top_loss": -2}, "exclude_top_loss must be at least 0"),
        ({"gates": GateSettings(max_extrapolation_error=float("nan"))}, "gates.max_extrapolation_error must be at least 0, got nan"),
        ({"gates": GateSettings(max_relative_interval_width=-1.0)}, "gates.max_relative_interval_width must be at least 0"),
    ],
)
def test_a_setting_no_refit_can_use_is_refused_naming_it(given, named):
    with pytest.raises(ValueError, match="setting " + named.replace("(", r"\(").replace(")", r"\)")):
        FitSettings(**given)


def test_the_defaults_and_the_smallest_usable_values_are_accepted():
    smallest = FitSettings(bootstrap_resamples=1, other_law_resamples=1, min_runs=1, seed=0, exclude_top_loss=0, interval_level=0.5)
    assert settings_problem(FitSettings()) is None and settings_problem(smallest) is None
