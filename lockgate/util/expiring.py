"""One map for the gateway's short-lived secrets: pending consents, logins, connects, tickets,
browser sessions.

Each of those was its own dict with its own pruning, caps and digest comparison; here they
share one implementation to review. An :class:`ExpiringMap` hands out random keys (the
secret a browser carries back), holds each value for ``ttl`` seconds, refuses new entries
over its caps (in total, and per group, e.g. per client) rather than growing, and gives a
value back once (:meth:`ExpiringMap.take`) or, for sessions, while it lives
(:meth:`ExpiringMap.get`). Keys are held by their SHA-256 digest, so a lookup's timing does
not depend on how much of a guessed key matches, and the map never holds the secrets.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Literal

Clock = Callable[[], float]

# Every map is bounded: memory that anyone reaching the gateway can add to.
DEFAULT_MAX_TOTAL = 10_000


class MapFull(Exception):
    """No room for another entry: ``scope`` says whether the map or the value's group is full."""

    def __init__(self, scope: Literal["total", "group"]) -> None:
        super().__init__(f"no room in the {scope}")
        self.scope: Literal["total", "group"] = scope


class Expired[V](LookupError):
    """From ``take(..., report_expired=True)``: the entry was there but had expired (it is
    consumed all the same); ``value`` is what it held, for the caller's refusal."""

    def __init__(self, value: V) -> None:
        super().__init__("expired")
        self.value = value


@dataclass(slots=True)
class _Slot[V]:
    value: V
    expires_at: float
    group: Hashable


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ExpiringMap[V]:
    """Values under random secret keys: TTL-bounded, size-bounded, thread-safe.

    ``group`` names a value's group for ``max_per_group`` (e.g. its client id). Expired
    entries are pruned when a new one is added, and never returned by ``get`` or ``take``.
    """

    def __init__(
        self,
        *,
        ttl: float,
        clock: Clock = time.time,
        max_total: int | None = DEFAULT_MAX_TOTAL,
        max_per_group: int | None = None,
        group: Callable[[V], Hashable] | None = None,
        key_bytes: int = 32,
    ) -> None:
        if ttl <= 0 or key_bytes < 16:
            raise ValueError("an expiring map needs a positive ttl and keys of 16 bytes or more")
        self._ttl = ttl
        self._clock = clock
        self._max_total = max_total
        self._max_per_group = max_per_group
        self._group = group
        self._key_bytes = key_bytes
        self._slots: dict[bytes, _Slot[V]] = {}
        self._groups: Counter[Hashable] = Counter()
        self._lock = threading.Lock()

    @property
    def ttl(self) -> float:
        return self._ttl

    def now(self) -> float:
        """The map's clock: to stamp a value with the expiry :meth:`add` will give it."""
        return self._clock()

    def __len__(self) -> int:
        """Entries held, including expired ones not pruned yet."""
        return len(self._slots)

    def add(self, value: V, *, now: float | None = None) -> str:
        """Keep ``value`` until ``now + ttl``; returns its new random key. :class:`MapFull`
        when the map, or the value's group, is at its cap (after pruning expired entries)."""
        now = self._clock() if now is None else now
        key = secrets.token_urlsafe(self._key_bytes)
        group = self._group(value) if self._group is not None else None
        with self._lock:
            for digest in [d for d, s in self._slots.items() if s.expires_at <= now]:
                self._drop(digest)
            if self._max_total is not None and len(self._slots) >= self._max_total:
                raise MapFull("total")
            if self._max_per_group is not None and self._groups[group] >= self._max_per_group:
                raise MapFull("group")
            self._slots[_digest(key)] = _Slot(value, now + self._ttl, group)
            self._groups[group] += 1
        return key

    def get(self, key: str | None) -> V | None:
        """The live value under ``key``, left in place (sessions); None if unknown or expired."""
        if not key:
            return None
        with self._lock:
            slot = self._slots.get(_digest(key))
            if slot is None or self._clock() >= slot.expires_at:
                return None
            return slot.value

    def take(
        self,
        key: str,
        check: Callable[[V], None] | None = None,
        *,
        report_expired: bool = False,
    ) -> V | None:
        """The value under ``key``, consumed: a key works once. None if unknown, or expired
        (consumed too; :class:`Expired` instead with ``report_expired``).

        ``check`` sees the value under the lock before it is consumed; if it raises, the
        entry stays (for the caller that holds the rest of the proof) and the error
        propagates."""
        digest = _digest(key)
        with self._lock:
            slot = self._slots.get(digest)
            if slot is None:
                return None
            if check is not None:
                check(slot.value)
            self._drop(digest)
            if self._clock() >= slot.expires_at:
                if report_expired:
                    raise Expired(slot.value)
                return None
            return slot.value

    def _drop(self, digest: bytes) -> None:
        slot = self._slots.pop(digest)
        self._groups[slot.group] -= 1
        if self._groups[slot.group] <= 0:
            del self._groups[slot.group]


def same_secret(expected: str, sent: str | None) -> bool:
    """A secret a browser carries back (a binding cookie) is the one handed out, compared in
    constant time; a missing one never matches."""
    if not sent:
        return False
    return secrets.compare_digest(expected.encode(), sent.encode("utf-8", "replace"))
