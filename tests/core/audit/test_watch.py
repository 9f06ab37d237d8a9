"""The watch model: filters, query parsing, counts, rates, the ring, selection and keys."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.audit.cells import cells, clean, detail
from lockgate.audit.events import event_time
from lockgate.audit.filter import EventFilter
from lockgate.audit.watch import OUTCOME_CYCLE, LagStats, WatchModel
from tests.support.doubles import T0, ts
from tests.support.doubles import audit_event as ev

# --- events ---------------------------------------------------------------------------------


def test_event_time_parses_our_format_and_iso() -> None:
    assert event_time({"ts": ts(T0 + 0.123)}) == pytest.approx(T0 + 0.123)
    assert event_time({"ts": "2027-01-15T08:00:00Z"}) == T0
    assert event_time({"ts": "2027-01-15T09:00:00+01:00"}) == T0
    assert event_time({"ts": "yesterday"}) is None
    assert event_time({}) is None


def test_cells_are_clean_and_complete() -> None:
    c = cells(ev(3, name="evil\x1b]0;pwned\x07", user=None))
    assert c.time == "08:00:00.030"
    assert c.user == "-"
    assert "\x1b" not in c.name and c.name.startswith("evil?")
    assert c.latency == "12.3 ms"
    assert cells({"event": "gateway.request", "path": "/healthz"}).name == "/healthz"


def test_detail_lists_fields_in_order_then_sections_then_chain() -> None:
    event = ev(
        1,
        args={"q": "hi", "token": "[redacted]"},
        result={"content": [{"type": "text", "text": "ok\x1b[2J"}]},
        findings=[
            {
                "kind": "redaction",
                "rule": "EMAIL",
                "path": "result.content[0].text",
                "count": 2,
                "action": "log",
                "direction": "down",
            }
        ],
        prev="0" * 64,
        hash="a" * 64,
        extra_field=7,
    )
    d = detail(event)
    labels = [label for label, _ in d.fields]
    assert labels[:3] == ["ts", "seq", "event"]
    assert labels[-2:] == ["prev", "hash"]
    assert "extra_field" in labels
    assert dict(d.fields)["latency_ms"] == "total 12.3 ms  upstream 10.0 ms"
    sections = {title: pretty for title, pretty, _ in d.sections}
    assert list(sections) == ["args", "result"]  # the findings are rows, not JSON
    assert d.sections[0].compact == '{"q": "hi", "token": "[redacted]"}'
    assert '"token": "[redacted]"' in sections["args"]
    assert "\x1b" not in sections["result"]
    (row,) = d.findings
    assert (row.kind, row.rule, row.path, row.hits, row.action, row.direction) == (
        "redaction", "EMAIL", "result.content[0].text", "2", "log", "down",
    )  # fmt: skip
    assert row.level == "noted" and row.severity == row.target == row.extra == ""
    # Findings that are not a list of items stay a JSON section: nothing is lost.
    odd = detail(ev(1, findings="legacy text"))
    assert odd.findings == [] and [s.title for s in odd.sections] == ["findings"]


def test_clean_keeps_newlines_only_when_multiline() -> None:
    assert clean("a\nb\x1b") == "a?b?"
    assert clean("a\nb\x1b", multiline=True) == "a\nb?"


# --- counts, rates, lag ---------------------------------------------------------------------


def test_counts_cover_every_event_not_only_the_ring() -> None:
    m = WatchModel(ring=10)
    for i in range(100):
        outcome = ["success", "denied", "blocked", "error", "upstream_error"][i % 5]
        m.ingest(ev(i, outcome=outcome))
    m.ingest(ev(100, event="capability.list", method="tools/list"))
    m.ingest(ev(101, event="pin.changed", method=None))
    m.ingest(ev(102, findings=[{"kind": "pii"}, {"kind": "secret"}]))
    assert len(m.rows) == 10
    c = m.counts
    assert c.events == 103
    assert c.calls == 101  # tools/list is not a call; the pin event has no method
    assert c.denied == 40 and c.errors == 40
    assert c.findings == 2  # the items of findings lists; a pin event has none
    assert c.outcomes["success"] == 20 + 3


def test_rates_are_per_route_over_the_last_minute() -> None:
    m = WatchModel()
    for i in range(120):  # linear: 2 events/s from T0 to T0+60
        m.ingest({"ts": ts(T0 + i * 0.5), "route": "linear"})
    for _ in range(30):  # github: 30 events in the last second
        m.ingest({"ts": ts(T0 + 59.5), "route": "github"})
    m.ingest({"ts": ts(T0 - 300), "route": "old"})
    rates = dict(m.rate_lines(now=T0 + 60))
    assert rates["linear"] == pytest.approx(2.0, abs=0.05)
    assert rates["github"] == pytest.approx(0.5)
    assert "old" not in rates
    assert [r for r, _ in m.rate_lines(now=T0 + 60)] == ["linear", "github"]
    assert m.rate_lines(now=T0 + 200) == []


def test_rate_buckets_stay_bounded() -> None:
    m = WatchModel()
    for i in range(5000):
        m.ingest({"ts": ts(T0 + i), "route": "linear"})
    assert len(m.rates._buckets["linear"]) <= 4 * 60 + 1
    assert dict(m.rate_lines(now=T0 + 4999))["linear"] == pytest.approx(1.0)


def test_lag_stats_quantiles() -> None:
    lag = LagStats()
    assert lag.quantile(0.95) == 0.0
    for ms in range(1, 101):
        lag.add(ms / 1000)
    assert lag.count == 100
    assert lag.max == pytest.approx(0.1)
    assert lag.quantile(0.95) == pytest.approx(0.095, abs=0.0015)
    lag.add(120.0)  # beyond the histogram: counted, and the max is exact
    assert lag.max == 120.0


def test_drawn_reports_lag_of_live_events_only() -> None:
    m = WatchModel()
    m.ingest(ev(0), live=False)
    m.ingest(ev(1))
    m.ingest({"event": "x"})  # no ts: no lag to measure
    lags = m.drawn(now=T0 + 1.01)
    assert lags == [pytest.approx(1.0)]
    assert m.drawn(now=T0 + 2) == []
    later = WatchModel(live_since=T0 + 0.5)  # events older than the view: no lag to report
    later.ingest(ev(1))
    later.ingest(ev(100))
    assert later.drawn(now=T0 + 1.5) == [pytest.approx(0.5)]


# --- ring, filters, selection ---------------------------------------------------------------


def test_the_ring_is_bounded_and_shown_rows_follow_the_filter() -> None:
    m = WatchModel(EventFilter(outcomes=("denied",)), ring=50)
    for i in range(1000):
        m.ingest(ev(i, outcome="denied" if i % 2 else "success"))
    assert len(m.rows) == 50
    assert len(m.shown) <= 100
    assert all(r.event["outcome"] == "denied" for r in m.shown)
    m.set_filter(EventFilter())
    assert [r.n for r in m.shown] == [r.n for r in m.rows]


@given(
    st.lists(st.sampled_from(["success", "denied", "error"]), max_size=60),
    st.sampled_from(["", "denied", "!success", "err*"]),
    st.integers(min_value=1, max_value=20),
)
def test_shown_is_always_the_matching_tail_of_the_ring(
    outcomes: list[str], outcome_filter: str, ring: int
) -> None:
    m = WatchModel(EventFilter(outcomes=(outcome_filter,)), ring=ring)
    for i, o in enumerate(outcomes):
        m.ingest(ev(i, outcome=o))
    in_ring = [r.n for r in m.rows if m.filter.matches(r.event)]
    shown = [r.n for r in m.shown]
    assert shown[-len(in_ring) :] == in_ring if in_ring else True
    assert shown == sorted(shown)


def test_window_follows_the_newest_rows() -> None:
    m = WatchModel()
    for i in range(30):
        m.ingest(ev(i))
    rows, sel = m.window(10)
    assert [r.n for r in rows] == list(range(21, 31))
    assert sel is None


def test_selection_scrolls_and_stays_put_while_rows_arrive() -> None:
    m = WatchModel()
    for i in range(30):
        m.ingest(ev(i))
    m.key("k")  # select the newest
    assert m.selected == 30
    for _ in range(12):
        m.key("up")
    assert m.selected == 18
    rows, sel = m.window(10)
    assert sel is not None and rows[sel].n == 18
    assert rows[0].n == 18  # scrolled up just enough
    for i in range(30, 40):
        m.ingest(ev(i))
    rows2, sel2 = m.window(10)
    assert [r.n for r in rows2] == [r.n for r in rows]  # paused: new rows do not scroll it
    assert sel2 == sel
    m.key("end")
    assert m.selected is None
    assert m.window(10)[0][-1].n == 40


def test_keys_move_page_home_and_clamp() -> None:
    m = WatchModel()
    m.key("up")  # nothing to select
    assert m.selected is None
    for i in range(50):
        m.ingest(ev(i))
    m.key("home")
    assert m.selected == 1
    m.key("up")
    assert m.selected == 1
    m.key("pgdn", page=20)
    assert m.selected == 21
    m.key("j")
    assert m.selected == 22
    m.key("pgdn", page=100)
    assert m.selected == 50


def test_selection_survives_the_ring_dropping_its_row() -> None:
    m = WatchModel(ring=10)
    for i in range(10):
        m.ingest(ev(i))
    m.key("home")
    for i in range(10, 30):
        m.ingest(ev(i))
    m.set_filter(EventFilter())  # rebuilt from the ring: the selected row is gone
    assert m.selected is None
    m.key("home")
    for i in range(30, 60):
        m.ingest(ev(i))
    assert m.selected_index() is not None  # still inside what is shown


def test_enter_opens_the_detail_of_the_selected_row_and_esc_closes_it() -> None:
    m = WatchModel()
    for i in range(5):
        m.ingest(ev(i))
    m.key("enter")  # nothing selected: the newest
    assert m.detail_row is not None and m.detail_row.n == 5
    m.key("k")  # in the detail view: the previous event
    assert m.detail_row.n == 4
    m.key("q")  # q leaves the detail view, not the program
    assert m.detail_row is None and not m.quit
    assert m.selected is None  # opened from follow mode: back to following
    m.key("k")
    m.key("enter")
    m.key("esc")
    assert m.selected == 5  # opened on a selection: it stays
    m.key("q")
    assert m.quit


def test_slash_types_a_filter_live_esc_restores_enter_keeps() -> None:
    m = WatchModel(EventFilter(routes=("linear",)))
    for i in range(10):
        m.ingest(ev(i, outcome="denied" if i < 3 else "success"))
    m.key("/")
    assert m.typing == "route:linear "
    for ch in "o:den":
        m.key(ch)
    assert m.filter == EventFilter(routes=("linear",), outcomes=("den",))
    assert len(m.shown) == 0  # a field pattern is the whole value (or a glob)
    m.key("*")
    assert len(m.shown) == 3
    m.key("backspace")
    assert m.typing == "route:linear o:den"
    m.key("esc")
    assert m.typing is None and m.filter == EventFilter(routes=("linear",))
    m.key("/")
    for ch in "search_1":
        m.key(ch)
    m.key("enter")
    assert m.typing is None
    assert m.filter == EventFilter(routes=("linear",), text="search_1")
    assert [r.event["name"] for r in m.shown] == ["search_1"]
    m.key("c")
    assert m.filter == EventFilter()


def test_edit_query_sets_the_whole_prompt_text_and_filters_live() -> None:
    """What a text input sends (a cursor edit in the middle), not one key at a time."""
    m = WatchModel()
    for i in range(6):
        m.ingest(ev(i, route="github" if i % 2 else "linear"))
    m.edit_query("route:git")  # not typing: ignored
    assert m.filter == EventFilter() and m.typing is None
    m.key("/")
    m.edit_query("route:git* search_3")
    assert m.typing == "route:git* search_3"
    assert m.filter == EventFilter(routes=("git*",), text="search_3")
    assert [r.event["name"] for r in m.shown] == ["search_3"]
    m.edit_query("route:lin*")
    assert [r.event["name"] for r in m.shown] == ["search_0", "search_2", "search_4"]
    m.key("esc")
    assert m.filter == EventFilter() and len(m.shown) == 6


def test_r_u_o_cycle_through_seen_values_then_off() -> None:
    m = WatchModel()
    m.ingest(ev(0, route="linear", user="bob"))
    m.ingest(ev(1, route="github", user="alice"))
    seen = []
    for _ in range(3):
        m.key("r")
        seen.append(m.filter.routes)
    assert seen == [("github",), ("linear",), ()]
    m.key("u")
    assert m.filter.users == ("alice",)
    m.key("c")
    outcomes = []
    for _ in range(len(OUTCOME_CYCLE)):
        m.key("o")
        outcomes.append(m.filter.outcomes)
    assert outcomes == [*((o,) for o in OUTCOME_CYCLE[1:]), ()]


def test_filtering_drops_a_selection_that_no_longer_shows() -> None:
    m = WatchModel()
    for i in range(5):
        m.ingest(ev(i, outcome="denied" if i == 0 else "success"))
    m.key("k")
    m.set_filter(EventFilter(outcomes=("denied",)))
    assert m.selected is None
    m.key("k")
    m.set_filter(EventFilter(outcomes=("!success",)))
    assert m.selected == 1


actions = st.lists(
    st.one_of(
        st.sampled_from(["up", "down", "k", "j", "pgup", "pgdn", "home", "end", "enter", "esc"]),
        st.sampled_from(["o", "r", "c"]),
        st.integers(min_value=1, max_value=15),  # ingest this many events
        st.sampled_from([EventFilter(outcomes=("denied",)), EventFilter()]),
    ),
    max_size=40,
)


@given(actions, st.integers(min_value=1, max_value=12), st.integers(min_value=5, max_value=30))
def test_window_invariants_under_any_keys(steps: list[Any], height: int, ring: int) -> None:
    m = WatchModel(ring=ring)
    n = 0
    for step in steps:
        if isinstance(step, int):
            for _ in range(step):
                m.ingest(ev(n, outcome="denied" if n % 3 == 0 else "success", route=f"r{n % 2}"))
                n += 1
        elif isinstance(step, EventFilter):
            m.set_filter(step)
        else:
            m.key(step, page=height)
        rows, sel = m.window(height)
        assert len(rows) <= height
        assert len(rows) == min(height, len(m.shown))
        if m.selected is None:
            assert sel is None
            assert [r.n for r in rows] == [r.n for r in m.shown[-height:]]
        else:
            assert sel is not None and rows[sel].n == m.selected
        assert all(m.filter.matches(r.event) for r in rows)


def test_a_tool_call_is_one_row_its_started_event_replaced_by_the_completion() -> None:
    """Issue 9 item 11: the started event shows while the call runs, then its completion
    takes the row; a call that never completed stays `started`; calls are counted once."""
    from lockgate.audit.watch import WatchModel

    base = {"route": "notes", "session": "a1b2c3d4e5f6", "user": "alice", "method": "tools/call"}
    model = WatchModel()
    model.ingest(
        base | {"event": "tool.call.started", "id": 1, "name": "slow", "outcome": "started"}
    )
    model.ingest(
        base | {"event": "tool.call.started", "id": 2, "name": "cut", "outcome": "started"}
    )
    assert [r.event["outcome"] for r in model.shown] == ["started", "started"]
    model.ingest(base | {"event": "tool.call", "id": 1, "name": "slow", "outcome": "success"})
    assert [(r.event["name"], r.event["outcome"]) for r in model.shown] == [
        ("slow", "success"),
        ("cut", "started"),
    ]
    assert model.counts.calls == 1
    # The same id from another user is another call: its own row.
    model.ingest(base | {"event": "tool.call", "id": 2, "user": "bob", "outcome": "denied"})
    assert len(model.shown) == 3 and model.shown[1].event["outcome"] == "started"
