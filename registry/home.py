"""Where the project writes at run time: one folder, ``$SCALEREG_HOME`` (default ``./var``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PUBLISHED_DIR = PROJECT_ROOT / "data" / "published"


@dataclass(frozen=True)
class Home:
    """Every path the registry writes, derived from one root so a home can be moved or deleted whole."""

    root: Path

    @classmethod
    def from_env(cls, root: str | os.PathLike[str] | None = None) -> "Home":
        chosen = root if root is not None else os.environ.get("SCALEREG_HOME", "var")
        return cls(Path(chosen).expanduser().resolve())

    @property
    def registry(self) -> Path:
        return self.root / "registry.duckdb"

    @property
    def dagster(self) -> Path:
        return self.root / "dagster"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    def ensure(self) -> "Home":
        for folder in (self.root, self.dagster, self.landing, self.archive, self.exports):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def contains(self, path: Path) -> bool:
        """Whether ``path`` stays inside the home once resolved (no ``..`` or symlink escapes)."""
        try:
            path.resolve().relative_to(self.root)
        except ValueError:
            return False
        return True
