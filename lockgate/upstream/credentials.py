"""The upstream credentials the gateway injects, cached briefly, refreshed one at a time.

Why it exists: keyring reads cost a D-Bus round trip (or a Keychain prompt), and concurrent
requests of one user must share one refresh of an expiring upstream token. The credentials
addon translates flows to these calls; the cache and the lock are pure, and tested here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lockgate.upstream import oauth as upstream_oauth
from lockgate.upstream import secrets
from lockgate.upstream import tokens as upstream_tokens
from lockgate.upstream._errors import RefreshRefused, UpstreamOAuthError
from lockgate.upstream.tokens import UpstreamTokens
from lockgate.util import threads

# Keyring reads cost a D-Bus round trip (or a Keychain prompt): keep a secret briefly.
CACHE_SECONDS = 30.0


class CredentialCache:
    """Static secrets per upstream and OAuth tokens per (upstream, user), read through."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._tokens: dict[tuple[str, str], tuple[float, UpstreamTokens]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def clear(self) -> None:
        """Forget everything (the profile changed)."""
        self._cache.clear()
        self._tokens.clear()

    def forget(self, upstream: str, user: str) -> None:
        """New tokens were stored (or the connect failed): read them afresh next time."""
        self._tokens.pop((upstream, user), None)

    def secret(self, upstream: str) -> str | None:
        now = time.monotonic()
        hit = self._cache.get(upstream)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        value = secrets.get_secret(upstream)
        if value is not None:
            self._cache[upstream] = (now, value)
        return value

    async def load(self, upstream: str, user: str, *, fresh: bool = False) -> UpstreamTokens | None:
        key = (upstream, user)
        now = time.monotonic()
        hit = self._tokens.get(key)
        if not fresh and hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        tokens = await threads.run_sync(upstream_tokens.load, upstream, user)
        if tokens is None:
            self._tokens.pop(key, None)
        else:
            self._tokens[key] = (now, tokens)
        return tokens

    async def refresh(
        self, upstream: str, user: str, refused: str, events: list[dict[str, Any]]
    ) -> UpstreamTokens | None:
        """New tokens in place of `refused` (expiring, or refused by the upstream).

        One refresh at a time per user and upstream: whoever waited finds the new tokens
        in the keyring and uses them. None when the authorization server refuses (audited
        into `events`); other failures raise UpstreamOAuthError.
        """
        key = (upstream, user)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            current = await self.load(upstream, user, fresh=True)
            if current is None:
                return None
            if current.access_token != refused and not current.expires_within(
                upstream_oauth.REFRESH_AHEAD
            ):
                return current  # another request refreshed while this one waited
            try:
                new = await upstream_oauth.refresh(current, upstream=upstream)
            except RefreshRefused as e:
                events.append(
                    {
                        "event": "auth.upstream_refresh_failed",
                        "upstream": upstream,
                        "user": user,
                        "outcome": "denied",
                        "reason": e.message,
                    }
                )
                self._tokens.pop(key, None)
                if e.error == "invalid_grant":  # dead for good: show "needs connect"
                    await threads.run_sync(upstream_tokens.delete, upstream, user)
                return None
            except UpstreamOAuthError as e:
                events.append(
                    {
                        "event": "auth.upstream_refresh_failed",
                        "upstream": upstream,
                        "user": user,
                        "outcome": "error",
                        "reason": e.message,
                    }
                )
                if not current.expires_within(0):
                    return current  # still valid: use it while the server is away
                raise
            await threads.run_sync(upstream_tokens.save, upstream, user, new)
            self._tokens[key] = (time.monotonic(), new)
            return new
