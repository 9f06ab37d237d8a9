"""Guardrails through a real gateway, with the official SDK client and real SDK upstreams.

Why it exists: redaction, findings, pins and limits are only worth what reaches the client and
the upstream. Each test drives `lockgate up` in front of the demo notes server (for data going
up and coming back) and the demo "lab" server (a leaky tool, a poisoned tool, a rug pull), in
JSON and SSE response modes, and looks at three places: what the client got, what the upstream
stored, and what the audit log says (which must never hold the secret).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
from mcp import Client

from lockgate.cli.demo.lab import LEAKY, BackgroundLab
from tests.support.demo_mcp import text_of
from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.upstreams import sdk_upstream

pytestmark = pytest.mark.anyio

TOKEN = "ghp_" + "Zq3T9xWv2LmN8pRs4KdH6fYb1CjE5aUo7GiQ"
CARD = "4111 1111 1111 1111"


@dataclass(frozen=True)
class Stack:
    gw: GatewayProcess
    lab_token: str


@pytest.fixture(scope="module", params=[False, True], ids=["sse", "json"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    json_response: bool = request.param
    with ExitStack() as es:
        notes = es.enter_context(sdk_upstream(json_response=json_response))
        lab = es.enter_context(BackgroundLab(json_response=json_response))
        profile = profile_text(
            {"notes": notes, "lab": lab.mcp_url},
            {"notes": "notes", "lab": "lab", "cards": "notes"},
            '[routes.cards.guardrails.redact.up]\nCARD = "block"\n',
        )
        gw = es.enter_context(running_gateway(profile, tmp_path_factory.mktemp("gw")))
        yield Stack(gw, lab.token)


def _audit_text(gw: GatewayProcess) -> str:
    return gw.audit_path.read_text(encoding="utf-8") if gw.audit_path.exists() else ""


async def test_a_secret_in_a_result_is_masked_and_the_email_only_logged(stack: Stack) -> None:
    async with Client(stack.gw.route_url("lab"), read_timeout_seconds=10) as client:
        result = await client.call_tool(LEAKY, {})
    text = text_of(result)
    assert "GITHUB_TOKEN=[REDACTED:GITHUB_TOKEN]" in text
    assert stack.lab_token not in text
    assert "ops-team@acme-corp.com" in text  # contact data: logged, not masked
    events = stack.gw.matching_events(lambda e: e.get("name") == LEAKY and "findings" in e)
    assert events, "the call's event carries its findings"
    rules = {(f["rule"], f["action"], f["direction"]) for f in events[-1]["findings"]}
    assert ("GITHUB_TOKEN", "mask", "down") in rules
    assert ("EMAIL", "log", "down") in rules
    assert stack.lab_token not in _audit_text(stack.gw)


async def test_a_secret_in_arguments_never_reaches_the_upstream(stack: Stack) -> None:
    async with Client(stack.gw.route_url("notes"), read_timeout_seconds=10) as client:
        added = await client.call_tool(
            "add_note", {"title": "deploy", "body": f"use token {TOKEN} for the bot"}
        )
        assert not added.is_error
        note_id = (added.structured_content or {})["id"]
        # What the upstream stored comes back as it was stored: masked on the way up.
        fetched = await client.call_tool("get_note", {"id": note_id})
    body = (fetched.structured_content or {})["body"]
    assert body == "use token [REDACTED:GITHUB_TOKEN] for the bot"
    assert TOKEN not in _audit_text(stack.gw)


async def test_a_blocked_type_refuses_the_call_before_the_upstream(stack: Stack) -> None:
    async with Client(stack.gw.route_url("cards"), read_timeout_seconds=10) as client:
        before = await client.call_tool("list_notes", {})
        count = len((before.structured_content or {})["result"])
        with pytest.raises(Exception, match="CARD"):
            await client.call_tool("add_note", {"title": "pay", "body": f"card {CARD}"})
        after = await client.call_tool("list_notes", {})
    assert len((after.structured_content or {})["result"]) == count  # nothing was stored
    events = stack.gw.matching_events(lambda e: e.get("outcome") == "blocked")
    assert events and events[-1]["findings"][0]["rule"] == "CARD"
    assert "4111" not in _audit_text(stack.gw)
