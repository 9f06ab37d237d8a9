"""Bad invocations end in one message and click's exit code, never a traceback (issue 9, item 12).

Runs the real `lockgate` entry point in a subprocess: the error boundary in cli/main.py is
exactly what an in-process CliRunner would bypass.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.real_cli import run_lockgate

# (arguments, exit code, text the one-line message must contain)
BAD = [
    (["nosuch"], 2, "No such command 'nosuch'"),
    (["audit", "query", "--format", "xml"], 2, "'xml' is not one of"),
    (["up", "--listen"], 2, "'--listen' requires an argument"),
    (["watch", "--route"], 2, "'--route' requires an argument"),
    (["audit", "query", "--nosuch-option"], 2, "No such option"),
    (["audit", "query", "--limit", "many"], 2, "--limit"),
    (["--debug", "nosuch"], 2, "No such command"),
    (["up", "--profile", "/nonexistent/lockgate.toml"], 2, "no such profile file"),
    (["audit", "query", "--since", "garbage"], 2, "Cannot read --since"),
]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "LOCKGATE_DEBUG": "",
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    return run_lockgate(*args, env=env)


@pytest.mark.parametrize(("args", "code", "says"), BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_invocation_is_one_message_not_a_traceback(
    args: list[str], code: int, says: str, tmp_path: Path
) -> None:
    proc = _run(args, tmp_path)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    assert proc.returncode == code, out
    assert says in out, out
    assert len(proc.stderr.strip().splitlines()) <= 4, proc.stderr


def test_debug_still_shows_the_traceback_of_a_lockgate_error(tmp_path: Path) -> None:
    proc = _run(["--debug", "up", "--profile", "/nonexistent/lockgate.toml"], tmp_path)
    assert "Traceback" in proc.stderr
    assert proc.returncode != 0
