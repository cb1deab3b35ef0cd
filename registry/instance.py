"""The local Dagster instance folder inside the home: created with the project's dagster.yaml."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from registry.home import PROJECT_ROOT, Home


def prepare_dagster_home(home: Home) -> str:
    """Make ``home.dagster`` a Dagster instance folder with the project's settings and point DAGSTER_HOME at it.

    Kept outside pipelines/ so the CLI can set the environment before Dagster is imported.
    """
    home.ensure()
    # a team deployment names its own (deploy/dagster.yaml: storage in PostgreSQL, a run queue)
    source = Path(os.environ.get("SCALEREG_DAGSTER_YAML") or PROJECT_ROOT / "dagster.yaml")
    target = home.dagster / "dagster.yaml"
    if source.exists() and (not target.exists() or target.read_bytes() != source.read_bytes()):
        # written whole or not at all: a full disk must not leave Dagster a truncated configuration
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            shutil.copyfile(source, partial)
            partial.replace(target)
        except OSError:
            partial.unlink(missing_ok=True)
            raise
    os.environ["DAGSTER_HOME"] = str(home.dagster)
    os.environ.setdefault("SCALEREG_HOME", str(home.root))
    return str(home.dagster)
