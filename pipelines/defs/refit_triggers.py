"""What starts refits: new runs (a sensor) and the nightly schedule (all families, one run)."""

import dagster as dg

from pipelines.defs.fit_assets import FAMILIES, refit_job
from pipelines.defs.resources import RegistryResource
from registry.db import RegistryBusy, RegistryMissing, reader
from registry.family_settings import FamilySettingsProblem, load_family_settings
from registry.fit_store import families as registry_families
from registry.group_refit import stale_group_members
from registry.groups import GroupSettingsProblem, load_groups
from registry.refit import stale_families
from schemas.families import is_family_key


def _known_and_new(context, keys: list[str]) -> list[dg.AddDynamicPartitionsRequest]:
    valid = [k for k in keys if is_family_key(k)]
    existing = set(context.instance.get_dynamic_partitions(FAMILIES.name))
    new = sorted(set(valid) - existing)
    return [FAMILIES.build_add_request(new)] if new else []


@dg.sensor(job=refit_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def refit_sensor(context: dg.SensorEvaluationContext, registry: RegistryResource) -> dg.SensorResult | dg.SkipReason:
    """Requests a refit of each family whose runs or settings changed since its last fit (and only those)."""
    try:
        declared = load_family_settings(registry.paths)
        with reader(registry.paths.registry, wait=2.0) as con:
            stale = stale_group_members(con, load_groups(registry.paths), declared) | stale_families(con, declared)
    except (RegistryBusy, RegistryMissing, FamilySettingsProblem, GroupSettingsProblem) as busy:
        return dg.SkipReason(str(busy))
    stale = {family: version for family, version in stale.items() if is_family_key(family)}
    if not stale:
        return dg.SkipReason("every family's fits are up to date")
    return dg.SensorResult(
        dynamic_partitions_requests=_known_and_new(context, list(stale)),
        run_requests=[dg.RunRequest(run_key=f"{family}:{version}", partition_key=family) for family, version in sorted(stale.items())],
    )


def nightly_request(families: list[str]) -> dg.RunRequest:
    """One run over every family (single-run backfill policy), so the registry keeps one writer."""
    ordered = sorted(families)
    return dg.RunRequest(
        tags={"dagster/asset_partition_range_start": ordered[0], "dagster/asset_partition_range_end": ordered[-1]},
    )


@dg.schedule(job=refit_job, cron_schedule="0 2 * * *", execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)
def nightly_refit(context: dg.ScheduleEvaluationContext, registry: RegistryResource):
    """Every night at 02:00 UTC: all families; those with unchanged runs and code are recorded as unchanged."""
    try:
        with reader(registry.paths.registry, wait=30.0) as con:
            families = [f for f in registry_families(con) if is_family_key(f)]
    except (RegistryBusy, RegistryMissing) as busy:
        return dg.SkipReason(str(busy))
    if not families:
        return dg.SkipReason("no families in the registry yet")
    existing = set(context.instance.get_dynamic_partitions(FAMILIES.name))
    if missing := sorted(set(families) - existing):
        context.instance.add_dynamic_partitions(FAMILIES.name, missing)
    return nightly_request(families)


def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[refit_sensor], schedules=[nightly_refit])
