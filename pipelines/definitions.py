"""Assembles the project's Dagster definitions; everything else lives under pipelines/defs/."""


import dagster as dg

from pipelines.defs import fit_assets, ingest_assets, landing_sensor, refit_triggers, resources, tracker_assets
from registry.home import Home


def build_defs(home: Home | None = None) -> dg.Definitions:
    """Definitions bound to one home folder (``$SCALEREG_HOME`` unless given), so tests can use a temporary one."""
    chosen = home or Home.from_env()
    return dg.Definitions.merge(
        resources.defs(chosen),
        ingest_assets.defs(),
        landing_sensor.defs(),
        fit_assets.defs(),
        refit_triggers.defs(),
        tracker_assets.defs(),  # off unless SCALEREG_MLFLOW_* configure a tracker
    )


defs = build_defs()
