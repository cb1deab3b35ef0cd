"""The ``scalereg`` command: ingest files, query the registry, fit laws.

Commands that run Dagster jobs (``demo``, ``refit``) are added by :mod:`pipelines.cli`, so this
package never imports Dagster.

Every failure a user can cause ends in a one-line message and a non-zero exit code, never a
traceback: bad input is recorded in the registry, a busy registry is reported with how long we waited.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import duckdb
import typer

from registry.db import RegistryBusy, RegistryMissing, reader, writer
from registry.home import Home
from registry.output import FORMATS, render, to_json

app = typer.Typer(
    name="scalereg",
    help="Scaling-law registry: validated training runs in DuckDB, fitted laws and compute-optimal allocations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 1
EXIT_BUSY = 3

FormatOption = Annotated[str, typer.Option("--format", "-f", help="table, csv or json")]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    typer.echo(f"scalereg: {message}", err=True)
    raise typer.Exit(code)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        fail(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="a CSV, Parquet or JSONL file of runs")],
    family: Annotated[Optional[str], typer.Option(help="family key for every row (overrides the file)")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="a TOML mapping describing the file's columns")] = None,
    fmt: FormatOption = "table",
) -> None:
    """Validate and ingest one file; rejected rows are kept in `rejects` with their reasons."""
    from registry.adapters.base import FileProblem
    from registry.ingest import ingest_path
    from schemas.families import family_problem

    check_format(fmt)
    if not path.exists():
        fail(f"{path}: no such file")
    if family is not None and (problem := family_problem(family)):
        fail(problem)
    if mapping is not None and not mapping.is_file():
        fail(f"{mapping}: no such mapping file")
    home = Home.from_env().ensure()
    try:
        with writer(home.registry) as con:
            report = ingest_path(con, home, path, family=family, mapping=mapping, kind="internal")
    except FileProblem as problem:
        fail(str(problem))
    except OSError as error:  # unreadable (permissions, a vanished file): nothing was recorded
        fail(f"{path}: cannot be read ({error.strerror or error}); check the file and its permissions, then try again")
    def shown(text: str) -> str:  # a file name from elsewhere must not drive the terminal (escape codes)
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)

    if fmt == "json":
        typer.echo(to_json(report.as_dict()))
    else:
        typer.echo(
            f"{shown(report.name)}: {report.status}; rows read {report.rows_read}, accepted {report.rows_accepted}, "
            f"rejected {report.rows_rejected}; runs added {report.runs_added}"
            + (f"; families: {', '.join(report.families)}" if report.families else "")
        )
        if report.error:
            typer.echo(f"  {shown(report.error)}")
        if report.rows_rejected and report.status == "ingested":
            typer.echo(f"  see the reasons: scalereg sql \"select row_number, reasons from rejects where source_id = {report.source_id}\"")
    if report.status == "failed":
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="a SQL query; the registry is opened read-only")],
    fmt: FormatOption = "table",
) -> None:
    """Run a read-only SQL query on the registry (no file or network access: COPY, ATTACH, read_csv are refused)."""
    check_format(fmt)
    home = Home.from_env()
    with reader(home.registry) as con:
        try:
            # Read-only stops changes to the registry; this also stops a query from writing or reading
            # other files (COPY ... TO, EXPORT, ATTACH, read_csv) or installing extensions. Neither
            # setting can be turned back on from a query.
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            frame = con.sql(query)
            if frame is None:
                fail("the statement returned no rows (only queries are allowed; the registry is read-only)")
            result = frame.pl()
        except duckdb.Error as error:
            text = str(error).splitlines()[0] if str(error) else type(error).__name__
            if "read-only" in text.lower():
                fail(f"the registry is opened read-only; statements that change it are refused ({text})")
            if isinstance(error, duckdb.PermissionException) or "disabled by configuration" in text or "locked" in text:
                fail(
                    "the sql command reads only the registry: files, other databases, extensions and settings are "
                    f"out of reach ({text}); to export, use --format csv or json and redirect the output"
                )
            fail(f"query failed: {text}")
    typer.echo(render(result, fmt))


@app.command("runs")
def runs_command(
    family: Annotated[Optional[str], typer.Option(help="only this family")] = None,
    fmt: FormatOption = "table",
) -> None:
    """List the runs in the registry."""
    from registry import read

    check_format(fmt)
    with reader(Home.from_env().registry) as con:
        typer.echo(render(read.runs(con, family), fmt))


def main() -> None:
    """Entry point: turn the errors users can cause into one clear line each."""
    try:
        app()
    except RegistryBusy as busy:
        typer.echo(f"scalereg: {busy}", err=True)
        sys.exit(EXIT_BUSY)
    except RegistryMissing as missing:
        typer.echo(f"scalereg: {missing}", err=True)
        sys.exit(EXIT_BAD_INPUT)
