"""One MCP exercise of the demo upstream, run directly and through the gateway.

Why it exists: `tests/e2e/test_upstreams_direct.py` pins down what each transport shape of the
demo upstream does with no gateway, and `tests/e2e/test_gateway_sdk.py` expects the same answers
through `lockgate up`. Both call the exercises here with a URL (the upstream's, or the route's),
so the two sides can never drift apart: a gateway failure is never a fixture problem.

What each shape can carry, as the SDK 2.3 implements it:

- progress notifications ride the POST's SSE stream: none arrive in JSON-response mode;
- sampling and elicitation on a 2025-era connection are server-to-client requests, possible
  only on a stateful SSE connection; on 2026-07-28 they come back as an `InputRequiredResult`
  and the client retries, which works in every shape.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext

SHAPES = [
    pytest.param((False, False), id="sse-stateful"),
    pytest.param((False, True), id="sse-stateless"),
    pytest.param((True, False), id="json-stateful"),
    pytest.param((True, True), id="json-stateless"),
]
MODES = [pytest.param("legacy", id="legacy"), pytest.param("2026-07-28", id="2026")]
LEGACY_VERSION = "2025-11-25"

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


@dataclass(frozen=True)
class Shape:
    """One transport shape of the demo upstream, at `url` (the upstream or a route to it)."""

    url: str
    json_response: bool
    stateless: bool

    def can_ask_client(self, mode: str) -> bool:
        return can_ask_client(mode, self.json_response, self.stateless)


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


async def read_welcome_note(client: Client) -> None:
    """The resource template lists `notes://note/{id}`, and note 1 reads as the welcome note."""
    templates = await client.list_resource_templates()
    assert [t.uri_template for t in templates.resource_templates] == ["notes://note/{id}"]
    read = await client.read_resource("notes://note/1")
    content = read.contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert content.text.startswith("# Welcome")


# --- the exercises ---------------------------------------------------------------------------


async def exercise_session(shape: Shape, mode: str, title: str) -> None:
    """A whole session: tools, a note added, listed and fetched, prompts, resources."""
    async with full_client(shape.url, mode) as client:
        assert client.protocol_version == (LEGACY_VERSION if mode == "legacy" else "2026-07-28")
        if mode == "legacy":  # a 2026-07-28 client pinned without discover knows no serverInfo
            assert client.server_info is not None and client.server_info.name == "demo-notes"

        tools = await client.list_tools()
        assert {t.name for t in tools.tools} == DEMO_TOOLS
        delete = next(t for t in tools.tools if t.name == "delete_note")
        assert delete.annotations is not None and delete.annotations.destructive_hint is True

        added = await client.call_tool("add_note", {"title": title, "body": "hello"})
        assert not added.is_error
        assert added.structured_content is not None
        new_id = added.structured_content["id"]
        listed = await client.call_tool("list_notes", {})
        assert not listed.is_error
        assert new_id in {n["id"] for n in (listed.structured_content or {})["result"]}
        fetched = await client.call_tool("get_note", {"id": new_id})
        assert (fetched.structured_content or {})["title"] == title

        prompts = await client.list_prompts()
        assert [p.name for p in prompts.prompts] == ["note_prompt"]
        prompt = await client.get_prompt("note_prompt", {"topic": "gateways"})
        assert "gateways" in str(prompt.messages[0].content)

        resources = await client.list_resources()
        assert [str(r.uri) for r in resources.resources] == ["notes://index"]
        await read_welcome_note(client)
        index = await client.read_resource("notes://index")
        index_content = index.contents[0]
        assert isinstance(index_content, types.TextResourceContents)
        assert new_id in {n["id"] for n in json.loads(index_content.text)}


async def exercise_progress(shape: Shape, mode: str, delay_ms: int) -> None:
    """`slow_count` streams its three progress notifications before the result."""
    if shape.json_response:
        pytest.skip(JSON_DROPS_PROGRESS)
    seen: list[tuple[float, float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), progress, total, message))

    async with full_client(shape.url, mode) as client:
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
    # Streamed, not buffered: the first notification reached the client while the tool still
    # had two steps of `delay_ms` to count; a buffering hop delivers all at once.
    assert done - seen[0][0] >= delay_ms / 1000


async def exercise_sampling(shape: Shape, mode: str) -> None:
    """`summarize_note` asks the client's model and returns its text."""
    if not shape.can_ask_client(mode):
        pytest.skip(NO_BACK_CHANNEL)
    async with full_client(shape.url, mode) as client:
        result = await client.call_tool("summarize_note", {"id": "2"})
    assert not result.is_error, text_of(result)
    assert text_of(result) == SAMPLED_TEXT


async def exercise_elicitation(shape: Shape, mode: str) -> None:
    """`confirm_delete` asks the client to confirm, then deletes the note."""
    if not shape.can_ask_client(mode):
        pytest.skip(NO_BACK_CHANNEL)
    async with full_client(shape.url, mode) as client:
        added = await client.call_tool("add_note", {"title": "doomed", "body": "delete me"})
        note_id = (added.structured_content or {})["id"]
        result = await client.call_tool("confirm_delete", {"id": note_id})
        assert not result.is_error, text_of(result)
        assert text_of(result) == f"deleted note {note_id} (doomed)"
        gone = await client.call_tool("get_note", {"id": note_id})
        assert gone.is_error


async def exercise_no_way_back(shape: Shape, mode: str) -> None:
    """Without a channel, or without the capability, the asking tools fail with a reason."""
    if shape.can_ask_client(mode):
        # A channel exists, so take the capability away instead: a client with no callbacks.
        client = Client(shape.url, mode=mode, read_timeout_seconds=10)
        reason = "the client did not declare that capability"
    else:
        client = full_client(shape.url, mode)
        reason = "has no channel for a server-to-client request"
    async with client:
        for tool, capability in [("summarize_note", "sampling"), ("confirm_delete", "elicitation")]:
            result = await client.call_tool(tool, {"id": "3"})
            assert result.is_error
            assert f"{capability} is unavailable" in text_of(result)
            assert reason in text_of(result)
        assert not (await client.call_tool("get_note", {"id": "3"})).is_error


class DemoExercises:
    """The exercises as tests, for a `Test...` class in a test module to inherit.

    The module gives the class a `shape` fixture: the URL to exercise (the upstream itself, or
    a gateway route in front of it) and its shape. `after_sampling` is where a subclass adds
    what only its side can check once a sampling round trip worked.
    """

    note_title = "from"
    progress_delay_ms = 60

    def after_sampling(self, shape: Shape, mode: str) -> None:
        """Nothing more to check by default."""

    @pytest.mark.anyio
    @pytest.mark.parametrize("mode", MODES)
    async def test_session_lists_calls_and_reads(self, shape: Shape, mode: str) -> None:
        await exercise_session(shape, mode, title=f"{self.note_title} {mode}")

    @pytest.mark.anyio
    @pytest.mark.parametrize("mode", MODES)
    async def test_progress_arrives_before_the_result(self, shape: Shape, mode: str) -> None:
        await exercise_progress(shape, mode, delay_ms=self.progress_delay_ms)

    @pytest.mark.anyio
    @pytest.mark.parametrize("mode", MODES)
    async def test_sampling_returns_the_clients_text(self, shape: Shape, mode: str) -> None:
        await exercise_sampling(shape, mode)
        self.after_sampling(shape, mode)

    @pytest.mark.anyio
    @pytest.mark.parametrize("mode", MODES)
    async def test_elicitation_confirms_the_delete(self, shape: Shape, mode: str) -> None:
        await exercise_elicitation(shape, mode)

    @pytest.mark.anyio
    @pytest.mark.parametrize("mode", MODES)
    async def test_without_a_way_back_the_tools_fail_clearly(self, shape: Shape, mode: str) -> None:
        await exercise_no_way_back(shape, mode)
