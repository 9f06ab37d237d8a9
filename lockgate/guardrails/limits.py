"""Rate limits: token buckets per route, per (route, user) and per (route, user, tool).

Why it exists: the gateway answers a request over its limit with HTTP 429 and `Retry-After`
before the upstream sees it (issue 11, section 4), and this is the arithmetic behind that
answer, pure and with the clock passed in so that it can be tested without sleeping.

Hand-written rather than a library: the check runs on every limited request (a few dict
look-ups and float operations), the buckets must never debit one scope when another refuses,
and memory must stay bounded against a client that invents keys (tool names, users) — the
libraries at hand (`limits`, `pyrate-limiter`) bring storage back-ends and none of the three.

A bucket holds up to `burst` tokens (default: the rate's count) and refills at count/period
tokens per second; a request takes one token from every bucket that applies, and only when
all of them have one. A bucket idle long enough to be full again is the same as no bucket,
so it is dropped; a cap on the buckets per (route, user) sends further tool names to one
shared overflow bucket, and a hard cap on all buckets evicts the least recently used.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, Literal

Scope = Literal["route", "user", "user_tool"]

# Seconds per unit; the grammar is `<count>/<unit>` (see parse_rate).
UNITS: Final = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_CANONICAL: Final = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day"}
_RATE_RE: Final = re.compile(r"[ \t]*([0-9]{1,9})[ \t]*/[ \t]*([A-Za-z]+)[ \t]*")
MAX_BURST: Final = 1_000_000_000

# Methods that are never limited: the handshake and liveness checks (every notification,
# `notifications/...`, is exempt too). Everything else a client sends with a method is.
EXEMPT_METHODS: Final = frozenset({"initialize", "ping"})


def is_limited(method: str | None) -> bool:
    """Whether a client message with this JSON-RPC method counts against the limits.

    Decided by the method name alone, not by the presence of an id: a `tools/call` sent
    without an id is still a tool call to a lax server, so it must not slip past the limits.
    A message without a method (a response to the server) is never limited."""
    if method is None:
        return False
    return method not in EXEMPT_METHODS and not method.startswith("notifications/")


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` requests per `period` seconds."""

    count: int
    period: float

    def __post_init__(self) -> None:
        if self.count < 1 or self.period <= 0:
            raise ValueError("a rate needs a count of at least 1 per a positive period")

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        unit = _CANONICAL.get(self.period)
        return f"{self.count}/{unit}" if unit else f"{self.count}/{self.period:g}s"


def parse_rate(text: str) -> Rate:
    """`"60/minute"` → Rate(60, 60.0). Grammar: a count of 1 to 999,999,999, a slash, and a
    unit: second|minute|hour|day, or s|sec, m|min, h, d (any case; spaces around the slash
    are allowed). ValueError with the expected form otherwise."""
    m = _RATE_RE.fullmatch(text)
    period = UNITS.get(m.group(2).lower()) if m else None
    if m is None or period is None:
        raise ValueError(
            f"expected a rate such as \"60/minute\" (a count, '/', and second, minute, hour "
            f"or day), got {text!r}"
        )
    count = int(m.group(1))
    if count < 1:
        raise ValueError(f"a rate must allow at least 1 request, got {text!r}")
    return Rate(count, period)


@dataclass(frozen=True, slots=True)
class LimitsSpec:
    """The limits of one route: any of the three scopes (None: not limited at that scope)
    and the bucket size (None: each scope's own count)."""

    route: Rate | None = None
    user: Rate | None = None
    tool: Rate | None = None
    burst: int | None = None

    def __post_init__(self) -> None:
        if self.burst is not None and not 1 <= self.burst <= MAX_BURST:
            raise ValueError(f"burst must be between 1 and {MAX_BURST}, got {self.burst}")

    @property
    def empty(self) -> bool:
        return self.route is None and self.user is None and self.tool is None

    def capacity(self, rate: Rate) -> float:
        return float(self.burst if self.burst is not None else rate.count)


@dataclass(frozen=True, slots=True)
class Hit:
    """A refused request: the scope that refused (the one that frees up last), its limit,
    and the seconds until the request would be allowed."""

    scope: Scope
    limit: Rate
    retry_after: float

    @property
    def retry_after_header(self) -> str:
        """The `Retry-After` value: whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


# The tool key that tool names beyond the per-user cap share.
OVERFLOW_TOOL: Final = "\x00other tools"

_Key = tuple[str, str, str]  # (route, user, tool), "" where the scope does not use it


class _Buckets:
    """One scope's buckets, least recently used first; each bucket is [tokens, last]."""

    __slots__ = ("capacity", "idle", "limit", "rate", "table")

    def __init__(self, limit: Rate, capacity: float) -> None:
        self.limit = limit
        self.rate = limit.per_second
        self.capacity = capacity
        self.idle = capacity / self.rate  # after this long unused, a bucket is full again
        self.table: OrderedDict[_Key, list[float]] = OrderedDict()

    def tokens(self, key: _Key, now: float) -> tuple[list[float] | None, float]:
        bucket = self.table.get(key)
        if bucket is None:
            return None, self.capacity
        elapsed = now - bucket[1]
        if elapsed <= 0:  # a clock that goes back never mints tokens
            return bucket, bucket[0]
        return bucket, min(self.capacity, bucket[0] + elapsed * self.rate)

    def take(self, key: _Key, bucket: list[float] | None, tokens: float, now: float) -> None:
        if bucket is None:
            self.table[key] = [tokens - 1.0, now]
        else:
            self.touch(key, bucket, tokens - 1.0, now)

    def touch(self, key: _Key, bucket: list[float], tokens: float, now: float) -> None:
        """Store the bucket's refilled state as of `now` and mark it most recently used (a
        refused key too: else a client could push its own throttled bucket out by LRU)."""
        if now > bucket[1]:
            bucket[1] = now
        bucket[0] = tokens
        self.table.move_to_end(key)

    def expire(self, now: float) -> list[_Key]:
        """Drop the buckets unused long enough to be full (the oldest come first)."""
        dropped = []
        table = self.table
        while table:
            key, bucket = next(iter(table.items()))
            if now - bucket[1] < self.idle:
                break
            del table[key]
            dropped.append(key)
        return dropped


class RateLimiter:
    """The buckets of one route's LimitsSpec (share one limiter across the routes that use
    the same spec only if they should share the `route` bucket; keys include the route).

    `max_keys` caps the buckets of all scopes together; `max_tools_per_user` caps the tool
    buckets of one (route, user), beyond which new tool names share one overflow bucket, so a
    client rotating tool names can neither grow memory nor escape its per-tool limit by more
    than one bucket's worth."""

    __slots__ = ("_checks", "_per_user", "max_keys", "max_tools_per_user", "route", "tool", "user")

    def __init__(
        self, spec: LimitsSpec, *, max_keys: int = 100_000, max_tools_per_user: int = 256
    ) -> None:
        if max_keys < 3 or max_tools_per_user < 1:
            raise ValueError("max_keys must be at least 3 and max_tools_per_user at least 1")
        self.max_keys = max_keys
        self.max_tools_per_user = max_tools_per_user
        self.route = _Buckets(spec.route, spec.capacity(spec.route)) if spec.route else None
        self.user = _Buckets(spec.user, spec.capacity(spec.user)) if spec.user else None
        self.tool = _Buckets(spec.tool, spec.capacity(spec.tool)) if spec.tool else None
        self._per_user: dict[tuple[str, str], int] = {}  # tool buckets per (route, user)
        self._checks = 0

    def __len__(self) -> int:
        return sum(len(s.table) for s in (self.route, self.user, self.tool) if s is not None)

    def check(self, route: str, user: str | None, tool: str | None, now: float) -> Hit | None:
        """Take one token from each bucket that applies and return None, or take none and
        return the Hit of the scope that frees up last. `user` None is the anonymous user
        (one bucket for everyone without an identity); `tool` None: not a tool call."""
        who = "" if user is None else user
        wanted: list[tuple[Scope, _Buckets, _Key]] = []
        if self.route is not None:
            wanted.append(("route", self.route, (route, "", "")))
        if self.user is not None:
            wanted.append(("user", self.user, (route, who, "")))
        if self.tool is not None and tool is not None:
            wanted.append(("user_tool", self.tool, self._tool_key(route, who, tool)))
        if not wanted:
            return None
        looked = []
        hit: Hit | None = None
        for scope, buckets, key in wanted:
            bucket, tokens = buckets.tokens(key, now)
            if tokens < 1.0:
                wait = (1.0 - tokens) / buckets.rate
                if hit is None or wait >= hit.retry_after:
                    hit = Hit(scope, buckets.limit, wait)
            looked.append((buckets, key, bucket, tokens))
        if hit is not None:
            for buckets, key, bucket, tokens in looked:
                if bucket is not None:
                    buckets.touch(key, bucket, tokens, now)
            return hit
        for buckets, key, bucket, tokens in looked:
            if bucket is None and buckets is self.tool:
                self._per_user[key[:2]] = self._per_user.get(key[:2], 0) + 1
            buckets.take(key, bucket, tokens, now)
        self._checks += 1
        if self._checks >= 1024 or len(self) > self.max_keys:
            self._checks = 0
            self._trim(now)
        return None

    def _tool_key(self, route: str, who: str, tool: str) -> _Key:
        key = (route, who, tool)
        assert self.tool is not None
        if key in self.tool.table or self._per_user.get((route, who), 0) < self.max_tools_per_user:
            return key
        return (route, who, OVERFLOW_TOOL)

    def _trim(self, now: float) -> None:
        scopes = [s for s in (self.route, self.user, self.tool) if s is not None]
        for buckets in scopes:
            for key in buckets.expire(now):
                self._forget(buckets, key)
        while len(self) > self.max_keys:
            # Evict the least recently used bucket of the scope holding the most buckets.
            buckets = max(scopes, key=lambda s: len(s.table))
            key, _ = buckets.table.popitem(last=False)
            self._forget(buckets, key)

    def _forget(self, buckets: _Buckets, key: _Key) -> None:
        if buckets is self.tool:
            owner = key[:2]
            left = self._per_user.get(owner, 0) - 1
            if left > 0:
                self._per_user[owner] = left
            else:
                self._per_user.pop(owner, None)
