"""What the team backend's concurrency tests run in other processes: ingest files, refit a family.

Importable functions (a spawned process finds them by module path); each reads the registry's
configuration from the environment it inherits, as a writer on another machine would.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from registry.db import writer
from registry.home import Home

#: Few resamples: these tests are about concurrency, not intervals.
RESAMPLES = {"bootstrap_resamples": 30, "other_law_resamples": 10}


def ingest_files(paths: list[str]) -> list[tuple[str, str, int]]:
    """Ingest each file with its own writer; (file name, status, rows accepted) per file."""
    from registry.ingest import ingest_path  # imported here: a refitting process need not load the readers

    home = Home.from_env().ensure()
    done = []
    for path in paths:
        with writer(home.registry) as con:
            report = ingest_path(con, home, Path(path))
        done.append((Path(path).name, report.status, report.rows_accepted))
    return done


def refit(family: str) -> list[str]:
    """Refit one family; the fit ids it stored."""
    from registry.refit import refit_family
    from registry.settings import FitSettings

    home = Home.from_env().ensure()
    return list(refit_family(partial(writer, home.registry), family, FitSettings(**RESAMPLES)).fit_ids)
