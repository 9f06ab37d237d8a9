"""addons/guard.py: Host (DNS rebinding), Origin and body size checks, before anything else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from lockgate.addons._flow import state
from lockgate.addons.config import Config
from lockgate.addons.guard import Guard, host_of
from tests.addons.conftest import NOTES_URL, gateway_section, running
from tests.support.gateway import profile_text

LIMIT = 1024
PROFILE = profile_text(
    {"notes": NOTES_URL},
    {"notes": "notes"},
    gateway_section(
        f"max_body_bytes = {LIMIT}", 'allowed_origins = ["https://Inspector.Example.com/"]'
    ),
)
BODY = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'


def configured(tmp_path: Path, profile: str = PROFILE) -> Iterator[Guard]:
    cfg = Config()
    guard = Guard(cfg)
    with running(tmp_path, profile, cfg, guard):
        yield guard


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[Guard]:
    yield from configured(tmp_path)


def mcp_flow(
    host: str | None = "127.0.0.1:8787", body: bytes = BODY, headers: dict[str, str] | None = None
) -> http.HTTPFlow:
    f = tflow.tflow()
    req = f.request
    req.method = "POST"
    req.path = "/mcp/notes"
    req.headers.clear()
    if host is not None:
        req.headers["host"] = host
    req.headers["content-type"] = "application/json"
    req.headers["accept-encoding"] = "gzip, br"
    req.content = body  # sets content-length
    for k, v in (headers or {}).items():
        req.headers[k] = v
    return f


def run(guard: Guard, f: http.HTTPFlow) -> http.HTTPFlow:
    guard.requestheaders(f)
    guard.request(f)
    return f


def refused(f: http.HTTPFlow, status: int) -> dict[str, object]:
    assert f.response is not None
    assert f.response.status_code == status
    assert f.response.headers["content-type"] == "application/json"
    body = json.loads(f.response.content or b"")
    assert body["error"]["code"] == -32600
    assert state(f).outcome == "denied"
    assert state(f).local
    return body["error"]


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        ("127.0.0.1:8787", "127.0.0.1"),
        ("LOCALHOST", "localhost"),
        ("[::1]:8787", "::1"),
        ("::1", "::1"),
        ("evil.example:80", "evil.example"),
        (" Evil.Example ", "evil.example"),
    ],
)
def test_host_of(authority: str, host: str) -> None:
    assert host_of(authority) == host


@pytest.mark.parametrize("host", ["127.0.0.1:8787", "localhost:8787", "[::1]:8787", "localhost"])
def test_loopback_hosts_pass(guard: Guard, host: str) -> None:
    f = run(guard, mcp_flow(host))
    assert f.response is None
    assert "accept-encoding" not in f.request.headers  # the SSE rewriter reads raw bytes


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8787",
        "127.0.0.2:8787",
        "localhost.:8787",
        "",
        "127.0.0.1.nip.io",
    ],
)
def test_rebinding_host_is_421(guard: Guard, host: str) -> None:
    error = refused(run(guard, mcp_flow(host)), 421)
    assert "http://127.0.0.1:8787" in str(error["message"])


def test_missing_host_is_421(guard: Guard) -> None:
    refused(run(guard, mcp_flow(None)), 421)


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "file://",
        "http://localhost.evil.example",
        "https://inspector.example.com.evil.example",
        "chrome-extension://abc",
    ],
)
def test_foreign_origin_is_403(guard: Guard, origin: str) -> None:
    error = refused(run(guard, mcp_flow(headers={"origin": origin})), 403)
    assert "allowed_origins" in str(error["message"])


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:6274",
        "http://127.0.0.1:6274",
        "http://[::1]:3000",
        "https://inspector.example.com",
        "HTTPS://INSPECTOR.EXAMPLE.COM/",
    ],
)
def test_loopback_and_listed_origins_pass(guard: Guard, origin: str) -> None:
    assert run(guard, mcp_flow(headers={"origin": origin})).response is None


def test_public_url_host_and_origin_pass(tmp_path: Path) -> None:
    profile = PROFILE.replace("[gateway]\n", '[gateway]\npublic_url = "https://mcp.example.com"\n')
    for guard in configured(tmp_path, profile):
        f = run(guard, mcp_flow("mcp.example.com", headers={"origin": "https://mcp.example.com"}))
        assert f.response is None
        # A public gateway's own pages are not "loopback": other origins stay refused.
        refused(
            run(guard, mcp_flow("mcp.example.com", headers={"origin": "http://x.example"})), 403
        )


def test_body_at_the_limit_passes(guard: Guard) -> None:
    assert run(guard, mcp_flow(body=b" " * LIMIT)).response is None


def test_content_length_over_the_limit_is_413_before_the_body(guard: Guard) -> None:
    f = mcp_flow()
    f.request.headers["content-length"] = str(LIMIT + 1)
    guard.requestheaders(f)  # mitmproxy has not read the body yet
    error = refused(f, 413)
    assert str(LIMIT) in str(error["message"])


@pytest.mark.parametrize("length", ["-1", "1e3", "10, 10", "0x10", " 5"])
def test_malformed_content_length_is_refused(guard: Guard, length: str) -> None:
    f = mcp_flow()
    f.request.headers["content-length"] = length
    guard.requestheaders(f)
    refused(f, 413)


def test_chunked_body_over_the_limit_is_413(guard: Guard) -> None:
    f = mcp_flow()
    del f.request.headers["content-length"]
    f.request.headers["transfer-encoding"] = "chunked"
    guard.requestheaders(f)
    assert f.response is None
    f.request.raw_content = b"x" * (LIMIT + 1)
    guard.request(f)
    refused(f, 413)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/mcp/notes", 415), ("/mcp/notes/", 415), ("/mcp/Notes?x=1", 415), ("/oauth/token", None)],
)
def test_a_charset_other_than_utf8_is_refused_on_routes_only(
    guard: Guard, path: str, status: int | None
) -> None:
    """Route bodies go to an upstream that may decode them as labelled; the gateway's own
    endpoints forward nothing, and some clients label ASCII form posts ISO-8859-1."""
    f = mcp_flow(headers={"content-type": "application/json; charset=ISO-8859-1"})
    f.request.path = path
    guard.requestheaders(f)
    if status is None:
        assert f.response is None
    else:
        assert "iso-8859-1" in str(refused(f, status)["message"])


def test_request_hook_keeps_an_earlier_answer(guard: Guard) -> None:
    f = mcp_flow("evil.example", body=b"x" * (LIMIT * 2))
    run(guard, f)
    refused(f, 421)


def test_no_profile_is_503(tmp_path: Path) -> None:
    cfg = Config()
    guard = Guard(cfg)
    with taddons.context(cfg, guard):
        f = run(guard, mcp_flow())
    assert f.response is not None and f.response.status_code == 503
    assert json.loads(f.response.content or b"")["error"]["code"] == -32603
