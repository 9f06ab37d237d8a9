"""lockgate/mcp/exchange.py without mitmproxy: the per-flow state and the response processing."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.mcp.exchange import (
    FlowState,
    NoNormalForm,
    list_method_of,
    normal_form,
    process_message,
    rewrite_event,
)
from lockgate.mcp.jsonrpc import parse_body
from lockgate.mcp.sse import SseEvent


def drop_odd(obj: dict[str, Any]) -> dict[str, Any] | None:
    return None if obj.get("id", 0) % 2 else obj


def test_a_list_answer_is_known_by_its_request_id_else_by_its_shape() -> None:
    answer = {"jsonrpc": "2.0", "id": 7, "result": {"tools": []}}
    assert list_method_of({7: "tools/list"}, answer) == "tools/list"
    assert list_method_of({7: "tools/call"}, answer) is None
    assert list_method_of({}, answer) == "tools/list"  # a resumed GET stream
    assert list_method_of({}, {"id": 1, "error": {}}) is None


def test_process_message_keeps_an_unchanged_batch_and_drops_what_a_transform_drops() -> None:
    st = FlowState()
    batch = [{"id": 2}, {"id": 4}]
    assert process_message(st, batch) is batch
    st.transforms.append(drop_odd)
    assert process_message(st, [{"id": 1}, {"id": 2}]) == [{"id": 2}]
    assert process_message(st, {"id": 1}) is None
    seen: list[dict[str, Any]] = []
    st.observers.append(seen.append)
    process_message(st, {"id": 2})
    assert seen == [{"id": 2}]


def test_rewrite_event_drops_unreadable_events_only_on_a_filtered_route() -> None:
    st = FlowState()
    bad = SseEvent(data="not json")
    assert rewrite_event(st, bad) is bad
    st.transforms.append(drop_odd)
    assert rewrite_event(st, bad) is None
    assert rewrite_event(st, SseEvent(data='{"id": 1}')) is None
    kept = SseEvent(data='{"id": 2}')
    assert rewrite_event(st, kept) is kept


def test_normal_form_rewrites_resource_uris_and_refuses_those_without_one() -> None:
    plain = parse_body(
        b'{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}'
    )
    assert normal_form(plain) is None
    odd = parse_body(
        b'{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///%61"}}'
    )
    out = normal_form(odd)
    assert out is not None and out[0].params == {"uri": "file:///a"}
    broken = parse_body(
        b'{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a%2Fb"}}'
    )
    with pytest.raises(NoNormalForm):
        normal_form(broken)
