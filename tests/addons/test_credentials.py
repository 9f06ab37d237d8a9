"""addons/credentials.py: the upstream's own credential from the keyring, or no request at all.

Most tests force an in-memory keyring backend, so the real `lockgate.keyring` code (entry
names, chunking, error translation) runs without touching this machine's keyring; one test
uses the real OS keyring and is skipped (failed in CI) without one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from lockgate.addons._flow import state
from lockgate.addons.client_auth import ClientAuth
from lockgate.addons.config import Config
from lockgate.addons.credentials import Credentials
from lockgate.addons.router import Router
from lockgate.keyring import CHUNK_BYTES, SERVICE
from lockgate.upstream import secrets
from lockgate.upstream import tokens as upstream_tokens
from lockgate.upstream.tokens import UpstreamTokens
from tests.addons.conftest import NOTES_URL, mcp_flow, running, toml_table
from tests.support import keyring_env
from tests.support.gateway import profile_text
from tests.support.keyring_env import MemoryKeyring
from tests.support.protected_upstream import (
    ProtectedUpstream,
    connect_directly,
    protected_upstream,
)

PROFILE = profile_text(
    {"open": NOTES_URL},
    {name: name for name in ("open", "bearer", "apikey", "linear")},
    toml_table("[upstreams.bearer]", url="http://127.0.0.1:9002/mcp", auth="header")
    + toml_table(
        "[upstreams.apikey]",
        url="http://127.0.0.1:9003/mcp",
        auth="header",
        header="X-Api-Key",
        value="key={secret};v=1",
    )
    + toml_table("[upstreams.linear]", url="https://mcp.linear.app/mcp", auth="oauth"),
)


class LockedKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("locked")


@pytest.fixture
def memory() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    for _ in keyring_env.forced_keyring(backend):
        yield backend


Env = tuple[Config, Credentials, Any]


def run(tctx: Any, coro: Awaitable[None]) -> None:
    """Run an async hook on the test master's event loop (one loop for the whole test)."""
    tctx.master.event_loop.run_until_complete(coro)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    cfg = Config()
    creds = Credentials(cfg)
    with running(tmp_path, PROFILE, cfg, creds) as tctx:
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
    cfg, creds, tctx = env
    f = flow(cfg, "open")
    run(tctx, creds.request(f))
    assert f.response is None
    assert "authorization" not in f.request.headers
    assert memory.reads == 0  # no keyring round trip for upstreams that need none


def test_bearer_secret_is_injected(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, tctx = env
    secrets.set_secret("bearer", "s3cret-value")
    f = flow(cfg, "bearer")
    run(tctx, creds.request(f))
    assert f.response is None
    assert f.request.headers["authorization"] == "Bearer s3cret-value"


def test_custom_header_and_template(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, tctx = env
    secrets.set_secret("apikey", "k-123")
    f = flow(cfg, "apikey", {"x-api-key": "client-chosen"})
    run(tctx, creds.request(f))
    assert f.request.headers.get_all("x-api-key") == ["key=k-123;v=1"]


def test_long_chunked_secret_is_reassembled(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, tctx = env
    long = "t" * (CHUNK_BYTES * 2)
    secrets.set_secret("bearer", long)
    f = flow(cfg, "bearer")
    run(tctx, creds.request(f))
    assert f.request.headers["authorization"] == f"Bearer {long}"


def test_client_token_is_replaced_not_kept(tmp_path: Path, memory: MemoryKeyring) -> None:
    """Through router, client_auth and credentials: the upstream sees only its own secret."""
    cfg = Config()
    addons = [Router(cfg), ClientAuth(cfg), Credentials(cfg)]
    secrets.set_secret("bearer", "upstream-secret")
    with running(tmp_path, PROFILE, cfg, *addons) as tctx:
        f = mcp_flow("/mcp/bearer", headers={"authorization": "Bearer client-token"})
        for a in addons:
            if hasattr(a, "requestheaders"):
                a.requestheaders(f)
        for a in addons:
            if hasattr(a, "request"):
                result = a.request(f)
                if result is not None:
                    run(tctx, result)
    assert f.response is None
    assert f.request.headers.get_all("authorization") == ["Bearer upstream-secret"]
    assert f.request.url == "http://127.0.0.1:9002/mcp"


def test_no_secret_is_connect_required(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, tctx = env
    f = flow(cfg, "bearer", {"authorization": "Bearer client-token"})
    run(tctx, creds.request(f))
    error = rpc_error(f, 200, -32042)
    assert error["data"] == {"upstream": "bearer", "command": "lockgate secret set bearer"}
    assert "lockgate secret set bearer" in error["message"]
    assert state(f).outcome == "connect_required"


@pytest.mark.parametrize(
    "backend",
    [keyring.backends.fail.Keyring, LockedKeyring],
    ids=["no-keyring", "locked"],
)
def test_unreadable_keyring_is_503_with_a_sentence(env: Env, backend: Callable[[], Any]) -> None:
    cfg, creds, tctx = env
    for _ in keyring_env.forced_keyring(backend()):
        f = flow(cfg, "bearer")
        run(tctx, creds.request(f))
    error = rpc_error(f, 503, -32603)
    assert "keyring" in error["message"].lower()
    assert "Traceback" not in error["message"]
    assert state(f).outcome == "error"


def test_an_incomplete_secret_is_not_forwarded(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, tctx = env
    secrets.set_secret("bearer", "x" * (CHUNK_BYTES * 2))
    del memory.entries[(SERVICE, "upstream:bearer#2")]
    f = flow(cfg, "bearer")
    run(tctx, creds.request(f))
    assert f.response is not None
    error = json.loads(f.response.content or b"")["error"]
    assert error["code"] == -32042 and "lockgate secret set bearer" in error["message"]
    assert "authorization" not in f.request.headers


def test_a_secret_is_cached_briefly_and_configure_forgets_it(
    env: Env, memory: MemoryKeyring
) -> None:
    cfg, creds, tctx = env
    secrets.set_secret("bearer", "one")
    run(tctx, creds.request(flow(cfg, "bearer")))
    reads = memory.reads
    run(tctx, creds.request(flow(cfg, "bearer")))
    assert memory.reads == reads
    secrets.set_secret("bearer", "two")
    tctx.configure(cfg, lockgate_audit_log="")  # any option change clears the cache
    f = flow(cfg, "bearer")
    run(tctx, creds.request(f))
    assert f.request.headers["authorization"] == "Bearer two"


def test_an_earlier_answer_is_left_alone(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, tctx = env
    secrets.set_secret("bearer", "s")
    memory.reads = 0
    f = flow(cfg, "bearer")
    f.response = http.Response.make(403, b"{}")
    run(tctx, creds.request(f))
    assert "authorization" not in f.request.headers
    assert memory.reads == 0


@pytest.mark.keyring
def test_real_keyring_secret_is_injected(tmp_path: Path) -> None:
    for new_name in keyring_env.real_keyring():
        name = new_name()
        profile = PROFILE.replace("upstreams.bearer", f'upstreams."{name}"').replace(
            'upstream = "bearer"', f'upstream = "{name}"'
        )
        cfg = Config()
        creds = Credentials(cfg)
        with running(tmp_path, profile, cfg, creds) as tctx:
            secrets.set_secret(name, "from-the-os-keyring")
            f = flow(cfg, "bearer")
            run(tctx, creds.request(f))
        assert f.request.headers["authorization"] == "Bearer from-the-os-keyring"


# --- auth = "oauth": the user's own tokens, refreshed, replayed once on a 401 ---------------------


def test_an_oauth_upstream_needs_a_user_or_fails_closed(env: Env, memory: MemoryKeyring) -> None:
    cfg, creds, tctx = env
    f = flow(cfg, "linear")  # no user on the flow: a pipeline bug, never a forwarded request
    run(tctx, creds.request(f))
    assert rpc_error(f, 500, -32603)
    assert "authorization" not in f.request.headers


def test_an_unconnected_oauth_upstream_answers_the_connect_url(
    env: Env, memory: MemoryKeyring
) -> None:
    cfg, creds, tctx = env
    f = flow(cfg, "linear")
    state(f).user = "alice"
    run(tctx, creds.request(f))
    error = rpc_error(f, 200, -32042)
    url = "http://127.0.0.1:8787/connect/linear"
    assert error["data"] == {
        "upstream": "linear",
        "connect_url": url,
        "command": "lockgate connect linear",
    }
    assert url in error["message"] and "alice" in error["message"]
    assert state(f).outcome == "connect_required"
    assert memory.reads > 0  # the keyring was asked, for alice


@contextmanager
def oauth_env(tmp_path: Path, name: str = "alpha") -> Iterator[tuple[Env, ProtectedUpstream]]:
    """A profile whose `up` upstream is a real OAuth-protected SDK server."""
    with protected_upstream(name) as up:
        cfg = Config()
        creds = Credentials(cfg)
        up_table = toml_table("[upstreams.up]", url=up.url, auth="oauth")
        profile = profile_text({}, {"up": "up"}, up_table)
        with running(tmp_path, profile, cfg, creds) as tctx:
            yield (cfg, creds, tctx), up


def connected(tctx: Any, up: ProtectedUpstream, **over: Any) -> UpstreamTokens:
    holder: list[UpstreamTokens] = []

    async def go() -> None:
        holder.append(await connect_directly(up))

    tctx.master.event_loop.run_until_complete(go())
    tokens = holder[0].model_copy(update=over)
    upstream_tokens.save("up", "alice", tokens)
    return tokens


def oauth_flow(cfg: Config) -> http.HTTPFlow:
    f = flow(cfg, "up")
    state(f).user = "alice"
    return f


def test_the_users_token_is_injected_and_cached(tmp_path: Path, memory: MemoryKeyring) -> None:
    with oauth_env(tmp_path) as ((cfg, creds, tctx), up):
        tokens = connected(tctx, up)
        f = oauth_flow(cfg)
        run(tctx, creds.request(f))
        assert f.response is None
        assert f.request.headers.get_all("authorization") == [f"Bearer {tokens.access_token}"]
        reads = memory.reads
        run(tctx, creds.request(oauth_flow(cfg)))
        assert memory.reads == reads  # cached briefly, like static secrets
        other = flow(cfg, "up")
        state(other).user = "bob"  # another user: another keyring entry, not connected
        run(tctx, creds.request(other))
        assert rpc_error(other, 200, -32042)


def test_a_token_about_to_expire_is_refreshed_ahead(tmp_path: Path, memory: MemoryKeyring) -> None:
    with oauth_env(tmp_path) as ((cfg, creds, tctx), up):
        old = connected(tctx, up, expires_at=time.time() + 30)  # within the 60 s margin
        f = oauth_flow(cfg)
        run(tctx, creds.request(f))
        assert f.response is None and up.provider.refreshes == 1
        stored_now = upstream_tokens.load("up", "alice")
        assert stored_now is not None and stored_now.access_token != old.access_token
        assert f.request.headers["authorization"] == f"Bearer {stored_now.access_token}"
        assert stored_now.access_token in up.provider.issued
        assert not state(f).events  # a successful refresh is not an auth failure


def test_concurrent_requests_share_one_refresh(tmp_path: Path, memory: MemoryKeyring) -> None:
    with oauth_env(tmp_path) as ((cfg, creds, tctx), up):
        connected(tctx, up, expires_at=time.time() + 5)
        flows = [oauth_flow(cfg) for _ in range(4)]

        async def all_at_once() -> None:
            await asyncio.gather(*(creds.request(f) for f in flows))

        tctx.master.event_loop.run_until_complete(all_at_once())
        assert up.provider.refreshes == 1
        assert len({f.request.headers["authorization"] for f in flows}) == 1
        assert all(f.response is None for f in flows)


def test_a_refused_refresh_is_connect_required_and_audited(
    tmp_path: Path, memory: MemoryKeyring
) -> None:
    with oauth_env(tmp_path) as ((cfg, creds, tctx), up):
        tokens = connected(tctx, up, expires_at=time.time() + 5)
        up.provider.refuse_refresh = True
        f = oauth_flow(cfg)
        run(tctx, creds.request(f))
        error = rpc_error(f, 200, -32042)
        assert error["data"]["connect_url"].endswith("/connect/up")
        [event] = state(f).events
        assert event["event"] == "auth.upstream_refresh_failed"
        assert event["outcome"] == "denied" and event["user"] == "alice"
        text = json.dumps(event)
        assert tokens.access_token not in text and str(tokens.refresh_token) not in text
        # invalid_grant: the tokens are dead for good, the consent page shows "needs connect".
        assert not upstream_tokens.stored("up", "alice")


INIT = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}


def upstream_flow(cfg: Config, up: ProtectedUpstream) -> http.HTTPFlow:
    """A flow as the router leaves it: headed to the real upstream."""
    f = oauth_flow(cfg)
    f.request.url = up.url
    f.request.headers["content-type"] = "application/json"
    f.request.headers["accept"] = "application/json, text/event-stream"
    f.request.content = json.dumps(INIT).encode()
    return f


def the_upstream_says_401(f: http.HTTPFlow) -> None:
    f.response = http.Response.make(401, b"", {"www-authenticate": 'Bearer error="invalid_token"'})
    f.response.data.content = None  # headers only, as in `responseheaders`


def test_a_401_refreshes_once_and_replays(tmp_path: Path, memory: MemoryKeyring) -> None:
    with oauth_env(tmp_path) as ((cfg, creds, tctx), up):
        tokens = connected(tctx, up)
        f = upstream_flow(cfg, up)
        run(tctx, creds.request(f))
        up.provider.revoke_access_tokens()  # the upstream forgot it: 401
        the_upstream_says_401(f)
        run(tctx, creds.responseheaders(f))
        assert up.provider.refreshes == 1
        assert f.response is not None and f.response.status_code == 200
        assert callable(f.response.stream)
        # The 401's own body is swallowed; the replayed answer goes out instead.
        assert f.response.stream(b"upstream 401 body") == []
        body = f.response.stream(b"")
        assert isinstance(body, bytes) and b"serverInfo" in body and b'"id":7' in body
        assert state(f).replacement == body
        assert up.provider.received[-1] != tokens.access_token  # the replay used the new one
        assert up.only_saw_own_tokens()
        # Once: a second 401 on the same flow is left as it is.
        the_upstream_says_401(f)
        run(tctx, creds.responseheaders(f))
        assert f.response.status_code == 401 and up.provider.refreshes == 1


def test_a_401_with_a_refused_refresh_is_connect_required(
    tmp_path: Path, memory: MemoryKeyring
) -> None:
    with oauth_env(tmp_path) as ((cfg, creds, tctx), up):
        connected(tctx, up)
        f = upstream_flow(cfg, up)
        run(tctx, creds.request(f))
        up.provider.revoke_everything()
        the_upstream_says_401(f)
        run(tctx, creds.responseheaders(f))
        assert f.response is not None and f.response.status_code == 200
        assert f.response.stream(b"x") == []
        error = json.loads(f.response.stream(b""))["error"]  # type: ignore[arg-type]
        assert error["code"] == -32042 and error["data"]["upstream"] == "up"
        assert state(f).outcome == "connect_required"
        assert [e["event"] for e in state(f).events] == ["auth.upstream_refresh_failed"]


def test_a_damaged_token_entry_is_connect_required(tmp_path: Path, memory: MemoryKeyring) -> None:
    with oauth_env(tmp_path) as ((cfg, creds, tctx), _):
        memory.set_password(SERVICE, "oauth:up:alice", "{not json")
        f = oauth_flow(cfg)
        run(tctx, creds.request(f))
        error = rpc_error(f, 200, -32042)
        assert "lockgate connect up" in error["message"]


@pytest.mark.parametrize(
    "backend", [keyring.backends.fail.Keyring, LockedKeyring], ids=["no-keyring", "locked"]
)
def test_an_unreadable_keyring_is_503_for_oauth_too(env: Env, backend: Callable[[], Any]) -> None:
    cfg, creds, tctx = env
    for _ in keyring_env.forced_keyring(backend()):
        f = flow(cfg, "linear")
        state(f).user = "alice"
        run(tctx, creds.request(f))
    assert "keyring" in rpc_error(f, 503, -32603)["message"].lower()


def test_a_401_on_an_event_stream_refreshes_but_does_not_buffer_it(
    tmp_path: Path, memory: MemoryKeyring
) -> None:
    with oauth_env(tmp_path) as ((cfg, creds, tctx), up):
        tokens = connected(tctx, up)
        f = upstream_flow(cfg, up)
        f.request.method = "GET"
        f.request.content = b""
        run(tctx, creds.request(f))
        up.provider.revoke_access_tokens()
        the_upstream_says_401(f)
        run(tctx, creds.responseheaders(f))
        assert up.provider.refreshes == 1
        assert f.response is not None and f.response.status_code == 503
        assert f.response.headers["retry-after"] == "0"
        assert f.response.stream(b"x") == []
        assert b"open the stream again" in f.response.stream(b"")  # type: ignore[operator]
        stored_now = upstream_tokens.load("up", "alice")
        assert stored_now is not None and stored_now.access_token != tokens.access_token
