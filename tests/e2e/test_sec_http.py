"""Issue 9, items 3, 9 and 11 (HTTP bits): what a hostile client or upstream sends over HTTP.

Two real gateways (`lockgate up`): `dev` (sign-in required) for bodies sent before sign-in,
`none` in front of a recording upstream and a hostile one (a 307, Set-Cookie and an internal
WWW-Authenticate). Raw sockets send what httpx will not: endless chunked bodies, trailers,
hundreds of headers.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.process import wait_until
from tests.support.recorder import Recorder, recording_upstream
from tests.support.scripted import HIDDEN, Scripted, Seen

LIMIT = 65536
ENV = {"LOCKGATE_SIGNING_KEY_SOURCE": "memory"}
BODY = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
INTERNAL = 'Bearer resource_metadata="http://10.0.0.5/.well-known/oauth-protected-resource"'


class Hostile(BaseHTTPRequestHandler):
    """An upstream that redirects (/redirect) or sets cookies and challenges (/cookie)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.startswith("/redirect"):
            self.send_response(307)
            self.send_header("location", "http://evil.example/mcp")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        body = b'{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("set-cookie", "sid=upstream-session; Path=/")
        self.send_header("www-authenticate", INTERNAL)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class Env:
    dev: GatewayProcess
    open: GatewayProcess
    rec: Recorder


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with ExitStack() as es:
        rec = es.enter_context(recording_upstream())
        server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        es.callback(server.server_close)
        es.callback(server.shutdown)
        hostile = f"http://127.0.0.1:{server.server_address[1]}"
        limit = f"[gateway]\nmax_body_bytes = {LIMIT}\n"
        ups = {"rec": rec.url, "redir": f"{hostile}/redirect", "cookie": f"{hostile}/cookie"}
        routes = {"open": "rec", "redir": "redir", "cookie": "cookie"}
        tmp = tmp_path_factory.mktemp("sec-http")
        dev = es.enter_context(
            running_gateway(profile_text(ups, routes, limit, kind="dev"), tmp / "dev", env=ENV)
        )
        none = es.enter_context(running_gateway(profile_text(ups, routes, limit), tmp / "none"))
        yield Env(dev, none, rec)


def port_of(gw: GatewayProcess) -> int:
    return int(gw.base_url.rsplit(":", 1)[1])


def head(path: str, *lines: str) -> bytes:
    return (
        "\r\n".join(
            [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *lines]
        )
        + "\r\n\r\n"
    ).encode()


def read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lowercased, last wins) and body of one response (Content-Length)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    assert lines and lines[0].startswith("HTTP/1.1 "), data[:200]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]


def exchange(
    gw: GatewayProcess, data: bytes, timeout: float = 5.0
) -> tuple[int, dict[str, str], Any]:
    with socket.create_connection(("127.0.0.1", port_of(gw)), timeout=timeout) as sock:
        sock.sendall(data)
        status, headers, body = read_response(sock, timeout)
    return status, headers, json.loads(body) if body else None


def json_request(path: str, *lines: str) -> bytes:
    return head(path, f"Content-Length: {len(BODY)}", *lines) + BODY


# --- item 3: bodies are bounded while they arrive, before sign-in ------------------------


@pytest.mark.parametrize("path", ["/oauth/register", "/mcp/open", "/nothing-here"])
def test_endless_chunked_body_is_413_while_it_streams(env: Env, path: str) -> None:
    """A body that never ends is refused once it passes max_body_bytes, not buffered whole."""
    chunk = b"a" * 16384
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    with socket.create_connection(("127.0.0.1", port_of(env.dev)), timeout=10) as sock:
        sock.sendall(head(path, "Transfer-Encoding: chunked"))
        deadline = time.monotonic() + 10
        answered = False
        while time.monotonic() < deadline and sent < 64 * LIMIT:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                answered = True
                break
            try:
                sock.sendall(frame)
            except OSError:
                answered = True
                break
            sent += len(chunk)
        if not answered:
            readable, _, _ = select.select([sock], [], [], 3)
            answered = bool(readable)
        assert answered, f"no answer after {sent} bytes of a body over a {LIMIT}-byte limit"
        status, headers, body = read_response(sock, 5)
    assert status == 413
    assert headers["content-type"].startswith("application/json")
    assert "max_body_bytes" in json.loads(body)["error"]["message"]
    assert sent < 64 * LIMIT


def test_content_length_over_the_limit_is_413_before_the_body(env: Env) -> None:
    with socket.create_connection(("127.0.0.1", port_of(env.dev)), timeout=10) as sock:
        sock.sendall(head("/oauth/register", f"Content-Length: {150 * 1024 * 1024}"))
        status, _, body = read_response(sock, 5)
    assert status == 413
    assert "max_body_bytes" in json.loads(body)["error"]["message"]


# --- item 9: an upstream's redirect never reaches the client ----------------------------


def test_upstream_redirect_is_a_502_naming_the_upstream(env: Env) -> None:
    status, headers, body = exchange(env.open, json_request("/mcp/redir"))
    assert status == 502
    assert "location" not in headers
    assert "evil.example" not in json.dumps(body)
    assert body["id"] == 1
    assert "'redir'" in body["error"]["message"]
    assert "307" in body["error"]["message"]


# --- item 11: smaller HTTP holes ------------------------------------------------------


def test_query_string_is_not_forwarded(env: Env) -> None:
    env.rec.clear()
    status, _, _ = exchange(env.open, json_request("/mcp/open?target=http://evil&x=1"))
    assert status == 200
    assert [r.path for r in env.rec.seen()] == ["/mcp"]


def test_chunked_request_with_trailers_is_answered_promptly(env: Env) -> None:
    env.rec.clear()
    data = head("/mcp/open", "Transfer-Encoding: chunked", "Trailer: X-Checksum") + (
        b"%x\r\n%s\r\n0\r\nX-Checksum: abc\r\n\r\n" % (len(BODY), BODY)
    )
    started = time.monotonic()
    status, _, body = exchange(env.open, data, timeout=5)
    assert status == 200 and body["id"] == 1
    assert time.monotonic() - started < 5
    assert [r.headers.get("x-checksum") for r in env.rec.seen()] == [None]


def test_upstream_cookies_and_challenges_are_stripped(env: Env) -> None:
    status, headers, body = exchange(env.open, json_request("/mcp/cookie"))
    assert status == 200 and body["id"] == 1
    assert "set-cookie" not in headers
    assert "www-authenticate" not in headers


def test_gateway_own_challenge_stays(env: Env) -> None:
    status, headers, _ = exchange(env.dev, json_request("/mcp/cookie"))
    assert status == 401
    assert "resource_metadata=" in headers["www-authenticate"]
    assert "10.0.0.5" not in headers["www-authenticate"]


def test_too_many_headers_is_431(env: Env) -> None:
    env.rec.clear()
    many = [f"X-Filler-{i}: v" for i in range(150)]
    status, headers, body = exchange(env.open, json_request("/mcp/open", *many))
    assert status == 431
    assert headers["content-type"].startswith("application/json")
    assert "header" in body["error"]["message"]
    assert env.rec.seen() == []


def test_oversized_headers_are_431(env: Env) -> None:
    env.rec.clear()
    big = [f"X-Big-{i}: {'a' * 8000}" for i in range(10)]
    status, _, body = exchange(env.open, json_request("/mcp/open", *big))
    assert status == 431
    assert "header" in body["error"]["message"]
    assert env.rec.seen() == []


@pytest.mark.parametrize(
    "codings",
    [["gzip"], ["Deflate"], ["BR"], ["identity, gzip"], ["identity", "zstd"], [" x-custom "]],
)
def test_a_compressed_request_body_is_415_and_never_reaches_the_upstream(
    env: Env, codings: list[str]
) -> None:
    """The pipeline checks a body as sent: an upstream that inflated a body labelled with a
    coding (a plain JSON one here, which the gateway could parse) would act on other bytes."""
    env.rec.clear()
    lines = [f"Content-Encoding: {c}" for c in codings]
    status, headers, body = exchange(env.open, json_request("/mcp/open", *lines))
    assert status == 415
    assert headers["content-type"].startswith("application/json")
    assert body["error"]["code"] == -32600
    assert "uncompressed" in body["error"]["message"]
    assert env.rec.seen() == []


def test_identity_content_encoding_is_a_plain_body(env: Env) -> None:
    env.rec.clear()
    status, _, body = exchange(env.open, json_request("/mcp/open", "Content-Encoding: Identity"))
    assert status == 200 and body["id"] == 1
    assert len(env.rec.seen()) == 1


def test_forwarding_and_hop_by_hop_headers_are_not_forwarded(env: Env) -> None:
    env.rec.clear()
    status, _, _ = exchange(
        env.open,
        json_request(
            "/mcp/open",
            "X-Forwarded-For: 6.6.6.6",
            "X-Forwarded-Host: evil.example",
            "Forwarded: for=6.6.6.6;host=evil.example",
            "X-Private: secret-ish",
            "Connection: keep-alive, X-Private",
        ),
    )
    assert status == 200
    (seen,) = env.rec.seen()
    for name in ("x-forwarded-for", "x-forwarded-host", "forwarded", "x-private"):
        assert name not in seen.headers, name


def test_method_and_path_override_claims_are_not_forwarded(env: Env) -> None:
    """Frameworks read these as the request's real method or path (Express's method-override,
    Symfony's and IIS's URL rewrites): the upstream would act on another request than the
    one the gateway checked."""
    env.rec.clear()
    claims = {
        "X-HTTP-Method-Override": "DELETE",
        "X-HTTP-Method": "DELETE",
        "X-Method-Override": "GET",
        "X-Original-URL": "/admin",
        "X-Rewrite-URL": "/admin",
        "X-Original-Method": "DELETE",
        "X-Forwarded-Uri": "/admin",
        "X-FORWARDED-Method": "DELETE",
        "X-Client-IP": "6.6.6.6",
        "True-Client-IP": "6.6.6.6",
    }
    lines = [f"{k}: {v}" for k, v in claims.items()]
    status, _, _ = exchange(env.open, json_request("/mcp/open", *lines, "X-Kept: yes"))
    assert status == 200
    (seen,) = env.rec.seen()
    for name in claims:
        assert name.lower() not in seen.headers, name
    assert seen.headers.get("x-kept") == "yes"  # other headers still travel


def test_header_names_with_an_underscore_are_not_forwarded(env: Env) -> None:
    """A WSGI upstream reads `Mcp_Session_Id` as `Mcp-Session-Id`: under that spelling another
    user's session id would pass the gateway's session binding, which checks its own name."""
    env.rec.clear()
    names = ["Mcp_Session_Id", "mcp_protocol_version", "X_Forwarded_For", "Authorization_"]
    lines = [f"{n}: 6a1b" for n in names]
    status, _, _ = exchange(env.open, json_request("/mcp/open", *lines, "X-Kept-Too: yes"))
    assert status == 200
    (seen,) = env.rec.seen()
    assert not [k for k in seen.headers if "_" in k], seen.headers
    assert seen.headers.get("x-kept-too") == "yes"


def test_request_head_that_never_ends_is_431(env: Env) -> None:
    """A head without its blank line is not buffered forever: 431 once it passes the bound."""
    line = b"X-Endless: " + b"a" * 8000 + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port_of(env.dev)), timeout=10) as sock:
        sock.sendall(b"POST /oauth/register HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answered = False
        while sent < 64 * 1024 * 1024:
            if select.select([sock], [], [], 0)[0]:
                answered = True
                break
            try:
                sock.sendall(line)
            except OSError:
                answered = True
                break
            sent += len(line)
        assert answered or select.select([sock], [], [], 3)[0]
        status, headers, body = read_response(sock, 5)
    assert status == 431
    assert headers["content-type"].startswith("application/json")
    assert "headers" in json.loads(body)["error"]["message"]
    assert sent < 64 * 1024 * 1024


# --- an HTTP Upgrade must not turn a route into an unchecked tunnel ------------------------


def _ws_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    header = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0xFE]) + n.to_bytes(2, "big")
    return header + mask + masked


def _ws_payloads(data: bytes) -> bytes:
    """Unmask the client frames an upstream received (enough for short text frames)."""
    out = b""
    while len(data) >= 2:
        n = data[1] & 0x7F
        i = 2
        if n == 126:
            n, i = int.from_bytes(data[2:4], "big"), 4
        mask, i = (data[i : i + 4], i + 4) if data[1] & 0x80 else (b"\0\0\0\0", i)
        out += bytes(b ^ mask[k % 4] for k, b in enumerate(data[i : i + n]))
        data = data[i + n :]
    return out


def test_upgrade_to_websocket_does_not_bypass_the_pipeline(
    scripted: Scripted, scripted_gw: GatewayProcess
) -> None:
    """GET with `Upgrade: websocket` has no body, so Capabilities lets it through; once the
    upstream answers 101, mitmproxy relays frames that no hook of the pipeline inspects."""

    def accept(req: Seen) -> bytes:
        key = req.headers.get("sec-websocket-key", "")
        acc = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        return (
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            f"sec-websocket-accept: {acc}\r\n\r\n"
        ).encode()

    scripted.reply = accept
    port = int(scripted_gw.base_url.rsplit(":", 1)[1])
    hidden_call = json.dumps(
        {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": HIDDEN}}
    ).encode()

    def leaked() -> bool:
        return any(HIDDEN.encode() in _ws_payloads(r.after_upgrade) for r in scripted.seen)

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            (
                "GET /mcp/curated HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = s.recv(65536)

        if head.startswith(b"HTTP/1.1 101"):
            s.sendall(_ws_frame(hidden_call))
            with contextlib.suppress(TimeoutError):  # nothing leaked within 3 s: the pass case
                wait_until(leaked, "the hidden call to reach the upstream", timeout=3)
    upgraded = any(req.headers.get("upgrade") for req in scripted.seen)
    assert not leaked(), "a hidden tools/call reached the upstream through a WebSocket tunnel"
    assert not upgraded, "an Upgrade request reached the upstream"
