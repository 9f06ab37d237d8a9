"""`lockgate up` and `lockgate demo` as a user runs them: real processes, real signals."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from lockgate.profile.model import demo_profile_path
from tests.cli.real_cli import run_lockgate, with_environ
from tests.support.gateway import running_gateway
from tests.support.process import terminate_group


def lockgate(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_lockgate(*args, env=with_environ(env), timeout=timeout)


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


IMPORT_LOG = [sys.executable, "-X", "importtime", "-m", "lockgate.cli"]


IMPORT_LOG = [sys.executable, "-X", "importtime", "-m", "lockgate.cli"]


def test_a_piped_gateway_never_imports_typer_or_rich(tmp_path: Path) -> None:
    """`lockgate up` on plain options, as launchers start it, serves without typer or rich
    (~7 MB each for the gateway's life): the interpreter's own import log says so."""
    profile = tmp_path / "profile.toml"
    profile.write_text(demo_profile_path().read_text(), encoding="utf-8")
    env = with_environ({"LOCKGATE_HOME": str(tmp_path / "home"), "NO_COLOR": "1"})
    proc = subprocess.Popen(
        [*IMPORT_LOG, "up", "-p", str(profile), "--listen=127.0.0.1:0", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in first, first
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        terminate_group(proc, timeout=10)
    assert proc.returncode == 0 and "lockgate: stopped" in out, (out, err[-2000:])
    imported = {line.rsplit("|", 1)[-1].strip() for line in err.splitlines() if "|" in line}
    assert "lockgate.addons.master" in imported  # the log is the gateway's
    assert not {m for m in imported if m.split(".")[0] in ("typer", "click", "rich")}


def test_the_plain_lines_replace_control_characters() -> None:
    """Tool and route names come from clients and upstreams: an escape sequence in one must
    not reach the terminal `lockgate up` prints to."""
    from lockgate.cli.lines import event_line

    line = event_line(
        {"event": "tool.call", "route": "r", "method": "tools/call", "name": "x\x1b[2Jy\x07"}
    )
    assert "\x1b" not in line and "\x07" not in line and "x?[2Jy?" in line, line


def test_demo_check_passes() -> None:
    result = lockgate("demo", "--check", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "15/15 checks passed" in result.stdout, result.stdout
    assert "delete_note refused by the gateway (-32601" in result.stdout
    # Issue 9: the four attacks a new user can watch being refused.
    assert "without the consent page's cookie refused (HTTP 403)" in result.stdout
    assert "spelled notes://note/%32 refused (-32601" in result.stdout
    assert "presented on the read-only route refused (HTTP 404)" in result.stdout
    assert "last line cut off is refused (tail cut" in result.stdout
    # Issue 11: the guardrails at work on the lab route.
    assert "token in get_deploy_config's answer reached the client masked" in result.stdout
    assert "poisoned weather_lookup is not listed and its call is refused (-32003" in result.stdout
    assert "(a rug pull): hidden and its call refused (-32003" in result.stdout
    assert "lockgate tools approve lab fetch_page" in result.stdout
    # The demo signs clients in (kind "dev") with its key in memory: no keyring needed.
    assert "no token: HTTP 401, WWW-Authenticate names resource_metadata" in result.stdout
    assert "signed in: the SDK client registered, got consent and a token" in result.stdout


def test_demo_check_needs_no_keyring(tmp_path: Path) -> None:
    """The demo profile keeps its signing key in memory: with every keyring call failing
    (no Secret Service), the demo still signs clients in, and keys a fresh audit log of its
    own in memory (never the usual log), saying so."""
    env = {
        "LOCKGATE_HOME": str(tmp_path),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    keys = ("LOCKGATE_SIGNING_KEY_SOURCE", "LOCKGATE_AUDIT_KEY_SOURCE")
    env_clean = {k: v for k, v in os.environ.items() if k not in keys}
    result = run_lockgate("demo", "--check", env={**env_clean, **env}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "15/15 checks passed" in result.stdout
    assert "No usable OS keyring" in result.stdout
    assert "is keyed in memory" in result.stdout
    assert not (tmp_path / "audit.jsonl").exists()
    assert len(list((tmp_path / "demo-audit").glob("audit-*.jsonl"))) == 1


def test_demo_prints_how_clients_sign_in(tmp_path: Path) -> None:
    """`lockgate demo` (no --check) starts, tells the user how each client signs in, and
    the route it prints asks for a token; SIGINT stops it cleanly."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockgate.cli", "demo", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LOCKGATE_HOME": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "200"},
        start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops" in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert ready.wait(60), "".join(lines)
        text = "".join(lines)
        assert "opens a consent page in your browser" in text, text
        assert "Claude Code     run /mcp, pick lockgate-notes, choose Authenticate" in text
        assert "MCP Inspector   click Connect" in text
        assert re.search(r"lockgate clients install cursor --route notes --profile \S+", text)
        url = re.search(r"route notes: (http://\S+)", text)
        assert url is not None, text
        r = httpx.post(url.group(1), json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert r.status_code == 401 and "resource_metadata=" in r.headers["www-authenticate"]
    finally:
        terminate_group(proc, timeout=15, sig=signal.SIGINT)
    assert proc.returncode == 0, "".join(lines)


def test_up_without_a_keyring_says_the_audit_key_needs_one(tmp_path: Path) -> None:
    """The audit chain's key lives in the keyring: without one, `up` says so in one line
    instead of blaming the port."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "LOCKGATE_AUDIT_KEY_SOURCE"},
        "LOCKGATE_HOME": str(tmp_path),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    result = subprocess.run(
        [sys.executable, "-m", "lockgate.cli", "up", "--profile", str(demo_profile_path())],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "The audit log's key lives in the OS keyring and none is usable" in result.stderr
    assert "could not listen" not in result.stderr and "Traceback" not in result.stderr
