"""What users type on the command line that is more than a word: points in time and a law's coefficients.

Each parser returns the value or raises ``ValueError`` with one line that says what was wrong and what
is accepted; the commands turn that line into their message (:func:`registry.output.fail`).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the laws (scipy) load only for commands that use one
    from laws.law import Law

#: What --as-of accepts, said in every refusal.
AS_OF_FORMS = (
    "give a date (2026-01-31, meaning 00:00 UTC), a date and time (2026-01-31T12:00, UTC unless it carries "
    "an offset such as +02:00), now, today or yesterday (00:00 UTC)"
)


def parse_as_of(text: str, now: datetime | None = None) -> datetime:
    """The moment ``--as-of`` names, timezone-aware (naive dates and times are UTC, as stored fits are)."""
    now = now or datetime.now(timezone.utc)
    today = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    named = {"now": now, "today": today, "yesterday": today - timedelta(days=1)}
    word = text.strip()
    if word.lower() in named:
        return named[word.lower()]
    try:
        moment = datetime.fromisoformat(word)
    except ValueError:
        raise ValueError(f"--as-of {text!r} is not a point in time; {AS_OF_FORMS}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def law_params(law: Law, text: str) -> dict[str, float]:
    """The coefficients given for ``law`` as a JSON object: exactly its parameters, each a finite number in
    the range the law declares (scales positive, exponents within the law's plausible range)."""
    takes = f"the {law.name} law takes {', '.join(law.param_names)}"
    try:
        given = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--params is not JSON ({error.msg}, character {error.pos}); {takes}") from None
    if not isinstance(given, dict):
        raise ValueError(f"--params must be a JSON object of numbers, not a {type(given).__name__}; {takes}")
    if unknown := [name for name in given if name not in law.param_names]:
        raise ValueError(f"--params: unknown parameter {unknown[0]!r}; {takes}")
    if missing := [name for name in law.param_names if name not in given]:
        raise ValueError(f"--params: {', '.join(missing)} missing; {takes}")
    values = {}
    for name in law.param_names:
        value = given[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"--params: {name} must be a finite number, got {json.dumps(value)}")
        if name in law.log_params and value <= 0:
            raise ValueError(f"--params: {name} is a scale and must be positive, got {value:g}")
        lo, hi = law.plausible.get(name, (-math.inf, math.inf))
        if not lo < value < hi:
            raise ValueError(f"--params: {name} must lie between {lo:g} and {hi:g} for the {law.name} law, got {value:g}")
        values[name] = float(value)
    return values
