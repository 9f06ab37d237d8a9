"""The test upstreams work on their own, driven by the official SDK client with no gateway.

Why it exists: gateway tests compare "through lockgate" with "direct"; this file pins down the
direct side, so a gateway test failure is never a fixture problem. Every transport shape of
the demo upstream (JSON or SSE responses x stateful or stateless) is exercised with both
protocol eras of the SDK client: the 2025 initialize handshake (`mode="legacy"`) and the
stateless 2026-07-28 revision.

What each shape can carry, as the SDK 2.3 implements it:

- progress notifications ride the POST's SSE stream: none arrive in JSON-response mode;
- sampling and elicitation on a 2025-era connection are server-to-client requests, possible
  only on a stateful SSE connection; on 2026-07-28 they come back as an `InputRequiredResult`
  and the client retries, which works in every shape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext

from tests.support.upstreams import sdk_upstream

SHAPES = [
    pytest.param((False, False), id="sse-stateful"),
    pytest.param((False, True), id="sse-stateless"),
    pytest.param((True, False), id="json-stateful"),
    pytest.param((True, True), id="json-stateless"),
]
MODES = [pytest.param("legacy", id="legacy"), pytest.param("2026-07-28", id="2026")]

DEMO_TOOLS = {
    "list_notes",
    "get_note",
    "search_notes",
    "add_note",
    "delete_note",
    "slow_count",
    "summarize_note",
    "confirm_delete",
}

SAMPLED_TEXT = "A one-line summary, from the test's fake model."

JSON_DROPS_PROGRESS = (
    "the SDK's JSON-response mode has no stream for request-scoped notifications and drops "
    "them (StreamableHTTPServerTransport, is_json_response_enabled)"
)
NO_BACK_CHANNEL = (
    "a 2025-era connection carries sampling/elicitation only as server-to-client requests, "
    "which the SDK refuses (NoBackChannelError) in JSON-response or stateless mode"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=SHAPES)
def upstream(request: pytest.FixtureRequest) -> Iterator[tuple[str, bool, bool]]:
    json_response, stateless = request.param
    with sdk_upstream(json_response=json_response, stateless=stateless) as url:
        yield url, json_response, stateless


async def fake_sampling(
    context: ClientRequestContext, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=SAMPLED_TEXT),
        model="fake-model",
    )


async def accept_elicitation(
    context: ClientRequestContext, params: types.ElicitRequestParams
) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"confirm": True})


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def full_client(url: str, mode: str) -> Client:
    return Client(
        url,
        mode=mode,
        sampling_callback=fake_sampling,
        elicitation_callback=accept_elicitation,
        read_timeout_seconds=10,
    )


def can_ask_client(mode: str, json_response: bool, stateless: bool) -> bool:
    return mode != "legacy" or not (json_response or stateless)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_session_lists_calls_and_reads(upstream: tuple[str, bool, bool], mode: str) -> None:
    url, _, _ = upstream
    async with full_client(url, mode) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")

        tools = await client.list_tools()
        assert {t.name for t in tools.tools} == DEMO_TOOLS
        delete = next(t for t in tools.tools if t.name == "delete_note")
        assert delete.annotations is not None and delete.annotations.destructive_hint is True

        added = await client.call_tool("add_note", {"title": f"from {mode}", "body": "hello"})
        assert not added.is_error
        assert added.structured_content is not None
        new_id = added.structured_content["id"]
        listed = await client.call_tool("list_notes", {})
        assert not listed.is_error
        assert new_id in {n["id"] for n in (listed.structured_content or {})["result"]}

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


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_progress_arrives_before_the_result(
    upstream: tuple[str, bool, bool], mode: str
) -> None:
    url, json_response, _ = upstream
    if json_response:
        pytest.skip(JSON_DROPS_PROGRESS)
    delay_ms = 60
    seen: list[tuple[float, float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), progress, total))

    async with full_client(url, mode) as client:
        result = await client.call_tool(
            "slow_count", {"n": 3, "delay_ms": delay_ms}, progress_callback=on_progress
        )
        done = time.monotonic()

    assert text_of(result) == "counted to 3"
    assert [(p, t) for _, p, t in seen] == [(1, 3), (2, 3), (3, 3)]
    # Streamed, not buffered: the first notification came while the tool was still counting.
    assert done - seen[0][0] >= delay_ms / 1000


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_sampling_returns_the_clients_text(
    upstream: tuple[str, bool, bool], mode: str
) -> None:
    url, json_response, stateless = upstream
    if not can_ask_client(mode, json_response, stateless):
        pytest.skip(NO_BACK_CHANNEL)
    async with full_client(url, mode) as client:
        result = await client.call_tool("summarize_note", {"id": "2"})
    assert not result.is_error, text_of(result)
    assert text_of(result) == SAMPLED_TEXT


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_elicitation_confirms_the_delete(upstream: tuple[str, bool, bool], mode: str) -> None:
    url, json_response, stateless = upstream
    if not can_ask_client(mode, json_response, stateless):
        pytest.skip(NO_BACK_CHANNEL)
    async with full_client(url, mode) as client:
        added = await client.call_tool("add_note", {"title": "doomed", "body": "delete me"})
        note_id = (added.structured_content or {})["id"]
        result = await client.call_tool("confirm_delete", {"id": note_id})
        assert not result.is_error, text_of(result)
        assert text_of(result) == f"deleted note {note_id} (doomed)"
        gone = await client.call_tool("get_note", {"id": note_id})
        assert gone.is_error


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_without_a_way_back_the_tools_fail_clearly(
    upstream: tuple[str, bool, bool], mode: str
) -> None:
    url, json_response, stateless = upstream
    if can_ask_client(mode, json_response, stateless):
        # A channel exists, so take the capability away instead: a client with no callbacks.
        client = Client(url, mode=mode, read_timeout_seconds=10)
        reason = "the client did not declare that capability"
    else:
        client = full_client(url, mode)
        reason = "has no channel for a server-to-client request"
    async with client:
        for tool, capability in [("summarize_note", "sampling"), ("confirm_delete", "elicitation")]:
            result = await client.call_tool(tool, {"id": "3"})
            assert result.is_error
            assert f"{capability} is unavailable" in text_of(result)
            assert reason in text_of(result)
        assert not (await client.call_tool("get_note", {"id": "3"})).is_error


def test_host_and_origin_checks_admit_a_local_gateway() -> None:
    """A gateway on another loopback port forwards its own Host; a foreign Host or Origin fails."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    with sdk_upstream(json_response=True, stateless=True) as url:

        def post(extra: dict[str, str]) -> int:
            return httpx.post(url, json=initialize, headers=headers | extra, timeout=5).status_code

        assert post({"Host": "127.0.0.1:8787", "Origin": "http://127.0.0.1:8787"}) == 200
        assert post({"Host": "localhost:8787", "Origin": "http://localhost:8787"}) == 200
        assert post({"Host": "evil.example:8787"}) == 421
        assert post({"Host": "127.0.0.1:8787", "Origin": "https://evil.example"}) == 403
