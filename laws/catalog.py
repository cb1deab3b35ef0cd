"""The catalogue of laws: every :class:`~laws.law.Law` by name.

The registry and pipelines work with columns (``params``, ``tokens``,
``loss``, ``unique_tokens``, ``flops``, ``budget``, ``run``) and a law's name as it
is stored; this is where a name becomes the law that answers for it.
Iterating ``LAWS`` gives the laws in the order refits list them.
"""

from __future__ import annotations

from laws.approach1 import APPROACH1
from laws.broken_power_law import BROKEN_POWER_LAW
from laws.chinchilla import CHINCHILLA
from laws.data_constrained import DATA_CONSTRAINED
from laws.isoflop import ISOFLOP
from laws.kaplan import KAPLAN
from laws.law import COLUMNS, Law

__all__ = ["Law", "LAWS", "get_law", "COLUMNS"]

LAWS: dict[str, Law] = {
    law.name: law for law in (CHINCHILLA, ISOFLOP, APPROACH1, KAPLAN, BROKEN_POWER_LAW, DATA_CONSTRAINED)
}


def get_law(name: str | Law) -> Law:
    """Look a law up by name (a :class:`Law` is returned as it is), failing with the list of known laws."""
    if isinstance(name, Law):
        return name
    try:
        return LAWS[name]
    except KeyError:
        raise ValueError(f"unknown law {name!r}; choose one of {sorted(LAWS)}") from None
