"""The demo upstream through the gateway, driven by the official SDK client and by raw HTTP.

Why it exists: `test_upstreams_direct.py` pins down what each transport shape of the demo
upstream does with no gateway; this file runs the same scenarios through `lockgate up` (one
route per shape, no filters) and expects the same answers. On top of that it checks what only a
gateway can break: progress still streams (not buffered), the server-to-client requests of
sampling and elicitation find their way back, `Mcp-Session-Id`, DELETE, GET streams and
status codes pass unchanged, and each call leaves a verifiable audit event.

The four upstreams and the one gateway in front of them are shared by the whole module, so
the file stays fast.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp import Client

from lockgate.audit.verify import verify
from lockgate.mcp.sessions import session_hash
from tests.e2e.test_upstreams_direct import (
    DEMO_TOOLS,
    JSON_DROPS_PROGRESS,
    MODES,
    NO_BACK_CHANNEL,
    SAMPLED_TEXT,
    SHAPES,
    can_ask_client,
    full_client,
    text_of,
)
from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.upstreams import sdk_upstream

LEGACY_VERSION = "2025-11-25"
ACCEPT = {"Accept": "application/json, text/event-stream"}
STATEFUL_ONLY = "a stateless upstream issues no Mcp-Session-Id"


@dataclass(frozen=True)
class Setup:
    """One shape of the demo upstream, and the gateway route in front of it."""

    upstream_url: str
    json_response: bool
    stateless: bool
    gw: GatewayProcess
    route: str

    @property
    def url(self) -> str:
        return self.gw.route_url(self.route)


def shape_name(json_response: bool, stateless: bool) -> str:
    return f"{'json' if json_response else 'sse'}-{'stateless' if stateless else 'stateful'}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, dict[str, str]]]:
    """Every shape of the demo upstream, each behind its own route of one gateway.

    One gateway for the module: `lockgate up` takes seconds to start on a busy machine.
    """
    with ExitStack() as stack:
        urls = {
            shape_name(j, s): stack.enter_context(sdk_upstream(json_response=j, stateless=s))
            for j in (False, True)
            for s in (False, True)
        }
        profile = profile_text(upstreams=urls, routes={name: name for name in urls})
        gw = stack.enter_context(running_gateway(profile, tmp_path_factory.mktemp("gateway")))
        yield gw, urls


@pytest.fixture(scope="module", params=SHAPES)
def setup(request: pytest.FixtureRequest, stack: tuple[GatewayProcess, dict[str, str]]) -> Setup:
    json_response, stateless = request.param
    gw, urls = stack
    name = shape_name(json_response, stateless)
    return Setup(urls[name], json_response, stateless, gw, name)


# --- raw HTTP helpers ------------------------------------------------------------------


def rpc(method: str, params: dict[str, Any] | None = None, rid: int = 1) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


INITIALIZE = rpc(
    "initialize",
    {
        "protocolVersion": LEGACY_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "raw-httpx", "version": "0"},
    },
)
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def messages_of(resp: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a response, whether a JSON body or an SSE stream."""
    ctype = resp.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        obj = resp.json()
        return obj if isinstance(obj, list) else [obj]
    assert ctype.startswith("text/event-stream"), ctype
    out = []
    for block in resp.text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(
            line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")
        )
        if data:
            out.append(json.loads(data))
    return out


def open_session(client: httpx.Client, url: str) -> str | None:
    """A 2025-era initialize handshake over raw HTTP; the session id the answer carried."""
    resp = client.post(url, json=INITIALIZE, headers=ACCEPT)
    assert resp.status_code == 200, resp.text
    [reply] = messages_of(resp)
    assert reply["result"]["protocolVersion"] == LEGACY_VERSION
    sid = resp.headers.get("mcp-session-id")
    headers = session_headers(sid)
    assert client.post(url, json=INITIALIZED, headers=headers).status_code == 202
    return sid


def session_headers(sid: str | None) -> dict[str, str]:
    headers = ACCEPT | {"MCP-Protocol-Version": LEGACY_VERSION}
    if sid is not None:
        headers["Mcp-Session-Id"] = sid
    return headers


# --- the SDK client through the gateway ---------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_session_lists_calls_and_reads(setup: Setup, mode: str) -> None:
    async with full_client(setup.url, mode) as client:
        assert client.protocol_version == (LEGACY_VERSION if mode == "legacy" else "2026-07-28")
        if mode == "legacy":  # a 2026-07-28 client pinned without discover knows no serverInfo
            assert client.server_info is not None and client.server_info.name == "demo-notes"

        tools = await client.list_tools()
        assert {t.name for t in tools.tools} == DEMO_TOOLS
        delete = next(t for t in tools.tools if t.name == "delete_note")
        assert delete.annotations is not None and delete.annotations.destructive_hint is True

        added = await client.call_tool("add_note", {"title": f"via gateway {mode}", "body": "hi"})
        assert not added.is_error
        new_id = (added.structured_content or {})["id"]
        listed = await client.call_tool("list_notes", {})
        assert new_id in {n["id"] for n in (listed.structured_content or {})["result"]}
        fetched = await client.call_tool("get_note", {"id": new_id})
        assert (fetched.structured_content or {})["title"] == f"via gateway {mode}"

        prompts = await client.list_prompts()
        assert [p.name for p in prompts.prompts] == ["note_prompt"]
        prompt = await client.get_prompt("note_prompt", {"topic": "gateways"})
        assert "gateways" in str(prompt.messages[0].content)

        resources = await client.list_resources()
        assert [str(r.uri) for r in resources.resources] == ["notes://index"]
        templates = await client.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == ["notes://note/{id}"]

        read = await client.read_resource("notes://note/1")
        content = read.contents[0]
        assert isinstance(content, types.TextResourceContents)
        assert content.text.startswith("# Welcome")
        index = await client.read_resource("notes://index")
        index_content = index.contents[0]
        assert isinstance(index_content, types.TextResourceContents)
        assert new_id in {n["id"] for n in json.loads(index_content.text)}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_progress_streams_through_before_the_result(setup: Setup, mode: str) -> None:
    if setup.json_response:
        pytest.skip(JSON_DROPS_PROGRESS)
    delay_ms = 80
    seen: list[tuple[float, float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), progress, total, message))

    async with full_client(setup.url, mode) as client:
        result = await client.call_tool(
            "slow_count", {"n": 3, "delay_ms": delay_ms}, progress_callback=on_progress
        )
        done = time.monotonic()

    assert text_of(result) == "counted to 3"
    assert [(p, t, m) for _, p, t, m in seen] == [
        (1, 3, "counted 1 of 3"),
        (2, 3, "counted 2 of 3"),
        (3, 3, "counted 3 of 3"),
    ]
    # Streamed, not buffered: the first notification reached the client while the upstream
    # still had two steps of `delay_ms` to count; a buffering gateway delivers all at once.
    assert done - seen[0][0] >= delay_ms / 1000


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_sampling_round_trip(setup: Setup, mode: str) -> None:
    if not can_ask_client(mode, setup.json_response, setup.stateless):
        pytest.skip(NO_BACK_CHANNEL)
    async with full_client(setup.url, mode) as client:
        result = await client.call_tool("summarize_note", {"id": "2"})
    assert not result.is_error, text_of(result)
    assert text_of(result) == SAMPLED_TEXT
    if mode == "legacy":
        # The server's request rode the POST's stream out; the client's answer came back in.
        events = setup.gw.wait_for_events(
            lambda evs: any(
                e.get("direction") == "client" and e.get("method") == "response" for e in evs
            )
        )
        methods = {(e.get("direction"), e.get("method")) for e in events}
        assert ("server", "sampling/createMessage") in methods
        assert ("client", "response") in methods


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_elicitation_round_trip(setup: Setup, mode: str) -> None:
    if not can_ask_client(mode, setup.json_response, setup.stateless):
        pytest.skip(NO_BACK_CHANNEL)
    async with full_client(setup.url, mode) as client:
        added = await client.call_tool("add_note", {"title": "doomed", "body": "delete me"})
        note_id = (added.structured_content or {})["id"]
        result = await client.call_tool("confirm_delete", {"id": note_id})
        assert not result.is_error, text_of(result)
        assert text_of(result) == f"deleted note {note_id} (doomed)"
        gone = await client.call_tool("get_note", {"id": note_id})
        assert gone.is_error


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_without_a_way_back_the_tools_fail_clearly(setup: Setup, mode: str) -> None:
    if can_ask_client(mode, setup.json_response, setup.stateless):
        client = Client(setup.url, mode=mode, read_timeout_seconds=10)
        reason = "the client did not declare that capability"
    else:
        client = full_client(setup.url, mode)
        reason = "has no channel for a server-to-client request"
    async with client:
        for tool, capability in [("summarize_note", "sampling"), ("confirm_delete", "elicitation")]:
            result = await client.call_tool(tool, {"id": "3"})
            assert result.is_error
            assert f"{capability} is unavailable" in text_of(result)
            assert reason in text_of(result)
        assert not (await client.call_tool("get_note", {"id": "3"})).is_error


# --- sessions, DELETE and GET over raw HTTP -------------------------------------------------


def test_session_id_is_the_upstreams(setup: Setup) -> None:
    with httpx.Client(timeout=10) as client:
        sid = open_session(client, setup.url)
        if setup.stateless:
            assert sid is None, "the gateway invented a session the upstream never issued"
            return
        assert sid
        # The id works directly on the upstream: the upstream issued it, the gateway kept it.
        direct = client.post(
            setup.upstream_url, json=rpc("tools/list", rid=2), headers=session_headers(sid)
        )
        assert direct.status_code == 200
        assert {t["name"] for t in messages_of(direct)[0]["result"]["tools"]} == DEMO_TOOLS
        # A session the upstream opened directly, behind the gateway's back, is unknown to
        # the gateway: it vouches only for sessions it saw opened (issue 9, item 2).
        direct_sid = open_session(client, setup.upstream_url)
        via = client.post(
            setup.url, json=rpc("tools/list", rid=3), headers=session_headers(direct_sid)
        )
        assert via.status_code == 404, via.text
        assert "start a new session" in via.json()["error"]["message"]


def test_delete_passes_through_and_the_dead_session_gets_the_upstreams_404(setup: Setup) -> None:
    with httpx.Client(timeout=10) as client:
        if setup.stateless:
            # Nothing to delete; a session id the gateway never saw opened is unknown to it,
            # and the upstream is not asked (issue 9, item 2).
            headers = session_headers("not-a-session")
            direct = client.delete(setup.upstream_url, headers=headers)
            via = client.delete(setup.url, headers=headers)
            assert direct.status_code >= 400
            assert via.status_code == 404
            assert "start a new session" in via.json()["error"]["message"]
            return
        sid = open_session(client, setup.url)
        assert sid
        headers = session_headers(sid)
        assert client.post(setup.url, json=rpc("tools/list", rid=2), headers=headers).is_success

        deleted = client.delete(setup.url, headers=headers)
        assert deleted.status_code == 200, deleted.text

        via = client.post(setup.url, json=rpc("tools/list", rid=3), headers=headers)
        direct = client.post(setup.upstream_url, json=rpc("tools/list", rid=3), headers=headers)
        assert direct.status_code == 404  # the upstream really dropped it: DELETE reached it
        # The gateway forgot the session with the DELETE: its own 404, a JSON-RPC error.
        assert via.status_code == 404
        assert via.headers.get("content-type") == direct.headers.get("content-type")
        assert "start a new session" in via.json()["error"]["message"]

    # The audit names the session by its short hash, never by the id itself.
    hashed = session_hash(sid)
    events = setup.gw.wait_for_events(
        lambda evs: any(e.get("method") == "DELETE" and e.get("session") == hashed for e in evs)
    )
    [delete_event] = [
        e for e in events if e.get("method") == "DELETE" and e.get("session") == hashed
    ]
    assert delete_event["status"] == 200
    assert delete_event["outcome"] == "success"


def _get_stream(client: httpx.Client, url: str, sid: str | None) -> tuple[int, str, bytes]:
    """Open a GET stream and close it once the headers are in: (status, content-type, body)."""
    headers = session_headers(sid) | {"Accept": "text/event-stream"}
    with client.stream("GET", url, headers=headers) as resp:
        ctype = resp.headers.get("content-type", "")
        body = b"" if ctype.startswith("text/event-stream") else resp.read()
        return resp.status_code, ctype, body


def test_get_stream_opens_like_it_does_directly(setup: Setup) -> None:
    with httpx.Client(timeout=httpx.Timeout(10, read=5)) as client:
        # One GET stream per session: the gateway and the direct probe each get their own.
        via_sid = open_session(client, setup.url)
        direct_sid = open_session(client, setup.upstream_url)
        t0 = time.monotonic()
        via = _get_stream(client, setup.url, via_sid)
        opened_in = time.monotonic() - t0
        direct = _get_stream(client, setup.upstream_url, direct_sid)

    assert via == direct
    if not setup.stateless:
        assert via[0] == 200
        assert via[1].startswith("text/event-stream")
        # The headers came while the stream stays open: not held back until it ends.
        assert opened_in < 3


# --- audit ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_tool_call_is_audited_with_latency_and_the_log_verifies(setup: Setup) -> None:
    marker = f"audit-{time.monotonic_ns()}"
    async with full_client(setup.url, "legacy") as client:
        result = await client.call_tool("search_notes", {"query": marker})
        assert not result.is_error

    def mine(e: dict[str, Any]) -> bool:
        return e.get("event") == "tool.call" and (e.get("args") or {}).get("query") == marker

    events = setup.gw.wait_for_events(lambda evs: any(mine(e) for e in evs))
    [event] = [e for e in events if mine(e)]
    assert event["name"] == "search_notes"
    assert event["method"] == "tools/call"
    assert event["route"] == setup.route and event["upstream"] == setup.route
    assert event["outcome"] == "success"
    assert event["status"] == 200
    latency = event["latency_ms"]
    assert isinstance(latency, dict)
    assert latency["total"] > 0
    assert 0 <= latency["upstream"] <= latency["total"]
    if not setup.stateless:
        assert event["session"]

    # The gateway may be appending a line for another exchange while we read: a torn last
    # line is retried, anything else is a broken chain.
    for _ in range(20):
        checked = verify(setup.gw.audit_path)
        if checked.ok or not (checked.reason or "").startswith("truncated last line"):
            break
        time.sleep(0.05)
    assert checked.ok, checked
    assert checked.lines >= event["seq"]
