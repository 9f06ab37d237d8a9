"""Rate limits: the rate grammar, the token buckets per scope, no partial debits, bounded memory,
and the methods that are never limited."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.guardrails.limits import (
    OVERFLOW_TOOL,
    LimitsSpec,
    Rate,
    RateLimiter,
    is_limited,
    parse_rate,
)

# --- parse_rate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [
        ("60/minute", 60, 60.0),
        ("10/s", 10, 1.0),
        ("100/min", 100, 60.0),
        ("5 / hour", 5, 3600.0),
        ("1/day", 1, 86400.0),
        ("7/SECOND", 7, 1.0),
        ("3/h", 3, 3600.0),
        (" 2/d ", 2, 86400.0),
    ],
)
def test_rates_parse(text: str, count: int, period: float) -> None:
    assert parse_rate(text) == Rate(count, period)


@pytest.mark.parametrize(
    "text",
    [
        "60/minit",
        "60",
        "/minute",
        "0/minute",
        "-1/minute",
        "1.5/minute",
        "60/minutes/2",
        "60 per minute",
        "\uff11\uff10/s",  # full-width digits: int() would take them, the grammar does not
        "10/\uff53",
        "10/s\x00",
        "1000000000/s",
        "",
        "60/minute;",
    ],
)
def test_bad_rates_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"60/minute|at least 1") as info:
        parse_rate(text)
    assert "\n" not in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_parse_rate_never_crashes_and_round_trips(text: str) -> None:
    try:
        rate = parse_rate(text)
    except ValueError:
        return
    assert rate.count >= 1 and rate.period in (1.0, 60.0, 3600.0, 86400.0)
    assert parse_rate(str(rate)) == rate


@given(st.integers(1, 999_999_999), st.sampled_from(["second", "minute", "hour", "day"]))
def test_every_count_and_unit_round_trips(count: int, unit: str) -> None:
    rate = parse_rate(f"{count}/{unit}")
    assert rate.count == count and str(rate) == f"{count}/{unit}"


def test_burst_is_checked() -> None:
    with pytest.raises(ValueError, match="burst"):
        LimitsSpec(user=Rate(1, 1.0), burst=0)


# --- methods ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "limited"),
    [
        ("tools/call", True),
        ("tools/list", True),
        ("resources/read", True),
        ("prompts/get", True),
        ("initialize", False),
        ("ping", False),
        ("notifications/initialized", False),
        ("notifications/cancelled", False),
        (None, False),  # a response from the client
        # names a lax server might still act on are limited: only the exact ones are exempt
        ("Initialize", True),
        ("ping ", True),
        ("initialize/../tools/call", True),
        ("notification/tools/call", True),
    ],
)
def test_which_methods_are_limited(method: str | None, limited: bool) -> None:
    assert is_limited(method) is limited


# --- buckets ------------------------------------------------------------------------------


def test_user_bucket_allows_its_burst_then_refills() -> None:
    limiter = RateLimiter(LimitsSpec(user=parse_rate("60/minute"), burst=3))
    assert [limiter.check("r", "ann", None, 0.0) for _ in range(3)] == [None] * 3
    hit = limiter.check("r", "ann", None, 0.0)
    assert hit is not None and hit.scope == "user" and hit.limit == Rate(60, 60.0)
    assert hit.retry_after == pytest.approx(1.0)
    assert limiter.check("r", "ann", None, 0.5) is not None
    assert limiter.check("r", "ann", None, 1.0) is None  # one token after one second
    assert limiter.check("r", "ann", None, 1.0) is not None
    # another user, and the same user on another route, have their own buckets
    assert limiter.check("r", "bob", None, 1.0) is None
    assert limiter.check("r2", "ann", None, 1.0) is None


def test_default_burst_is_the_count() -> None:
    limiter = RateLimiter(LimitsSpec(route=parse_rate("5/hour")))
    allowed = sum(limiter.check("r", None, None, 0.0) is None for _ in range(10))
    assert allowed == 5
    hit = limiter.check("r", None, None, 0.0)
    assert hit is not None and hit.scope == "route"
    assert hit.retry_after == pytest.approx(720.0)


def test_route_bucket_is_shared_by_all_users() -> None:
    limiter = RateLimiter(LimitsSpec(route=parse_rate("2/minute")))
    assert limiter.check("r", "ann", None, 0.0) is None
    assert limiter.check("r", "bob", None, 0.0) is None
    hit = limiter.check("r", "eve", None, 0.0)
    assert hit is not None and hit.scope == "route"


def test_anonymous_users_share_one_bucket() -> None:
    limiter = RateLimiter(LimitsSpec(user=parse_rate("1/minute")))
    assert limiter.check("r", None, None, 0.0) is None
    assert limiter.check("r", None, None, 0.0) is not None
    assert limiter.check("r", "", None, 0.0) is not None  # the same anonymous bucket


def test_tool_bucket_applies_to_tool_calls_only() -> None:
    limiter = RateLimiter(LimitsSpec(tool=parse_rate("1/minute")))
    assert limiter.check("r", "ann", "search", 0.0) is None
    hit = limiter.check("r", "ann", "search", 0.0)
    assert hit is not None and hit.scope == "user_tool"
    assert limiter.check("r", "ann", "create", 0.0) is None  # another tool
    assert limiter.check("r", "bob", "search", 0.0) is None  # another user
    assert limiter.check("r", "ann", None, 0.0) is None  # not a tool call: no tool bucket


def test_no_partial_debit_when_one_scope_refuses() -> None:
    limiter = RateLimiter(
        LimitsSpec(route=parse_rate("100/minute"), user=parse_rate("3/minute"), tool=Rate(1, 60))
    )
    assert limiter.check("r", "ann", "search", 0.0) is None
    # search is over its limit: these refusals must not use up ann's user or route tokens
    for _ in range(50):
        hit = limiter.check("r", "ann", "search", 0.0)
        assert hit is not None and hit.scope == "user_tool"
    assert limiter.check("r", "ann", "create", 0.0) is None
    assert limiter.check("r", "ann", "update", 0.0) is None
    hit = limiter.check("r", "ann", "delete", 0.0)
    assert hit is not None and hit.scope == "user"
    route_bucket = limiter.route
    assert route_bucket is not None
    assert route_bucket.table[("r", "", "")][0] == pytest.approx(97.0)


def test_the_hit_names_the_scope_that_frees_up_last() -> None:
    limiter = RateLimiter(LimitsSpec(user=Rate(1, 10.0), tool=Rate(1, 100.0)))
    assert limiter.check("r", "ann", "t", 0.0) is None
    hit = limiter.check("r", "ann", "t", 5.0)
    assert hit is not None and hit.scope == "user_tool"
    assert hit.retry_after == pytest.approx(95.0)


def test_a_clock_going_back_mints_no_tokens() -> None:
    limiter = RateLimiter(LimitsSpec(user=Rate(1, 60.0)))
    assert limiter.check("r", "ann", None, 100.0) is None
    assert limiter.check("r", "ann", None, 10.0) is not None
    assert limiter.check("r", "ann", None, 100.0) is not None
    assert limiter.check("r", "ann", None, 160.0) is None


def test_no_limits_allow_everything() -> None:
    limiter = RateLimiter(LimitsSpec())
    assert all(limiter.check("r", "u", "t", 0.0) is None for _ in range(1000))
    assert len(limiter) == 0


# --- memory -------------------------------------------------------------------------------


def test_rotating_tool_names_neither_grows_memory_nor_escapes_the_limit() -> None:
    limiter = RateLimiter(LimitsSpec(tool=Rate(1, 3600.0)), max_tools_per_user=8)
    allowed = sum(limiter.check("r", "eve", f"tool{i}", 0.0) is None for i in range(10_000))
    # 8 own buckets and one overflow bucket that every further name shares
    assert allowed == 9
    assert len(limiter) == 9
    assert limiter.tool is not None and ("r", "eve", OVERFLOW_TOOL) in limiter.tool.table
    # another user still has their own tool buckets
    assert limiter.check("r", "ann", "tool0", 0.0) is None


def test_idle_buckets_expire() -> None:
    limiter = RateLimiter(LimitsSpec(user=Rate(10, 1.0), tool=Rate(10, 1.0)))
    for i in range(2000):
        limiter.check("r", f"user{i}", "t", i * 0.001)
    assert len(limiter) > 0
    # long after, every bucket is full again: one more check trims them all
    for _ in range(1024):
        limiter.check("r", "ann", "t", 1000.0 + _)
    assert len(limiter) <= 4
    assert limiter.tool is not None and sum(limiter._per_user.values()) == len(limiter.tool.table)


def test_hard_cap_evicts_the_least_recently_used() -> None:
    limiter = RateLimiter(LimitsSpec(user=Rate(1, 86400.0)), max_keys=100)
    assert limiter.check("r", "ann", None, 0.0) is None
    for i in range(5000):
        limiter.check("r", f"u{i}", None, 1.0)
        assert len(limiter) <= 100
        if i % 10 == 0:  # ann stays recently used, so she is never the one evicted
            assert limiter.check("r", "ann", None, 1.0) is not None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=3), min_size=1, max_size=400))
def test_memory_is_bounded_for_any_key_stream(names: list[str]) -> None:
    limiter = RateLimiter(
        LimitsSpec(route=Rate(5, 1.0), user=Rate(5, 1.0), tool=Rate(5, 1.0)),
        max_keys=20,
        max_tools_per_user=4,
    )
    for i, name in enumerate(names):
        limiter.check(name[:1], name, name[::-1], i * 0.01)
        assert len(limiter) <= 20
        assert limiter.tool is not None
        assert sum(limiter._per_user.values()) == len(limiter.tool.table)


# --- the property: never more than burst + rate * t in any window t -----------------------


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 20),
    period=st.sampled_from([1.0, 60.0]),
    burst=st.one_of(st.none(), st.integers(1, 30)),
    gaps=st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=200),
    users=st.lists(st.sampled_from(["a", "b", None]), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_window(
    count: int, period: float, burst: int | None, gaps: list[float], users: list[str | None]
) -> None:
    rate = Rate(count, period)
    spec = LimitsSpec(user=rate, tool=Rate(count, period), burst=burst)
    limiter = RateLimiter(spec)
    capacity = spec.capacity(rate)
    now = 0.0
    allowed: dict[str | None, list[float]] = {}
    for i, gap in enumerate(gaps):
        now += gap * period / 10
        user = users[i % len(users)]
        hit = limiter.check("r", user, "t", now)
        if hit is None:
            allowed.setdefault(user, []).append(now)
        else:
            assert hit.retry_after > 0
            assert hit.retry_after <= capacity * period / count + 1e-9
    for times in allowed.values():
        for i in range(len(times)):
            for j in range(i, len(times)):
                window = times[j] - times[i]
                assert j - i + 1 <= capacity + rate.per_second * window + 1e-6


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 10),
    burst=st.integers(1, 10),
    start=st.floats(0, 1e6, allow_nan=False),
)
def test_waiting_retry_after_is_enough(count: int, burst: int, start: float) -> None:
    limiter = RateLimiter(LimitsSpec(user=Rate(count, 60.0), burst=burst))
    now = start
    for _ in range(burst):
        assert limiter.check("r", "u", None, now) is None
    hit = limiter.check("r", "u", None, now)
    assert hit is not None
    assert limiter.check("r", "u", None, now + hit.retry_after * 0.9) is not None
    assert limiter.check("r", "u", None, now + hit.retry_after * 1.0001 + 1e-9) is None


@pytest.mark.parametrize(("wait", "header"), [(0.001, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")])
def test_retry_after_header_is_whole_seconds_rounded_up(wait: float, header: str) -> None:
    from lockgate.guardrails.limits import Hit

    assert Hit("user", Rate(1, 60.0), wait).retry_after_header == header
