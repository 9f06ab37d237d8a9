"""Which user, client and route opened each MCP session: the table the gateway checks.

An `Mcp-Session-Id` is all an upstream asks of a request to let it into a session (call its
tools, open its GET stream, end it, answer its pending elicitation). Through a gateway that
signs many users in, the id alone must not be enough: the gateway learns the owner of each
session from the upstream's answer to `initialize` and refuses the id from anyone else.

The table is bounded (in total and per owner, so one user cannot evict the others' sessions)
and forgets idle sessions; a forgotten session is refused like an unknown one, which costs
its client a new `initialize`, never lets anyone in. It keeps a digest of each id, never the
id itself, and `session_hash` gives the short form that audit events and `watch` show.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Refusal = Literal["unknown", "other_route", "other_user", "other_client"]

HASH_CHARS = 12
MAX_SESSIONS = 10_000
MAX_PER_OWNER = 256
IDLE_TTL = 24 * 3600.0  # seconds without a request before a session is forgotten


def session_hash(session_id: str) -> str:
    """A short, stable name for a session id: enough to correlate events, useless to replay."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]


def is_session_hash(value: object) -> bool:
    """Whether `value` already is a `session_hash` (lowercase hex of the right length)."""
    return (
        isinstance(value, str)
        and len(value) == HASH_CHARS
        and all(c in "0123456789abcdef" for c in value)
    )


def _key(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class Owner:
    """Who opened a session: the signed-in user, the OAuth client, the gateway route."""

    user: str | None
    client: str | None
    route: str


@dataclass(slots=True)
class _Entry:
    owner: Owner
    used: float


class SessionTable:
    """Session digest -> owner, least recently used first; safe to share between threads."""

    def __init__(
        self,
        *,
        max_sessions: int = MAX_SESSIONS,
        max_per_owner: int = MAX_PER_OWNER,
        idle_ttl: float = IDLE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1 or max_per_owner < 1 or idle_ttl <= 0:
            raise ValueError("session limits must be positive")
        self.max_sessions = max_sessions
        self.max_per_owner = max_per_owner
        self.idle_ttl = idle_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._by_owner: dict[Owner, OrderedDict[bytes, None]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def bind(self, session_id: str, owner: Owner) -> bool:
        """Record that `owner` opened `session_id`; False if another owner already holds it."""
        key = _key(session_id)
        with self._lock:
            now = self._clock()
            self._expire(now)
            entry = self._entries.get(key)
            if entry is not None:
                if entry.owner != owner:
                    return False
                self._touch(key, entry, now)
                return True
            mine = self._by_owner.setdefault(owner, OrderedDict())
            while len(mine) >= self.max_per_owner:
                self._drop(next(iter(mine)))
            while len(self._entries) >= self.max_sessions:
                self._drop(next(iter(self._entries)))
            self._entries[key] = _Entry(owner, now)
            self._by_owner.setdefault(owner, OrderedDict())[key] = None
            return True

    def check(self, session_id: str, owner: Owner) -> Refusal | None:
        """None when `owner` opened `session_id` (and it counts as used now); else why not."""
        key = _key(session_id)
        with self._lock:
            now = self._clock()
            self._expire(now)
            entry = self._entries.get(key)
            if entry is None:
                return "unknown"
            held = entry.owner
            if held.route != owner.route:
                return "other_route"
            if held.user != owner.user:
                return "other_user"
            if held.client != owner.client:
                return "other_client"
            self._touch(key, entry, now)
            return None

    def forget(self, session_id: str) -> bool:
        """Drop `session_id` (ended by its owner, or gone at the upstream); whether it was held."""
        key = _key(session_id)
        with self._lock:
            if key not in self._entries:
                return False
            self._drop(key)
            return True

    # --- under the lock ---------------------------------------------------------------

    def _touch(self, key: bytes, entry: _Entry, now: float) -> None:
        entry.used = now
        self._entries.move_to_end(key)
        self._by_owner[entry.owner].move_to_end(key)

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        mine = self._by_owner[entry.owner]
        del mine[key]
        if not mine:
            del self._by_owner[entry.owner]

    def _expire(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.used < self.idle_ttl:
                return
            self._drop(key)
