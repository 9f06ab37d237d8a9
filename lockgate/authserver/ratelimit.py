"""The registration rate limit: how often one network block may register a client.

Registration is the one endpoint anyone on the listen address can write to, so it gets its
own sliding-window limiter, keyed by the caller's /24 or /64 (:func:`address_block`).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]

REGISTRATIONS_PER_WINDOW = 20
REGISTRATION_WINDOW = 60.0
MAX_TRACKED_ADDRESSES = 4096


def address_block(address: str) -> str:
    """The block a client address belongs to for rate limits: its /24 (IPv4) or /64 (IPv6),
    so that hopping between 127.x.y.z or the addresses of one prefix buys no new allowance."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds per key (a sliding window).

    ``hit`` answers 0 when the hit is allowed, else the seconds to wait. Keys are bounded:
    the oldest are forgotten first, so a flood of addresses cannot grow memory.
    """

    def __init__(
        self,
        limit: int = REGISTRATIONS_PER_WINDOW,
        window: float = REGISTRATION_WINDOW,
        *,
        max_keys: int = MAX_TRACKED_ADDRESSES,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._clock = clock
        self._hits: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        now = self._clock()
        with self._lock:
            hits = [t for t in self._hits.pop(key, []) if t > now - self.window]
            if len(hits) >= self.limit:
                self._hits[key] = hits
                oldest = hits[0] if hits else now
                return max(oldest + self.window - now, 0.001)
            hits.append(now)
            self._hits[key] = hits  # re-inserted: dict order is least recently used first
            while len(self._hits) > self._max_keys:
                del self._hits[next(iter(self._hits))]
            return 0.0
