"""The one error a fit raises when the runs cannot support it.

Bad data is not a bug: too few runs, every run excluded, a zero or negative
loss, IsoFLOP budgets without a minimum.  A refit records such a fit as
failed and carries on; it must not swallow a programmer's mistake (a wrong
option name, a missing column, an argument of the wrong type) in the same
breath, so those stay ``ValueError`` / ``TypeError`` and only
:class:`FitError` is caught where a fit is allowed to fail.
"""

from __future__ import annotations

__all__ = ["FitError"]


class FitError(Exception):
    """The runs given cannot support this fit; the message says what is missing."""
