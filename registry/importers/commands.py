"""``scalereg import mlflow``: the command line of the tracker importers (registered in registry/cli.py).

Only typer is imported here; the importer (polars, the MLflow client) is imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from registry.output import FormatOption, check_format, fail, to_json

TRACKERS = ("mlflow",)


def import_command(
    tracker: Annotated[str, typer.Argument(help="the tracker to import from: mlflow")],
    uri: Annotated[str, typer.Option(help="the tracking server, such as http://127.0.0.1:5000")],
    experiment: Annotated[str, typer.Option(help="the experiment's name")],
    mapping: Annotated[Path, typer.Option(help="a TOML tracker mapping: the loss metric, where N, D and the family are")],
    fmt: FormatOption = "table",
) -> None:
    """Import the finished runs of a tracker's experiment; unfinished and deleted runs are listed as skipped."""
    from registry.adapters.base import FileProblem
    from registry.home import Home
    from registry.importers.mlflow import import_mlflow, public_uri
    from registry.importers.tracker_mapping import load_tracker_mapping
    from registry.output import EXIT_BAD_INPUT

    check_format(fmt)
    if tracker not in TRACKERS:
        fail(f"unknown tracker {tracker!r}; use one of {', '.join(TRACKERS)} (W&B exports: scalereg ingest FILE --preset)")
    if not mapping.is_file():
        fail(f"{mapping}: no such mapping file")
    try:
        report = import_mlflow(Home.from_env().ensure(), uri, experiment, load_tracker_mapping(mapping))
    except FileProblem as problem:
        fail(str(problem))
    ingest = report.ingest
    if fmt == "json":
        typer.echo(to_json(report.as_dict()))
    else:
        typer.echo(
            f"{ingest.name} ({public_uri(uri)}): {ingest.status}; runs seen {report.runs_seen}: accepted {ingest.rows_accepted}, "
            f"rejected {ingest.rows_rejected}, skipped {len(report.skipped)}; runs added {ingest.runs_added}"
            + (f"; replaces source(s) {', '.join(map(str, ingest.supersedes))}" if ingest.supersedes else "")
        )
        for skipped in report.skipped:
            typer.echo(f"  skipped {skipped.name or skipped.run_id} ({skipped.run_id}): {skipped.reason}")
        if ingest.error:
            typer.echo(f"  {ingest.error}")
        if ingest.rows_rejected and ingest.status == "ingested":
            hint = f"select row_number, reasons from rejects where source_id = {ingest.source_id}"  # noqa: S608 - shown, not run
            typer.echo(f'  see the reasons: scalereg sql "{hint}"')
    if ingest.status == "failed":
        raise typer.Exit(EXIT_BAD_INPUT)
