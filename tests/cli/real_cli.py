"""The real `lockgate` in a subprocess, as a user runs it: the one way the CLI tests run it
and read what it printed (tests/support/process.py stops the servers they start)."""

from __future__ import annotations

import os
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
