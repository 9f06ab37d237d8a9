"""lockgate/upstream/credentials.py without mitmproxy: the secret cache and the one-refresh lock.

Why it exists: concurrent requests of one user must share one refresh of an expiring upstream
token, and a missing secret must not be cached (stored a moment later, it is used at once).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from lockgate.upstream import oauth as upstream_oauth
from lockgate.upstream import secrets
from lockgate.upstream import tokens as upstream_tokens
from lockgate.upstream._errors import RefreshRefused
from lockgate.upstream.credentials import CredentialCache
from tests.support.doubles import tokens
from tests.support.keyring_env import MemoryKeyring


def test_a_secret_is_cached_and_a_missing_one_is_not(memory: MemoryKeyring) -> None:
    cache = CredentialCache()
    assert cache.secret("bearer") is None
    secrets.set_secret("bearer", "now-stored")
    assert cache.secret("bearer") == "now-stored"
    reads = memory.reads
    assert cache.secret("bearer") == "now-stored"
    assert memory.reads == reads
    cache.clear()
    secrets.set_secret("bearer", "two")
    assert cache.secret("bearer") == "two"


def test_concurrent_refreshes_share_one(
    memory: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream_tokens.save("up", "alice", tokens(access_token="old", expires_at=time.time() + 5))
    calls: list[str] = []

    async def refresh(current: Any, *, upstream: str) -> Any:
        calls.append(current.access_token)
        await asyncio.sleep(0.01)
        return tokens(access_token="new", expires_at=time.time() + 3600)

    monkeypatch.setattr(upstream_oauth, "refresh", refresh)
    cache = CredentialCache()
    events: list[dict[str, Any]] = []

    async def both() -> list[Any]:
        return list(
            await asyncio.gather(
                cache.refresh("up", "alice", "old", events),
                cache.refresh("up", "alice", "old", events),
            )
        )

    got = asyncio.run(both())
    assert [t.access_token for t in got] == ["new", "new"]
    assert calls == ["old"] and events == []
    stored = upstream_tokens.load("up", "alice")
    assert stored is not None and stored.access_token == "new"


def test_a_refused_refresh_is_audited_and_forgets_a_dead_grant(
    memory: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream_tokens.save("up", "alice", tokens(access_token="old", expires_at=time.time() + 5))

    async def refresh(current: Any, *, upstream: str) -> Any:
        raise RefreshRefused("the grant is gone", error="invalid_grant")

    monkeypatch.setattr(upstream_oauth, "refresh", refresh)
    events: list[dict[str, Any]] = []
    assert asyncio.run(CredentialCache().refresh("up", "alice", "old", events)) is None
    assert [(e["event"], e["outcome"]) for e in events] == [
        ("auth.upstream_refresh_failed", "denied")
    ]
    assert upstream_tokens.load("up", "alice") is None
