"""``make demo``: the main jobs on the shipped published data, then a short summary.

Ingests every published dataset through the Dagster assets, refits every family, publishes the
coefficient and allocation tables, and prints what a planner would read: each family's loss-law
status, the allocation at 1e24 FLOPs with its status, and the reason behind every verdict that is
not a plain yes.
"""

import os
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl

from pipelines.runner import refit, run_job
from registry import read
from registry.db import reader
from registry.fit_store import families
from registry.home import Home
from registry.output import render
from registry.planning import TRUSTED, NoPublishedFit, allocate, coefficient_rows, loss_law_statuses


def _failed_checks(results) -> list[str]:
    return [
        f"{c.asset_key.to_user_string()}" + (f"[{c.partition}]" if c.partition else "") + f":{c.check_name}"
        for result in results for c in result.get_asset_check_evaluations() if not c.passed
    ]


#: The Chinchilla parameters the summary shows, each as "value [lo, hi]".
_SHOWN = ("E", "A", "B", "alpha", "beta", "a")


def _with_intervals(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per family: each shown parameter as its value and 95% interval, to four significant digits."""
    def cell(value: float | None, lo: float | None, hi: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:.4g} [{lo:.4g}, {hi:.4g}]" if lo is not None and hi is not None else f"{value:.4g}"

    shown = rows.filter(pl.col("name").is_in(_SHOWN)).with_columns(
        pl.struct("value", "ci_lo", "ci_hi").map_elements(lambda r: cell(r["value"], r["ci_lo"], r["ci_hi"]), return_dtype=pl.String)
        .alias("cell")
    )
    wide = shown.pivot(on="name", index=["family", "version", "n_runs"], values="cell")
    return wide.select("family", "version", "n_runs", *[c for c in _SHOWN if c in wide.columns]).sort("family")


def _next_steps() -> list[str]:
    """Commands to try next, one per line, as they can be typed from here."""
    scalereg = Path(sys.executable).parent / "scalereg"
    try:
        command = os.path.relpath(scalereg)
    except ValueError:  # another drive
        command = str(scalereg)
    command = command if os.sep in command else f".{os.sep}{command}"
    return [
        f"  {command} coefficients --format json",
        f"  {command} allocate --family chinchilla --compute 1e24",
        f"  {command} allocate --family chinchilla --compute 1e24 --inference-tokens 1e12 --allow-untrusted",
        "  make ui            (the Dagster UI on http://127.0.0.1:3000; make ui PORT=3001 for another port)",
    ]


def _loss_laws(con: duckdb.DuckDBPyConnection, echo: Callable[[str], None]) -> None:
    """One row per family, one column per law: the newest fit's verdict; then every reason, one line each."""
    verdicts = loss_law_statuses(con)
    frame = pl.DataFrame([{"family": v.family, "law": v.law, "status": v.status} for v in verdicts])
    wide = frame.pivot(on="law", index="family", values="status", sort_columns=True).sort("family")
    echo(render(wide.fill_null("-"), "table"))  # "-": the family's runs do not support that law
    for v in verdicts:
        if v.reason:
            echo(f"  {v.family} {v.law} v{v.version} {v.status}: {v.reason}")


def _allocations_at(con: duckdb.DuckDBPyConnection, names: list[str], compute: float, echo: Callable[[str], None]) -> None:
    """The primary law's allocation at ``compute`` for each family with its status; the reasons below the table."""
    rows, reasons = [], []
    for family in names:
        try:
            answer = allocate(con, family, compute)
        except NoPublishedFit as missing:
            rows.append({"family": family, "status": "no published fit"})
            reasons.append(f"  {family}: {missing}")
            continue
        rows.append(
            {"family": family, "status": answer["status"], "tokens_per_param": round(answer["tokens_per_param"], 1),
             "n_opt": f"{answer['n_opt']:.3g}", "d_opt": f"{answer['d_opt']:.3g}",
             "predicted_loss": round(answer["predicted_loss"], 3),
             "n_opt 95%": "[{:.3g}, {:.3g}]".format(*answer["ci"].get("n_opt", [float("nan")] * 2)),
             "tokens_per_param 95%": "[{:.3g}, {:.3g}]".format(*answer["ci"].get("tokens_per_param", [float("nan")] * 2))}
        )
        if answer["status"] != TRUSTED:
            reasons.append(f"  {family} {answer['status']}: {answer['reason']}")
    echo(render(pl.DataFrame(rows), "table"))
    for line in reasons:
        echo(line)


def run_demo(home: Home, echo: Callable[[str], None] = print, run_config: dict | None = None) -> None:
    """The demo in ``home``; ``run_config`` is the refit's (tests take fewer bootstrap resamples)."""
    home.ensure()
    echo(f"scalereg demo: home {home.root}")
    ingest = run_job(home, "ingest_published")
    fitted = refit(home, run_config=run_config)
    with reader(home.registry) as con:
        echo("\nSources")
        echo(render(read.source_summary(con).drop("error"), "table"))
        echo("\nRuns and rejects per family")
        echo(render(read.family_rejects(con), "table"))
        echo("\nLatest published Chinchilla coefficients (95% bootstrap intervals)")
        echo(render(_with_intervals(coefficient_rows(con, law="chinchilla")), "table"))
        echo("\nLoss-law status of each family's newest fit per law (published, held, failed) and why")
        _loss_laws(con, echo)
        echo("\nCompute-optimal allocation at 1e24 FLOPs (Chinchilla Approach 3) and its status; only a trusted row")
        echo("is what the family's runs identify (see README, 'Allocation status')")
        _allocations_at(con, families(con), 1e24, echo)
    failed = _failed_checks([ingest, *fitted])
    echo(f"\nAsset checks that did not pass: {', '.join(failed) if failed else 'none'}")
    echo(f"Exports for planning tools: {home.exports}")
    echo("Next:")
    for line in _next_steps():
        echo(line)
