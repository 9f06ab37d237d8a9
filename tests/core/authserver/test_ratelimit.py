"""lockgate.authserver.ratelimit: the per-address limit on client registration."""

from __future__ import annotations

import pytest

from lockgate.authserver.ratelimit import RateLimiter

# --- the registration rate limit -----------------------------------------------------------


def test_rate_limiter_allows_the_limit_then_says_how_long_to_wait() -> None:
    now = [1000.0]
    limiter = RateLimiter(3, 60.0, clock=lambda: now[0])
    assert [limiter.hit("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.hit("a") == pytest.approx(60.0)
    assert limiter.hit("b") == 0.0  # per address
    now[0] += 30
    assert limiter.hit("a") == pytest.approx(30.0)
    now[0] += 30.5
    assert limiter.hit("a") == 0.0


def test_rate_limiter_forgets_the_oldest_addresses_first() -> None:
    limiter = RateLimiter(1, 60.0, max_keys=2, clock=lambda: 0.0)
    assert limiter.hit("a") == 0.0
    assert limiter.hit("b") == 0.0
    assert limiter.hit("c") == 0.0  # "a" is forgotten to keep at most two
    assert limiter.hit("b") > 0 and limiter.hit("c") > 0
    assert limiter.hit("a") == 0.0


def test_a_zero_limit_refuses_everything() -> None:
    limiter = RateLimiter(0, 60.0, clock=lambda: 5.0)
    assert limiter.hit("a") == pytest.approx(60.0)
