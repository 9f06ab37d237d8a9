"""lockgate.audit.query: time parsing, filters, CSV and exact percentiles.

Why it exists: `lockgate audit query` and `stats` are how a reviewer answers "what did this
user do in the last hour" and "which tool is slow"; a filter that drops or keeps the wrong
event, or a percentile that is off by one rank, gives a wrong answer that looks right.
The log files here are written by lockgate.audit.log's real writer.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.audit.events import event_time
from lockgate.audit.filter import EventFilter
from lockgate.audit.log import AuditLog
from lockgate.audit.query import (
    CSV_COLUMNS,
    csv_header,
    csv_row,
    iter_log,
    latency_total,
    parse_time,
    percentile,
    select,
    stats,
)

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------- parse_time


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("30s", timedelta(seconds=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        ("-90s", timedelta(seconds=90)),
        ("2h ago", timedelta(hours=2)),
        (" 15M ", timedelta(minutes=15)),
    ],
)
def test_relative_times_count_back_from_now(text: str, delta: timedelta) -> None:
    assert parse_time(text, NOW) == NOW - delta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27", datetime(2026, 11, 27, tzinfo=UTC)),
        ("2026-11-27T06:40", datetime(2026, 11, 27, 6, 40, tzinfo=UTC)),
        ("2026-11-27T06:40:01.123Z", datetime(2026, 11, 27, 6, 40, 1, 123000, tzinfo=UTC)),
        ("2026-11-27 06:40:01z", datetime(2026, 11, 27, 6, 40, 1, tzinfo=UTC)),
        ("2026-11-27T08:40:00+02:00", datetime(2026, 11, 27, 6, 40, tzinfo=UTC)),
    ],
)
def test_iso_times_are_utc_unless_they_say_otherwise(text: str, expected: datetime) -> None:
    parsed = parse_time(text, NOW)
    assert parsed == expected
    assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text", ["", "yesterday", "15", "m", "15x", "1d2", "1.2.3h", "2026-13-01", "h15", "15m!"]
)
def test_bad_times_raise_value_error_saying_what_was_expected(text: str) -> None:
    with pytest.raises(ValueError, match="expected a time such as 15m"):
        parse_time(text, NOW)


def test_absurdly_long_relative_times_are_refused() -> None:
    with pytest.raises(ValueError, match="100 years"):
        parse_time("9" * 400 + "d", NOW)


@given(
    n=st.integers(min_value=0, max_value=5_000),  # 5,000 weeks: within the 100-year cap
    unit=st.sampled_from([("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604800)]),
)
def test_relative_property(n: int, unit: tuple[str, int]) -> None:
    assert parse_time(f"{n}{unit[0]}", NOW) == NOW - timedelta(seconds=n * unit[1])


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    )
)
def test_iso_round_trip_property(moment: datetime) -> None:
    assert parse_time(moment.isoformat(), NOW) == moment
    assert parse_time(moment.astimezone(UTC).isoformat().replace("+00:00", "Z"), NOW) == moment


@given(st.text(max_size=40))
def test_parse_time_only_ever_raises_value_error(text: str) -> None:
    try:
        parsed = parse_time(text, NOW)
    except ValueError:
        return
    assert parsed.utcoffset() == timedelta(0)


def test_event_time_reads_the_log_format() -> None:
    assert (
        event_time({"ts": "2026-11-27T06:40:01.123Z"})
        == datetime(2026, 11, 27, 6, 40, 1, 123000, tzinfo=UTC).timestamp()
    )
    assert event_time({"ts": "garbage"}) is None
    assert event_time({}) is None
    assert event_time({"ts": 12}) is None


def test_latency_total() -> None:
    assert latency_total({"latency_ms": {"total": 12.5, "upstream": 3}}) == 12.5
    assert latency_total({"latency_ms": {"total": 7}}) == 7.0
    assert latency_total({"latency_ms": {"total": True}}) is None
    assert latency_total({"latency_ms": {"total": "3"}}) is None
    assert latency_total({"latency_ms": 5}) is None
    assert latency_total({}) is None


# ---------------------------------------------------------------------------- filters


def _ev(minutes_ago: float, **fields: Any) -> dict[str, Any]:
    ts = NOW - timedelta(minutes=minutes_ago)
    return {"ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z", **fields}


EVENTS = [
    _ev(
        90, event="tool.call", user="alice", route="linear", name="search_issues", outcome="success"
    ),
    _ev(50, event="tool.call", user="bob", route="linear", name="delete_issue", outcome="denied"),
    _ev(20, event="capability.list", user="alice", route="notes", method="tools/list"),
    _ev(10, event="auth.token_refused", user="mallory", outcome="denied"),
    _ev(5, event="tool.call", user="alice", route="notes", name="add_note", outcome="error"),
    {"event": "tool.call", "user": "alice", "name": "no_time", "outcome": "success"},
]


def test_an_empty_filter_keeps_everything() -> None:
    assert select(EVENTS, EventFilter()) == EVENTS


def test_since_is_inclusive_and_until_exclusive() -> None:
    since = NOW - timedelta(minutes=50)
    until = NOW - timedelta(minutes=10)
    kept = select(EVENTS, EventFilter(since=since, until=until))
    assert [e["user"] for e in kept] == ["bob", "alice"]  # 50 min kept, 10 min not


def test_fields_and_globs() -> None:
    names = lambda flt: [e.get("name") for e in select(EVENTS, flt)]  # noqa: E731
    assert names(EventFilter(users=("alice",), events=("tool.call",))) == [
        "search_issues",
        "add_note",
        "no_time",
    ]
    assert names(EventFilter(names=("*_issue*",))) == ["search_issues", "delete_issue"]
    assert names(EventFilter(outcomes=("denied", "error"), routes=("linear", "notes"))) == [
        "delete_issue",
        "add_note",
    ]
    assert [e["user"] for e in select(EVENTS, EventFilter(events=("auth.*",)))] == ["mallory"]
    # An event without the field never matches a filter on it.
    assert names(EventFilter(routes=("*",))) == [
        "search_issues",
        "delete_issue",
        None,
        "add_note",
    ]


def test_limit_keeps_the_most_recent_matches() -> None:
    assert select(EVENTS, EventFilter(users=("alice",)), limit=2) == [EVENTS[4], EVENTS[5]]
    assert select(EVENTS, EventFilter(), limit=0) == []
    with pytest.raises(ValueError):
        select(EVENTS, EventFilter(), limit=-1)


_event_st = st.fixed_dictionaries(
    {
        "ts": st.integers(min_value=0, max_value=600).map(lambda m: _ev(m)["ts"]),
        "user": st.sampled_from(["alice", "bob", "carol"]),
        "route": st.sampled_from(["a", "b"]),
        "outcome": st.sampled_from(["success", "denied", "error"]),
    }
)


@settings(max_examples=200)
@given(
    events=st.lists(_event_st, max_size=40),
    cut=st.integers(min_value=0, max_value=600),
    user=st.sampled_from(["alice", "bob", "carol"]),
)
def test_filters_property(events: list[dict[str, Any]], cut: int, user: str) -> None:
    moment = NOW - timedelta(minutes=cut)
    before = select(events, EventFilter(until=moment))
    after = select(events, EventFilter(since=moment))
    # A time bound splits the log into two disjoint parts that together are all of it.
    assert len(before) + len(after) == len(events)
    assert all(event_time(e) < moment.timestamp() for e in before)  # type: ignore[operator]
    assert all(event_time(e) >= moment.timestamp() for e in after)  # type: ignore[operator]
    # An exact value keeps exactly the events with that value, in log order.
    assert select(events, EventFilter(users=(user,))) == [e for e in events if e["user"] == user]
    # Fields AND together: the same as filtering twice.
    both = EventFilter(users=(user,), outcomes=("denied",))
    assert select(events, both) == select(
        select(events, EventFilter(users=(user,))), EventFilter(outcomes=("denied",))
    )


# ---------------------------------------------------------------------------- percentiles


def _oracle(values: list[float], p: float) -> float:
    """Nearest rank, by its definition: the smallest value with at least p% at or below it."""
    need = max(1, math.ceil(p / 100 * len(values)))
    return min(v for v in values if sum(1 for x in values if x <= v) >= need)


def test_percentile_examples() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(values, 50) == 35.0
    assert percentile(values, 95) == 50.0
    assert percentile(values, 0) == 15.0
    assert percentile(values, 100) == 50.0
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([7.0], 50) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


@given(
    values=st.lists(
        st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=200
    ),
    p=st.sampled_from([0, 1, 25, 50, 90, 95, 99, 100]),
)
def test_percentile_property(values: list[float], p: float) -> None:
    result = percentile(values, p)
    assert result in values
    assert result == _oracle(values, p)
    at_or_below = sum(1 for v in values if v <= result)
    below = sum(1 for v in values if v < result)
    assert at_or_below >= p / 100 * len(values)
    assert below < max(1, math.ceil(p / 100 * len(values)))


# ---------------------------------------------------------------------------- stats


def _call(name: str, outcome: str, total: float | None, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event": "tool.call", "name": name, "outcome": outcome, **extra}
    if total is not None:
        event["latency_ms"] = {"total": total, "upstream": 1.0}
    return event


def test_stats_by_tool() -> None:
    events = [
        *(_call("search", "success", float(t)) for t in range(1, 21)),
        _call("search", "error", 100.0),
        _call("delete", "denied", 2.0),
        _call("delete", "upstream_error", 3.0),
        _call("delete", "connect_required", None),
        {"event": "capability.list", "method": "tools/list", "latency_ms": {"total": 1.0}},
    ]
    groups = {g.key: g for g in stats(events, "tool")}
    assert list(groups) == ["search", "delete"]  # busiest first
    search, delete = groups["search"], groups["delete"]
    assert (search.count, search.success, search.errors, search.denied) == (21, 20, 1, 0)
    assert search.error_rate == pytest.approx(1 / 21)
    assert search.p50 == 11.0 and search.p95 == 20.0
    assert (delete.count, delete.denied, delete.errors) == (3, 2, 1)
    assert delete.p50 == 2.0 and delete.p95 == 3.0  # the call without latency has no say
    assert delete.as_dict()["error_rate"] == pytest.approx(1 / 3)


def test_stats_by_route_and_user_count_answered_requests() -> None:
    events = [
        _call("a", "success", 5.0, route="r1", user="alice"),
        {
            "event": "capability.list",
            "route": "r1",
            "outcome": "success",
            "latency_ms": {"total": 9},
        },
        {"event": "mcp.message", "route": "r1", "outcome": "success"},  # no latency: not counted
        {"event": "auth.token_refused", "outcome": "denied", "latency_ms": {"total": 1}},
    ]
    by_route = {g.key: g.count for g in stats(events, "route")}
    assert by_route == {"r1": 2, "-": 1}
    by_user = {g.key: g.count for g in stats(events, "user")}
    assert by_user == {"-": 2, "alice": 1}
    only_alice = stats(events, "route", EventFilter(users=("alice",)))
    assert [(g.key, g.count) for g in only_alice] == [("r1", 1)]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["t1", "t2", "t3"]),
            st.sampled_from(["success", "denied", "error", "upstream_error"]),
            st.floats(min_value=0, max_value=1000, allow_nan=False),
        ),
        max_size=60,
    )
)
def test_stats_property(calls: list[tuple[str, str, float]]) -> None:
    events = [_call(n, o, t) for n, o, t in calls]
    groups = stats(events, "tool")
    assert sum(g.count for g in groups) == len(events)
    for g in groups:
        mine = [t for n, _, t in calls if n == g.key]
        assert g.count == len(mine)
        assert g.count == g.success + g.denied + g.errors
        assert g.p50 == percentile(mine, 50) and g.p95 == percentile(mine, 95)
    assert [g.count for g in groups] == sorted((g.count for g in groups), reverse=True)


# ---------------------------------------------------------------------------- CSV


def test_csv_rows_parse_back_and_defuse_formulas() -> None:
    event = {
        "ts": "2026-11-27T06:40:01.123Z",
        "seq": 7,
        "event": "tool.call",
        "user": "alice",
        "route": "linear",
        "name": '=HYPERLINK("http://evil")',
        "outcome": "success",
        "status": 200,
        "latency_ms": {"total": 12.5, "upstream": 10.25},
        "reason": 'line one\nline "two", with a comma',
        "args": {"q": "not a column"},
    }
    text = csv_header() + csv_row(event)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(CSV_COLUMNS)
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["name"] == '\'=HYPERLINK("http://evil")'
    assert row["reason"] == 'line one\nline "two", with a comma'
    assert row["latency_ms"] == "12.5" and row["upstream_ms"] == "10.25"
    assert row["seq"] == "7" and row["client"] == ""
    assert "not a column" not in text


@given(st.dictionaries(st.sampled_from(CSV_COLUMNS), st.text(max_size=20), max_size=8))
def test_csv_always_has_one_cell_per_column(event: dict[str, str]) -> None:
    rows = list(csv.reader(io.StringIO(csv_row(event))))
    assert len(rows) == 1 and len(rows[0]) == len(CSV_COLUMNS)


# ---------------------------------------------------------------------------- reading


def _write(path: Path, n: int) -> None:
    with AuditLog(path) as log:
        for i in range(n):
            log.append({"event": "tool.call", "name": f"t{i}", "outcome": "success"})


def test_iter_log_reads_the_writers_log_and_skips_a_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path, 5)
    seen: list[int] = []
    assert [e["seq"] for e in iter_log(path, seen.append)] == [1, 2, 3, 4, 5]
    assert seen[-1] == path.stat().st_size
    with path.open("ab") as f:
        f.write(b'{"event":"tool.call","na')  # a write in progress
    assert [e["name"] for e in iter_log(path)] == ["t0", "t1", "t2", "t3", "t4"]


def test_iter_log_reads_integers_beyond_64_bits(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        log.append({"event": "mcp.request", "id": 2**70})  # a client's JSON-RPC id
    assert [e["id"] for e in iter_log(path)] == [2**70]


def test_iter_log_names_a_damaged_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"not json\n" + lines[2])
    with pytest.raises(ValueError, match="line 2: not JSON"):
        list(iter_log(path))
    path.write_bytes(b"[1, 2]\n")
    with pytest.raises(ValueError, match="line 1: not a JSON object"):
        list(iter_log(path))


def test_csv_rules_are_cleaned_and_cannot_become_formulas() -> None:
    event = {"event": "tool.call", "findings": [{"kind": "finding", "rule": "=HYPERLINK(1)"}]}
    row = dict(zip(CSV_COLUMNS, next(csv.reader(io.StringIO(csv_row(event)))), strict=True))
    assert row["rules"] == "'=HYPERLINK(1)" and row["guardrail"] == "'=HYPERLINK(1)"
    hostile = {"findings": [{"kind": "finding", "rule": "A\x1b[2J"}, {"rule": "B"}, {"rule": "B"}]}
    row = dict(zip(CSV_COLUMNS, next(csv.reader(io.StringIO(csv_row(hostile)))), strict=True))
    assert row["rules"] == "A?[2J B"
