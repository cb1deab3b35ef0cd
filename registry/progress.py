"""Progress of long work (refits of many families, large ingests): counts for logs, a bar for people.

Work reports :class:`Progress` to whoever listens: the caller's callback (Dagster logs the counts)
and any bar the command line opened around it (:func:`progress_bar`, which listens for as long as it
is open, also when the work runs inside an in-process Dagster job). The bar goes to standard error,
only on a terminal and never with ``--quiet``, so piped and quiet output stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Progress:
    """Where a piece of long work stands: ``done`` of ``total`` units (families, rows) after ``elapsed`` seconds."""

    done: int
    total: int
    elapsed: float
    unit: str = "families"
    detail: str = ""

    @property
    def rate(self) -> float:
        """Units per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        """One log line: counts, rate and the estimated time left."""
        left = f"about {(self.total - self.done) / self.rate:.0f} s left" if self.rate > 0 else "time left unknown"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.done:,}/{self.total:,} {self.unit}{detail}, {self.rate:,.1f}/s, {left}"


ProgressCallback = Callable[[Progress], None]
_listeners: list[ProgressCallback] = []


def report(progress: Progress, callback: ProgressCallback | None = None) -> None:
    """Tell ``callback`` and every open bar."""
    if callback is not None:
        callback(progress)
    for listener in list(_listeners):
        listener(progress)


def every(seconds: float, callback: ProgressCallback) -> ProgressCallback:
    """``callback`` told at most once per ``seconds`` of the work's time, and always of its first and last report:
    what a log wants (each Dagster log line is an event stored with the run)."""
    last: list[float] = []

    def throttled(progress: Progress) -> None:
        if not last or progress.done >= progress.total or progress.elapsed - last[0] >= seconds:
            last[:] = [progress.elapsed]
            callback(progress)

    return throttled


@contextmanager
def listening(callback: ProgressCallback) -> Iterator[None]:
    """``callback`` hears every :func:`report` made while the block runs."""
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


def shows_bar(quiet: bool = False, stream: Any = None) -> bool:
    """A bar is drawn only on a terminal and when not ``quiet``."""
    stream = sys.stderr if stream is None else stream
    return not quiet and bool(getattr(stream, "isatty", lambda: False)())


@contextmanager
def progress_bar(description: str, *, quiet: bool = False, stream: Any = None) -> Iterator[None]:
    """A rich bar (done/total, rate, ETA) on standard error following every report made inside the block.

    Nothing is drawn (and rich is not imported) when ``quiet`` or when the stream is not a terminal.
    """
    stream = sys.stderr if stream is None else stream
    if not shows_bar(quiet, stream):
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Bar(*columns, console=Console(file=stream), transient=False) as bar:
        task = bar.add_task(description, total=None, unit="", rate="")

        def follow(progress: Progress) -> None:
            bar.update(task, completed=progress.done, total=progress.total, unit=progress.unit,
                       rate=f"{progress.rate:,.1f}/s")

        with listening(follow):
            yield
