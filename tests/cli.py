"""Running the installed ``scalereg`` command the way a user does, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCALEREG = str(Path(sys.executable).parent / "scalereg")


def scalereg(*args: str, home: Path, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {"SCALEREG_HOME": str(home)} | (env or {})
    return subprocess.run([SCALEREG, *args], capture_output=True, text=True, env=env, timeout=timeout)
