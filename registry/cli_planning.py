"""The planners' commands: coefficients, allocate, history, and fitting a file without a registry.

Plain functions; :mod:`registry.cli` registers them on the command line.

They read the registry read-only; if a refit holds it longer than the bounded wait, ``coefficients``
answers from the exported files and says so, the others say the registry is busy and for how long
they waited.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from registry.cli_input import AS_OF_FORMS, law_params, parse_as_of
from registry.db import RegistryBusy, reader
from registry.home import Home
from registry.output import FormatOption, check_format, fail, render, to_json

if TYPE_CHECKING:  # polars loads where a table is built: `coefficients --format json` never needs it
    import polars as pl

#: ``allocate``'s exit code when the allocation is not trusted (and --allow-untrusted was not given).
EXIT_UNTRUSTED = 4
#: What ``allocate --params`` says about coefficients no runs in the registry stand behind.
GIVEN_COEFFICIENTS = (
    "coefficients given with --params: no runs stand behind them here, so whether they identify this allocation "
    "is unknown; ingest the runs they came from and refit to get a verdict"
)


def _coefficients_table(records: list[dict]) -> pl.DataFrame:
    import polars as pl

    rows = [
        {"family": r["family"], "law": r["law"], "version": r["version"], "status": r.get("status"), "n_runs": r["n_runs"], "parameter": name,
         "value": value, "ci_lo": r["ci"].get(name, [None, None])[0], "ci_hi": r["ci"].get(name, [None, None])[1]}
        for r in records for name, value in r["params"].items()
    ]
    return pl.DataFrame(rows) if rows else pl.DataFrame(schema={"family": pl.String, "law": pl.String})


def coefficients_command(
    family: Annotated[Optional[str], typer.Option(help="only this family")] = None,
    law: Annotated[Optional[str], typer.Option(help="only this law (chinchilla, isoflop, approach1, kaplan, data_constrained)")] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help=f"what was published at this moment: {AS_OF_FORMS}")] = None,
    fmt: FormatOption = "table",
) -> None:
    """The newest published coefficients per family and law, with 95% intervals."""
    from registry.coefficients_read import coefficients

    check_format(fmt)
    try:
        moment = parse_as_of(as_of) if as_of is not None else None
    except ValueError as problem:
        fail(str(problem))
    home = Home.from_env()
    try:
        with reader(home.registry) as con:
            records = coefficients(con, family, law, moment)
    except RegistryBusy as busy:
        exported = home.exports / "coefficients.json"
        if as_of is not None or not exported.exists():
            raise
        typer.echo(f"scalereg: registry busy after {busy.waited:.1f} s; answering from {exported}", err=True)
        records = [
            r for r in json.loads(exported.read_text(encoding="utf-8"))
            if (family is None or r["family"] == family) and (law is None or r["law"] == law)
        ]
    if not records and moment is not None:
        fail(_nothing_then(home, moment))
    if not records:
        fail("no published fits match; run 'scalereg refit' (or 'make demo') first")
    typer.echo(to_json(records) if fmt == "json" else render(_coefficients_table(records), fmt))


def _nothing_then(home: Home, moment) -> str:
    """Why --as-of found nothing: no fit had been published yet then (saying when the first was), or none matching."""
    when = moment.isoformat(timespec="seconds")
    try:
        with reader(home.registry) as con:
            (first,) = con.execute("SELECT min(fitted_at) FROM fits WHERE status = 'published'").fetchone()
    except RegistryBusy:
        first = None
    if first is None:
        return f"no fit had been published by {when} (--as-of): none has been published at all yet"
    if first > moment:
        return (f"no fit had been published by {when} (--as-of): the first was published at "
                f"{first.isoformat(timespec='seconds')}; give a later time, or no --as-of for what is published now")
    return f"nothing matching was published by {when} (--as-of); a later time, or no --as-of, gives what is published now"


#: A budget this many times beyond the family's runs (either way) is said to be far outside them.
FAR_OUTSIDE = 1e3


def _far_outside(budget: float, family: str) -> str | None:
    """A warning when ``budget`` lies far outside the compute of ``family``'s runs (None: within reach)."""
    with reader(Home.from_env().registry) as con:
        low, high = con.execute("SELECT min(flops), max(flops) FROM runs WHERE family = ?", [family]).fetchone()
    if low is None:
        return None
    if budget > high * FAR_OUTSIDE:
        return (f"{budget:.3g} FLOPs is {budget / high:.2g} times the largest run of {family!r} ({high:.3g} FLOPs): "
                "an extrapolation that far rests on the law alone")
    if budget < low / FAR_OUTSIDE:
        return f"{budget:.3g} FLOPs is {low / budget:.2g} times below the smallest run of {family!r} ({low:.3g} FLOPs)"
    return None


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        fail(f"{name} must be a number such as 1e24, got {text!r}")
    if not math.isfinite(value) or value <= 0:
        fail(f"{name} must be a positive finite number, got {text!r}")
    return value


def allocate_command(
    compute: Annotated[str, typer.Option(help="training FLOPs, e.g. 1e24")],
    family: Annotated[Optional[str], typer.Option(help="use this family's latest published fit")] = None,
    params: Annotated[Optional[str], typer.Option(help='the law\'s parameters as JSON, e.g. {"E":..,"A":..,"B":..,"alpha":..,"beta":..}')] = None,
    inference_tokens: Annotated[Optional[str], typer.Option("--inference-tokens", help="tokens the model will serve")] = None,
    law: Annotated[str, typer.Option(help="the law whose fit to use (chinchilla, isoflop, approach1, kaplan, data_constrained)")] = "chinchilla",
    allow_untrusted: Annotated[bool, typer.Option("--allow-untrusted", help="print an allocation that is not trusted (exit 0); its status and reason say why")] = False,
    fmt: FormatOption = "table",
) -> None:
    """Compute-optimal N and D for a FLOP budget (inference-aware with --inference-tokens), with its status.

    An allocation from the registry that is not ``trusted`` ends with exit code 4 and its status and
    reason on stderr, unless --allow-untrusted is given. With --params the status is ``unverified``
    (nothing to check the coefficients against) and the answer is printed.
    """
    import polars as pl

    from laws.catalog import get_law

    check_format(fmt)
    budget = _number(compute, "--compute")
    serve = _number(inference_tokens, "--inference-tokens") if inference_tokens else None
    if (family is None) == (params is None):
        fail("give either --family F (a registry fit) or --params JSON (your own coefficients)")
    if params is not None:
        try:
            spec = get_law(law)
        except ValueError as problem:
            fail(str(problem))
        if not spec.allocates:
            fail(f"the {spec.name} law has no compute-optimal allocation; use --law chinchilla (or another law that allocates)")
        try:
            given = law_params(spec, params)
        except ValueError as problem:
            fail(str(problem))
        from registry.planning import inference_flops

        try:
            if serve:
                chosen = inference_flops(spec, given, budget, serve) | {"inference_tokens": serve}
            else:
                point = spec.allocate(given, budget)
                chosen = {k: float(getattr(point, k)) for k in ("n_opt", "d_opt", "tokens_per_param", "predicted_loss")}
        except ValueError as problem:
            fail(str(problem))
        from schemas.runs import PHYSICAL_BOUNDS

        if budget > (largest := PHYSICAL_BOUNDS["flops"].high):
            typer.echo(f"scalereg: warning: {budget:.3g} FLOPs is beyond any run this registry accepts ({largest:.0e})", err=True)
        answer = {"law": spec.name, "compute": budget} | chosen | {"status": "unverified", "reason": GIVEN_COEFFICIENTS, "ci": {}}
    else:
        from registry.planning import NoPublishedFit, allocate

        with reader(Home.from_env().registry) as con:
            try:
                answer = allocate(con, family, budget, serve, law)
            except (NoPublishedFit, ValueError) as problem:
                fail(str(problem))
        if answer["status"] != "trusted" and not allow_untrusted:
            fail(f"the {answer['law']} allocation of {family!r} at {budget:.3g} FLOPs is {answer['status']}: "
                 f"{answer['reason']}. Nothing printed; pass --allow-untrusted to read it with its status.", EXIT_UNTRUSTED)
        if warning := _far_outside(budget, family):  # printed with the answer, above it
            typer.echo(f"scalereg: warning: {warning}", err=True)
    if fmt == "json":
        typer.echo(to_json(answer))
    else:
        shown = ("ci", "reason") if fmt == "table" else ("ci",)  # a table cuts long text: the reason goes below it
        flat = {k: v for k, v in answer.items() if k not in shown} | {f"{k}_95": f"[{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in answer["ci"].items()}
        typer.echo(render(pl.DataFrame([flat]), fmt))
        if fmt == "table" and answer["reason"]:
            typer.echo(f"{answer['status']}: {answer['reason']}")


def history_command(
    family: Annotated[str, typer.Option(help="the family")],
    fmt: FormatOption = "table",
) -> None:
    """Every fit of a family, newest first: status, coefficient moves, runs added, code version."""
    import polars as pl

    from registry.planning import history

    check_format(fmt)
    with reader(Home.from_env().registry) as con:
        entries = history(con, family)
    if not entries:
        fail(f"no fits for family {family!r}")
    if fmt == "json":
        typer.echo(to_json(entries))
        return
    rows = []
    for e in entries:
        moves = e["changes"].get("coefficients", {})
        rows.append(
            {"fitted_at": e["fitted_at"][:19], "law": e["law"], "version": e["version"], "status": e["status"],
             "n_runs": e["n_runs"], "runs_added": e["changes"].get("runs_added"),
             "code_changed": e["changes"].get("code_changed"),
             "moves": ", ".join(f"{k} {m['relative']:+.1%}" for k, m in moves.items() if m.get("relative") is not None and k in ("E", "alpha", "beta", "a")),
             "reason": (e["reason"] or "")[:60]}
        )
    typer.echo(render(pl.DataFrame(rows), fmt))


def fit_command(
    path: Annotated[Path, typer.Argument(help="CSV, Parquet or JSONL of runs: params, tokens (or flops), loss")],
    law: Annotated[str, typer.Option(help="the law to fit")] = "chinchilla",
    mapping: Annotated[Optional[Path], typer.Option(help="TOML mapping of the file's columns, as for ingest")] = None,
    huber_delta: Annotated[Optional[float], typer.Option("--huber-delta", help="Huber threshold (default 1e-3)")] = None,
    exclude_top_loss: Annotated[int, typer.Option("--exclude-top-loss")] = 0,
    bootstrap: Annotated[int, typer.Option(min=0, help="bootstrap resamples (0: none)")] = 0,
    seed: Annotated[int, typer.Option()] = 0,
    family_column: Annotated[Optional[str], typer.Option(help="column naming each run's family: fit them jointly")] = None,
    shared: Annotated[str, typer.Option(help="with --family-column: parameters the families share, e.g. E,alpha")] = "E",
    fmt: FormatOption = "table",
) -> None:
    """Fit a law to a file of runs without touching any registry (several families jointly with --family-column)."""
    import polars as pl

    from laws.errors import FitError
    from registry.fit_file import fit_file, fit_file_joint

    check_format(fmt)
    if not path.exists():
        fail(f"{path}: no such file")
    options = {"exclude_top_loss": exclude_top_loss} | ({"huber_delta": huber_delta} if huber_delta is not None else {})
    try:
        if family_column is not None:
            names = [name.strip() for name in shared.split(",") if name.strip()]
            joint = fit_file_joint(path, law, family_column=family_column, shared=names, mapping=mapping, options=options,
                                   bootstrap=bootstrap, seed=seed)
            typer.echo(to_json(joint) if fmt == "json" else render(pl.DataFrame(
                [{"family": f, **r["params"], "n_runs": r["n_runs"]} for f, r in joint["families"].items()]), fmt))
            return
        result = fit_file(path, law, mapping=mapping, options=options, bootstrap=bootstrap, seed=seed)
    except (ValueError, FitError) as problem:
        fail(str(problem))
    if fmt == "json":
        typer.echo(to_json(result))
        return
    rows = [{"parameter": k, "value": v, "ci_95": str(result.get("ci", {}).get(k, ""))} for k, v in result["params"].items()]
    typer.echo(render(pl.DataFrame(rows), "table" if fmt == "table" else fmt))
    typer.echo(to_json({k: v for k, v in result.items() if k not in ("params", "ci")}))
