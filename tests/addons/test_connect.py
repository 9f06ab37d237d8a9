"""addons/connect.py: `/connect/<upstream>` and its callback, in-process with real upstreams.

Why it exists: the connect flow sends a browser to a third party's authorization server and
stores what comes back under a user. These tests drive the addon's hook on `tflow` flows
(the browser's requests) against a real OAuth-protected SDK upstream and a metadata server
of the test's choosing: the redirect carries PKCE S256, the resource indicator and a state
bound to the browser by a cookie; a callback from another browser, a replayed state, a
foreign return URL, an unsafe authorization endpoint are each refused; a kind "oidc" user
arrives through a single-use ticket (the consent page's Connect button). The keyring is an
in-memory backend running the real `lockgate.keyring` code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import keyring.backends.fail
import pytest
from mitmproxy import http

from lockgate.addons._flow import state
from lockgate.addons.config import Config
from lockgate.addons.connect import Connect
from lockgate.identity.claims import local_user
from lockgate.upstream import tokens as upstream_tokens
from lockgate.upstream.state import user_state
from tests.addons.conftest import gateway_section, mcp_flow, running, toml_table
from tests.core.upstream.metadata_docs import docs_server
from tests.support import keyring_env
from tests.support.gateway import profile_text
from tests.support.keyring_env import MemoryKeyring
from tests.support.protected_upstream import protected_upstream


@pytest.fixture
def memory() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    for _ in keyring_env.forced_keyring(backend):
        yield backend


class Browser:
    """The addon driven like a browser: requests as flows, cookies kept per path."""

    def __init__(self, connect: Connect, tctx: Any) -> None:
        self.connect = connect
        self.tctx = tctx
        self.cookies: dict[str, str] = {}

    def get(self, path: str, *, cookie: str | None = None) -> http.HTTPFlow:
        sent = (
            cookie if cookie is not None else "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        )
        f = mcp_flow(path, b"", "GET", {"cookie": sent} if sent else None)
        self.tctx.master.event_loop.run_until_complete(self.connect.request(f))
        assert f.response is not None and state(f).local
        for value in f.response.headers.get_all("set-cookie"):
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return f


@contextmanager
def gateway(
    tmp_path: Path, upstreams: dict[str, str], identity: str = 'kind = "none"', gateway: str = ""
) -> Iterator[tuple[Connect, Browser]]:
    oauth = [toml_table(f"[upstreams.{n}]", url=url, auth="oauth") for n, url in upstreams.items()]
    profile = profile_text(
        {"plain": "http://127.0.0.1:9/mcp"},
        {**{name: name for name in upstreams}, "plain": "plain"},
        gateway_section(gateway) + "".join(oauth),
        identity=["[identity]", identity],
    )
    cfg = Config()
    connect = Connect(cfg)
    with running(tmp_path, profile, cfg, connect) as tctx:
        yield connect, Browser(connect, tctx)


def location_params(f: http.HTTPFlow) -> dict[str, str]:
    assert f.response is not None
    return {k: v[0] for k, v in parse_qs(urlsplit(f.response.headers["location"]).query).items()}


def upstream_answer(f: http.HTTPFlow) -> str:
    """Follow the gateway's redirect to the upstream's authorization server (auto-approve):
    the path and query of the callback the browser comes back with."""
    assert f.response is not None and f.response.status_code == 302
    answer = httpx.get(f.response.headers["location"])
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    return f"{back.path}?{back.query}"


def test_the_flow_starts_with_pkce_resource_and_a_browser_bound_state(
    tmp_path: Path, memory: MemoryKeyring
) -> None:
    with protected_upstream("alpha") as up, gateway(tmp_path, {"up": up.url}) as (_, browser):
        f = browser.get("/connect/up")
        assert f.response is not None and f.response.status_code == 302
        location = f.response.headers["location"]
        assert location.startswith(f"{up.issuer}/authorize?")
        params = location_params(f)
        assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
        assert params["resource"] == up.url
        assert params["redirect_uri"] == "http://127.0.0.1:8787/connect/up/callback"
        assert params["client_id"] in up.provider.clients  # registered by DCR
        [cookie] = f.response.headers.get_all("set-cookie")
        assert cookie.startswith("lockgate_connect_up=")
        for flag in ("Path=/connect/up", "HttpOnly", "SameSite=Lax"):
            assert flag in cookie
        assert params["state"] not in cookie


def test_the_callback_stores_the_tokens_and_says_so(tmp_path: Path, memory: MemoryKeyring) -> None:
    with protected_upstream("alpha") as up, gateway(tmp_path, {"up": up.url}) as (_, browser):
        callback = upstream_answer(browser.get("/connect/up"))
        done = browser.get(callback)
        assert done.response is not None and done.response.status_code == 200
        page = done.response.get_text() or ""
        assert "close this tab" in page
        assert done.response.headers["x-frame-options"] == "DENY"
        tokens = upstream_tokens.load("up", local_user())
        assert tokens is not None and tokens.access_token in up.provider.issued
        [event] = state(done).events
        assert event["event"] == "auth.upstream_connected" and event["outcome"] == "success"
        text = json.dumps(event)
        assert tokens.access_token not in text and str(tokens.refresh_token) not in text
        assert "code=" not in text
        # The state was single use: the same callback again is refused.
        again = browser.get(callback)
        assert again.response is not None and again.response.status_code == 400


def test_a_callback_from_another_browser_is_refused(tmp_path: Path, memory: MemoryKeyring) -> None:
    with protected_upstream("alpha") as up, gateway(tmp_path, {"up": up.url}) as (_, browser):
        callback = upstream_answer(browser.get("/connect/up"))
        stolen = browser.get(callback, cookie="lockgate_connect_up=someone-else")
        assert stolen.response is not None and stolen.response.status_code == 400
        assert state(stolen).events[0]["reason"] == "unknown_state"
        # The attempt consumed the state: the real browser must start again too.
        late = browser.get(callback)
        assert late.response is not None and late.response.status_code == 400
        assert upstream_tokens.load("up", local_user()) is None


def test_only_the_gateways_consent_page_is_a_return_address(
    tmp_path: Path, memory: MemoryKeyring
) -> None:
    with protected_upstream("alpha") as up, gateway(tmp_path, {"up": up.url}) as (_, browser):
        for foreign in (
            "https://evil.example.com/oauth/authorize?x=1",
            "http://127.0.0.1:8787/elsewhere",
            "javascript:alert(1)",
        ):
            f = browser.get(f"/connect/up?{httpx.QueryParams({'return': foreign})}")
            assert f.response is not None and f.response.status_code == 400
            assert "location" not in f.response.headers
        own = "http://127.0.0.1:8787/oauth/authorize?client_id=c&state=s"
        callback = upstream_answer(browser.get(f"/connect/up?{httpx.QueryParams({'return': own})}"))
        done = browser.get(callback)
        assert done.response is not None and done.response.status_code == 303
        assert done.response.headers["location"] == own


def test_an_unsafe_authorization_endpoint_never_reaches_the_browser(
    tmp_path: Path, memory: MemoryKeyring
) -> None:
    with docs_server() as docs:
        prm = f"{docs.base}/prm"
        docs.routes["/mcp"] = (401, {}, {"www-authenticate": f'Bearer resource_metadata="{prm}"'})
        docs.json("/prm", {"authorization_servers": [docs.base]})
        docs.json(
            "/.well-known/oauth-authorization-server",
            docs.as_doc(authorization_endpoint="javascript:alert(document.domain)"),
        )
        with gateway(tmp_path, {"up": f"{docs.base}/mcp"}) as (_, browser):
            f = browser.get("/connect/up")
    assert f.response is not None and f.response.status_code == 502
    assert "location" not in f.response.headers
    assert "authorization_endpoint" in (f.response.get_text() or "")
    [event] = state(f).events
    assert event["outcome"] == "error" and "authorization_endpoint" in event["reason"]


def test_kind_oidc_users_arrive_with_a_single_use_ticket(
    tmp_path: Path, memory: MemoryKeyring
) -> None:
    oidc = 'kind = "oidc"\nissuer = "https://login.example.com"\nclient_id = "lockgate"'
    with (
        protected_upstream("alpha") as up,
        gateway(tmp_path, {"up": up.url}, identity=oidc) as (connect, browser),
    ):
        nobody = browser.get("/connect/up")
        assert nobody.response is not None and nobody.response.status_code == 401
        link = connect.connect_link("up", "carol@example.com")
        assert link.startswith("http://127.0.0.1:8787/connect/up?ticket=")
        path = link.removeprefix("http://127.0.0.1:8787")
        done = browser.get(upstream_answer(browser.get(path)))
        assert done.response is not None and done.response.status_code == 200
        assert upstream_tokens.stored("up", "carol@example.com")
        assert not upstream_tokens.stored("up", local_user())
        reused = browser.get(path)
        assert reused.response is not None and reused.response.status_code == 401


def test_unknown_and_non_oauth_upstreams_and_other_methods(
    tmp_path: Path, memory: MemoryKeyring
) -> None:
    with gateway(tmp_path, {"up": "http://127.0.0.1:9/mcp"}) as (connect, browser):
        for path, status in (
            ("/connect/nope", 404),
            ("/connect/plain", 404),
            ("/connect/up/elsewhere", 404),
            ("/connect/_client-metadata.json", 404),  # no https public_url: no document
        ):
            f = browser.get(path)
            assert f.response is not None and f.response.status_code == status, path
        f = mcp_flow("/connect/up")
        browser.tctx.master.event_loop.run_until_complete(connect.request(f))
        assert f.response is not None and f.response.status_code == 405
        routed = mcp_flow("/connect/up", method="GET")
        state(routed).route = connect.config.routes["up"]  # a route's flow: not ours
        browser.tctx.master.event_loop.run_until_complete(connect.request(routed))
        assert routed.response is None


def test_the_client_id_metadata_document_with_an_https_public_url(
    tmp_path: Path, memory: MemoryKeyring
) -> None:
    with gateway(
        tmp_path,
        {"up": "http://127.0.0.1:9/mcp"},
        gateway='public_url = "https://gw.example.com"',
    ) as (_, browser):
        f = browser.get("/connect/_client-metadata.json")
    assert f.response is not None and f.response.status_code == 200
    doc = json.loads(f.response.content or b"")
    assert doc["client_id"] == "https://gw.example.com/connect/_client-metadata.json"
    assert doc["redirect_uris"] == ["https://gw.example.com/connect/up/callback"]
    assert doc["token_endpoint_auth_method"] == "none"


def test_connection_state_for_the_consent_page(tmp_path: Path, memory: MemoryKeyring) -> None:
    with gateway(tmp_path, {"up": "http://127.0.0.1:9/mcp"}) as (connect, _):
        profile = connect.config.profile
        assert profile is not None
        assert user_state(profile, "up", "alice").kind == "needs_connect"
        assert user_state(profile, "plain", "alice").kind == "none_needed"
        memory.set_password("lockgate", "oauth:up:alice", "{}")
        assert user_state(profile, "up", "alice").kind == "connected"
        assert user_state(profile, "up", "bob").kind == "needs_connect"  # per user
        for _ in keyring_env.forced_keyring(keyring.backends.fail.Keyring()):
            assert user_state(profile, "up", "alice").kind == "keyring_unavailable"
