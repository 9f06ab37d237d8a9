"""addons/credentials.py: the upstream's own credential from the keyring, or no request at all.

Most tests force an in-memory keyring backend, so the real `lockgate.secrets` code (entry
names, chunking, error translation) runs without touching this machine's keyring; one test
uses the real OS keyring and is skipped (failed in CI) without one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest
from jaraco.classes import properties
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from lockgate import secrets
from lockgate.addons._flow import state
from lockgate.addons.client_auth import ClientAuth
from lockgate.addons.config import Config
from lockgate.addons.credentials import Credentials
from lockgate.addons.router import Router
from tests.support import keyring_env

PROFILE = """
[identity]
kind = "none"

[upstreams.open]
url = "http://127.0.0.1:9001/mcp"

[upstreams.bearer]
url = "http://127.0.0.1:9002/mcp"
auth = "header"

[upstreams.apikey]
url = "http://127.0.0.1:9003/mcp"
auth = "header"
header = "X-Api-Key"
value = "key={secret};v=1"

[upstreams.linear]
url = "https://mcp.linear.app/mcp"
auth = "oauth"

[routes.open]
upstream = "open"

[routes.bearer]
upstream = "bearer"

[routes.apikey]
upstream = "apikey"

[routes.linear]
upstream = "linear"
"""


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A real keyring backend that keeps its entries in a dict and counts reads."""

    @properties.classproperty
    def priority(cls) -> float:  # type: ignore[override]
        # Not viable for keyring's own detection: a test backend must never become (part of)
        # the default that tests of the real keyring find.
        raise RuntimeError("a test backend, forced explicitly where used")

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        self.reads = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.reads += 1
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)


class LockedKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("locked")


@pytest.fixture
def memory() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    for _ in keyring_env.forced_keyring(backend):
        yield backend


Env = tuple[Config, Credentials, Any]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    cfg = Config()
    creds = Credentials(cfg)
    path = tmp_path / "profile.toml"
    path.write_text(PROFILE, encoding="utf-8")
    with taddons.context(cfg, creds) as tctx:
        tctx.configure(cfg, lockgate_profile=str(path))
        yield cfg, creds, tctx


def flow(cfg: Config, route: str, headers: dict[str, str] | None = None) -> http.HTTPFlow:
    f = tflow.tflow()
    f.request.method = "POST"
    f.request.content = b'{"jsonrpc":"2.0","id":4,"method":"tools/list"}'
    for k, v in (headers or {}).items():
        f.request.headers[k] = v
    state(f).route = cfg.routes[route]
    return f


def rpc_error(f: http.HTTPFlow, status: int, code: int) -> dict[str, Any]:
    assert f.response is not None, "the request would have been forwarded"
    assert f.response.status_code == status
    assert f.response.headers["content-type"] == "application/json"
    body = json.loads(f.response.content or b"")
    assert body["error"]["code"] == code
    return body["error"]


def test_no_auth_upstream_gets_nothing(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, _ = env
    f = flow(cfg, "open")
    creds.request(f)
    assert f.response is None
    assert "authorization" not in f.request.headers
    assert memory.reads == 0  # no keyring round trip for upstreams that need none


def test_bearer_secret_is_injected(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, _ = env
    secrets.set_secret("bearer", "s3cret-value")
    f = flow(cfg, "bearer")
    creds.request(f)
    assert f.response is None
    assert f.request.headers["authorization"] == "Bearer s3cret-value"


def test_custom_header_and_template(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, _ = env
    secrets.set_secret("apikey", "k-123")
    f = flow(cfg, "apikey", {"x-api-key": "client-chosen"})
    creds.request(f)
    assert f.request.headers.get_all("x-api-key") == ["key=k-123;v=1"]


def test_long_chunked_secret_is_reassembled(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, _ = env
    long = "t" * (secrets.CHUNK_BYTES * 2)
    secrets.set_secret("bearer", long)
    f = flow(cfg, "bearer")
    creds.request(f)
    assert f.request.headers["authorization"] == f"Bearer {long}"


def test_client_token_is_replaced_not_kept(tmp_path: Path, memory: MemoryKeyring) -> None:
    """Through router, client_auth and credentials: the upstream sees only its own secret."""
    cfg = Config()
    addons = [Router(cfg), ClientAuth(cfg), Credentials(cfg)]
    path = tmp_path / "profile.toml"
    path.write_text(PROFILE, encoding="utf-8")
    secrets.set_secret("bearer", "upstream-secret")
    with taddons.context(cfg, *addons) as tctx:
        tctx.configure(cfg, lockgate_profile=str(path))
        f = tflow.tflow()
        f.request.method = "POST"
        f.request.path = "/mcp/bearer"
        f.request.headers["authorization"] = "Bearer client-token"
        for a in addons:
            if hasattr(a, "requestheaders"):
                a.requestheaders(f)
        for a in addons:
            if hasattr(a, "request"):
                a.request(f)
    assert f.response is None
    assert f.request.headers.get_all("authorization") == ["Bearer upstream-secret"]
    assert f.request.url == "http://127.0.0.1:9002/mcp"


def test_no_secret_is_connect_required(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, _ = env
    f = flow(cfg, "bearer", {"authorization": "Bearer client-token"})
    creds.request(f)
    error = rpc_error(f, 200, -32042)
    assert error["data"] == {"upstream": "bearer", "command": "lockgate secret set bearer"}
    assert "lockgate secret set bearer" in error["message"]
    assert state(f).outcome == "connect_required"


def test_oauth_upstream_is_connect_required(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, _ = env
    f = flow(cfg, "linear")
    creds.request(f)
    error = rpc_error(f, 200, -32042)
    assert error["data"]["upstream"] == "linear"
    assert memory.reads == 0


@pytest.mark.parametrize(
    "backend",
    [keyring.backends.fail.Keyring, LockedKeyring],
    ids=["no-keyring", "locked"],
)
def test_unreadable_keyring_is_503_with_a_sentence(env: Env, backend: Callable[[], Any]) -> None:
    cfg, creds, _ = env
    for _ in keyring_env.forced_keyring(backend()):
        f = flow(cfg, "bearer")
        creds.request(f)
    error = rpc_error(f, 503, -32603)
    assert "keyring" in error["message"].lower()
    assert "Traceback" not in error["message"]
    assert state(f).outcome == "error"


def test_an_incomplete_secret_is_not_forwarded(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, _ = env
    secrets.set_secret("bearer", "x" * (secrets.CHUNK_BYTES * 2))
    del memory.entries[(secrets.SERVICE, "upstream:bearer#2")]
    f = flow(cfg, "bearer")
    creds.request(f)
    assert f.response is not None
    error = json.loads(f.response.content or b"")["error"]
    assert error["code"] == -32042 and "lockgate secret set bearer" in error["message"]
    assert "authorization" not in f.request.headers


def test_a_secret_is_cached_briefly_and_configure_forgets_it(
    env: Env, memory: MemoryKeyring
) -> None:
    cfg, creds, tctx = env
    secrets.set_secret("bearer", "one")
    creds.request(flow(cfg, "bearer"))
    reads = memory.reads
    creds.request(flow(cfg, "bearer"))
    assert memory.reads == reads
    secrets.set_secret("bearer", "two")
    tctx.configure(cfg, lockgate_audit_log="")  # any option change clears the cache
    f = flow(cfg, "bearer")
    creds.request(f)
    assert f.request.headers["authorization"] == "Bearer two"


def test_a_missing_secret_is_not_cached(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, _ = env
    creds.request(flow(cfg, "bearer"))
    secrets.set_secret("bearer", "now-stored")
    f = flow(cfg, "bearer")
    creds.request(f)
    assert f.response is None
    assert f.request.headers["authorization"] == "Bearer now-stored"


def test_an_earlier_answer_is_left_alone(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, _ = env
    secrets.set_secret("bearer", "s")
    memory.reads = 0
    f = flow(cfg, "bearer")
    f.response = http.Response.make(403, b"{}")
    creds.request(f)
    assert "authorization" not in f.request.headers
    assert memory.reads == 0


@pytest.mark.keyring
def test_real_keyring_secret_is_injected(tmp_path: Path) -> None:
    for new_name in keyring_env.real_keyring():
        name = new_name()
        path = tmp_path / "real.toml"
        path.write_text(
            PROFILE.replace("upstreams.bearer", f'upstreams."{name}"').replace(
                'upstream = "bearer"', f'upstream = "{name}"'
            ),
            encoding="utf-8",
        )
        cfg = Config()
        creds = Credentials(cfg)
        with taddons.context(cfg, creds) as tctx:
            tctx.configure(cfg, lockgate_profile=str(path))
            secrets.set_secret(name, "from-the-os-keyring")
            f = flow(cfg, "bearer")
            creds.request(f)
        assert f.request.headers["authorization"] == "Bearer from-the-os-keyring"
