"""`lockgate up` and `lockgate demo` as a user runs them: real processes, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from lockgate.profile import demo_profile_path
from tests.support.gateway import running_gateway


def lockgate(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_bad_profile_exits_2_with_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[upstreams.a]\nurl = "https://a.example/mcp"\n\n[routes.r]\nupstream = "b"\n')
    for args in (["profile", "validate", str(bad)], ["up", "--profile", str(bad)]):
        result = lockgate(*args)
        assert result.returncode == 2, result
        assert f"{bad}:5: routes.r.upstream" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_profile_validate_ok() -> None:
    result = lockgate("profile", "validate", str(demo_profile_path()))
    assert result.returncode == 0, result.stderr
    assert "route notes-readonly -> upstream notes" in result.stdout


def test_busy_port_is_one_clear_sentence(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = lockgate(
            "up", "--profile", str(demo_profile_path()), "--listen", f"127.0.0.1:{port}"
        )
    assert result.returncode == 1, result
    assert f"could not listen on 127.0.0.1:{port}" in result.stderr, result.stderr
    assert "--listen" in result.stderr and "Traceback" not in result.stderr


def test_non_loopback_listen_refused_for_kind_none() -> None:
    result = lockgate("up", "--profile", str(demo_profile_path()), "--listen", "0.0.0.0:0")
    assert result.returncode == 1
    assert "only allows listening on loopback" in result.stderr, result.stderr


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    with running_gateway(demo_profile_path().read_text(), tmp_path) as gw:
        assert httpx.get(f"{gw.base_url}/healthz").json()["status"] == "ok"
        os.killpg(gw.proc.pid, signal.SIGTERM)
        assert gw.proc.wait(10) == 0
        assert "lockgate: stopped" in "".join(gw.output)


def test_demo_check_passes() -> None:
    result = lockgate("demo", "--check", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6/6 checks passed" in result.stdout, result.stdout
    assert "delete_note refused by the gateway (-32601" in result.stdout
