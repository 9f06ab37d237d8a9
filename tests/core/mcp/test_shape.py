"""The MCP shape of client requests (lockgate.mcp.shape), pure: no gateway, no HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.mcp import jsonrpc, shape

SECRET = "sk-live-do-not-echo"


def one(obj: dict[str, Any]) -> shape.Refusal | None:
    return shape.check_body(jsonrpc.parse_body(jsonrpc.encode(obj)), batch=False, revision=None)


def call(params: object) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


def test_a_well_formed_call_passes() -> None:
    assert one(call({"name": "echo", "arguments": {"text": "hi"}})) is None
    assert one(call({"name": "echo"})) is None


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        (call([SECRET]), jsonrpc.INVALID_PARAMS),
        (call({"name": 1}), jsonrpc.INVALID_PARAMS),
        (call({"arguments": {}}), jsonrpc.INVALID_PARAMS),
        (call({"name": "echo", "arguments": [SECRET]}), jsonrpc.INVALID_PARAMS),
        (call({"name": "echo", "arguments": SECRET}), jsonrpc.INVALID_PARAMS),
        (call({"name": "echo", "_meta": SECRET}), jsonrpc.INVALID_PARAMS),
        ({"jsonrpc": "2.0", "id": None, "method": "tools/list"}, jsonrpc.INVALID_REQUEST),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": 3}},
            jsonrpc.INVALID_PARAMS,
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {}},
            jsonrpc.INVALID_PARAMS,
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": 5}},
            jsonrpc.INVALID_PARAMS,
        ),
    ],
)
def test_ill_formed_requests_are_refused_without_echoing(obj: dict[str, Any], code: int) -> None:
    refusal = one(obj)
    assert refusal is not None and refusal.code == code
    assert SECRET not in refusal.message


def test_responses_and_notifications_of_unknown_methods_pass() -> None:
    assert one({"jsonrpc": "2.0", "id": 1, "result": {}}) is None
    assert one({"jsonrpc": "2.0", "method": "notifications/initialized"}) is None
    assert (
        one({"jsonrpc": "2.0", "id": "x", "method": "vendor/thing", "params": {"a": [1]}}) is None
    )


BATCH = [
    {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo"}},
]


def batch(items: list[dict[str, Any]], revision: str | None) -> shape.Refusal | None:
    return shape.check_body(
        jsonrpc.parse_body(jsonrpc.encode(items)), batch=True, revision=revision
    )


@pytest.mark.parametrize("revision", [None, "2025-03-26"])
def test_batches_pass_on_2025_03_26(revision: str | None) -> None:
    assert batch(BATCH, revision) is None


@pytest.mark.parametrize("revision", ["2025-06-18", "2025-11-25", "2026-07-28"])
def test_batches_are_refused_on_later_revisions(revision: str) -> None:
    refusal = batch(BATCH, revision)
    assert refusal is not None and refusal.code == jsonrpc.INVALID_REQUEST


def test_each_batch_member_is_checked_and_initialize_is_never_batched() -> None:
    bad = [*BATCH, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": 1}}]
    assert (r := batch(bad, None)) is not None and r.code == jsonrpc.INVALID_PARAMS
    init = [jsonrpc.initialize_request("c"), BATCH[0]]
    assert (r := batch(init, None)) is not None and r.code == jsonrpc.INVALID_REQUEST


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
methods = st.sampled_from([*shape._PARAMS, "vendor/x"])


@given(method=methods, params=json_values, msg_id=st.integers() | st.text(max_size=4) | st.none())
def test_any_request_is_refused_with_a_code_or_passes_well_typed(
    method: str, params: object, msg_id: object
) -> None:
    obj = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
    try:
        messages = jsonrpc.parse_body(jsonrpc.encode(obj))
    except ValueError:
        return  # not JSON-RPC at all (-32600 upstream of this module)
    refusal = shape.check_body(messages, batch=False, revision=None)
    if refusal is not None:
        assert refusal.code in (jsonrpc.INVALID_REQUEST, jsonrpc.INVALID_PARAMS)
        return
    assert msg_id is not None and isinstance(params, dict)
    for name, expected, required in shape._PARAMS.get(method, ()):
        if required or name in params:
            assert isinstance(params[name], str if expected == "a string" else dict)
