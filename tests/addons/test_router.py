"""addons/router.py: `/mcp/<route>` to its upstream; the gateway's own endpoints; JSON 404s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import http

from lockgate.addons._flow import drop_headers, state
from lockgate.addons.client_auth import ClientAuth
from lockgate.addons.config import Config
from lockgate.addons.router import Router
from tests.addons.conftest import BASE, LISTEN, NOTES_URL, gateway_section, mcp_flow, running
from tests.support.gateway import profile_text

PROFILE = profile_text(
    {
        "notes": NOTES_URL,
        "remote": "https://mcp.example.com/v1/mcp?tenant=acme",
        "v6": "http://[::1]:9002/",
    },
    {
        "notes": "notes",
        "notes.ro": ["notes", 'description = "read-only notes"', 'tools.allow = ["list_*"]'],
        "remote": "remote",
        "v6": "v6",
    },
    gateway_section(),
)
ROUTES = {"notes", "notes.ro", "remote", "v6"}


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    cfg = Config()
    router = Router(cfg)
    with running(tmp_path, PROFILE, cfg, router):
        cfg.base_url = BASE
        yield router


def flow(path: str, method: str = "POST", headers: dict[str, str] | None = None) -> http.HTTPFlow:
    sent = {"user-agent": "test-client/1.0", **(headers or {})}
    return mcp_flow(path, method=method, headers=sent, host=LISTEN)


def routed(router: Router, f: http.HTTPFlow) -> http.HTTPFlow:
    router.requestheaders(f)
    assert f.response is None, f.response and f.response.text
    return f


def json_answer(f: http.HTTPFlow, status: int) -> Any:
    assert f.response is not None
    assert f.response.status_code == status
    assert f.response.headers["content-type"] == "application/json"
    assert state(f).local
    return json.loads(f.response.content or b"")


def test_rewrites_the_request_to_the_upstream(router: Router) -> None:
    f = routed(router, flow("/mcp/notes"))
    req = f.request
    assert (req.scheme, req.host, req.port, req.path) == ("http", "127.0.0.1", 9001, "/mcp")
    assert req.host_header == "127.0.0.1:9001"
    assert req.url == "http://127.0.0.1:9001/mcp"
    st = state(f)
    assert st.route is not None and st.route.name == "notes"
    assert st.route.upstream.name == "notes"
    assert st.client == "test-client/1.0"


def test_https_upstream_keeps_its_query_and_drops_the_default_port(router: Router) -> None:
    f = routed(router, flow("/mcp/remote/?cursor=2"))
    req = f.request
    assert (req.scheme, req.host, req.port) == ("https", "mcp.example.com", 443)
    # The client's own query string is dropped (issue 9, item 11): only the profile's travels.
    assert req.path == "/v1/mcp?tenant=acme"
    assert req.host_header == "mcp.example.com"


def test_ipv6_upstream(router: Router) -> None:
    f = routed(router, flow("/mcp/v6", "GET"))
    assert (f.request.host, f.request.port, f.request.path) == ("::1", 9002, "/")
    assert f.request.host_header == "[::1]:9002"


def test_route_names_with_dots(router: Router) -> None:
    f = routed(router, flow("/mcp/notes.ro"))
    assert state(f).route.name == "notes.ro"  # type: ignore[union-attr]


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
def test_browser_headers_stay_at_the_gateway(router: Router, method: str) -> None:
    f = routed(
        router,
        flow(
            "/mcp/notes",
            method,
            {
                "origin": "http://localhost:6274",
                "referer": "http://localhost:6274/page",
                "cookie": "session=abc",
                "proxy-authorization": "Basic eA==",
                "mcp-session-id": "s-1",
                "mcp-protocol-version": "2025-06-18",
            },
        ),
    )
    for header in ("origin", "referer", "cookie", "proxy-authorization"):
        assert header not in f.request.headers
    # MCP's own headers travel on.
    assert f.request.headers["mcp-session-id"] == "s-1"
    assert f.request.headers["mcp-protocol-version"] == "2025-06-18"


def test_authorization_is_left_to_client_auth_which_strips_it(tmp_path: Path) -> None:
    cfg = Config()
    router, auth = Router(cfg), ClientAuth(cfg)
    with running(tmp_path, PROFILE, cfg, router, auth):
        f = flow("/mcp/notes", headers={"authorization": "Bearer client-token"})
        router.requestheaders(f)
        assert f.request.headers["authorization"] == "Bearer client-token"
        auth.requestheaders(f)
    assert "authorization" not in f.request.headers
    assert f.response is None
    assert state(f).user


@pytest.mark.parametrize(
    "path",
    [
        "/mcp/nope",
        "/mcp/NOTES",
        "/mcp/notes/extra",
        "/mcp/",
        "/mcp",
        "/",
        "/nope",
        "/mcp/%6Eotes",
        "/mcp/../mcp/notes",
        "/MCP/notes",
    ],
)
def test_unknown_paths_are_a_json_404_naming_the_routes(router: Router, path: str) -> None:
    f = flow(path)
    router.requestheaders(f)
    body = json_answer(f, 404)
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == -32600
    assert set(body["error"]["data"]["routes"]) == ROUTES
    assert body["error"]["data"]["routes"]["notes"] == "http://127.0.0.1:8787/mcp/notes"
    for name in ROUTES:
        assert name in body["error"]["message"]
    assert state(f).outcome == "denied"
    assert state(f).route is None
    assert f.request.host == "address"  # not rewritten: nothing goes anywhere


def test_healthz(router: Router) -> None:
    f = flow("/healthz", "GET")
    router.requestheaders(f)
    assert json_answer(f, 200) == {"status": "ok", "routes": 4}
    assert state(f).outcome == "success"


def test_registry_lists_every_route(router: Router) -> None:
    f = flow("/registry/v0.1/servers?limit=10", "GET")
    router.requestheaders(f)
    body = json_answer(f, 200)
    assert body["metadata"]["count"] == 4
    urls = {s["server"]["remotes"][0]["url"] for s in body["servers"]}
    assert urls == {f"http://127.0.0.1:8787/mcp/{name}" for name in ROUTES}
    assert "secret" not in json.dumps(body).lower()


def test_an_earlier_answer_is_left_alone(router: Router) -> None:
    f = flow("/mcp/notes")
    f.response = http.Response.make(421, b"{}")
    router.requestheaders(f)
    assert f.response.status_code == 421
    assert f.request.host == "address"
    assert state(f).route is None


NAMES = ["Cookie", "cookie", "COOKIE", "Origin", "X-Forwarded-For", "Accept", "Set-Cookie"]
NAMES += ["Authorization", "via", "Via", "Keep-Alive", "x-custom", "Coo\u212aie"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(["a", "b, c", ""])), max_size=8),
    st.sets(st.sampled_from(["cookie", "origin", "x-forwarded-for", "set-cookie", "via", "x"])),
)
def test_dropping_headers_in_one_pass_is_popping_each(
    fields: list[tuple[str, str]], names: set[str]
) -> None:
    """`drop_headers` (one pass to see which are there) leaves what a `pop` per name would."""
    raw = [(k.encode(), v.encode()) for k, v in fields]
    one_pass, popped = http.Headers(raw), http.Headers(raw)
    drop_headers(one_pass, names)
    for name in names:
        popped.pop(name, None)
    assert one_pass.fields == popped.fields
