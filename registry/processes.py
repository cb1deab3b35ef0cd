"""Processes on this machine: what one is (to name who holds the registry) and whether it still runs (to recover
after a crash).

A process id alone is not an identity: ids are reused. So a process is identified by host, pid and
the time it started (from ``/proc`` on Linux); a process with the same pid but another start time
is a different one, and the first is gone.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
#: An interpreter's own name says nothing about what it runs; the script or module after it does.
_INTERPRETERS = ("python", "pypy")
_SUBCOMMAND = re.compile(r"[a-z][a-z0-9_-]*")


def _stat(pid: int) -> list[str]:
    """Fields 3 onwards of /proc/<pid>/stat (state, ..., start time); empty where /proc cannot tell."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return []
    # the command name (field 2) is in parentheses and may itself contain spaces or parentheses
    return stat.rsplit(")", 1)[1].split()


def _start_time(pid: int) -> str:
    """When the process started, in clock ticks since boot ("" where /proc is not available)."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is someone else's
    fields = _stat(pid)
    return not (fields and fields[0] == "Z")  # a zombie has ended; only its exit status waits to be read


@dataclass(frozen=True)
class ProcessId:
    """One process, for as long as it lives: host, pid and start time."""

    host: str
    pid: int
    started: str

    @classmethod
    def current(cls) -> ProcessId:
        return cls(socket.gethostname(), os.getpid(), _start_time(os.getpid()))

    def tag(self) -> str:
        return f"{self.host}/{self.pid}/{self.started}"

    @classmethod
    def parse(cls, tag: str) -> ProcessId | None:
        host, pid, started = ([""] * 3 + tag.rsplit("/", 2))[-3:]
        return cls(host, int(pid), started) if host and pid.isdigit() else None

    def is_gone(self) -> bool | None:
        """True when this process has ended; None when it cannot be known from here (another host)."""
        if self.host != socket.gethostname():
            return None
        if not _alive(self.pid):
            return True
        now = _start_time(self.pid)
        return bool(self.started and now and now != self.started)


def command_of(pid: int) -> str | None:
    """A short name for what a process runs (``scalereg sql``, ``dagster dev``, ``python -c``), if it can be seen."""
    try:
        argv = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [w.decode(errors="replace") for w in argv if w]
    if len(words) > 1 and Path(words[0]).name.startswith(_INTERPRETERS):
        if words[1] == "-c" or (words[1] == "-m" and len(words) < 3):
            return f"python {words[1]}"
        words = words[2:] if words[1] == "-m" else words[1:]
    if not words:
        return None
    program = Path(words[0]).name
    command = words[1] if len(words) > 1 and _SUBCOMMAND.fullmatch(words[1]) else None
    return f"{program} {command}" if command else program
