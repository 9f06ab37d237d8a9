"""lockgate.audit.events: the one event_time, outcome groups and the pure event builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lockgate.audit import events
from lockgate.audit.events import DENIED, ERRORS, OUTCOMES, event_time
from lockgate.mcp.jsonrpc import Message


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_event_time_of_the_log_format_is_exactly_the_datetimes_timestamp(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000, tzinfo=UTC)
    ts = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    assert event_time({"ts": ts}) == moment.timestamp()
    assert event_time({"ts": moment.isoformat()}) == moment.timestamp()


def test_event_time_reads_other_iso_forms_and_refuses_the_rest() -> None:
    noon = datetime(2026, 11, 27, 12, tzinfo=UTC).timestamp()
    assert event_time({"ts": "2026-11-27T12:00:00Z"}) == noon
    assert event_time({"ts": "2026-11-27T13:00:00+01:00"}) == noon
    assert event_time({"ts": "2026-11-27T12:00:00"}) == noon  # no offset: UTC
    assert event_time({"ts": "2026-11-27"}) == noon - timedelta(hours=12).total_seconds()
    for bad in ({"ts": "yesterday"}, {}, {"ts": 12}, {"ts": ""}):
        assert event_time(bad) is None


def test_outcome_groups_are_outcomes_and_disjoint() -> None:
    assert set(OUTCOMES) >= DENIED | ERRORS
    assert not DENIED & ERRORS
    assert {"denied", "blocked", "connect_required"} == DENIED
    assert {"error", "upstream_error"} == ERRORS


def test_outcomes_from_status_and_reply() -> None:
    assert events.http_outcome(200) == "success"
    assert events.http_outcome(503) == "upstream_error"
    assert events.http_outcome(503, upstream=False) == "error"
    assert events.http_outcome(404) == "error"
    assert events.http_outcome(None) == "error"
    assert events.reply_outcome({"result": {}}) == "success"
    assert events.reply_outcome({"result": {"isError": True}}) == "error"
    assert events.reply_outcome({"error": {"code": 1}}) == "error"


def _call(method: str, params: dict[str, object]) -> Message:
    raw = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    return Message("request", 7, method, params, None, None, raw)


def test_request_builder_keeps_args_error_count_or_result() -> None:
    base = {"route": "notes", "user": "alice"}
    call = _call("tools/call", {"name": "search", "arguments": {"q": "x"}})
    ok = events.request(
        base, call, outcome="success", status=200, reason="r", total_ms=1.0, upstream_ms=None,
        reply={"result": {"content": []}},
    )  # fmt: skip
    assert ok["event"] == events.TOOL_CALL and ok["args"] == {"q": "x"} and ok["reason"] is None
    assert ok["result"] == {"content": []} and ok["route"] == "notes"
    listing = events.request(
        base, _call("tools/list", {}), outcome="success", status=200, reason=None,
        total_ms=1.0, upstream_ms=0.5, reply={"result": {"tools": [1, 2, 3]}},
    )  # fmt: skip
    assert listing["event"] == events.CAPABILITY_LIST and listing["count"] == 3
    assert listing["args"] is None and "result" not in listing
    failed = events.request(
        base, call, outcome="error", status=200, reason="why", total_ms=1.0, upstream_ms=None,
        reply={"error": {"code": -1, "message": "no"}},
    )  # fmt: skip
    assert failed["reason"] == "why" and failed["error"] == {"code": -1, "message": "no"}
    started = events.started(base, call)
    assert started["event"] == events.TOOL_CALL_STARTED and started["outcome"] == "started"
