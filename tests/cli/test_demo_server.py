"""`python -m lockgate.cli.demo.server --bearer-env VAR`: an upstream with a static credential.

Why it exists: the README's "Try it with a stand-in identity provider" runs a demo server
that answers 401 without its token, to show `auth = "header"` and `lockgate secret set`.
The guard must refuse a missing or wrong token, admit the right one, and refuse to start
with an empty variable (an empty token would be a guard that lets anything in).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from lockgate.cli.demo.server import BackgroundServer, build_app, require_bearer
from tests.cli.real_cli import run_lockgate
from tests.support.mcp_http import ACCEPT, initialize_request

TOKEN = "demo-bearer-token-4f2a"
INIT = initialize_request("2025-06-18", client="test")


@pytest.fixture(scope="module")
def guarded_url() -> Iterator[str]:
    with BackgroundServer(require_bearer(build_app(json_response=True), TOKEN)) as server:
        yield f"{server.url}/mcp"


def _post(url: str, authorization: str | None) -> httpx.Response:
    headers = dict(ACCEPT)
    if authorization is not None:
        headers["Authorization"] = authorization
    return httpx.post(url, json=INIT, headers=headers, timeout=10)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN, f"Basic {TOKEN}"],
)
def test_no_or_a_wrong_token_is_401(guarded_url: str, authorization: str | None) -> None:
    r = _post(guarded_url, authorization)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"error": "unauthorized"}


def test_the_right_token_reaches_the_server(guarded_url: str) -> None:
    r = _post(guarded_url, f"Bearer {TOKEN}")
    assert r.status_code == 200, r.text
    assert r.json()["result"]["serverInfo"]["name"] == "demo-notes"


@pytest.mark.parametrize("value", [None, ""])
def test_an_empty_or_unset_variable_is_refused_at_start(value: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LOCKGATE_TEST_DEMO_TOKEN"}
    if value is not None:
        env["LOCKGATE_TEST_DEMO_TOKEN"] = value
    done = run_lockgate(
        "--bearer-env", "LOCKGATE_TEST_DEMO_TOKEN", env=env, module="lockgate.cli.demo.server"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "LOCKGATE_TEST_DEMO_TOKEN" in done.stderr
    assert "empty or not set" in done.stderr
    assert "listening" not in done.stdout


def test_the_command_line_serves_with_the_token_from_the_environment() -> None:
    """The process as the README starts it: the token comes from the environment only."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockgate.cli.demo.server", "--bearer-env", "NOTES_TOKEN"],
        env={**os.environ, "NOTES_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("demo upstream listening on http://127.0.0.1:"), line
        assert TOKEN not in line
        url = line.rsplit(" ", 1)[1].strip()
        assert _post(url, None).status_code == 401
        assert _post(url, f"Bearer {TOKEN}").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
