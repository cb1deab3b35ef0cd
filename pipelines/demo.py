"""``make demo``: the main jobs on the shipped published data, then a short summary.

Ingests every published dataset through the Dagster assets, refits every family, publishes the
coefficient and allocation tables, and prints what a planner would read.
"""

from collections.abc import Callable

import polars as pl

from pipelines.runner import refit, run_job
from registry import read
from registry.db import reader
from registry.home import Home
from registry.output import render
from registry.planning import NoPublishedFit, allocate, coefficient_rows


def _failed_checks(results) -> list[str]:
    return [
        f"{c.asset_key.to_user_string()}:{c.check_name}"
        for result in results for c in result.get_asset_check_evaluations() if not c.passed
    ]


def run_demo(home: Home, echo: Callable[[str], None] = print) -> None:
    home.ensure()
    echo(f"scalereg demo: home {home.root}")
    ingest = run_job(home, "ingest_published")
    fitted = refit(home)
    with reader(home.registry) as con:
        echo("\nSources")
        echo(render(read.source_summary(con).drop("error"), "table"))
        echo("\nRuns and rejects per family")
        echo(render(read.family_rejects(con), "table"))
        echo("\nLatest published Chinchilla coefficients (95% bootstrap intervals)")
        rows = coefficient_rows(con, law="chinchilla").filter(pl.col("name").is_in(["E", "A", "B", "alpha", "beta", "a"]))
        wide = rows.pivot(on="name", index=["family", "version", "n_runs"], values="value").select(
            "family", "version", "n_runs", "E", "A", "B", "alpha", "beta", "a"
        )
        echo(render(wide.with_columns(pl.col(c).round_sig_figs(4) for c in ("E", "A", "B", "alpha", "beta", "a")), "table"))
        echo("\nCompute-optimal allocation at 1e24 FLOPs")
        allocations = []
        for family in wide.get_column("family").to_list():
            try:
                answer = allocate(con, family, 1e24)
            except NoPublishedFit:
                continue
            allocations.append(
                {"family": family, "n_opt": f"{answer['n_opt']:.3g}", "d_opt": f"{answer['d_opt']:.3g}",
                 "tokens_per_param": round(answer["tokens_per_param"], 1), "predicted_loss": round(answer["predicted_loss"], 3),
                 "n_opt 95%": "[{:.3g}, {:.3g}]".format(*answer["ci"].get("n_opt", [float("nan")] * 2))}
            )
        echo(render(pl.DataFrame(allocations), "table"))
    failed = _failed_checks([ingest, *fitted])
    echo(f"\nAsset checks that did not pass: {', '.join(failed) if failed else 'none'}")
    echo(f"Exports for planning tools: {home.exports}")
    echo("Next: scalereg coefficients --format json | scalereg allocate --family chinchilla --compute 1e24 | make ui")
