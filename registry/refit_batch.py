"""Refitting many families in one go (the nightly refit): skip the unchanged cheaply, fit the rest in parallel.

Per family the science takes a fraction of a second; what used to cost more was around it: opening
the registry twice per family, a transaction per family, reading the runs of families that did not
change. Here:

- a family whose rows (:func:`registry.fit_store.input_fingerprints`, one query for all families),
  laws code and settings are those of its newest fits is recorded as unchanged without reading its runs;
- the others are read a few at a time and fitted in a process pool sized to the cores (each worker
  holds one family's observations at a time; the registry is never opened by a worker);
- results are stored in batches, many families per transaction, and the registry is held only while
  reading or storing, never while fitting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import datetime, timezone
from multiprocessing import get_context

from threadpoolctl import threadpool_limits

from registry.db import claimed, transaction
from registry.family_settings import FamilySettings, settings_for, shipped_family_settings
from registry.fit_store import input_fingerprints, latest_fits_state
from registry.overlaps import FamilyOverlap, overlaps_of
from registry.progress import Progress, ProgressCallback, report
from registry.refit import FamilyJob, FamilyRefit, LawFit, OpenWriter, fit_family, prepare_families, store_families
from registry.settings import FitSettings

#: Families read from the registry per visit (each visit opens the writer once and scans the run points once).
READ_BATCH = 48
#: Store at least this many finished families per transaction (or whatever is left at the end).
STORE_BATCH = 25
#: Families handed to the pool ahead of their results: enough to keep the workers busy while the caller records
#: a stored batch (the pool's parent holds these families' observations meanwhile).
AHEAD = 64
#: Below this many families to fit, fitting in this process beats starting workers.
MIN_FAMILIES_FOR_POOL = 4


def one_blas_thread() -> None:
    """Pool worker initializer: one BLAS thread per fitting process.

    The fits are tiny (a few parameters, a few hundred runs); with BLAS's default of a thread per core,
    every L-BFGS-B step's small factorisations wake threads that fight the other workers for the same
    cores, and the fits ran several times slower than single-threaded.
    """
    threadpool_limits(limits=1)  # for the life of the worker: the limiter restores only when used as a context


def workers() -> int:
    """Processes to fit in: the cores this process may use (``SCALEREG_REFIT_WORKERS`` overrides)."""
    if configured := os.environ.get("SCALEREG_REFIT_WORKERS"):
        return max(1, int(configured))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _unchanged_without_reading(
    con, wanted: list[str], settings: FitSettings, declared: Mapping[str, FamilySettings]
) -> tuple[dict[str, list[tuple[str, str, str, int]]], dict[str, str]]:
    """Families whose fingerprint, code and settings match their newest fit of every law, with those laws'
    ``(law, data_version, code_version, n_runs)``; and every wanted family's fingerprint."""
    fingerprints = input_fingerprints(con, wanted)
    state = latest_fits_state(con)
    unchanged = {}
    for family in wanted:
        code = settings.code_version(settings_for(family, declared).settings_version)
        newest = state.get(family)
        if newest and all(c == code and f is not None and f == fingerprints.get(family) for _, _, c, f, _ in newest):
            unchanged[family] = [(law, data, c, n) for law, data, c, _, n in newest]
    return unchanged, fingerprints


def record_unchanged_families(
    con, families: list[str], settings: FitSettings, declared: Mapping[str, FamilySettings]
) -> tuple[dict[str, FamilyRefit], dict[str, str]]:
    """Record as unchanged (in ``refits``, one transaction) every family of ``families`` whose rows, laws code
    and settings are those of its newest fits, without reading its runs. Returns their refits and the
    fingerprint of every family (for the fits of the others)."""
    skipped, fingerprints = _unchanged_without_reading(con, families, settings, declared)
    now = datetime.now(timezone.utc)
    rows = [(now, family, law, data, code, "unchanged", None) for family, laws in skipped.items() for law, data, code, _ in laws]
    if rows:
        with transaction(con):
            con.executemany("INSERT INTO refits VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    refits = {
        family: FamilyRefit(family=family, data_version=laws[0][1], code_version=laws[0][2],
                            n_runs=max(n for *_, n in laws), unchanged=tuple(law for law, *_ in laws))
        for family, laws in skipped.items()
    }
    return refits, fingerprints


def refit_families(
    open_writer: OpenWriter, families: list[str], settings: FitSettings | None = None, *,
    family_settings: Mapping[str, FamilySettings] | None = None, progress: ProgressCallback | None = None,
    n_workers: int | None = None,
) -> list[FamilyRefit]:
    """Refit ``families`` (what :func:`registry.refit.refit_family` does for one, for all of them); returns one
    :class:`FamilyRefit` per family, in the order given.

    ``family_settings`` are every family's declared settings (default: the shipped ones); ``progress`` is
    called (and every open progress bar told) after each family is stored or found unchanged.
    """
    done = {refit.family: refit for stored in refitting(open_writer, families, settings, family_settings=family_settings,
                                                        progress=progress, n_workers=n_workers) for refit in stored}
    return [done[f] for f in families]


def refitting(
    open_writer: OpenWriter, families: list[str], settings: FitSettings | None = None, *,
    family_settings: Mapping[str, FamilySettings] | None = None, progress: ProgressCallback | None = None,
    n_workers: int | None = None, overlaps: Mapping[str, list[FamilyOverlap]] | None = None,
) -> Iterator[list[FamilyRefit]]:
    """:func:`refit_families`, yielding the families as they are stored: first those found unchanged, then each
    batch of fitted ones once its transaction committed.

    The caller may take its time with each batch (Dagster records every family's card and checks, several
    events each): the pool keeps working meanwhile on the families already handed to it, up to
    :data:`AHEAD` of them, so that showing results overlaps fitting the next. ``overlaps``: every family's, when
    the caller has read them already (else they are read here, once, for a refit of many families).
    """
    settings = settings or FitSettings()
    declared = shipped_family_settings() if family_settings is None else family_settings
    started = time.perf_counter()
    with open_writer() as con:
        unchanged, fingerprints = record_unchanged_families(con, families, settings, declared)
        queue = [f for f in families if f not in unchanged]
        # matching runs across the registry costs about the same for one family as for all: done once for many
        if overlaps is None and len(queue) > READ_BATCH:
            overlaps = overlaps_of(con, queue)
    counts = {"fitted": 0, "unchanged": len(unchanged), "done": len(unchanged)}

    def tell() -> None:
        report(Progress(done=counts["done"], total=len(families), elapsed=time.perf_counter() - started,
                        detail=f"{counts['fitted']} fitted, {counts['unchanged']} unchanged"), progress)

    tell()
    if unchanged:
        yield list(unchanged.values())
    n_workers = n_workers or workers()
    pool = (ProcessPoolExecutor(max_workers=n_workers, mp_context=get_context("spawn"), initializer=one_blas_thread)
            if n_workers > 1 and len(queue) >= MIN_FAMILIES_FOR_POOL else None)
    ahead = max(2 * n_workers, AHEAD)

    def store(batch: list[tuple[FamilyJob, list[LawFit]]]) -> list[FamilyRefit]:
        with open_writer() as con, claimed(con, *(f"family:{job.context.family}" for job, _ in batch)), transaction(con):
            stored = store_families(con, batch)  # claimed: versions numbered in turn on DuckLake
        for refit in stored:
            counts["done"] += 1
            counts["fitted" if refit.fitted else "unchanged"] += 1
            tell()
        return stored

    def read(count: int) -> list[FamilyJob]:
        taken, queue[:] = queue[:count], queue[count:]
        with open_writer() as con:
            return prepare_families(con, [settings_for(f, declared) for f in taken], settings, fingerprints=fingerprints,
                                    overlaps=overlaps)

    finished: list[tuple[FamilyJob, list[LawFit]]] = []
    running: dict[Future, FamilyJob] = {}
    prepared: list[FamilyJob] = []
    try:
        while queue or prepared or running:
            if not prepared and queue:
                prepared = read(READ_BATCH)
            if pool is None:
                with threadpool_limits(limits=1):
                    finished.extend((job, fit_family(job) if job.to_fit else []) for job in prepared)
                prepared = []
            else:
                while prepared and len(running) < ahead:
                    job = prepared.pop(0)
                    if job.to_fit:
                        running[pool.submit(fit_family, job)] = job
                    else:
                        finished.append((job, []))
                if running and (prepared or not queue or len(running) >= ahead):
                    complete, _ = wait(running, return_when=FIRST_COMPLETED)
                    finished.extend((running.pop(future), future.result()) for future in complete)
            last = not (queue or prepared or running)
            if finished and (len(finished) >= STORE_BATCH or last or pool is None):
                batch, finished = finished, []
                yield store(batch)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
