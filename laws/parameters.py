"""A law's parameters: natural values for people, an internal vector for optimisers.

Scale parameters (E, A, B, N_c, ...) are optimised as their logarithm so that
they stay positive without a bound and a relative change costs the same at
every magnitude; exponents are optimised as they are.  Which parameters are
scales is all a law has to say: the maps between natural values and the
internal vector ``theta``, and the translation of natural-scale bounds and
fixed values, follow from that list here, once for every law.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Bounds", "ParameterSpace"]

#: natural-scale ``{name: (lo, hi)}``; None for an open end
Bounds = Mapping[str, tuple[float | None, float | None]]


@dataclass(frozen=True)
class ParameterSpace:
    """The parameters of one law configuration, in ``theta`` order.

    Attributes:
        names: natural parameter names.
        log_params: the names optimised as their logarithm.
        ties: ``(follower, leader)`` pairs: the follower takes the leader's
            value (a shared exponent, ``beta = alpha``).  Its column stays in
            ``theta`` so every configuration has the same columns, but the
            optimiser never moves it and the natural values copy the leader.
    """

    names: tuple[str, ...]
    log_params: frozenset[str]
    ties: tuple[tuple[str, str], ...] = ()

    @property
    def log_index(self) -> list[int]:
        """Positions in ``theta`` that hold a logarithm."""
        return [i for i, name in enumerate(self.names) if name in self.log_params]

    def to_theta(self, params: Mapping[str, Any]) -> np.ndarray:
        """Natural parameters (a mapping with at least ``names``; a tied name may be left out) to the internal vector."""
        leader = dict(self.ties)
        values = [params[leader.get(name, name)] for name in self.names]
        with np.errstate(divide="ignore"):  # a scale fixed at 0 is log 0 = -inf
            return np.array(
                [np.log(v) if name in self.log_params else v for name, v in zip(self.names, values)], float
            )

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        """Internal ``theta (..., p)`` to natural values ``(..., p)`` in ``names`` order."""
        theta = self.tied(theta)
        out = theta.copy()
        index = self.log_index
        with np.errstate(over="ignore"):  # an unidentified scale may run off to inf
            out[..., index] = np.exp(theta[..., index])
        return out

    def tied(self, theta: np.ndarray) -> np.ndarray:
        """``theta`` with every follower's column set to its leader's (``theta`` itself when nothing is tied)."""
        theta = np.asarray(theta, float)
        if not self.ties:
            return theta
        out = theta.copy()
        for follower, leader in self.ties:
            out[..., self.names.index(follower)] = theta[..., self.names.index(leader)]
        return out

    def resolve_bounds(
        self,
        bounds: Bounds | None,
        fixed: Mapping[str, float] | None,
        default: Bounds | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Translate natural-scale bounds and fixed values to the internal scale.

        Returns:
            ``(lower, upper, free, fixed_theta)``; ``fixed_theta`` is NaN where free.
        """
        bounds = dict(bounds or {})
        fixed = dict(fixed or {})
        unknown = (set(bounds) | set(fixed)) - set(self.names)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)}; this law has {list(self.names)}")
        leader = dict(self.ties)
        tied = sorted((set(bounds) | set(fixed)) & set(leader))
        if tied:
            raise ValueError(f"{tied[0]} is tied to {leader[tied[0]]} here: bound or fix {leader[tied[0]]} instead")
        p = len(self.names)
        lower = np.full(p, -np.inf)
        upper = np.full(p, np.inf)
        free = np.ones(p, bool)
        fixed_theta = np.full(p, np.nan)
        for i, name in enumerate(self.names):
            lo, hi = bounds.get(name, (default or {}).get(name, (None, None)))
            if name in self.log_params:
                lower[i] = np.log(lo) if lo is not None and lo > 0 else -np.inf
                upper[i] = np.log(hi) if hi is not None else np.inf
            else:
                lower[i] = -np.inf if lo is None else lo
                upper[i] = np.inf if hi is None else hi
            if lower[i] > upper[i]:
                raise ValueError(f"empty bounds for {name}: {bounds.get(name)}")
            if name in leader:  # carried in theta, never moved: its value is the leader's
                lower[i], upper[i], free[i] = -np.inf, np.inf, False
                continue
            if name in fixed:
                v = float(fixed[name])
                if name in self.log_params:
                    if v < 0:
                        raise ValueError(f"fixed {name} must be >= 0, got {v}")
                    fixed_theta[i] = np.log(v) if v > 0 else -np.inf
                else:
                    fixed_theta[i] = v
                free[i] = False
                lower[i] = upper[i] = fixed_theta[i]
        return lower, upper, free, fixed_theta
