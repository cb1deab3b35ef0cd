"""Family keys: they become Dagster partition keys, file names and SQL values, so they are slugs."""

from __future__ import annotations

import re
import unicodedata

FAMILY_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
_FAMILY_RE = re.compile(FAMILY_PATTERN)
MAX_FAMILY_LENGTH = 64


def is_family_key(value: object) -> bool:
    """True when ``value`` can be used unchanged as a partition key, a file name and a SQL value."""
    # fullmatch, not match: with ``$`` a trailing newline ("fam\n") would otherwise pass.
    return isinstance(value, str) and _FAMILY_RE.fullmatch(value) is not None


def slugify(value: str) -> str:
    """Turn a free-form name into a family key, or return "" when nothing usable remains.

    Used for names that come from published sources and mappings (``family_column``), never to
    silently repair a key a user typed: those are validated and rejected with a reason instead.
    """
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    slug = re.sub(r"-{2,}", "-", slug)
    return slug[:MAX_FAMILY_LENGTH].strip("-")


def family_problem(value: object) -> str | None:
    """Why ``value`` is not a family key, phrased so the user knows the fix; None when it is one."""
    if not isinstance(value, str) or value == "":
        return "family is missing; give every row a family key such as 'my-model-v1'"
    if is_family_key(value):
        return None
    suggestion = slugify(value)
    hint = (
        f"; did you mean '{suggestion}'?"
        if suggestion
        else "; choose a key such as 'my-model-v1' (or map the names to keys with family_values in a mapping)"
    )
    shown = repr(value) if len(value) <= 80 else f"{value[:40]!r}... ({len(value)} characters)"
    return (
        f"family {shown} is not a key: use 1-{MAX_FAMILY_LENGTH} lower-case letters, digits and '-' "
        f"(no leading or trailing '-'){hint}"
    )
