"""The full ``scalereg`` command: the registry's commands plus those that run Dagster jobs.

``demo``, ``refit`` and ``ui`` are defined here and added explicitly to the registry's command
line (:func:`registry.cli.registry_app`); everything else is the registry's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from registry.cli import main as run_command_line
from registry.cli import registry_app
from registry.home import Home
from registry.output import fail


VERBOSE = typer.Option(False, "--verbose", help="also print Dagster's own log of each run (debug level)")


def _verbosity(verbose: bool) -> None:
    """Dagster's console log is off unless asked for (read by :func:`pipelines.runner.quiet`)."""
    if verbose:
        os.environ["SCALEREG_VERBOSE"] = "1"


def demo(verbose: bool = VERBOSE) -> None:
    """Ingest every shipped published dataset through the Dagster assets and print a summary."""
    from pipelines.demo import run_demo

    _verbosity(verbose)
    run_demo(Home.from_env(), echo=typer.echo)


def refit_command(
    family: list[str] = typer.Option(None, "--family", help="only these families (default: all)"),
    bootstrap: int = typer.Option(1000, help="bootstrap resamples for the Chinchilla fit"),
    verbose: bool = VERBOSE,
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar (none is drawn when not on a terminal either)"),
) -> None:
    """Refit families in-process through the Dagster job (only changed data or code gets a new version).

    Options are checked before anything runs; a refit that stores a failed fit ends with exit code 1.
    """
    from registry.db import reader
    from registry.fit_store import families
    from registry.planning import loss_law_statuses
    from registry.settings import FitSettings
    from schemas.families import family_problem

    _verbosity(verbose)
    for key in family or []:
        if problem := family_problem(key):
            fail(problem)
    try:
        FitSettings(bootstrap_resamples=bootstrap)
    except ValueError as problem:
        fail(f"--bootstrap {bootstrap}: {problem}")
    home = Home.from_env()
    with reader(home.registry) as con:
        known = families(con)
    if unknown := [key for key in family or [] if key not in known]:
        fail(f"no runs of family {unknown[0]!r} in the registry; its families: {', '.join(known) or 'none yet'}")
    from pipelines.runner import refit  # Dagster is loaded only for a refit that will run

    config = {"ops": {"fits": {"config": {"bootstrap_resamples": bootstrap}}}}
    from registry.progress import progress_bar

    with progress_bar("refit", quiet=quiet):  # families done / total, rate, ETA on a terminal's stderr
        results = refit(home, list(family) if family else None, run_config=config)
    fitted = [
        e.materialization.metadata["fitted"].value
        for r in results for e in r.get_asset_materialization_events() if e.asset_key.to_user_string() == "fits"
    ]
    typer.echo("refit: " + ("; ".join(sorted(set(fitted))) or "nothing new"))
    # held fits are verdicts, not errors: they are listed with their reasons and the command succeeds
    new = {fit_id.strip() for line in fitted for fit_id in line.split(",")}
    with reader(home.registry) as con:
        held = [s for s in loss_law_statuses(con) if s.status != "published" and f"{s.family}/{s.law}/v{s.version}" in new]
    for fit in held:
        typer.echo(f"{fit.status}: {fit.family}/{fit.law} v{fit.version}: {fit.reason}")
    if failed := [f"{fit.family}/{fit.law} v{fit.version}" for fit in held if fit.status == "failed"]:
        fail(f"{len(failed)} fit(s) failed: {', '.join(failed)}; their reasons are listed above")


#: The name the UI shows for the project's definitions.
LOCATION = "scalereg"


def ui_command_line(home: Home, port: int) -> tuple[list[str], str]:
    """``dg dev`` (what Dagster 1.13 recommends) on 127.0.0.1:``port`` with the home's instance: the arguments and
    the folder to start it in.

    It starts in the instance folder (DAGSTER_HOME, holding the project's dagster.yaml), so the instance it
    finds is the one it uses, and loads a workspace file there that names the code location ``scalereg``.
    """
    from registry.home import PROJECT_ROOT
    from registry.instance import prepare_dagster_home

    folder = prepare_dagster_home(home)
    workspace = Path(folder) / "workspace.yaml"
    workspace.write_text(
        "# written by `scalereg ui`: the project's definitions as one code location\n"
        "load_from:\n  - python_module:\n      module_name: pipelines.definitions\n"
        f"      location_name: {LOCATION}\n      working_directory: {json.dumps(str(PROJECT_ROOT))}\n",
        encoding="utf-8",
    )
    dg = os.path.join(os.path.dirname(sys.executable), "dg")
    return [dg, "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)], folder


def ui(
    port: int = typer.Option(3000, help="port on 127.0.0.1", min=1, max=65535),
) -> None:
    """Start the Dagster UI (dg dev) on 127.0.0.1 with the home's Dagster instance."""
    command, folder = ui_command_line(Home.from_env(), port)
    os.chdir(folder)
    os.environ.setdefault("VIRTUAL_ENV", str(Path(sys.executable).parent.parent))  # the venv dg dev runs the code in
    typer.echo(f"scalereg ui: http://127.0.0.1:{port} (instance {folder}; Ctrl-C stops it)")
    os.execv(command[0], command)


#: The commands that run Dagster jobs (Dagster is imported inside them, never before a read command runs).
JOB_COMMANDS = {"demo": demo, "refit": refit_command, "ui": ui}


def __getattr__(name: str):
    """``app``: every command, built when first asked for (tests); ``scalereg`` builds only the one it runs."""
    if name == "app":
        return registry_app(JOB_COMMANDS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """The ``scalereg`` entry point."""
    run_command_line(extra=JOB_COMMANDS)
