"""`make team`: a team deployment on one machine to try before running it on several.

Starts a throw-away PostgreSQL cluster (Debian's server, as the tests do) holding two databases, the
registry's DuckLake catalog and Dagster's storage; then dagster-daemon and the webserver with
deploy/dagster.yaml and deploy/workspace.yaml. Prints the environment other shells (other machines,
with the host changed) set to use the same registry. Ctrl-C stops everything it started, by pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.home import Home  # noqa: E402
from tests.services.postgres import postgres_server  # noqa: E402


def main() -> None:
    home = Home.from_env().ensure()
    cluster = Path(tempfile.mkdtemp(prefix="scalereg-team-pg-"))  # under /tmp: the postgres user must reach it
    with postgres_server(cluster) as server:
        lake, dagster = server.create_database("scalereg_lake"), server.create_database("dagster")
        env = {
            "SCALEREG_HOME": str(home.root),
            "SCALEREG_CATALOG": f"postgres:{lake}",
            "SCALEREG_DATA_PATH": str(home.root / "team-data"),
            "SCALEREG_DAGSTER_YAML": str(ROOT / "deploy" / "dagster.yaml"),
            "DAGSTER_PG_URL": f"postgresql://{server.user}@127.0.0.1:{server.port}/{dagster.split('dbname=')[1].split()[0]}",
            "DAGSTER_HOME": str(home.dagster),
        }
        os.environ.update(env)
        from registry.instance import prepare_dagster_home

        prepare_dagster_home(home)  # deploy/dagster.yaml into the home's Dagster folder
        import dagster as dg

        from pipelines.run_recovery import initialize_registry_pool

        with dg.DagsterInstance.get() as instance:
            initialize_registry_pool(instance)  # once, before any run (parallel first claims race on PostgreSQL)
        bin_dir = Path(sys.executable).parent
        workspace = str(ROOT / "deploy" / "workspace.yaml")
        children = [
            subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", workspace], cwd=ROOT, process_group=0),
            subprocess.Popen([str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", os.environ.get("PORT", "3000")],
                             cwd=ROOT, process_group=0),
        ]
        print("\nThe team deployment is up. In another shell (or on another machine, with its host):\n")
        for name, value in env.items():
            print(f"  export {name}='{value}'")
        print("\n  .venv/bin/scalereg ingest data/published/isoflops/isoflops.csv --mapping data/published/isoflops/mapping.toml")
        print("  .venv/bin/scalereg refit            # or: the UI, Assets > fits > Materialize (one run per family)")
        print("  .venv/bin/scalereg coefficients\n\nCtrl-C stops the daemon, the webserver and PostgreSQL.")
        try:
            children[0].wait()
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                child.send_signal(signal.SIGTERM)
            for child in children:
                child.wait(timeout=60)


if __name__ == "__main__":
    main()
