"""A full disk, recognised wherever it surfaces and said plainly.

Running out of space shows up as an ``OSError`` (copying into the archive, writing ``dagster.yaml``),
as a DuckDB error (its write-ahead log) or as SQLite's "database or disk is full" (Dagster's own
storage), often wrapped in other errors. None of these is a bug or bad input: the user needs to
know which folder is full, that nothing was half-written, and to free space and run the command again.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

#: errno values that mean "no room": the disk is full, or the user's quota is used up.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: How libraries without an errno say the same (DuckDB, SQLite, Windows).
_NO_SPACE_TEXT = ("no space left on device", "database or disk is full", "disk quota exceeded", "not enough space on the disk")
#: DuckDB names the file it could not write in double quotes.
_QUOTED_PATH = re.compile(r'"(/[^"]+)"')


class NoSpace(RuntimeError):
    """The file system holding ``path`` is full; nothing was half-written (callers clean up before raising)."""

    def __init__(self, path: Path):
        self.path = path
        super().__init__(
            f"no space left on {path}: free some space there (or point SCALEREG_HOME at a larger disk) "
            "and run the command again; nothing was half-written"
        )


def _chain(error: BaseException) -> list[BaseException]:
    """The error and every error it was raised from or while handling (Dagster wraps a step's error)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_no_space(error: BaseException) -> bool:
    """Whether ``error``, or an error behind it, is a file system that ran out of space."""
    for e in _chain(error):
        if isinstance(e, NoSpace) or (isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS):
            return True
        if any(text in str(e).lower() for text in _NO_SPACE_TEXT):
            return True
    return False


def no_space(error: BaseException, default: Path) -> NoSpace:
    """A :class:`NoSpace` naming the folder the failed write was in (``default`` when no error names one)."""
    for e in _chain(error):
        if isinstance(e, NoSpace):
            return e
        written = (getattr(e, "filename2", None) or getattr(e, "filename", None)) if isinstance(e, OSError) else None
        found = _QUOTED_PATH.search(str(e))
        if written or found:
            return NoSpace(Path(written or found.group(1)).parent)
    return NoSpace(default)
