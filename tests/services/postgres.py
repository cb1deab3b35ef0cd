"""A throw-away PostgreSQL cluster for the team backend's tests: Debian's server, a free port, a temp dir.

``initdb`` and ``pg_ctl`` from Debian's ``postgresql`` package (``make test`` installs it when it is
missing). The cluster runs as the ``postgres`` user when the tests run as root (PostgreSQL refuses
root), in its own process group, and is stopped by the pid in its ``postmaster.pid``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def server_bin(name: str) -> str:
    """A PostgreSQL server program: on PATH, else from Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: run 'make postgres' (Debian's postgresql package)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class PostgresServer:
    """A running cluster: where it listens and who may connect (trust auth on 127.0.0.1 only)."""

    port: int
    user: str
    data: Path

    def dsn(self, dbname: str) -> str:
        """A libpq connection string, as ``SCALEREG_CATALOG`` takes after ``postgres:``."""
        return f"dbname={dbname} host=127.0.0.1 port={self.port} user={self.user}"

    def create_database(self, name: str) -> str:
        """A fresh database; returns its connection string."""
        import psycopg2

        con = psycopg2.connect(self.dsn("postgres"))
        con.autocommit = True
        try:
            with con.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return self.dsn(name)


def _as_postgres() -> dict:
    """Run the server programs as ``postgres`` when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("postgres")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@contextmanager
def postgres_server(root: Path) -> Iterator[PostgresServer]:
    """Start a cluster under ``root`` and stop it (by its own pid) when the block ends."""
    as_user = _as_postgres()
    user = "postgres" if as_user else pwd.getpwuid(os.geteuid()).pw_name
    data = root / "pgdata"
    root.mkdir(parents=True, exist_ok=True)
    if as_user:
        os.chown(root, as_user["user"], as_user["group"])
    subprocess.run(
        [server_bin("initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, **as_user,
    )
    port = free_port()
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c max_connections=200"
    subprocess.run(
        [server_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "-t", "60", "start"],
        check=True, capture_output=True, process_group=0, **as_user,
    )
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        yield PostgresServer(port=port, user=user, data=data)
    finally:
        os.kill(pid, signal.SIGINT)  # fast shutdown: active sessions are ended, nothing waits for clients
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
