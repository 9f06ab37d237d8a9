"""JSON-RPC parsing: strict on shapes, only ever ValueError, faithful round trips."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.mcp import jsonrpc
from lockgate.mcp.jsonrpc import encode, error_response, parse_body, parse_message


def test_request_is_classified_with_its_fields() -> None:
    raw = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "search"}}
    msg = parse_message(raw)
    assert msg.kind == "request"
    assert msg.id == 7
    assert msg.method == "tools/call"
    assert msg.params == {"name": "search"}
    assert msg.name == "search"
    assert msg.raw is raw


def test_notification_has_no_id() -> None:
    msg = parse_message({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert msg.kind == "notification"
    assert msg.id is None
    assert msg.params is None


def test_request_with_null_id_is_still_a_request() -> None:
    assert parse_message({"jsonrpc": "2.0", "id": None, "method": "ping"}).kind == "request"


def test_response_and_error() -> None:
    ok = parse_message({"jsonrpc": "2.0", "id": "a", "result": {"tools": []}})
    assert (ok.kind, ok.id, ok.result, ok.error) == ("response", "a", {"tools": []}, None)
    err = parse_message({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no"}})
    assert err.kind == "error"
    assert err.error == {"code": -32601, "message": "no"}
    assert err.method is None


def test_null_result_is_a_response() -> None:
    assert parse_message({"jsonrpc": "2.0", "id": 1, "result": None}).kind == "response"


def test_error_response_may_have_null_id() -> None:
    msg = parse_message({"jsonrpc": "2.0", "id": None, "error": {"code": -1, "message": "x"}})
    assert msg.kind == "error"


def test_array_params_are_kept_raw_only() -> None:
    raw = {"jsonrpc": "2.0", "id": 1, "method": "m", "params": [1, 2]}
    msg = parse_message(raw)
    assert msg.params is None
    assert msg.raw["params"] == [1, 2]


@pytest.mark.parametrize(
    ("method", "params", "name"),
    [
        ("tools/call", {"name": "t"}, "t"),
        ("prompts/get", {"name": "p"}, "p"),
        ("resources/read", {"uri": "file:///a"}, "file:///a"),
        ("resources/subscribe", {"uri": "u"}, "u"),
        ("resources/unsubscribe", {"uri": "u"}, "u"),
        ("resources/read", {"name": "not-the-uri"}, None),
        ("tools/call", {"name": 3}, None),
        ("tools/list", {"name": "t"}, None),
    ],
)
def test_name_property(method: str, params: dict[str, Any], name: str | None) -> None:
    msg = parse_message({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    assert msg.name == name


def test_response_has_no_name() -> None:
    assert parse_message({"jsonrpc": "2.0", "id": 1, "result": {}}).name is None


@pytest.mark.parametrize(
    ("obj", "needle"),
    [
        ([], "object"),
        ("x", "object"),
        ({"id": 1, "method": "m"}, "jsonrpc"),
        ({"jsonrpc": "1.0", "id": 1, "method": "m"}, "jsonrpc"),
        ({"jsonrpc": 2.0, "id": 1, "method": "m"}, "jsonrpc"),
        ({"jsonrpc": "2.0", "id": 1, "method": 5}, "method"),
        ({"jsonrpc": "2.0", "id": True, "method": "m"}, "id"),
        ({"jsonrpc": "2.0", "id": 1.0, "method": "m"}, "id"),
        ({"jsonrpc": "2.0", "id": [1], "method": "m"}, "id"),
        ({"jsonrpc": "2.0", "id": 1, "method": "m", "params": "x"}, "params"),
        ({"jsonrpc": "2.0", "id": 1, "method": "m", "params": None}, "params"),
        ({"jsonrpc": "2.0", "id": 1, "method": "m", "result": 1}, "request"),
        ({"jsonrpc": "2.0", "result": 1}, "id"),
        ({"jsonrpc": "2.0", "id": 1}, "method"),
        ({"jsonrpc": "2.0", "id": 1, "result": 1, "error": {"code": 1, "message": "m"}}, "both"),
        ({"jsonrpc": "2.0", "id": 1, "error": "boom"}, "error"),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": "1", "message": "m"}}, "code"),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": True, "message": "m"}}, "code"),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": 1}}, "message"),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": 2}}, "message"),
    ],
)
def test_wrong_shapes_are_refused_with_a_reason(obj: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_message(obj)


def test_parse_body_single_and_batch() -> None:
    [one] = parse_body(b'{"jsonrpc":"2.0","id":1,"method":"ping"}')
    assert one.method == "ping"
    batch = parse_body(
        b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"}]'
    )
    assert [m.kind for m in batch] == ["request", "notification"]


def test_batch_fails_as_a_whole_on_one_bad_member() -> None:
    with pytest.raises(ValueError):
        parse_body(b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0"}]')


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{",
        b"\xff\xfe{}",
        b'{"jsonrpc":"2.0","id":1,"method":"\xc3"}',
        b'{"jsonrpc":"2.0","id":1,"result":NaN}',
        b'{"jsonrpc":"2.0","id":1,"result":-Infinity}',
        b'{"jsonrpc":"2.0","id":1,"result":1e999}',
        b'{"jsonrpc":"2.0","id":1,"result":' + b"9" * 5000 + b"}",
        b"[" * 200_000 + b"]" * 200_000,
        b'{"a":' * 200_000 + b"1" + b"}" * 200_000,
        b"\xef\xbb\xbf" + b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
    ],
)
def test_parse_body_bad_input_is_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_body(body)


def test_not_json_and_not_jsonrpc_are_told_apart() -> None:
    with pytest.raises(jsonrpc.InvalidJson):
        parse_body(b"{nope")
    with pytest.raises(ValueError) as info:
        parse_body(b'{"jsonrpc":"1.0"}')
    assert not isinstance(info.value, jsonrpc.InvalidJson)


def test_duplicate_keys_are_refused_by_default() -> None:
    # A parser that keeps the first "name" would call the hidden tool the gateway never saw.
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","name":"hidden"}}'
    with pytest.raises(ValueError, match="duplicate"):
        parse_body(body)
    [msg] = parse_body(body, reject_duplicate_keys=False)
    assert msg.name == "hidden"


def test_error_response_shape() -> None:
    assert error_response(3, jsonrpc.METHOD_NOT_FOUND, "hidden") == {
        "jsonrpc": "2.0",
        "id": 3,
        "error": {"code": -32601, "message": "hidden"},
    }
    with_data = error_response(None, jsonrpc.CONNECT_REQUIRED, "connect", {"url": "http://x"})
    assert with_data["error"]["data"] == {"url": "http://x"}
    assert with_data["id"] is None
    assert parse_message(with_data).kind == "error"


def test_error_codes() -> None:
    assert (
        jsonrpc.PARSE_ERROR,
        jsonrpc.INVALID_REQUEST,
        jsonrpc.METHOD_NOT_FOUND,
        jsonrpc.INVALID_PARAMS,
        jsonrpc.INTERNAL_ERROR,
        jsonrpc.CONNECT_REQUIRED,
    ) == (-32700, -32600, -32601, -32602, -32603, -32042)


def test_encode_is_compact_utf8() -> None:
    assert encode({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


def test_encode_survives_lone_surrogates_from_json_escapes() -> None:
    [msg] = parse_body(b'{"jsonrpc":"2.0","id":1,"result":"\\ud800"}')
    out = encode(msg.raw)
    out.decode("utf-8")  # valid UTF-8
    assert parse_body(out)[0].result == "\ud800"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_encode_never_writes_non_json_numbers(value: float) -> None:
    try:
        out = encode({"x": value})
    except ValueError:
        return
    assert json.loads(out, parse_constant=lambda c: pytest.fail(f"wrote {c}")) == {"x": None}


def test_loads_refuses_non_json_numbers() -> None:
    from lockgate.mcp.jsonrpc import loads

    with pytest.raises(ValueError):
        loads(b'{"x": NaN}')
    # orjson reads integers beyond 64 bits as floats: only rewritten list results are affected.
    assert loads(b'{"x": 123456789012345678901234567890}') == {"x": 1.2345678901234568e29}


# --- properties ---------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)


@given(st.binary())
def test_parse_body_only_raises_value_error_on_any_bytes(body: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_body(body)


@given(json_values)
def test_parse_body_only_raises_value_error_on_any_json(value: object) -> None:
    try:
        msgs = parse_body(json.dumps(value).encode())
    except ValueError:
        return
    assert msgs
    assert all(m.raw is not None for m in msgs)


ids = st.none() | st.integers() | st.text()
params_objects = st.dictionaries(st.text(), json_values, max_size=4)


@st.composite
def valid_messages(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["request", "notification", "response", "error"]))
    msg: dict[str, Any] = {"jsonrpc": "2.0"}
    if kind in ("request", "notification"):
        if kind == "request":
            msg["id"] = draw(ids)
        msg["method"] = draw(st.text())
        if draw(st.booleans()):
            msg["params"] = draw(params_objects)
    elif kind == "response":
        msg["id"] = draw(ids)
        msg["result"] = draw(json_values)
    else:
        msg["id"] = draw(ids)
        error: dict[str, Any] = {"code": draw(st.integers()), "message": draw(st.text())}
        if draw(st.booleans()):
            error["data"] = draw(json_values)
        msg["error"] = error
    return msg


@given(st.lists(valid_messages(), min_size=1, max_size=4), st.booleans())
def test_valid_messages_round_trip(raws: list[dict[str, Any]], batch: bool) -> None:
    body = encode(raws) if batch or len(raws) > 1 else encode(raws[0])
    msgs = parse_body(body)
    assert [m.raw for m in msgs] == raws
    for m, raw in zip(msgs, raws, strict=True):
        assert m.id == raw.get("id")
        assert m.method == raw.get("method")
        assert m.params == raw.get("params")
        assert m.error == raw.get("error")
        assert m.result == raw.get("result")
        expected_kind = (
            ("request" if "id" in raw else "notification")
            if "method" in raw
            else ("error" if "error" in raw else "response")
        )
        assert m.kind == expected_kind
    assert encode([m.raw for m in msgs]) == encode(raws)


# --- result_key: equal keys, equal results -----------------------------------------------

_ids = st.one_of(
    st.integers(-(10**15) + 1, 10**15 - 1), st.from_regex(r"[A-Za-z0-9._:-]{0,64}", fullmatch=True)
)
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(_ids, _ids, _values)
def test_bodies_that_differ_only_in_their_id_share_a_key(
    a: object, b: object, result: object
) -> None:
    one = encode({"jsonrpc": "2.0", "id": a, "result": result})
    two = encode({"jsonrpc": "2.0", "id": b, "result": result})
    assert jsonrpc.result_key(one) is not None
    assert jsonrpc.result_key(one) == jsonrpc.result_key(two)


@given(st.binary(max_size=60), st.binary(max_size=60))
def test_equal_keys_mean_equal_results(x: bytes, y: bytes) -> None:
    """Whatever bytes follow a compact head, a key names one result: parsing two bodies with
    equal keys gives equal results (or fails on both)."""
    head = b'{"jsonrpc":"2.0","id":1,"result":'
    for tail in (x, y):
        body, other = head + tail, b'{"jsonrpc":"2.0","id":"zz","result":' + tail
        assert jsonrpc.result_key(body) == jsonrpc.result_key(other) == tail
        try:
            got = jsonrpc.loads(body)
        except ValueError:
            with pytest.raises(ValueError):
                jsonrpc.loads(other)
            continue
        assert jsonrpc.loads(other)["result"] == got["result"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"result":{"tools":[]},"jsonrpc":"2.0","id":1}',  # another member order
        b'{ "jsonrpc":"2.0","id":1,"result":{}}',  # whitespace
        b'{"jsonrpc":"2.0","id":1.0,"result":{}}',  # a float id
        b'{"jsonrpc":"2.0","id":"a\\"b","result":{}}',  # an escape in the id
        b'{"jsonrpc":"2.0","id":12345678901234567890,"result":{}}',  # beyond 15 digits
        b'[{"jsonrpc":"2.0","id":1,"result":{}}]',  # a batch
        b'{"x":{"jsonrpc":"2.0","id":1,"result":{}}}',  # the head nested, not at the start
        b'{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}',
    ],
)
def test_other_envelopes_have_no_key(body: bytes) -> None:
    assert jsonrpc.result_key(body) is None


@pytest.mark.parametrize(
    ("body", "rid"),
    [
        (b'{"id":3,"method":"x"}', 3),
        (b'{"id":"a","method":5}', "a"),
        (b'{"id":true}', None),
        (b'{"id":1.5}', None),
        (b'{"id":null}', None),
        (b"[1]", None),
        (b"not json", None),
        (b"[" * 100000, None),
    ],
)
def test_readable_id_takes_only_a_usable_id(body: bytes, rid: object) -> None:
    assert jsonrpc.readable_id(body) == rid


# --- duplicate keys in upstream answers -------------------------------------------------------

_KEYS = st.sampled_from(["a", "b", "id", "result", "x:y", "k\u00e9", ":"])
_LEAVES = st.one_of(
    st.integers(-5, 5), st.booleans(), st.none(), st.text(alphabet='ab: \u00e9"\\/', max_size=6)
)
_TREES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.lists(st.tuples(_KEYS, inner), max_size=3)
    ),
    max_leaves=12,
)


def _text(node: Any, escape: bool, spaced: bool) -> str:
    """JSON text of a tree whose objects are member lists (duplicates kept as written)."""
    sep, colon = (", ", " : ") if spaced else (",", ":")
    if isinstance(node, list) and all(isinstance(i, tuple) for i in node) and node:
        body = sep.join(
            json.dumps(k, ensure_ascii=escape) + colon + _text(v, escape, spaced) for k, v in node
        )
        return "{" + body + "}"
    if isinstance(node, list):
        return "[" + sep.join(_text(i, escape, spaced) for i in node) + "]"
    return json.dumps(node, ensure_ascii=escape)


def _has_duplicates(node: Any) -> bool:
    if isinstance(node, list) and node and all(isinstance(i, tuple) for i in node):
        keys = [k for k, _ in node]
        return len(set(keys)) != len(keys) or any(_has_duplicates(v) for _, v in node)
    return isinstance(node, list) and any(_has_duplicates(i) for i in node)


@given(tree=_TREES, escape=st.booleans(), spaced=st.booleans(), as_str=st.booleans())
def test_a_duplicate_key_is_found_wherever_it_is_and_only_then(
    tree: Any, escape: bool, spaced: bool, as_str: bool
) -> None:
    """Keys and strings holding colons, `\\u` escapes or none, spaced or compact text: the
    colon count tells a dropped duplicate exactly."""
    text = _text(tree, escape, spaced)
    obj = jsonrpc.loads(text.encode())
    raw: bytes | str = text if as_str else text.encode()
    assert jsonrpc.has_duplicate_keys(raw, obj) == _has_duplicates(tree)


def test_a_list_hidden_under_a_first_result_key_is_found() -> None:
    raw = b'{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"poison"}]},"result":{"tools":[]}}'
    assert jsonrpc.has_duplicate_keys(raw, jsonrpc.loads(raw))
    clean = b'{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a:b"}]}}'
    assert not jsonrpc.has_duplicate_keys(clean, jsonrpc.loads(clean))


def test_an_escaped_colon_cannot_balance_a_dropped_duplicate() -> None:
    """`\\u003a` decodes to a colon the encoder then writes: it would make up for the dropped
    member's colon in the count, so escaped text takes the duplicate-checking decode."""
    raw = b'{"a":1,"a":2,"s":"\\u003a"}'
    assert jsonrpc.has_duplicate_keys(raw, jsonrpc.loads(raw))
