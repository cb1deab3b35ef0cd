"""``make demo``: the main job on the shipped published data, then a short summary."""

from collections.abc import Callable

from pipelines.runner import run_job
from registry import read
from registry.db import reader
from registry.home import Home
from registry.output import render


def run_demo(home: Home, echo: Callable[[str], None] = print) -> None:
    home.ensure()
    echo(f"scalereg demo: home {home.root}")
    result = run_job(home, "ingest_published")
    checks = [e for e in result.get_asset_check_evaluations()]
    failed = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed]
    with reader(home.registry) as con:
        echo("\nSources")
        echo(render(read.source_summary(con).drop("error"), "table"))
        echo("\nRuns and rejects per family")
        echo(render(read.family_rejects(con), "table"))
    echo(f"\nAsset checks: {len(checks) - len(failed)} passed, {len(failed)} did not" + (f" ({', '.join(failed)})" if failed else ""))
    echo("Query it: scalereg sql \"select family, count(*) from runs group by 1\"   UI: make ui")
