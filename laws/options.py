"""Fit options: frozen records that reject what they do not know.

Every law declares one options type.  The fields shared by the fitted
(parametric) laws are declared once, in :class:`FitOptions`; a law adds only
its own search settings.  A mapping of options (from a CLI, a TOML file, a
caller's dict) becomes an options record through :meth:`Options.of`, and an
unknown key is an error naming the key and the keys allowed: an option a
law silently ignored would be a setting the user believes in and the fit
never saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np

from laws.parameters import Bounds

__all__ = ["Options", "FitOptions"]

T = TypeVar("T", bound="Options")


@dataclass(frozen=True, eq=False)
class Options:
    """Which runs a fit uses and how much each counts (every law takes these).

    Attributes:
        exclude_top_loss: drop this many highest-loss runs first.
        weights: non-negative per-run weights over the input runs (the
            bootstrap passes resample counts here); None for equal weights.
    """

    exclude_top_loss: int = 0
    weights: np.ndarray | None = None

    @classmethod
    def allowed(cls) -> tuple[str, ...]:
        """The option names this type takes."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls: type[T], given: Options | Mapping[str, Any] | None, law: str = "") -> T:
        """An options record from a record of this type, a mapping or None (the defaults).

        Raises:
            ValueError: a key of ``given`` is not an option of this type.
            TypeError: ``given`` is another law's options record.
        """
        if given is None:
            return cls()
        if isinstance(given, Options):
            if not isinstance(given, cls):
                raise TypeError(f"{type(given).__name__} given where {cls.__name__} is needed")
            return given
        unknown = [key for key in given if key not in cls.allowed()]
        if unknown:
            whose = f" for law {law!r}" if law else ""
            raise ValueError(f"unknown option {unknown[0]!r}{whose}; allowed: {', '.join(cls.allowed())}")
        return cls(**given)


@dataclass(frozen=True, eq=False)
class FitOptions(Options):
    """Options of a law fitted by optimising an objective (every law but Approach 2).

    Attributes:
        objective: "huber_log" (Hoffmann/Besiroglu), "least_squares" (on L),
            "huber" (on L) or "least_squares_log".
        huber_delta: Huber threshold, in the residual's units.
        bounds: natural-scale ``{name: (lo, hi)}``; None for open ends.
        fixed: natural-scale values held fixed (e.g. ``{"E": 1.69}``).
        n_starts: basins of the global search to polish.
        init: skip the global search and polish from these parameters (warm start).
    """

    objective: str = "huber_log"
    huber_delta: float = 1e-3
    bounds: Bounds | None = None
    fixed: Mapping[str, float] | None = None
    n_starts: int = 4
    init: Mapping[str, float] | None = None
