"""addons/cors.py: preflights answered by the gateway, CORS headers on every route response.

Config, Guard, Cors and Router run in-process on `tflow` flows in mitmproxy's hook order;
an upstream response is simulated where the flow would have been forwarded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from lockgate.addons._flow import fail_closed, state
from lockgate.addons.config import Config
from lockgate.addons.cors import ALLOW_HEADERS, Cors
from lockgate.addons.guard import Guard
from lockgate.addons.router import Router
from tests.addons.conftest import NOTES_URL, Chain, gateway_section, running
from tests.support.gateway import profile_text

PROFILE = profile_text(
    {"notes": NOTES_URL},
    {"notes": "notes"},
    gateway_section(
        "max_body_bytes = 1024", 'allowed_origins = ["https://Inspector.Example.com/"]'
    ),
)
INSPECTOR = "http://localhost:6274"
EXPOSED = "mcp-session-id, www-authenticate, mcp-protocol-version"


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    yield from configured(tmp_path, PROFILE)


def configured(tmp_path: Path, profile: str) -> Iterator[Chain]:
    cfg = Config()
    addons = (Guard(cfg), Cors(cfg), Router(cfg))
    with running(tmp_path, profile, cfg, *addons):
        yield Chain(addons)


def flow(
    method: str = "POST", path: str = "/mcp/notes", headers: dict[str, str] | None = None
) -> http.HTTPFlow:
    f = tflow.tflow()
    req = f.request
    req.method = method
    req.path = path
    req.headers.clear()
    req.headers["host"] = "127.0.0.1:8787"
    if method == "POST":
        req.headers["content-type"] = "application/json"
        req.content = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    else:
        req.content = b""
    for k, v in (headers or {}).items():
        req.headers[k] = v
    return f


def preflight(origin: str = INSPECTOR, path: str = "/mcp/notes") -> http.HTTPFlow:
    return flow(
        "OPTIONS",
        path,
        {
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,mcp-protocol-version,authorization",
        },
    )


def upstream_response(headers: dict[str, str] | None = None) -> http.Response:
    return http.Response.make(
        200,
        b'{"jsonrpc":"2.0","id":1,"result":{}}',
        {"content-type": "application/json"} | (headers or {}),
    )


def assert_cors(resp: http.Response, origin: str) -> None:
    assert resp.headers["access-control-allow-origin"] == origin
    assert resp.headers["access-control-expose-headers"] == EXPOSED
    assert "Origin" in resp.headers["vary"]


def assert_no_cors(resp: http.Response) -> None:
    assert not [k for k in resp.headers if k.lower().startswith("access-control-")]


@pytest.mark.parametrize(
    "origin", [INSPECTOR, "http://127.0.0.1:6274", "https://Inspector.Example.com"]
)
def test_a_preflight_from_an_allowed_origin_is_answered_locally(chain: Chain, origin: str) -> None:
    f = chain.request(preflight(origin))
    assert f.response is not None and f.response.status_code == 204
    h = f.response.headers
    assert h["access-control-allow-origin"] == origin  # exact, never "*"
    assert h["access-control-allow-methods"] == "GET, POST, DELETE"
    assert h["access-control-allow-headers"] == ALLOW_HEADERS
    for name in ("authorization", "mcp-session-id", "mcp-protocol-version", "last-event-id"):
        assert name in h["access-control-allow-headers"]
    assert int(h["access-control-max-age"]) > 0
    assert h["vary"] == "Origin"
    assert not f.response.content
    st = state(f)
    assert st.local and st.outcome == "success" and st.route is not None
    # The request was never pointed at the upstream.
    assert f.request.path == "/mcp/notes"


def test_a_preflight_from_a_foreign_origin_is_refused_without_cors(chain: Chain) -> None:
    for origin in ("https://evil.example", "null", "http://localhost.evil.example"):
        f = chain.request(preflight(origin))
        assert f.response is not None and f.response.status_code == 403, origin
        assert_no_cors(f.response)


def test_a_preflight_to_an_unknown_route_is_the_routers_404(chain: Chain) -> None:
    f = chain.request(preflight(path="/mcp/nope"))
    assert f.response is not None and f.response.status_code == 404
    assert_cors(f.response, INSPECTOR)  # the page can read which routes exist


def test_options_without_origin_is_not_a_preflight(chain: Chain) -> None:
    f = chain.request(flow("OPTIONS", headers={"access-control-request-method": "POST"}))
    assert f.response is None  # as before: not a browser's preflight
    assert state(f).cors_origin is None


def test_an_upstream_response_carries_cors_for_the_exact_origin(chain: Chain) -> None:
    f = chain.request(flow(headers={"origin": INSPECTOR}))
    assert "origin" not in f.request.headers  # the router keeps it from the upstream
    chain.answer(
        f,
        upstream_response(
            {
                "access-control-allow-origin": "*",
                "access-control-allow-credentials": "true",
                "vary": "Accept-Encoding",
                "mcp-session-id": "s1",
            }
        ),
    )
    assert f.response is not None
    assert_cors(f.response, INSPECTOR)
    assert "access-control-allow-credentials" not in f.response.headers
    assert f.response.headers["vary"] == "Accept-Encoding, Origin"
    assert f.response.headers["mcp-session-id"] == "s1"


def test_without_origin_no_cors_headers_and_the_upstreams_are_dropped(chain: Chain) -> None:
    f = chain.request(flow())
    chain.answer(f, upstream_response({"access-control-allow-origin": "*"}))
    assert f.response is not None
    assert_no_cors(f.response)


def test_a_foreign_origin_gets_guards_403_without_cors(chain: Chain) -> None:
    f = chain.request(flow(headers={"origin": "https://evil.example"}))
    assert f.response is not None and f.response.status_code == 403
    assert_no_cors(f.response)


def test_the_gateways_own_refusals_carry_cors(chain: Chain) -> None:
    # A body over the limit, refused by Guard after Cors saw the allowed origin.
    f = flow(headers={"origin": INSPECTOR})
    f.request.content = b"x" * 5000
    chain.request(f)
    assert f.response is not None and f.response.status_code == 413
    assert_cors(f.response, INSPECTOR)


def test_a_fail_closed_replacement_keeps_cors(chain: Chain) -> None:
    f = chain.request(flow(headers={"origin": INSPECTOR}))
    f.response = upstream_response()
    chain.hook("responseheaders", f)
    fail_closed(f, "Test.responseheaders", "responseheaders")  # a later addon failed
    assert f.response.status_code == 502
    assert_cors(f.response, INSPECTOR)


def test_own_endpoints_are_left_to_their_handlers(chain: Chain) -> None:
    f = chain.request(flow("GET", "/healthz", {"origin": INSPECTOR}))
    assert f.response is not None and f.response.status_code == 200
    assert_no_cors(f.response)


def test_public_gateway_answers_only_its_listed_origins(tmp_path: Path) -> None:
    profile = PROFILE.replace(
        'listen = "127.0.0.1:8787"',
        'listen = "127.0.0.1:8787"\npublic_url = "https://mcp.example.com"',
    )
    for c in configured(tmp_path, profile):
        f = preflight("https://mcp.example.com")
        f.request.headers["host"] = "mcp.example.com"
        c.request(f)
        assert f.response is not None and f.response.status_code == 204
        assert f.response.headers["access-control-allow-origin"] == "https://mcp.example.com"
