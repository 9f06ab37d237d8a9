"""Upstream OAuth end to end: `lockgate connect`, then two OAuth-protected upstreams behind
one gateway, each called with its own token only.

Why it exists: issue 3 deliverable 5. The gateway (kind "dev", so MCP clients sign in to
it with a gateway token) fronts two upstreams built with the `mcp` SDK's server auth
support, each its own authorization server (tests/support/protected_upstream.py). Before
connecting, a call answers -32042 with the connect URL. `lockgate connect --no-browser`
prints the gateway's /connect URL; an HTTP client following redirects plays the browser
(the upstream's authorization server approves at once). Then the official SDK client, signed
in to the gateway, calls tools on both routes, and each upstream proves it only ever saw
tokens its own authorization server issued (never the gateway's). Expiry is refreshed
ahead; a revoked token is refreshed once and the call replayed; a refused refresh answers
-32042 and is audited. Without a running gateway, `lockgate connect` serves the callback
itself.

The gateway, the CLI and this test share the real OS keyring (Secret Service in CI): these
tests skip without one, and fail under LOCKGATE_REQUIRE_ALL=1.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lockgate.audit.verify import verify
from lockgate.identity.claims import local_user
from lockgate.upstream import tokens as upstream_tokens
from tests.support import keyring_env
from tests.support.demo_mcp import text_of
from tests.support.gateway import GatewayStack, running_gateway
from tests.support.oauth import (
    authorize_url,
    hidden_fields,
    mcp_post,
    pkce,
    redirect_params,
    register,
)
from tests.support.oauth import sign_in as gateway_sign_in
from tests.support.oauth_client import approve as approve_page
from tests.support.oauth_client import signed_in_client
from tests.support.oidc_mock import free_port
from tests.support.protected_upstream import ProtectedUpstream, protected_upstream

pytestmark = pytest.mark.keyring

CALLBACK = "http://127.0.0.1:9/callback"
ENV = {"LOCKGATE_SIGNING_KEY_SOURCE": "memory"}
USER = local_user()


@dataclass
class Stack(GatewayStack):
    alpha: ProtectedUpstream
    beta: ProtectedUpstream
    names: dict[str, str]  # "alpha"/"beta" -> upstream name in the profile
    cli_profile: Path


def oauth_profile(names: dict[str, str], urls: dict[str, str], listen: str | None = None) -> str:
    lines = ["[gateway]", f'listen = "{listen or "127.0.0.1:8787"}"', "[identity]", 'kind = "dev"']
    for key, name in names.items():
        lines += [f'[upstreams."{name}"]', f'url = "{urls[key]}"', 'auth = "oauth"']
        lines += [f"[routes.{key}]", f'upstream = "{name}"']
    return "\n".join(lines) + "\n"


def _forget(names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(Exception):  # cleanup: never mask the test's own outcome
            upstream_tokens.delete(name, USER)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    keyring_env.require_keyring()
    run = uuid.uuid4().hex[:8]
    names = {"alpha": f"lockgate-test-{run}-alpha", "beta": f"lockgate-test-{run}-beta"}
    tmp = tmp_path_factory.mktemp("upstream-oauth")
    with ExitStack() as es:
        alpha = es.enter_context(protected_upstream("alpha"))
        beta = es.enter_context(protected_upstream("beta"))
        urls = {"alpha": alpha.url, "beta": beta.url}
        gw = es.enter_context(running_gateway(oauth_profile(names, urls), tmp, env=ENV))
        listen = gw.base_url.removeprefix("http://")
        cli_profile = tmp / "cli-profile.toml"
        cli_profile.write_text(oauth_profile(names, urls, listen), encoding="utf-8")
        es.callback(_forget, list(names.values()))
        yield Stack(gw, alpha, beta, names, cli_profile)


# --- helpers ---------------------------------------------------------------------------------


def cli(*args: str, home: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "LOCKGATE_HOME": str(home),
        "LOCKGATE_AUDIT_LOG": str(home / "audit.jsonl"),
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "lockgate.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def printed_url(proc: subprocess.Popen[str]) -> str:
    """The URL `--no-browser` prints (read line by line; the process keeps running)."""
    assert proc.stdout is not None
    found: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.search(r"Open this URL in your browser: (\S+)", line)
            if m:
                found.append(m.group(1))
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(60)
    if not found:
        proc.kill()
        raise AssertionError(f"no URL printed: {proc.stderr.read() if proc.stderr else ''}")
    return found[0]


def browse(url: str) -> httpx.Response:
    """The user's browser: follow every redirect, keep cookies."""
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        return browser.get(url)


def connect_with_cli(stack: Stack, key: str, tmp_path: Path) -> None:
    name = stack.names[key]
    proc = cli("connect", name, "--profile", str(stack.cli_profile), "--no-browser", home=tmp_path)
    try:
        url = printed_url(proc)
        assert url == f"{stack.base}/connect/{name}"
        page = browse(url)
        assert page.status_code == 200, page.text
        assert "connected" in page.text and "close this tab" in page.text
        assert page.headers["x-frame-options"] == "DENY"
        rc = proc.wait(60)
        assert rc == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def approve(base: str, authorization_url: str) -> dict[str, str]:
    """Sign in to the gateway (kind "dev"): approve its consent page."""
    async with httpx.AsyncClient() as browser:
        page = await browser.get(authorization_url)
        if page.status_code == 302:
            return redirect_params(page)
        assert page.status_code == 200, page.text
        answer = await browser.post(
            f"{base}/oauth/consent",
            data={**hidden_fields(page.text), "decision": "approve"},
            headers={"Origin": base},
        )
        return redirect_params(answer)


async def call_whoami(stack: Stack, route: str) -> str:
    async def sign_in(url: str) -> dict[str, str]:
        return await approve(stack.base, url)

    async with signed_in_client(
        stack.gw.route_url(route), sign_in, client_name="e2e client", callback_uri=CALLBACK
    ) as client:
        result = await client.call_tool("whoami", {})
        assert not result.is_error, result
        return text_of(result)


def gateway_token(stack: Stack, route: str) -> str:
    token: str = gateway_sign_in(stack, route)["access_token"]  # type: ignore[arg-type]
    return token


def rpc_error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    error: dict[str, Any] = r.json()["error"]
    return error


# --- the tests, in order -----------------------------------------------------------------------


def test_before_connecting_a_call_answers_the_connect_url(stack: Stack) -> None:
    token = gateway_token(stack, "alpha")
    error = rpc_error(mcp_post(stack.gw.route_url("alpha"), token))
    name = stack.names["alpha"]
    assert error["code"] == -32042
    assert error["data"]["connect_url"] == f"{stack.base}/connect/{name}"
    assert error["data"]["upstream"] == name
    assert stack.alpha.provider.received == []  # nothing was sent without a token of its own


def test_lockgate_connect_connects_both_upstreams(stack: Stack, tmp_path: Path) -> None:
    connect_with_cli(stack, "alpha", tmp_path)
    connect_with_cli(stack, "beta", tmp_path)
    for key in ("alpha", "beta"):
        assert upstream_tokens.stored(stack.names[key], USER)
    # Each upstream's server saw the resource indicator of that upstream, and PKCE.
    [asked_alpha] = stack.alpha.provider.authorizations
    [asked_beta] = stack.beta.provider.authorizations
    assert asked_alpha.resource == stack.alpha.url and asked_beta.resource == stack.beta.url
    assert asked_alpha.code_challenge and asked_beta.code_challenge
    events = stack.gw.wait_for_events(
        lambda evs: sum(e.get("event") == "auth.upstream_connected" for e in evs) >= 2
    )
    connected = [e for e in events if e["event"] == "auth.upstream_connected"]
    assert {e["upstream"] for e in connected} == set(stack.names.values())
    assert all(e["outcome"] == "success" and e["user"] == USER for e in connected)


@pytest.mark.anyio
async def test_the_sdk_client_calls_both_upstreams_each_with_its_own_token(stack: Stack) -> None:
    assert await call_whoami(stack, "alpha") == "alpha"
    assert await call_whoami(stack, "beta") == "beta"
    for up in (stack.alpha, stack.beta):
        assert up.provider.received, "the upstream was not called"
        assert up.only_saw_own_tokens()
    # Neither saw the other's tokens, nor the gateway's (which are not in either issued list).
    assert not set(stack.alpha.provider.received) & set(stack.beta.provider.issued)
    assert not set(stack.beta.provider.received) & set(stack.alpha.provider.issued)


@pytest.mark.anyio
async def test_a_token_about_to_expire_is_refreshed_ahead(stack: Stack) -> None:
    up = stack.alpha
    up.provider.access_ttl = 30  # inside the gateway's 60 s margin
    page = browse(f"{stack.base}/connect/{stack.names['alpha']}")  # connect again, via the gateway
    assert page.status_code == 200, page.text
    short_lived = up.provider.issued[-1]
    up.provider.access_ttl = 3600
    before = up.provider.refreshes
    assert await call_whoami(stack, "alpha") == "alpha"
    assert up.provider.refreshes == before + 1
    assert short_lived not in up.provider.received  # refreshed before it was ever used
    assert up.only_saw_own_tokens()


@pytest.mark.anyio
async def test_a_revoked_token_is_refreshed_once_and_the_call_replayed(stack: Stack) -> None:
    up = stack.beta
    up.provider.revoke_access_tokens()
    before = up.provider.refreshes
    assert await call_whoami(stack, "beta") == "beta"
    assert up.provider.refreshes == before + 1
    assert up.only_saw_own_tokens()


def test_a_refused_refresh_answers_the_connect_url_and_is_audited(stack: Stack) -> None:
    up = stack.beta
    token = gateway_token(stack, "beta")
    up.provider.revoke_everything()
    error = rpc_error(mcp_post(stack.gw.route_url("beta"), token))
    name = stack.names["beta"]
    assert error["code"] == -32042
    assert error["data"]["connect_url"] == f"{stack.base}/connect/{name}"
    events = stack.gw.wait_for_events(
        lambda evs: any(e.get("event") == "auth.upstream_refresh_failed" for e in evs)
    )
    [failed] = [e for e in events if e["event"] == "auth.upstream_refresh_failed"]
    assert failed["upstream"] == name and failed["user"] == USER
    assert failed["outcome"] == "denied"
    # No upstream token or refresh token ever reached the audit log.
    text = stack.gw.audit_path.read_text()
    for up_ in (stack.alpha, stack.beta):
        for secret in (*up_.provider.issued, *up_.provider.issued_refresh):
            assert secret not in text
    assert verify(stack.gw.audit_path).ok


def test_disconnect_forgets_the_tokens(stack: Stack, tmp_path: Path) -> None:
    name = stack.names["beta"]
    proc = cli("disconnect", name, "--profile", str(stack.cli_profile), home=tmp_path)
    assert proc.wait(60) == 0
    assert not upstream_tokens.stored(name, USER)
    token = gateway_token(stack, "beta")
    assert rpc_error(mcp_post(stack.gw.route_url("beta"), token))["code"] == -32042


def test_the_consent_page_shows_the_upstream_and_connects_it(stack: Stack) -> None:
    """The gateway's consent page names the route's upstream and its state; its Connect link
    runs the upstream's sign-in and comes back to the same authorization request."""
    name = stack.names["beta"]  # disconnected by the test above
    client_id = register(stack.base, name="Consent connect test")
    auth_url = authorize_url(stack.base, client_id, stack.gw.route_url("beta"), pkce()[1])
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        page = browser.get(auth_url)
        assert page.status_code == 200, page.text
        assert f"{name}: <strong>needs connect</strong>" in page.text
        link = re.search(r'<a href="([^"]+)">Connect</a>', page.text)
        assert link is not None, page.text
        target = html.unescape(link.group(1))
        assert target.startswith(f"{stack.base}/connect/{name}?ticket=")
        back = browser.get(target)  # the upstream's server approves at once, then back here
        assert back.status_code == 200, back.text
        assert str(back.url).startswith(f"{stack.base}/oauth/authorize?")
        assert f"{name}: <strong>connected</strong>" in back.text
        assert ">Connect</a>" not in back.text
        allowed = approve_page(browser, stack.base, back.text)
        assert "code" in redirect_params(allowed)
    assert upstream_tokens.stored(name, USER)


def test_without_a_gateway_lockgate_connect_serves_the_callback_itself(tmp_path: Path) -> None:
    keyring_env.require_keyring()
    name = f"lockgate-test-{uuid.uuid4().hex[:8]}-solo"
    with protected_upstream("solo") as up:
        listen = f"127.0.0.1:{free_port()}"
        profile = tmp_path / "solo.toml"
        profile.write_text(oauth_profile({"solo": name}, {"solo": up.url}, listen))
        proc = cli("connect", name, "--profile", str(profile), "--no-browser", home=tmp_path)
        try:
            url = printed_url(proc)
            assert url == f"http://{listen}/connect/{name}"
            deadline = time.monotonic() + 30
            while True:  # the CLI prints the URL once its server listens; be patient anyway
                try:
                    page = browse(url)
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            assert page.status_code == 200 and "connected" in page.text, page.text
            assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
            tokens = upstream_tokens.load(name, USER)
            assert tokens is not None and tokens.access_token in up.provider.issued
            assert tokens.resource == up.url
            assert any(
                '"auth.upstream_connected"' in line
                for line in (tmp_path / "audit.jsonl").read_text().splitlines()
            )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            _forget([name])
