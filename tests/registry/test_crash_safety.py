"""SIGKILL in the middle of a refit: nothing half-written, the previous version stays published, a rerun matches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

from registry.db import reader, writer
from registry.home import Home
from registry.ingest import ingest_path
from registry.planning import coefficients
from registry.refit import FitSettings, refit_family
from tests.synthetic import chinchilla_runs, write_runs

SETTINGS = "FitSettings(bootstrap_resamples=100, other_law_resamples=10)"
FAST = FitSettings(bootstrap_resamples=100, other_law_resamples=10)
PROJECT = Path(__file__).resolve().parents[2]

KILLED_REFIT = textwrap.dedent(
    f"""
    import time
    from contextlib import contextmanager
    from functools import partial
    import registry.refit as refit
    from registry.db import writer
    from registry.home import Home
    from registry.refit import FitSettings, refit_family

    real = refit.transaction

    @contextmanager
    def held_open(con):
        with real(con) as c:
            yield c
            print("written, not committed", flush=True)
            time.sleep(60)

    refit.transaction = held_open  # the transaction refit_family stores its family's fits in
    home = Home.from_env()
    refit_family(partial(writer, home.registry), "family-a", {SETTINGS})
    """
)


def prepare(root: Path, tmp_path: Path) -> Home:
    home = Home.from_env(root).ensure()
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / "first.csv", chinchilla_runs("family-a")))
    refit_family(partial(writer, home.registry), "family-a", FAST)
    more = chinchilla_runs("family-a", seed=7, size_range=(9.6, 10.0), n_sizes=2, prefix="big")
    with writer(home.registry) as con:
        ingest_path(con, home, write_runs(tmp_path / "more.csv", more))
    return home


def table_counts(home: Home) -> dict[str, int]:
    with reader(home.registry) as con:
        (counts,) = con.execute(
            "SELECT (SELECT count(*) FROM fits), (SELECT count(*) FROM coefficients), (SELECT count(*) FROM allocations), "
            "(SELECT count(*) FROM bootstrap_samples), (SELECT count(*) FROM refits)"
        ).fetchall()
    return dict(zip(("fits", "coefficients", "allocations", "bootstrap_samples", "refits"), counts))


def test_a_refit_killed_mid_write_leaves_the_previous_version_and_a_rerun_matches(tmp_path):
    home = prepare(tmp_path / "killed", tmp_path)
    before = table_counts(home)
    with reader(home.registry) as con:
        published_before = coefficients(con, "family-a")

    script = tmp_path / "killed_refit.py"
    script.write_text(KILLED_REFIT)
    env = os.environ | {"SCALEREG_HOME": str(home.root), "PYTHONPATH": str(PROJECT)}
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "written, not committed"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()

    assert table_counts(home) == before
    with reader(home.registry) as con:
        assert coefficients(con, "family-a") == published_before

    rerun = refit_family(partial(writer, home.registry), "family-a", FAST)
    uninterrupted_home = prepare(tmp_path / "uninterrupted", tmp_path)
    uninterrupted = refit_family(partial(writer, uninterrupted_home.registry), "family-a", FAST)
    assert [f.record.params for f in rerun.fitted] == [f.record.params for f in uninterrupted.fitted]
    assert [f.record.ci for f in rerun.fitted] == [f.record.ci for f in uninterrupted.fitted]
    with reader(home.registry) as con:
        assert {r["law"]: r["version"] for r in coefficients(con, "family-a")} == {"chinchilla": 2, "kaplan": 2}
