"""The real `lockgate` in a subprocess, as a user runs it: how the CLI tests start it, and
stop a server they started in its own process group (one definition for every test file)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping


def run_lockgate(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    module: str = "lockgate.cli",
) -> subprocess.CompletedProcess[str]:
    """`python -m <module> *args` with its output captured as text; `env` is the whole
    environment (None: this process's)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        timeout=timeout,
        check=False,
    )


def with_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with `extra` on top."""
    return {**os.environ, **(extra or {})}


def stop_group(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, wait: float = 10) -> None:
    """Send `sig` to the process group `proc` leads; SIGKILL it if it is not gone in `wait`."""
    os.killpg(proc.pid, sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
