"""Test doubles and builders shared by the tests of the core (tests/core) and the CLI (tests/cli).

Why it exists: tests must not import other test modules, yet several wings need the same fake
DNS table, the same recording HTTP server, the same audit event, upstream tokens and oidc
profile with a stored login. One definition each lives here.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import keyring.backends.fail
import pytest

from lockgate.identity import session as login
from lockgate.identity.claims import UserClaims
from lockgate.upstream import tokens as upstream_tokens
from lockgate.upstream.tokens import UpstreamTokens
from tests.support import keyring_env
from tests.support.oidc_mock import ALICE, oidc_mock

# --------------------------------------------------------------------------- fixtures
# Registered by tests/core/conftest.py and tests/cli/conftest.py, which import them.


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def oidc_issuer() -> Iterator[str]:
    """oidc-provider-mock with alice (tests.support.oidc_mock.ALICE); its issuer URL."""
    with oidc_mock(ALICE) as mock:
        yield mock.issuer


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """keyring's fail backend: every keyring call raises, as on a machine without one."""
    yield from keyring_env.forced_keyring(keyring.backends.fail.Keyring())


@pytest.fixture
def new_upstream() -> Iterator[Callable[[], str]]:
    """The real keyring: a factory of fresh upstream names, their entries removed after."""
    yield from keyring_env.real_keyring()


@pytest.fixture
def upstream(new_upstream: Callable[[], str]) -> str:
    return new_upstream()


# --------------------------------------------------------------------------- private keyring


def private_keyring_json(script: str) -> Any:
    """Run `script` against a private, unlocked gnome-keyring (skipped where there is none)
    and return the JSON of its last output line."""
    keyring_env.require_private_session()
    proc = keyring_env.run_in_private_secret_service(script)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- fake DNS

PUBLIC4 = "93.184.216.34"
PUBLIC6 = "2606:2800:220:1:248:1893:25c8:1946"
DNS: dict[str, list[str]] = {
    "example.com": [PUBLIC4],
    "dual.example": [PUBLIC4, PUBLIC6],
    "xn--bcher-kva.de": [PUBLIC4],
    "localhost": ["127.0.0.1", "::1"],
    "internal.test": ["10.0.0.5"],
    "mixed.test": [PUBLIC4, "10.0.0.5"],
    "mixed6.test": [PUBLIC6, "fd00::5"],
    "rebind.test": ["127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "cgnat.test": ["100.64.1.1"],
    "mapped.test": ["::ffff:192.168.1.1"],
    "empty.test": [],
    "garbage.test": ["not-an-ip"],
}


def fake_resolve(host: str, port: int) -> list[str]:
    if host == "nxdomain.test":
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return list(DNS.get(host, [PUBLIC4]))


def resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host in table:
            return list(table[host])
        return fake_resolve(host, port)

    return resolve


# --------------------------------------------------------------------------- real servers


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"issuer": "https://as.example"}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    content_length: bool = True
    delay: float = 0.0


class Server:
    """A stdlib HTTP(S) server on 127.0.0.1:0 that records every request it receives."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Reply] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.posts: list[tuple[bytes, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.posts.append((self.rfile.read(length), self.headers.get("Authorization")))
                self.do_GET()

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Host")))
                reply = server.routes.get(self.path, Reply(404, b"{}"))
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.content_length:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client may hang up on a capped body
                    self.wfile.write(reply.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def started_servers() -> Iterator[Callable[..., Server]]:
    """For a `servers` fixture: a factory of Servers, every one closed after the test."""
    started: list[Server] = []

    def start(tls: ssl.SSLContext | None = None) -> Server:
        s = Server(tls)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


# --------------------------------------------------------------------------- audit events

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def ts(seconds: float) -> str:
    """An audit `ts` string (as AuditLog writes it) for Unix time `seconds`."""
    ms = round(seconds * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def audit_event(i: int = 0, *, step: float = 0.01, **fields: Any) -> dict[str, Any]:
    """The `i`-th tool.call event, `step` seconds after the one before; a field set to None
    is left out."""
    base: dict[str, Any] = {
        "ts": ts(T0 + i * step),
        "seq": i + 1,
        "event": "tool.call",
        "route": "linear",
        "user": "alice@example.com",
        "client": "claude-code",
        "method": "tools/call",
        "name": f"search_{i}",
        "outcome": "success",
        "latency_ms": {"total": 12.34, "upstream": 10.0},
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


# --------------------------------------------------------------------------- pending consents


def pending_fields(client_id: str = "c1") -> dict[str, object]:
    """What PendingAuthorizations.add takes for alice's request of `client_id` to route rec."""
    return {
        "client_id": client_id,
        "client_name": client_id,
        "redirect_uri": "http://127.0.0.1:9/cb",
        "state": None,
        "code_challenge": "c" * 43,
        "resource": "http://127.0.0.1/mcp/rec",
        "route": "rec",
        "scope": "",
        "user": UserClaims(sub="alice"),
    }


# --------------------------------------------------------------------------- upstream tokens


def tokens(**over: object) -> UpstreamTokens:
    fields: dict[str, object] = {
        "access_token": "at-secret",
        "refresh_token": "rt-secret",
        "expires_at": 4_000_000_000.0,
        "token_endpoint": "https://as.example.com/token",
        "client_id": "client-1",
        "issuer": "https://as.example.com",
        "resource": "https://mcp.example.com/mcp",
        "scopes": ("read",),
        **over,
    }
    return UpstreamTokens.model_validate(fields)


# --------------------------------------------------------------------------- profiles

THREE_UPSTREAMS = """
[gateway]
listen = "127.0.0.1:9100"
[identity]
{identity}
[upstreams.{open}]
url = "http://127.0.0.1:9/mcp"
[upstreams.{static}]
url = "https://mcp.internal.example.com/mcp"
auth = "header"
[upstreams.{linear}]
url = "https://mcp.linear.app/mcp"
auth = "oauth"
"""


def three_upstreams_text(
    identity: str,
    names: tuple[str, str, str],
    routes: dict[str, str],
    descriptions: dict[str, str] | None = None,
) -> str:
    """A profile with one upstream of each auth (none, header, oauth) named `names`, the
    `identity` section's lines, and `routes` (name -> upstream, in order)."""
    open_, static, linear = names
    text = THREE_UPSTREAMS.format(identity=identity, open=open_, static=static, linear=linear)
    for route, upstream in routes.items():
        text += f'[routes.{route}]\nupstream = "{upstream}"\n'
        if descriptions and route in descriptions:
            text += f'description = "{descriptions[route]}"\n'
    return text


# --------------------------------------------------------------------------- oidc profiles

OIDC_PROFILE = """
[gateway]
listen = "127.0.0.1:9100"
[identity]
kind = "oidc"
issuer = "{issuer}"
client_id = "lockgate"
[upstreams.{a}]
url = "https://mcp.a.example.com/mcp"
auth = "oauth"
[upstreams.{b}]
url = "https://mcp.b.example.com/mcp"
auth = "oauth"
[routes.a]
upstream = "{a}"
[routes.b]
upstream = "{b}"
"""


def oidc_profile_text(issuer: str, a: str, b: str) -> str:
    """A kind oidc profile with two oauth upstreams, routes "a" and "b"."""
    return OIDC_PROFILE.format(issuer=issuer, a=a, b=b)


def new_issuer() -> str:
    return f"https://login-{uuid.uuid4().hex[:12]}.example.com"


@contextmanager
def login_session(
    issuer: str, sub: str, email: str | None, *, expires_at: float | None = None
) -> Iterator[login.IdpSession]:
    """An IdP session stored as `lockgate login` stores it (and made current); removed after."""
    now = time.time()
    session = login.IdpSession(
        issuer=issuer,
        client_id="lockgate",
        sub=sub,
        email=email,
        refresh_token=None if expires_at is not None else "rt-never-printed",
        expires_at=expires_at,
        signed_in_at=now,
        refreshed_at=now,
    )
    login.save_session(session, make_current=True)
    try:
        yield session
    finally:
        login.delete_session(issuer, sub)


@contextmanager
def upstream_tokens_for(upstream: str, user: str) -> Iterator[None]:
    """Tokens of `user` for `upstream` in the keyring, as a finished connect leaves them."""
    upstream_tokens.save(
        upstream,
        user,
        upstream_tokens.UpstreamTokens(
            access_token="at-never-printed",
            token_endpoint="https://as.example.com/token",
            client_id="lockgate-client",
            issuer="https://as.example.com",
            resource="https://mcp.a.example.com/mcp",
        ),
    )
    try:
        yield
    finally:
        upstream_tokens.delete(upstream, user)
