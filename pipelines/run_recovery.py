"""Runs whose process is gone: marked failed and their registry pool slots freed, so no job waits for a dead run.

``scalereg refit``, ``scalereg demo`` and the tests run Dagster jobs in their own process. When that
process is killed, Dagster never hears of it: the run stays STARTED and its step keeps its claim on
the ``registry`` pool (limit 1), so every later job would wait for that slot forever. Every run this
project executes in-process is therefore tagged with its process (host, pid and start time). A run so
tagged whose process has ended is dead for certain, and recovering it is safe; a live one is waited
for. A run without the tag (launched from the UI by Dagster's run launcher, watched by its run
monitoring) is never touched: if it holds the pool, a job waits a bounded time and then says which
run holds it and what to do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from registry.db import RegistryBusy, busy_wait
from registry.home import Home
from registry.processes import ProcessId

PROCESS_TAG = "scalereg/process"
POOL = "registry"
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
#: How often a job in flight looks for dead runs holding the pool it waits for.
RECOVERY_INTERVAL_SECONDS = 5.0


def process_tags() -> dict[str, str]:
    """Tags naming this process as the one executing a run."""
    return {PROCESS_TAG: ProcessId.current().tag()}


def _owner(run: dg.DagsterRun) -> ProcessId | None:
    return ProcessId.parse(run.tags.get(PROCESS_TAG, ""))


def _pool_run_ids(instance: dg.DagsterInstance) -> set[str]:
    """Runs holding or queued for a slot of the registry pool."""
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return {s.run_id for s in info.claimed_slots} | {s.run_id for s in info.pending_steps}


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every unfinished run whose recorded process has ended, and free the pool slots of every run
    that no longer needs them (dead or finished); returns the ids of the runs marked failed."""
    dead = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        owner = _owner(run)
        if owner is not None and owner.is_gone():
            instance.report_run_failed(
                run,
                f"scalereg's process {owner.pid} on {owner.host}, which executed this run, has ended (killed or "
                f"crashed); marked failed and its registry pool slot freed by process {ProcessId.current().pid}.",
            )
            dead.append(run.run_id)
    for run_id in _pool_run_ids(instance):
        run = instance.get_run_by_id(run_id)
        if run is None or run.run_id in dead or run.status not in UNFINISHED:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    return dead


def _holders(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Unfinished runs claiming the registry pool's slot."""
    claimed = {s.run_id for s in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots}
    runs = [instance.get_run_by_id(run_id) for run_id in sorted(claimed)]
    return [run for run in runs if run is not None and run.status in UNFINISHED]


def _vouched_for(run: dg.DagsterRun) -> bool:
    """Whether the run is known to be executing in a live scalereg process on this machine."""
    owner = _owner(run)
    return owner is not None and owner.is_gone() is False


def clear_the_pool(instance: dg.DagsterInstance, home: Home) -> list[str]:
    """Before a job: recover dead runs, then wait while another run holds the registry pool; returns the runs
    recovered.

    A live scalereg process holding it is waited for (it will finish, or die and be recovered here);
    waiting here rather than inside Dagster keeps the wait cheap and interruptible. A run this process
    cannot vouch for is waited for only ``SCALEREG_BUSY_WAIT`` seconds: then :class:`RegistryBusy` names it.
    """
    started = time.monotonic()
    recovered = recover_dead_runs(instance)
    while holders := _holders(instance):
        waited = time.monotonic() - started
        foreign = [run for run in holders if not _vouched_for(run)]
        if foreign and waited >= busy_wait():
            run = foreign[0]
            raise RegistryBusy(
                home.registry, waited,
                holder=f"Dagster run {run.run_id} ({run.job_name}, status {run.status.value}, not started by scalereg "
                "on this machine) holds the registry's writer slot",
                advice="If that run is still going, wait for it. If its process is gone, open the Dagster UI "
                "(scalereg ui): its run monitoring marks the run failed, or terminate it there and free its slot "
                f"under Deployment > Concurrency > {POOL}.",
            )
        time.sleep(0.5)
        recovered += recover_dead_runs(instance)
    return recovered


@contextmanager
def recovering_while_running(every: float = RECOVERY_INTERVAL_SECONDS) -> Iterator[None]:
    """While the block runs a job, keep recovering dead runs: one killed while this job waits for its slot
    would otherwise hold the pool forever."""
    stop = threading.Event()

    def watch() -> None:
        # its own instance: Dagster's storage objects are not shared across threads
        with dg.DagsterInstance.get() as instance:
            while not stop.wait(every):
                try:
                    recover_dead_runs(instance)
                except Exception:  # noqa: BLE001 - a failed round (say, a locked storage) is simply tried again
                    continue

    watcher = threading.Thread(target=watch, name="scalereg-run-recovery", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=30)


def initialize_registry_pool(instance: dg.DagsterInstance) -> None:
    """Create the registry pool's limit once, before runs start in parallel.

    Dagster creates a pool's limit on the pool's first claim. On PostgreSQL storage, runs that claim
    it for the first time at the same moment all insert it; the losers' transactions are aborted and
    those runs fail. A team deployment therefore creates it once, before it starts any run."""
    instance.event_log_storage.initialize_concurrency_limit_to_default(POOL)
