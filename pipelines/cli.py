"""The full ``scalereg`` command: the registry's commands plus those that run Dagster jobs."""

import typer

from registry.cli import app
from registry.cli import main as registry_main
from registry.home import Home


@app.command()
def demo() -> None:
    """Ingest every shipped published dataset through the Dagster assets and print a summary."""
    from pipelines.demo import run_demo

    run_demo(Home.from_env(), echo=typer.echo)


@app.command()
def ui(
    port: int = typer.Option(3000, help="port on 127.0.0.1"),
) -> None:
    """Start the Dagster UI (dagster dev) on 127.0.0.1 with the home's Dagster instance."""
    import os
    import sys

    from registry.instance import prepare_dagster_home

    prepare_dagster_home(Home.from_env())
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    os.execv(dagster, [dagster, "dev", "-h", "127.0.0.1", "-p", str(port), "-m", "pipelines.definitions"])


def main() -> None:
    registry_main()
