"""addons/capabilities.py: parse, refuse hidden calls, filter list results (JSON and SSE)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http

from lockgate.addons._flow import answer_rpc_error, state
from lockgate.addons.capabilities import Capabilities
from lockgate.addons.config import Config
from tests.addons.conftest import NOTES_URL, events_of, mcp_flow, running
from tests.support.gateway import profile_text

PROFILE = profile_text(
    {"notes": NOTES_URL},
    {
        "open": "notes",
        "curated": [
            "notes",
            'tools.deny = ["delete_*"]',
            "prompts.allow = []",
            'resources.deny = ["file:///secret/*"]',
        ],
    },
    '[routes.curated.overrides.tools.list_notes]\ndescription = "List notes (curated)."\n',
)
TOOLS = [
    {"name": n, "description": f"{n} upstream", "inputSchema": {"type": "object"}}
    for n in ("list_notes", "get_note", "add_note", "delete_note")
]
VISIBLE = ["list_notes", "get_note", "add_note"]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Config, Capabilities]]:
    cfg = Config()
    caps = Capabilities()
    with running(tmp_path, PROFILE, cfg, caps):
        yield cfg, caps


def request(
    cfg: Config,
    route: str,
    body: object,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> http.HTTPFlow:
    f = mcp_flow("/mcp", body, method, {"content-type": "application/json", **(headers or {})})
    state(f).route = cfg.routes[route]
    return f


def sent(env: tuple[Config, Capabilities], route: str, body: object, **kw: Any) -> http.HTTPFlow:
    """A request on `route`, through Capabilities' request hook."""
    cfg, caps = env
    f = request(cfg, route, body, **kw)
    caps.request(f)
    return f


def call(name: str, rid: int | str = 1, method: str = "tools/call") -> dict[str, Any]:
    key = "uri" if method.startswith("resources/") else "name"
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": {key: name}}


def tools_list(rid: int | str = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/list"}


def tools_result(rid: int | str = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS, "nextCursor": "c2"}}


def answered(f: http.HTTPFlow, status: int) -> Any:
    assert f.response is not None, "the request would have been forwarded"
    assert f.response.status_code == status
    assert f.response.headers["content-type"] == "application/json"
    return json.loads(f.response.content or b"")


def respond(
    caps: Capabilities,
    f: http.HTTPFlow,
    body: bytes,
    content_type: str = "application/json",
    **headers: str,
) -> http.Response:
    """What mitmproxy does with the upstream's answer: responseheaders, body, response."""
    f.response = http.Response.make(200, b"", {"content-type": content_type, **headers})
    caps.responseheaders(f)
    assert not callable(f.response.stream)
    f.response.content = body  # encodes per content-encoding, as the upstream sent it
    caps.response(f)
    return f.response


# --- request side --------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"not json", b'{"jsonrpc":"2.0"', b"\xff", b"[1, 2,]", b"NaN"])
def test_unparsable_body_is_a_parse_error(env: tuple[Config, Capabilities], body: bytes) -> None:
    f = sent(env, "open", body)
    assert answered(f, 400)["error"]["code"] == -32700
    assert state(f).outcome == "denied"


@pytest.mark.parametrize(
    "body",
    [
        {"jsonrpc": "1.0", "id": 1, "method": "tools/list"},
        {"id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": True, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 1, "method": 42},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "x"},
        [],
        [1],
        "tools/list",
    ],
    ids=[
        "v1",
        "no-version",
        "id-object",
        "id-bool",
        "method-number",
        "params-string",
        "empty-batch",
        "batch-of-number",
        "string",
    ],
)
def test_wrong_shape_is_an_invalid_request(env: tuple[Config, Capabilities], body: object) -> None:
    """JSON that parses but is not JSON-RPC 2.0 is -32600, not -32700 (JSON-RPC 2.0 §5.1)."""
    f = sent(env, "open", body)
    assert answered(f, 400)["error"]["code"] == -32600


def test_a_name_that_is_no_string_is_invalid_params_even_where_tools_are_hidden(
    env: tuple[Config, Capabilities],
) -> None:
    msg = {"jsonrpc": "2.0", "id": "abc", "method": "tools/call", "params": {"name": 7}}
    body = answered(sent(env, "curated", msg), 200)
    assert (body["id"], body["error"]["code"]) == ("abc", -32602)


@pytest.mark.parametrize(
    ("msg", "what"),
    [
        (call("delete_note", "abc"), "Tool 'delete_note'"),
        (call("any_prompt", "abc", "prompts/get"), "Prompt 'any_prompt'"),
        (call("file:///secret/keys", "abc", "resources/read"), "Resource 'file:///secret/keys'"),
        (
            {
                "jsonrpc": "2.0",
                "id": "abc",
                "method": "completion/complete",
                "params": {
                    "ref": {"type": "ref/prompt", "name": "p"},
                    "argument": {"name": "a", "value": ""},
                },
            },
            "'p'",
        ),
    ],
)
def test_hidden_targets_are_method_not_found(
    env: tuple[Config, Capabilities], msg: dict[str, Any], what: str
) -> None:
    f = sent(env, "curated", msg)
    body = answered(f, 200)
    assert body["id"] == "abc"
    assert body["error"]["code"] == -32601
    assert what in body["error"]["message"] and "'curated'" in body["error"]["message"]
    assert state(f).outcome == "denied"


def test_a_hidden_call_in_a_batch_is_set_aside_and_the_rest_goes_on(
    env: tuple[Config, Capabilities],
) -> None:
    note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}
    f = sent(env, "curated", [tools_list(1), call("delete_note", 2), note])
    assert f.response is None
    st = state(f)
    assert [m.method for m in st.messages] == ["tools/list", "notifications/progress"]
    assert json.loads(f.request.content or b"") == [tools_list(1), note]
    assert [(a.message.id, a.error and a.error["error"]["code"]) for a in st.set_aside] == [
        (2, -32601)
    ]
    # The upstream's answer to the rest gets the refused member's error, in the client's order.
    respond(env[1], f, json.dumps([{"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}]).encode())
    assert f.response is not None
    assert [m["id"] for m in json.loads(f.response.content or b"")] == [1, 2]


def test_a_later_refusal_of_the_whole_batch_keeps_the_set_aside_errors(
    env: tuple[Config, Capabilities],
) -> None:
    """A guardrail (or a scope, or the fail-closed wrapper) refusing what is left of a batch:
    the members set aside before still get their own errors."""
    f = sent(env, "curated", [call("delete_note", 2), tools_list(1)])
    answer_rpc_error(f, 403, -32003, "blocked by a guardrail", outcome="blocked")
    assert f.response is not None
    body = json.loads(f.response.content or b"")
    assert [(m["id"], m["error"]["code"]) for m in body] == [(2, -32601), (1, -32003)]


@pytest.mark.parametrize("route", ["open", "curated"])
def test_visible_calls_pass_and_are_remembered(
    env: tuple[Config, Capabilities], route: str
) -> None:
    f = sent(env, route, [call("get_note", 1), tools_list("L")])
    assert f.response is None
    st = state(f)
    assert st.methods == {1: "tools/call", "L": "tools/list"}
    assert [m.name for m in st.messages] == ["get_note", None]


def test_everything_passes_on_an_open_route(env: tuple[Config, Capabilities]) -> None:
    f = sent(env, "open", call("delete_note"))
    assert f.response is None
    assert state(f).transforms == []  # nothing to filter: list results are not parsed


@pytest.mark.parametrize(
    "headers",
    [
        {"mcp-method": "tools/list"},
        {"mcp-method": "TOOLS/CALL"},
        {"mcp-method": "tools/call", "mcp-name": "list_notes"},
        {"mcp-name": ""},
    ],
)
def test_mcp_headers_must_match_the_body(
    env: tuple[Config, Capabilities], headers: dict[str, str]
) -> None:
    f = sent(env, "open", call("get_note"), headers=headers)
    assert answered(f, 400)["error"]["code"] == -32600


def test_mcp_headers_on_a_batch_are_refused(env: tuple[Config, Capabilities]) -> None:
    f = sent(env, "open", [tools_list(1), tools_list(2)], headers={"mcp-method": "tools/list"})
    assert [(m["id"], m["error"]["code"]) for m in answered(f, 400)] == [(1, -32600), (2, -32600)]


def test_matching_mcp_headers_pass(env: tuple[Config, Capabilities]) -> None:
    headers = {"mcp-method": "tools/call", "mcp-name": "get_note"}
    f = sent(env, "open", call("get_note"), headers=headers)
    assert f.response is None


@pytest.mark.parametrize(("method", "status"), [("GET", 400), ("DELETE", 400), ("PUT", 405)])
def test_a_body_on_another_method_is_not_forwarded_unread(
    env: tuple[Config, Capabilities], method: str, status: int
) -> None:
    """GET streams and DELETE carry no JSON-RPC; a hidden call in their body must not pass."""
    f = sent(env, "curated", call("delete_note"), method=method)
    assert answered(f, status)["error"]["code"] == -32600
    assert state(f).outcome == "denied"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_bodiless_stream_or_delete_passes(env: tuple[Config, Capabilities], method: str) -> None:
    f = sent(env, "curated", b"", method=method)
    assert f.response is None


def test_an_earlier_answer_is_left_alone(env: tuple[Config, Capabilities]) -> None:
    cfg, caps = env
    f = request(cfg, "curated", call("delete_note"))
    f.response = http.Response.make(413, b"{}")
    caps.request(f)
    assert f.response.status_code == 413
    assert state(f).messages == []


# --- response side: JSON -------------------------------------------------------------------


def listed(resp: http.Response) -> list[str]:
    return [t["name"] for t in json.loads(resp.content or b"")["result"]["tools"]]


def test_tools_list_json_is_filtered_and_overridden(env: tuple[Config, Capabilities]) -> None:
    _, caps = env
    f = sent(env, "curated", tools_list(5))
    resp = respond(caps, f, json.dumps(tools_result(5)).encode())
    body = json.loads(resp.content or b"")
    assert body["id"] == 5
    assert listed(resp) == VISIBLE
    assert body["result"]["nextCursor"] == "c2"
    assert body["result"]["tools"][0]["description"] == "List notes (curated)."
    assert body["result"]["tools"][1]["description"] == "get_note upstream"
    assert int(resp.headers["content-length"]) == len(resp.raw_content or b"")


def test_a_batch_response_is_filtered(env: tuple[Config, Capabilities]) -> None:
    _, caps = env
    f = sent(env, "curated", [tools_list(1), call("get_note", 2)])
    other = {"jsonrpc": "2.0", "id": 2, "result": {"tools": TOOLS}}  # a call result, not a list
    resp = respond(caps, f, json.dumps([tools_result(1), other]).encode())
    out = json.loads(resp.content or b"")
    assert [t["name"] for t in out[0]["result"]["tools"]] == VISIBLE
    assert out[1] == other


def test_an_open_route_passes_the_body_byte_for_byte(env: tuple[Config, Capabilities]) -> None:
    _, caps = env
    f = sent(env, "open", tools_list())
    raw = b'{"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}'
    assert respond(caps, f, raw).content == raw


def full_list_answered(
    env: tuple[Config, Capabilities], content_type: str = "application/json", **headers: str
) -> http.Response:
    """A tools/list on the curated route, answered by the upstream with every tool."""
    _, caps = env
    f = sent(env, "curated", tools_list())
    return respond(caps, f, json.dumps(tools_result()).encode(), content_type, **headers)


def test_an_error_response_passes(env: tuple[Config, Capabilities]) -> None:
    _, caps = env
    f = sent(env, "curated", tools_list())
    raw = b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"boom"}}'
    assert respond(caps, f, raw).content == raw


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_a_compressed_json_list_is_filtered_too(
    env: tuple[Config, Capabilities], encoding: str
) -> None:
    """The guard drops Accept-Encoding, but an upstream may compress anyway: fail closed."""
    resp = full_list_answered(env, **{"content-encoding": encoding})
    assert "delete_note" not in resp.get_text(strict=False) or resp.status_code >= 500


@pytest.mark.parametrize("content_type", ["application/json;charset=utf-8", "Application/JSON"])
def test_content_type_is_matched_case_insensitively(
    env: tuple[Config, Capabilities], content_type: str
) -> None:
    """Clients (the mcp SDK among them) lowercase the media type before matching it."""
    resp = full_list_answered(env, content_type)
    assert listed(resp) == VISIBLE


def test_local_answers_are_not_filtered(env: tuple[Config, Capabilities]) -> None:
    _, caps = env
    f = sent(env, "curated", call("delete_note"))
    before = f.response.content if f.response else None
    caps.responseheaders(f)
    caps.response(f)
    assert f.response is not None and f.response.content == before


# --- response side: SSE --------------------------------------------------------------------


def sse_flow(cfg: Config, caps: Capabilities, content_type: str = "text/event-stream") -> Any:
    f = request(cfg, "curated", tools_list(9))
    caps.request(f)
    f.response = http.Response.make(200, b"", {"content-type": content_type})
    caps.responseheaders(f)
    assert callable(f.response.stream)
    return f.response.stream


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_sse_list_results_are_filtered_across_arbitrary_chunks(
    env: tuple[Config, Capabilities], newline: bytes
) -> None:
    cfg, caps = env
    stream = sse_flow(cfg, caps)
    progress = {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": 1, "progress": 1},
    }
    raw = b"".join(
        b"id: %d" % i + newline + b"data: " + json.dumps(m).encode() + newline + newline
        for i, m in enumerate([progress, tools_result(9)])
    )
    rnd = random.Random(7)
    out = b""
    pos = 0
    while pos < len(raw):
        step = rnd.randint(1, 17)
        chunk = stream(raw[pos : pos + step])
        assert chunk != b"", "b'' mid-stream ends an HTTP/1.1 chunked body"
        out += chunk if isinstance(chunk, bytes) else b"".join(chunk)
        pos += step
    end = stream(b"")
    out += end if isinstance(end, bytes) else b"".join(end)
    first, second = events_of(out)
    assert first == progress
    assert [t["name"] for t in second["result"]["tools"]] == VISIBLE


def test_sse_content_type_is_matched_case_insensitively(env: tuple[Config, Capabilities]) -> None:
    _, caps = env
    f = sent(env, "curated", tools_list(9))
    f.response = http.Response.make(200, b"", {"content-type": "Text/Event-Stream"})
    caps.responseheaders(f)
    assert callable(f.response.stream), "an SSE response must be streamed and filtered"
