"""The registry's ``scalereg`` commands, registered in one place: ingest, query, plan, fit a file.

:func:`registry_app` builds the command line from :data:`COMMANDS`; :mod:`pipelines.cli` adds the
commands that run Dagster jobs (``demo``, ``refit``, ``ui``) to it, so this package never imports Dagster.

Every failure a user can cause ends in a one-line message and a non-zero exit code, never a
traceback: bad input is recorded in the registry, a busy registry is reported with how long we waited.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any, Optional

import duckdb
import typer

from registry.db import RegistryBusy, RegistryMissing, reader, sql_problem, writer
from registry.disk import is_no_space, no_space
from registry.home import Home
from registry.output import EXIT_BAD_INPUT, EXIT_BUSY, TABLE_ROWS, FormatOption, check_format, fail, render, to_json


def _shown(text: str) -> str:
    """A name from elsewhere, printed so that it cannot drive the terminal (escape codes)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def ingest(
    path: Annotated[Path, typer.Argument(help="a CSV, Parquet or JSONL file of runs")],
    family: Annotated[Optional[str], typer.Option(help="family key for every row (overrides the file)")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="a TOML mapping describing the file's columns")] = None,
    preset: Annotated[Optional[str], typer.Option(help="an export's own shape: wandb-runs, wandb-history or wandb-offline (a run folder); with --mapping")] = None,
    fmt: FormatOption = "table",
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar (none is drawn when not on a terminal either)")] = False,
) -> None:
    """Validate and ingest one file; rejected rows are kept in `rejects` with their reasons."""
    from registry.adapters.base import FileProblem
    from registry.progress import Progress, progress_bar, report
    from registry.importers.wandb import PRESETS
    from registry.ingest import ingest_path, read_ahead
    from schemas.families import family_problem

    check_format(fmt)
    if not path.exists():
        fail(f"{path}: no such file")
    if family is not None and (problem := family_problem(family)):
        fail(problem)
    if mapping is not None and not mapping.is_file():
        fail(f"{mapping}: no such mapping file")
    if preset is not None and (preset not in PRESETS or mapping is None):
        fail(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}" if preset not in PRESETS
             else f"--preset {preset} reads the file through a mapping: add --mapping MAP.toml naming the N, D and loss columns")
    adapter = preset or "mapping"
    home = Home.from_env().ensure()
    started = time.perf_counter()
    try:
        with progress_bar(f"ingest {_shown(path.name)}", quiet=quiet):  # on a terminal's stderr: read, then stored
            report(Progress(done=0, total=2, elapsed=0.0, unit="steps", detail="reading"))
            ahead = read_ahead(path, adapter=adapter, mapping=mapping, family=family)  # the slow part, before the writer is taken
            report(Progress(done=1, total=2, elapsed=time.perf_counter() - started, unit="steps", detail="storing"))
            with writer(home.registry) as con:
                outcome = ingest_path(con, home, path, adapter=adapter, family=family, mapping=mapping, kind="internal", ahead=ahead)
            report(Progress(done=2, total=2, elapsed=time.perf_counter() - started, unit="steps", detail="stored"))
    except FileProblem as problem:
        fail(str(problem))
    except OSError as error:  # unreadable (permissions, a vanished file): nothing was recorded
        if is_no_space(error):
            raise  # not the file's fault: main names the folder that is full
        fail(f"{path}: cannot be read ({error.strerror or error}); check the file and its permissions, then try again")
    if fmt == "json":
        typer.echo(to_json(outcome.as_dict()))
    else:
        typer.echo(
            f"{_shown(outcome.name)}: {outcome.status}; rows read {outcome.rows_read}, accepted {outcome.rows_accepted}, "
            f"rejected {outcome.rows_rejected}; runs added {outcome.runs_added}"
            + (f"; families: {', '.join(outcome.families)}" if outcome.families else "")
        )
        if outcome.error:
            typer.echo(f"  {_shown(outcome.error)}")
        if outcome.rows_rejected and outcome.status == "ingested":
            hint = f"select row_number, reasons from rejects where source_id = {outcome.source_id}"  # noqa: S608 - shown, not run
            typer.echo(f'  see the reasons: scalereg sql "{hint}"')
    if outcome.status == "failed":
        raise typer.Exit(EXIT_BAD_INPUT)


def suggest_mapping_command(
    path: Annotated[Path, typer.Argument(help="a CSV, Parquet or JSONL file that does not read as the generic format")],
) -> None:
    """Print a draft mapping TOML for a file: read it, edit it, then pass it to `scalereg ingest FILE --mapping`."""
    from registry.adapters.base import FileProblem
    from registry.suggest_mapping import suggest

    if not path.is_file():
        fail(f"{path}: no such file")
    try:
        draft = suggest(path)
    except FileProblem as problem:
        fail(str(problem))
    except OSError as error:
        fail(f"{path}: cannot be read ({error.strerror or error}); check the file and its permissions, then try again")
    typer.echo(draft.toml(), nl=False)


def sql(
    query: Annotated[str, typer.Argument(help="a SQL query; the registry is opened read-only")],
    fmt: FormatOption = "table",
) -> None:
    """Run a read-only SQL query on the registry (no file or network access: COPY, ATTACH, read_csv are refused)."""
    from registry.sql_bounds import QueryBounds, QueryLimitHit, bounded, limit_memory

    check_format(fmt)
    try:
        bounds = QueryBounds.from_env()
    except ValueError as problem:
        fail(str(problem))
    home = Home.from_env()
    with reader(home.registry) as con:
        try:
            # Read-only stops changes to the registry; this also stops a query from writing or reading
            # other files (COPY ... TO, EXPORT, ATTACH, read_csv) or installing extensions. Neither
            # setting (nor the memory limit) can be changed again from a query.
            if problem := sql_problem(con, query):  # on DuckLake: the catalog database is out of reach too
                fail(problem)
            con.execute("SET enable_external_access = false")
            limit_memory(con, bounds)
            con.execute("SET lock_configuration = true")
            with bounded(con, bounds):  # a reader keeps writers out: it gets a time and a memory limit
                frame = con.sql(query)
                if frame is None:
                    fail("the statement returned no rows (only queries are allowed; the registry is read-only)")
                result = frame.pl()
                json_columns = [name for name, kind in zip(frame.columns, frame.types) if str(kind) == "JSON"]
        except QueryLimitHit as hit:
            fail(str(hit))
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
    typer.echo(render(result, fmt, json_columns=json_columns))
    if fmt == "table" and result.height > TABLE_ROWS:
        typer.echo(f"{result.height - TABLE_ROWS} of {result.height} rows not shown; --format csv or json prints them all")


def runs_command(
    family: Annotated[Optional[str], typer.Option(help="only this family")] = None,
    fmt: FormatOption = "table",
) -> None:
    """List the runs in the registry."""
    from registry import read

    check_format(fmt)
    with reader(Home.from_env().registry) as con:
        typer.echo(render(read.runs(con, family), fmt))


#: Every command of the registry, by the name a user types: the function, or where to find it
#: (``"module:function"``, imported only when that command runs or the help lists every command, so a
#: read such as ``scalereg coefficients`` loads only what it uses).
COMMANDS: dict[str, Callable[..., Any] | str] = {
    "ingest": ingest,
    "suggest-mapping": suggest_mapping_command,
    "sql": sql,
    "runs": runs_command,
    "coefficients": "registry.cli_planning:coefficients_command",
    "allocate": "registry.cli_planning:allocate_command",
    "history": "registry.cli_planning:history_command",
    "fit": "registry.cli_planning:fit_command",
    "import": "registry.importers.commands:import_command",
}


def _resolved(command: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(command):
        return command
    module, name = command.split(":")
    return getattr(import_module(module), name)


def requested(commands: Mapping[str, object], argv: Sequence[str] | None = None) -> str | None:
    """The command the command line names (its first word), when it is one of ``commands``."""
    words = list(sys.argv[1:] if argv is None else argv)
    return words[0] if words and words[0] in commands else None


def registry_app(
    extra: Mapping[str, Callable[..., Any] | str] | None = None, only: str | None = None
) -> typer.Typer:
    """The command line: the registry's commands and any ``extra`` ones (those that run Dagster jobs).

    With ``only``, just that command is imported and registered (what :func:`main` does when the
    command line names one): a read does not pay for importing every other command's modules.
    """
    app = typer.Typer(
        name="scalereg",
        help="Scaling-law registry: validated training runs in DuckDB, fitted laws and compute-optimal allocations.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)  # a group even when only one command is registered: ``scalereg NAME ...`` parses alike
    for name, command in (COMMANDS | dict(extra or {})).items():
        if only is None or name == only:
            app.command(name)(_resolved(command))
    return app


def _root() -> None:
    """Scaling-law registry: validated training runs in DuckDB, fitted laws and compute-optimal allocations."""


def __getattr__(name: str) -> typer.Typer:
    """``app``: the registry's commands alone, for tests and notebooks (built when first asked for);
    ``scalereg`` itself is :func:`pipelines.cli.main`."""
    if name == "app":
        return registry_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _one_line(error: typer.TyperException) -> str:
    """A usage error (unknown option, missing value, wrong type) as one line that says where to find help."""
    text = " ".join(error.format_message().split())
    context = getattr(error, "ctx", None)
    return f"{text} (see '{context.command_path} --help')" if context is not None else text


def main(command_line: typer.Typer | None = None, extra: Mapping[str, Callable[..., Any] | str] | None = None) -> None:
    """Run a command line (default: the registry's commands and ``extra``, only the one named being imported),
    turning the errors users can cause into one clear line each.

    Exit codes: 0 done, 1 bad input (or a full disk), 2 a wrong invocation, 3 the registry is busy,
    4 an allocation that is not trusted (``allocate`` without --allow-untrusted).
    """
    if command_line is None:
        command_line = registry_app(extra, only=requested(COMMANDS | dict(extra or {})))
    try:
        code = command_line(standalone_mode=False)  # usage errors come back to us instead of a boxed message
    except typer.TyperException as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # bare ``scalereg``: the help, as click would print it
            typer.echo(error.format_message())
        else:
            typer.echo(f"scalereg: {_one_line(error)}", err=True)
        sys.exit(error.exit_code)
    except typer.Abort:
        typer.echo("scalereg: aborted", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except RegistryBusy as busy:
        typer.echo(f"scalereg: {busy}", err=True)
        sys.exit(EXIT_BUSY)
    except RegistryMissing as missing:
        typer.echo(f"scalereg: {missing}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as error:
        if not is_no_space(error):  # anything else is a bug: its traceback is what a report needs
            raise
        typer.echo(f"scalereg: {no_space(error, Home.from_env().root)}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(code if isinstance(code, int) else 0)
