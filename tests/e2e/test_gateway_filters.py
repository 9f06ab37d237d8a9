"""A route's curated view of its upstream, over real HTTP, in JSON and SSE response modes.

Why it exists: DESIGN.md promises that a route shows only what its profile allows (deny wins
over allow, an empty allow list hides everything), with overridden descriptions and
annotations, and that a call to anything hidden is refused with JSON-RPC -32601 before the
upstream is contacted. Here the demo upstream sits behind two routes of one gateway: a
curated one and a full one; the full route is the witness that the curated route's refused
calls never reached the upstream.

Two small upstreams built in this file with the SDK's low-level `Server` cover what the demo
server cannot: a `tools/list` that paginates (the filter must keep `nextCursor`, also when it
empties a page) and a tool whose call changes the tool list and sends
`notifications/tools/list_changed` (on the GET stream, or on the call's own SSE stream).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.server.lowlevel import Server
from mcp.server.lowlevel.server import ServerRequestContext
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lockgate.cli.demo.server import LOOPBACK_SECURITY, MCP_PATH, BackgroundServer
from lockgate.mcp import jsonrpc
from tests.support.demo_mcp import DEMO_TOOLS, read_welcome_note, text_of
from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.mcp_http import messages_of, open_session
from tests.support.scripted import (
    HEADERS,
    HIDDEN,
    SESSION_S,
    TOOLS,
    Scripted,
    Seen,
    http_response,
    sse_payloads,
    tool_names,
)
from tests.support.upstreams import sdk_upstream

METHOD_NOT_FOUND = -32601
MODES = [pytest.param("json", id="json"), pytest.param("sse", id="sse")]
CLIENT_MODES = [pytest.param("legacy", id="legacy"), pytest.param("2026-07-28", id="2026")]

CURATED_TOOLS = {"list_notes", "get_note", "search_notes", "add_note"}
SEARCH_DESCRIPTION = "Search notes by words in their title or body (read-only, via lockgate)."
GET_TITLE = "Get one note"

# Per response mode ("json" or "sse"): upstreams notes-M, paged-M, grow-M; routes below.
CURATED_ROUTE = """
[routes."curated-{m}".tools]
allow = ["list_*", "get_*", "search_*", "add_*", "delete_*"]
deny = ["delete_*"]

[routes."curated-{m}".prompts]
allow = []

[routes."curated-{m}".resources]
deny = ["notes://index"]

[routes."curated-{m}".overrides.tools.search_notes]
description = "{search}"

[routes."curated-{m}".overrides.tools.get_note]
title = "{title}"
annotations = {{ readOnlyHint = true, idempotentHint = true }}

[routes."curated-{m}".overrides.tools.delete_note]
description = "An override must not make a hidden tool visible."

[routes."paged-{m}".tools]
deny = ["hidden_*"]

[routes."grow-{m}".tools]
deny = ["hidden_*"]

[routes."gzip-{m}".tools]
deny = ["hidden_*"]
"""

ACCEPT = {"Accept": "application/json, text/event-stream"}
PROTOCOL = {"MCP-Protocol-Version": "2025-11-25"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- small low-level upstreams ----------------------------------------------------------


@dataclass
class ToolBox:
    """A low-level SDK server whose tool list pages by two and can grow at run time."""

    names: list[str] = field(
        default_factory=lambda: ["tool_a", "hidden_b", "hidden_c", "hidden_d", "grow"]
    )
    cursors: list[str | None] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    page_size: int = 2

    def server(self) -> Server[Any]:
        async def list_tools(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> types.ListToolsResult:
            cursor = params.cursor if params is not None else None
            self.cursors.append(cursor)
            start = int(cursor or 0)
            end = start + self.page_size
            return types.ListToolsResult(
                tools=[self._tool(n) for n in self.names[start:end]],
                next_cursor=str(end) if end < len(self.names) else None,
            )

        async def call_tool(
            ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
        ) -> types.CallToolResult:
            self.calls.append(params.name)
            if params.name in ("grow", "grow_inline"):
                k = len(self.names)
                self.names += [f"tool_grown_{k}", f"hidden_grown_{k}"]
                # Unrelated: the GET stream carries it; related: the call's own SSE stream.
                related = ctx.request_id if params.name == "grow_inline" else None
                await ctx.session.send_notification(
                    types.ToolListChangedNotification(), related_request_id=related
                )
                return _text(f"grew tool_grown_{k}")
            return _text(f"called {params.name}")

        return Server("toolbox", version="0", on_list_tools=list_tools, on_call_tool=call_tool)

    @staticmethod
    def _tool(name: str) -> types.Tool:
        return types.Tool(
            name=name, description=f"The {name} tool.", input_schema={"type": "object"}
        )


def _text(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def gzip_upstream_app(sse: bool) -> Starlette:
    """An upstream that gzips its answers whether or not the client asked for it.

    Servers and the proxies in front of them do this (compression switched on for every
    response); the gateway drops the client's Accept-Encoding but cannot stop it.
    """

    async def mcp(request: Request) -> Response:
        msg = await request.json()
        result: dict[str, Any] = {}
        if msg.get("method") == "tools/list":
            result = {
                "tools": [
                    {"name": n, "description": f"The {n} tool.", "inputSchema": {"type": "object"}}
                    for n in ("tool_a", "hidden_b")
                ]
            }
        data = json.dumps({"jsonrpc": "2.0", "id": msg.get("id"), "result": result})
        body = f"event: message\ndata: {data}\n\n" if sse else data
        ctype = "text/event-stream" if sse else "application/json"
        return Response(
            gzip.compress(body.encode()),
            headers={"content-type": ctype, "content-encoding": "gzip"},
        )

    return Starlette(routes=[Route(MCP_PATH, mcp, methods=["POST"])])


# --- the gateway ----------------------------------------------------------------------


@dataclass
class Stack:
    gw: GatewayProcess
    upstream_urls: dict[str, str]
    boxes: dict[str, ToolBox]

    def url(self, route: str) -> str:
        return self.gw.route_url(route)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ExitStack() as es:
        urls: dict[str, str] = {}
        boxes: dict[str, ToolBox] = {}
        for m in ("json", "sse"):
            json_response = m == "json"
            urls[f"notes-{m}"] = es.enter_context(sdk_upstream(json_response=json_response))
            for kind, stateless in (("paged", True), ("grow", False)):
                box = boxes[f"{kind}-{m}"] = ToolBox()
                if kind == "grow":  # the gateway refuses calls to tools the upstream never lists
                    box.names.append("grow_inline")
                app = box.server().streamable_http_app(
                    streamable_http_path=MCP_PATH,
                    json_response=json_response,
                    stateless_http=stateless,
                    transport_security=LOOPBACK_SECURITY,
                )
                urls[f"{kind}-{m}"] = es.enter_context(BackgroundServer(app)).url + MCP_PATH
            gz = BackgroundServer(gzip_upstream_app(sse=m == "sse"))
            urls[f"gzip-{m}"] = es.enter_context(gz).url + MCP_PATH
        routes = {}
        for m in ("json", "sse"):
            routes |= {
                f"curated-{m}": f"notes-{m}",
                f"full-{m}": f"notes-{m}",
                f"paged-{m}": f"paged-{m}",
                f"paged-full-{m}": f"paged-{m}",
                f"grow-{m}": f"grow-{m}",
                f"gzip-{m}": f"gzip-{m}",
            }
        extra = "".join(
            CURATED_ROUTE.format(m=m, search=SEARCH_DESCRIPTION, title=GET_TITLE)
            for m in ("json", "sse")
        )
        profile = profile_text(upstreams=urls, routes=routes, extra=extra)
        gw = es.enter_context(running_gateway(profile, tmp_path_factory.mktemp("gateway")))
        yield Stack(gw, urls, boxes)


def client(url: str, mode: str = "legacy", **kwargs: Any) -> Client:
    return Client(url, mode=mode, read_timeout_seconds=10, **kwargs)


def each_mode_and_client(test: Callable[..., Any]) -> Callable[..., Any]:
    """An async test, run for each response mode `m` of the upstreams and each `client_mode`."""
    test = pytest.mark.parametrize("m", MODES)(test)
    return pytest.mark.anyio(pytest.mark.parametrize("client_mode", CLIENT_MODES)(test))


async def tools_by_name(c: Client) -> dict[str, types.Tool]:
    return {t.name: t for t in (await c.list_tools()).tools}


# --- the curated view of the demo upstream ----------------------------------------------


@each_mode_and_client
async def test_tools_list_shows_exactly_the_allowed_tools_with_overrides(
    stack: Stack, m: str, client_mode: str
) -> None:
    async with client(stack.url(f"curated-{m}"), client_mode) as c:
        tools = await tools_by_name(c)
    assert set(tools) == CURATED_TOOLS
    assert tools["search_notes"].description == SEARCH_DESCRIPTION
    got = tools["get_note"]
    assert got.title == GET_TITLE
    assert got.description == "Get one note by id."  # not overridden: the upstream's own
    assert got.annotations is not None
    assert got.annotations.read_only_hint is True
    assert got.annotations.idempotent_hint is True
    # Everything else about a tool passes untouched.
    assert tools["add_note"].input_schema["required"] == ["title", "body"]
    assert tools["list_notes"].annotations is None


@pytest.mark.parametrize("m", MODES)
def test_raw_tools_list_result_keeps_its_other_keys(stack: Stack, m: str) -> None:
    """The filtered list, as bytes on the wire: same envelope, same `_meta`, fewer tools."""
    with httpx.Client(timeout=10) as http:
        answers = {}
        for route in (f"curated-{m}", f"full-{m}"):
            sid = open_session(http, stack.url(route))
            resp = http.post(
                stack.url(route),
                json={"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
                headers=_headers(sid),
            )
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith(
                "application/json" if m == "json" else "text/event-stream"
            )
            [answers[route]] = messages_of(resp)
    curated, full = answers[f"curated-{m}"], answers[f"full-{m}"]
    assert curated["id"] == 7 and curated["jsonrpc"] == "2.0"
    assert [t["name"] for t in curated["result"]["tools"]] == [
        t["name"] for t in full["result"]["tools"] if t["name"] in CURATED_TOOLS
    ]
    assert set(curated["result"]) == set(full["result"])
    assert {t["name"] for t in full["result"]["tools"]} == DEMO_TOOLS


@each_mode_and_client
async def test_hidden_tool_is_refused_and_never_reaches_the_upstream(
    stack: Stack, m: str, client_mode: str
) -> None:
    async with client(stack.url(f"full-{m}"), client_mode) as full:
        added = await full.call_tool("add_note", {"title": "keep me", "body": f"{client_mode}"})
        note_id = (added.structured_content or {})["id"]

        async with client(stack.url(f"curated-{m}"), client_mode) as curated:
            for tool in ("delete_note", "confirm_delete"):  # denied / not in the allow list
                with pytest.raises(MCPError) as refused:
                    await curated.call_tool(tool, {"id": note_id})
                assert refused.value.code == METHOD_NOT_FOUND
                assert tool in refused.value.message
            # The route still serves what it shows.
            assert not (await curated.call_tool("get_note", {"id": note_id})).is_error

        # The upstream never saw the delete: the note is still there.
        still = await full.call_tool("get_note", {"id": note_id})
        assert not still.is_error, text_of(still)
        assert (still.structured_content or {})["title"] == "keep me"

    def refused_delete(e: dict[str, Any]) -> bool:
        return (
            e.get("event") == "tool.call"
            and e.get("route") == f"curated-{m}"
            and e.get("name") == "delete_note"
            and (e.get("args") or {}).get("id") == note_id
        )

    [event] = stack.gw.matching_events(refused_delete)
    assert event["outcome"] == "denied"
    assert event["latency_ms"]["total"] >= 0
    assert event["latency_ms"].get("upstream") is None  # no upstream exchange to time


@pytest.mark.parametrize("m", MODES)
def test_hidden_tool_refusal_on_the_wire(stack: Stack, m: str) -> None:
    """The exact JSON-RPC answer a raw client gets, and the upstream's session is untouched."""
    with httpx.Client(timeout=10) as http:
        url = stack.url(f"curated-{m}")
        sid = open_session(http, url)
        call = {
            "jsonrpc": "2.0",
            "id": "del-1",
            "method": "tools/call",
            "params": {"name": "delete_note", "arguments": {"id": "2"}},
        }
        resp = http.post(url, json=call, headers=_headers(sid))
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/json")
        body = resp.json()
        assert body["id"] == "del-1"
        assert body["error"]["code"] == METHOD_NOT_FOUND
        assert "result" not in body
        # Seen through the full route, note 2 is still there.
        full_sid = open_session(http, stack.url(f"full-{m}"))
        get = dict(call, id=2, params={"name": "get_note", "arguments": {"id": "2"}})
        [reply] = messages_of(
            http.post(stack.url(f"full-{m}"), json=get, headers=_headers(full_sid))
        )
        assert reply["result"]["isError"] is False
        assert reply["result"]["structuredContent"]["title"] == "Groceries"


@pytest.mark.parametrize("m", MODES)
def test_hidden_tool_call_never_reaches_a_recording_upstream(stack: Stack, m: str) -> None:
    """The low-level upstream records every call it gets: the hidden one is not among them."""
    box = stack.boxes[f"paged-{m}"]
    url = stack.url(f"paged-{m}")
    with httpx.Client(timeout=10) as http:

        def call(rid: int, name: str) -> dict[str, Any]:
            msg = {
                "jsonrpc": "2.0",
                "id": rid,
                "method": "tools/call",
                "params": {"name": name, "arguments": {}},
            }
            resp = http.post(url, json=msg, headers=ACCEPT | PROTOCOL)
            assert resp.status_code == 200, resp.text
            [reply] = messages_of(resp)
            assert reply["id"] == rid
            return reply

        before = list(box.calls)
        refused = call(1, "hidden_c")
        assert refused["error"]["code"] == METHOD_NOT_FOUND
        assert box.calls == before
        allowed = call(2, "tool_a")  # the control: a visible tool does reach it
        assert allowed["result"]["content"][0]["text"] == "called tool_a"
        assert box.calls == [*before, "tool_a"]


@each_mode_and_client
async def test_prompts_and_hidden_resources_are_refused(
    stack: Stack, m: str, client_mode: str
) -> None:
    async with client(stack.url(f"curated-{m}"), client_mode) as c:
        assert (await c.list_prompts()).prompts == []
        with pytest.raises(MCPError) as refused:
            await c.get_prompt("note_prompt", {"topic": "secrets"})
        assert refused.value.code == METHOD_NOT_FOUND

        assert (await c.list_resources()).resources == []
        with pytest.raises(MCPError) as refused:
            await c.read_resource("notes://index")
        assert refused.value.code == METHOD_NOT_FOUND

        # Only notes://index is denied: the template and the notes it names stay readable.
        await read_welcome_note(c)


@each_mode_and_client
async def test_full_route_on_the_same_upstream_shows_everything(
    stack: Stack, m: str, client_mode: str
) -> None:
    async with client(stack.url(f"full-{m}"), client_mode) as c:
        tools = await tools_by_name(c)
        assert set(tools) == DEMO_TOOLS
        # The curated route's overrides stay on the curated route.
        assert tools["search_notes"].description is not None
        assert "case-insensitive" in tools["search_notes"].description
        assert tools["get_note"].title is None
        delete = tools["delete_note"]
        assert delete.annotations is not None and delete.annotations.destructive_hint is True
        assert delete.description == "Delete a note by id, without asking."
        assert [p.name for p in (await c.list_prompts()).prompts] == ["note_prompt"]
        resources = await c.list_resources()
        assert [str(r.uri) for r in resources.resources] == ["notes://index"]
        index = (await c.read_resource("notes://index")).contents[0]
        assert isinstance(index, types.TextResourceContents)
        assert {"1", "2", "3"} <= {n["id"] for n in json.loads(index.text)}


# --- pagination and list_changed, on the low-level upstreams -------------------------------


@pytest.mark.parametrize("m", MODES)
def test_paginated_tools_list_keeps_next_cursor(stack: Stack, m: str) -> None:
    """Pages of two, filtered: a page the filter empties still carries the cursor onward."""
    box = stack.boxes[f"paged-{m}"]
    box.cursors.clear()
    pages: list[tuple[list[str], str | None]] = []
    cursor: str | None = None
    with httpx.Client(timeout=10) as http:
        for rid in range(1, 10):
            params = {"cursor": cursor} if cursor is not None else {}
            msg = {"jsonrpc": "2.0", "id": rid, "method": "tools/list", "params": params}
            resp = http.post(stack.url(f"paged-{m}"), json=msg, headers=ACCEPT | PROTOCOL)
            assert resp.status_code == 200, resp.text
            [reply] = messages_of(resp)
            assert reply["id"] == rid
            cursor = reply["result"].get("nextCursor")
            pages.append(([t["name"] for t in reply["result"]["tools"]], cursor))
            if cursor is None:
                break
    assert pages == [(["tool_a"], "2"), ([], "4"), (["grow"], None)]
    # The upstream got each cursor exactly as it issued it.
    assert box.cursors == [None, "2", "4"]


@pytest.mark.anyio
@pytest.mark.parametrize("m", MODES)
async def test_paginated_tools_list_through_the_sdk_client(stack: Stack, m: str) -> None:
    async with client(stack.url(f"paged-full-{m}")) as c:
        names: list[str] = []
        cursor: str | None = None
        for _ in range(10):
            page = await c.list_tools(cursor=cursor)
            names += [t.name for t in page.tools]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert names == ["tool_a", "hidden_b", "hidden_c", "hidden_d", "grow"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("m", "tool"),
    [
        pytest.param("json", "grow", id="json-get-stream"),
        pytest.param("sse", "grow", id="sse-get-stream"),
        pytest.param("sse", "grow_inline", id="sse-post-stream"),
    ],
)
async def test_tools_list_changed_reaches_the_client(stack: Stack, m: str, tool: str) -> None:
    """A 2025-era session: the notification passes, and the new list is filtered too."""
    changed = anyio.Event()

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with client(stack.url(f"grow-{m}"), message_handler=on_message) as c:
        before = await _all_tools(c)
        assert "hidden_b" not in before and "tool_a" in before
        # The client opens its GET stream in the background after the handshake; a change
        # announced before the stream is up is lost, so grow until one announcement arrives.
        grown: set[str] = set()
        for _ in range(5):
            result = await c.call_tool(tool, {})
            assert not result.is_error
            grown.add(text_of(result).removeprefix("grew "))
            with anyio.move_on_after(1):
                await changed.wait()
            if changed.is_set():
                break
        assert changed.is_set(), "no notifications/tools/list_changed reached the client"
        after = await _all_tools(c)
    assert after - before == grown  # and their hidden_grown_* twins stay hidden
    assert all(not name.startswith("hidden_") for name in after)


@pytest.mark.parametrize("m", MODES)
def test_a_compressed_tools_list_is_filtered_too(stack: Stack, m: str) -> None:
    """Fail closed: an upstream's gzip must not carry hidden tools past the filter.

    Fails today (lockgate bug): `Capabilities.response` skips a JSON body that has a
    Content-Encoding, and the SSE rewriter forwards the undecodable gzip bytes as they are,
    so the client decodes the upstream's unfiltered list.
    """
    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    resp = httpx.post(stack.url(f"gzip-{m}"), json=msg, headers=ACCEPT | PROTOCOL, timeout=10)
    assert "hidden_b" not in resp.text, f"hidden tool listed: {resp.text}"
    if resp.status_code == 200:  # filtered (the alternative: refused as an upstream error)
        [reply] = messages_of(resp)
        assert [t["name"] for t in reply["result"]["tools"]] == ["tool_a"]


# --- helpers ----------------------------------------------------------------------------


async def _all_tools(c: Client) -> set[str]:
    names: set[str] = set()
    cursor: str | None = None
    for _ in range(20):
        page = await c.list_tools(cursor=cursor, cache_mode="refresh")
        names |= {t.name for t in page.tools}
        cursor = page.next_cursor
        if cursor is None:
            return names
    raise AssertionError("tools/list did not end")


def _headers(sid: str | None) -> dict[str, str]:
    headers = ACCEPT | PROTOCOL
    if sid is not None:
        headers["Mcp-Session-Id"] = sid
    return headers


# --- a scripted upstream: replayed, unparseable and mis-encoded list results --------------


def test_get_stream_replayed_tools_list_is_filtered(
    scripted: Scripted, scripted_gw: GatewayProcess
) -> None:
    """A client resuming a tools/list stream with GET + Last-Event-ID gets the replayed result.

    DESIGN: list results are filtered "in JSON and in SSE responses"; `list_method_of` even
    says "Responses on a GET stream (resumed with Last-Event-ID) have no request in this
    flow" — but `Capabilities.request` returns before adding the list filter for non-POST.
    """
    result = {"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS}}
    body = f"id: ev-2\ndata: {json.dumps(result)}\n\n".encode()
    init = {"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-11-25"}}

    def reply(req: Seen) -> bytes:
        if req.method == "POST":  # the initialize that opens session "s" (issue 9, item 2)
            return http_response("200 OK", "application/json", json.dumps(init).encode(), SESSION_S)
        return http_response("200 OK", "text/event-stream", body)

    scripted.reply = reply
    opened = httpx.post(
        scripted_gw.route_url("curated"),
        json=jsonrpc.initialize_request("t", id=0),
        headers={"accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert opened.headers["mcp-session-id"] == "s"
    r = httpx.get(
        scripted_gw.route_url("curated"),
        headers={"accept": "text/event-stream", "last-event-id": "ev-1", "mcp-session-id": "s"},
        timeout=10,
    )
    assert r.status_code == 200
    names = [n for p in sse_payloads(r.text) for n in tool_names(p)]
    assert "list_notes" in names
    assert HIDDEN not in names


@pytest.mark.parametrize("mode", ["json", "sse", "sse-utf16"])
def test_unparseable_list_result_is_not_forwarded_unfiltered(
    scripted: Scripted, scripted_gw: GatewayProcess, mode: str
) -> None:
    """`jsonrpc.loads` refuses NaN/Infinity; the JSON and SSE paths then forward the body
    unchanged. The SDK client (pydantic) accepts NaN and shows the hidden tool."""
    from mcp_types import jsonrpc_message_adapter

    text = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS, "x": float("nan")}})
    assert "NaN" in text
    if mode == "json":
        scripted.reply = lambda req: http_response("200 OK", "application/json", text.encode())
    elif mode == "sse":
        scripted.reply = lambda req: http_response(
            "200 OK", "text/event-stream", f"data: {text}\n\n".encode()
        )
    else:  # valid JSON, but in the charset the content-type names: the gateway reads UTF-8
        text = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS}})
        scripted.reply = lambda req: http_response(
            "200 OK",
            "text/event-stream; charset=utf-16",
            f"data: {text}\n\n".encode("utf-16"),
        )
    r = httpx.post(
        scripted_gw.route_url("curated"),
        content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        headers=HEADERS,
        timeout=10,
    )
    assert "NaN" in text or mode == "sse-utf16"
    raw = (
        r.text
        if mode == "json"
        else "\n".join(ln[5:].lstrip() for ln in r.text.splitlines() if ln.startswith("data:"))
    )
    if not raw.strip():
        return  # dropped: fine
    try:
        msg = jsonrpc_message_adapter.validate_json(raw, by_name=False)
    except Exception:
        return  # the client cannot read it either: fine
    dumped = msg.model_dump(by_alias=True)
    result = dumped.get("result")
    names = [t["name"] for t in (result or {}).get("tools", [])] if isinstance(result, dict) else []
    assert HIDDEN not in names, f"the SDK client sees the hidden tool: {names}"
