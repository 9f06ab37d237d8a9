"""CORS through a running gateway, for browser-based MCP clients such as the MCP Inspector.

Why it exists: a page on http://localhost:6274 calling /mcp/<route> first sends a
preflight, without a token. The gateway must answer it itself (the upstream never sees it,
client auth does not refuse it), and every response the page then gets, the upstream's and
the gateway's own 401 alike, must name the page's exact origin so the browser lets it read
the body and `Mcp-Session-Id`/`WWW-Authenticate`. A page from a foreign origin still gets
Guard's 403, with nothing that would let it read the answer.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.gateway import profile_text, running_gateway
from tests.support.mcp_http import initialize_request
from tests.support.oauth import DevStack, dev_gateway, mcp_post, sign_in
from tests.support.upstreams import sdk_upstream

INSPECTOR = "http://localhost:6274"
EXPOSED = "mcp-session-id, www-authenticate, mcp-protocol-version"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with dev_gateway(tmp_path_factory.mktemp("cors")) as stack:
        yield stack


def preflight(url: str, origin: str) -> httpx.Response:
    return httpx.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,mcp-protocol-version",
        },
    )


def assert_cors(r: httpx.Response, origin: str) -> None:
    assert r.headers["access-control-allow-origin"] == origin
    assert r.headers["access-control-expose-headers"] == EXPOSED
    assert "Origin" in r.headers["vary"]


def test_a_preflight_is_answered_by_the_gateway_without_a_token(stack: DevStack) -> None:
    stack.recorder.clear()
    url = stack.gw.route_url("rec")
    for origin in (INSPECTOR, "http://127.0.0.1:6274"):
        r = preflight(url, origin)
        assert r.status_code == 204, r.text
        assert r.headers["access-control-allow-origin"] == origin
        assert r.headers["access-control-allow-methods"] == "GET, POST, DELETE"
        allowed = r.headers["access-control-allow-headers"]
        for name in ("content-type", "authorization", "mcp-session-id", "mcp-protocol-version"):
            assert name in allowed
        assert int(r.headers["access-control-max-age"]) > 0
        assert r.headers["vary"] == "Origin"
    assert stack.recorder.seen() == []


def test_a_foreign_origin_gets_guards_403_without_cors_headers(stack: DevStack) -> None:
    stack.recorder.clear()
    url = stack.gw.route_url("rec")
    for r in (
        preflight(url, "https://evil.example"),
        httpx.post(url, json={}, headers={"Origin": "https://evil.example"}),
    ):
        assert r.status_code == 403
        assert not [k for k in r.headers if k.lower().startswith("access-control-")]
    assert stack.recorder.seen() == []


def test_the_401_and_the_upstreams_answer_carry_cors_headers(stack: DevStack) -> None:
    url = stack.gw.route_url("rec")
    unauth = httpx.post(
        url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Origin": INSPECTOR},
    )
    assert unauth.status_code == 401
    assert_cors(unauth, INSPECTOR)
    assert unauth.headers["www-authenticate"].startswith("Bearer resource_metadata=")

    token = sign_in(stack, "rec")["access_token"]
    stack.recorder.clear()
    r = httpx.post(
        url,
        json=initialize_request(client="inspector"),
        headers={
            "Origin": INSPECTOR,
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
        },
    )
    assert r.status_code == 200, r.text
    assert_cors(r, INSPECTOR)
    [seen] = stack.recorder.seen()
    assert "origin" not in seen.headers and "authorization" not in seen.headers
    # Without an Origin (a desktop client) nothing CORS is added.
    plain = mcp_post(url, token)
    assert plain.status_code == 200
    assert "access-control-allow-origin" not in plain.headers


def test_an_unreachable_upstreams_502_carries_cors_headers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    profile = '[identity]\nkind = "none"\n[upstreams.down]\nurl = "http://127.0.0.1:9/mcp"\n'
    profile += '[routes.down]\nupstream = "down"\n'
    with running_gateway(profile, tmp_path_factory.mktemp("cors-down")) as gw:
        r = httpx.post(
            gw.route_url("down"),
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Origin": INSPECTOR},
        )
    assert r.status_code == 502, r.text
    assert_cors(r, INSPECTOR)
    assert r.json()["error"]["data"]["upstream"] == "down"


def test_a_streamed_sse_answer_carries_cors_headers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Streamed responses send their headers before the `response` hook: Cors adds them in
    # `responseheaders`, and the upstream's Mcp-Session-Id stays readable.
    with (
        sdk_upstream() as url,
        running_gateway(
            profile_text({"notes": url}, {"notes": "notes"}),
            tmp_path_factory.mktemp("cors-sse"),
        ) as gw,
    ):
        r = httpx.post(
            gw.route_url("notes"),
            json=initialize_request("2025-06-18", client="inspector"),
            headers={"Origin": INSPECTOR, "Accept": "application/json, text/event-stream"},
        )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert_cors(r, INSPECTOR)
    assert r.headers["mcp-session-id"]
    assert '"serverInfo"' in r.text
