"""lockgate/mcp/exchange.py without mitmproxy: the per-flow state and the response processing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lockgate.mcp.exchange import (
    FlowState,
    NoNormalForm,
    is_progress,
    list_method_of,
    normal_form,
    open_request_ids,
    process_message,
    rewrite_event,
    stream_errors,
)
from lockgate.mcp.jsonrpc import parse_body
from lockgate.mcp.sse import SseEvent, SseParser, StreamBroken
from lockgate.policy.routes import build_routes
from lockgate.profile.model import parse_profile


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


@pytest.mark.parametrize("filtered", [False, True])
def test_an_event_that_is_not_json_breaks_the_stream_on_any_route(filtered: bool) -> None:
    st = FlowState()
    if filtered:
        st.transforms.append(drop_odd)
    with pytest.raises(StreamBroken, match="not JSON"):
        rewrite_event(st, SseEvent(data="<html>sign in</html>"))
    kept = SseEvent(data='{"id": 2}')
    assert rewrite_event(st, kept) is kept
    assert rewrite_event(st, SseEvent(data="")).data == ""  # a keep-alive stays one


def _requests(*ids: object) -> FlowState:
    st = FlowState()
    body = [{"jsonrpc": "2.0", "id": i, "method": "tools/list"} for i in ids]
    st.messages = parse_body(json.dumps(body).encode())
    return st


def test_open_request_ids_are_those_no_event_answered_yet() -> None:
    st = _requests(1, "1", 2, "x")
    rewrite_event(st, SseEvent(data='{"jsonrpc":"2.0","id":1,"result":{}}'))
    rewrite_event(st, SseEvent(data='{"jsonrpc":"2.0","id":"x","error":{"code":1,"message":"m"}}'))
    # A notification or a request from the server answers nothing, nor does a look-alike id.
    rewrite_event(st, SseEvent(data='{"jsonrpc":"2.0","id":2,"method":"ping"}'))
    rewrite_event(st, SseEvent(data='{"jsonrpc":"2.0","id":true,"result":{}}'))
    assert open_request_ids(st) == ["1", 2]


def test_progress_is_an_answer_a_progress_for_its_token_or_a_request_for_the_client() -> None:
    st = FlowState()
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t"}}
    body["params"]["_meta"] = {"progressToken": "tok"}
    st.messages = parse_body(json.dumps(body).encode())

    def progress(token: object) -> dict[str, Any]:
        params = {"progressToken": token, "progress": 1}
        return {"jsonrpc": "2.0", "method": "notifications/progress", "params": params}

    assert is_progress(st, progress("tok"))
    assert is_progress(st, {"jsonrpc": "2.0", "id": 9, "method": "sampling/createMessage"})
    assert is_progress(st, {"jsonrpc": "2.0", "id": 1, "result": {}})
    assert not is_progress(st, progress("other")) and not is_progress(st, progress(1))
    assert not is_progress(st, {"jsonrpc": "2.0", "id": 9, "method": "ping"})
    assert not is_progress(st, {"jsonrpc": "2.0", "method": "notifications/message"})
    assert not is_progress(st, {"jsonrpc": "2.0", "id": 2, "result": {}})  # another id
    assert not is_progress(st, {"jsonrpc": "2.0", "id": True, "result": {}})
    rewrite_event(st, SseEvent(data='{"jsonrpc":"2.0","id":1,"result":{}}'))
    assert not is_progress(st, progress("tok"))  # answered: its token is spent


def test_a_broken_stream_ends_with_an_error_for_each_open_request_only() -> None:
    routes = build_routes(
        parse_profile(
            '[upstreams.up]\nurl = "http://127.0.0.1:9/mcp"\n[routes.r]\nupstream = "up"\n'
        )
    )
    st = _requests(1, 2, 3)
    st.route = routes["r"]
    rewrite_event(st, SseEvent(data='{"jsonrpc":"2.0","id":2,"result":{}}'))
    why = StreamBroken("closed its event stream before answering", "try again")
    events = SseParser().feed(stream_errors(st, why))
    got = [json.loads(ev.data or "") for ev in events]
    assert [g["id"] for g in got] == [1, 3]
    assert got[0]["error"]["message"] == (
        "Upstream 'up' (127.0.0.1:9) closed its event stream before answering; try again."
    )
    assert got[0]["error"]["data"] == {"upstream": "up"}
    assert st.outcome == "upstream_error" and open_request_ids(st) == []
    assert stream_errors(st, why) == b""  # nothing is answered twice


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
