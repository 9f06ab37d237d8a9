"""Guardrails through a real gateway, with the official SDK client and real SDK upstreams.

Why it exists: redaction, findings, pins and limits are only worth what reaches the client and
the upstream. Each test drives `lockgate up` in front of the demo notes server (for data going
up and coming back) and the demo "lab" server (a leaky tool, a poisoned tool, a rug pull), in
JSON and SSE response modes, and looks at three places: what the client got, what the upstream
stored, and what the audit log says (which must never hold the secret).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext

from lockgate.cli.demo.lab import INJECTING, LEAKY, POISONED, RUG_PULL, UPDATE, BackgroundLab
from tests.support.demo_mcp import text_of
from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.mcp_http import messages_of, open_session, rpc, session_headers
from tests.support.upstreams import sdk_upstream

pytestmark = pytest.mark.anyio

TOKEN = "ghp_" + "Zq3T9xWv2LmN8pRs4KdH6fYb1CjE5aUo7GiQ"
CARD = "4111 1111 1111 1111"


@dataclass(frozen=True)
class Stack:
    gw: GatewayProcess
    lab_token: str
    json_response: bool


@pytest.fixture(scope="module", params=[False, True], ids=["sse", "json"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    json_response: bool = request.param
    with ExitStack() as es:
        notes = es.enter_context(sdk_upstream(json_response=json_response))
        lab = es.enter_context(BackgroundLab(json_response=json_response))
        fresh = es.enter_context(BackgroundLab(json_response=json_response))
        profile = profile_text(
            {"notes": notes, "lab": lab.mcp_url, "fresh": fresh.mcp_url},
            {
                "notes": "notes",
                "lab": "lab",
                "cards": "notes",
                "strict": "lab",
                "limited": "notes",
                "fresh": "fresh",
                "raw": "notes",
            },
            '[routes.cards.guardrails.redact.up]\nCARD = "block"\n'
            '[routes.strict.guardrails.findings]\nresults = "withhold"\n'
            '[routes.limited.guardrails.limits]\ntool = "2/minute"\n'
            "[routes.raw.guardrails]\nenabled = false\n",
        )
        gw = es.enter_context(running_gateway(profile, tmp_path_factory.mktemp("gw")))
        yield Stack(gw, lab.token, json_response)


# Hex the chain and the log write themselves (macs, session and pin hashes): random digits
# that hold "4111" now and then, which is no card leaking.
_HEX_KEYS = frozenset({"prev", "mac", "hash", "session", "old_sha256", "new_sha256", "sha256"})


def _audit_text(gw: GatewayProcess) -> str:
    """The audit log's events as text, without the hex digests the log itself writes."""
    if not gw.audit_path.exists():
        return ""
    lines = gw.audit_path.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    kept = [{k: v for k, v in e.items() if k not in _HEX_KEYS} for e in events]
    return "\n".join(json.dumps(e, ensure_ascii=False) for e in kept)


async def test_a_secret_in_a_result_is_masked_and_the_email_only_logged(stack: Stack) -> None:
    async with Client(stack.gw.route_url("lab"), read_timeout_seconds=10) as client:
        result = await client.call_tool(LEAKY, {})
    text = text_of(result)
    assert "GITHUB_TOKEN=[REDACTED:GITHUB_TOKEN]" in text
    assert stack.lab_token not in text
    assert "ops-team@acme-corp.com" in text  # contact data: logged, not masked
    events = stack.gw.matching_events(lambda e: e.get("name") == LEAKY and "findings" in e)
    assert events, "the call's event carries its findings"
    rules = {
        (f["rule"], f["action"], f["direction"])
        for f in events[-1]["findings"]
        if f["kind"] == "redaction"
    }
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


async def test_a_poisoned_tool_is_hidden_and_its_call_refused(stack: Stack) -> None:
    async with Client(stack.gw.route_url("lab"), read_timeout_seconds=10) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert LEAKY in names and POISONED not in names
        with pytest.raises(Exception, match=r"HIDDEN_INSTRUCTIONS|SENSITIVE_FILE_ACCESS"):
            await client.call_tool(POISONED, {"city": "Oslo", "notes": "x"})
    listed = stack.gw.matching_events(
        lambda e: e.get("method") == "tools/list" and e.get("route") == "lab"
    )
    hidden = [
        f
        for e in listed
        for f in e.get("findings", [])
        if f.get("kind") == "finding" and f.get("action") == "hide"
    ]
    assert hidden and all(f["target"] == f"tool:{POISONED}" for f in hidden)


async def test_a_rug_pull_is_hidden_and_its_call_refused_until_approved(stack: Stack) -> None:
    async with Client(stack.gw.route_url("lab"), read_timeout_seconds=10) as client:
        first = {t.name for t in (await client.list_tools()).tools}
        assert RUG_PULL in first
        ok = await client.call_tool(RUG_PULL, {"url": "https://example.com"})
        assert not ok.is_error
        await client.call_tool(UPDATE, {})
        after = {t.name for t in (await client.list_tools()).tools}
        assert RUG_PULL not in after
        with pytest.raises(Exception, match="lockgate tools approve"):
            await client.call_tool(RUG_PULL, {"url": "https://example.com"})
    changed = stack.gw.matching_events(lambda e: e.get("event") == "pin.changed")
    assert changed and changed[-1]["name"] == RUG_PULL and changed[-1]["outcome"] == "blocked"
    # Someone reviews the diff and approves it, from another process: the call goes through.
    home = stack.gw.audit_path.parent
    env = {**os.environ, "LOCKGATE_HOME": str(home), "LOCKGATE_AUDIT_LOG": str(stack.gw.audit_path)}
    diff = subprocess.run(
        [sys.executable, "-m", "lockgate.cli", "tools", "diff", "lab", RUG_PULL],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert diff.returncode == 0 and "partner" in diff.stdout, diff.stdout + diff.stderr
    approved = subprocess.run(
        [sys.executable, "-m", "lockgate.cli", "tools", "approve", "lab", RUG_PULL],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert approved.returncode == 0, approved.stdout + approved.stderr
    async with Client(stack.gw.route_url("lab"), read_timeout_seconds=10) as client:
        assert RUG_PULL in {t.name for t in (await client.list_tools()).tools}
        ok = await client.call_tool(RUG_PULL, {"url": "https://example.com"})
        assert not ok.is_error
    assert stack.gw.matching_events(lambda e: e.get("event") == "pin.approved")


def test_a_call_to_a_tool_never_listed_is_checked_against_the_upstreams_list(
    stack: Stack,
) -> None:
    """A client that calls without listing (a cached list, another gateway) gets the same
    answer as one that listed: the gateway lists the upstream's tools itself first."""
    url = stack.gw.route_url("fresh")  # no client lists on this route's upstream
    with httpx.Client(timeout=10) as http:
        sid = open_session(http, url)
        poisoned = http.post(
            url,
            json=rpc("tools/call", {"name": POISONED, "arguments": {"city": "Oslo"}}, 2),
            headers=session_headers(sid),
        )
        leaky = http.post(
            url,
            json=rpc("tools/call", {"name": LEAKY, "arguments": {}}, 3),
            headers=session_headers(sid),
        )
    [refused] = [m for m in messages_of(poisoned) if m.get("id") == 2]
    assert refused["error"]["data"]["rule"] in ("HIDDEN_INSTRUCTIONS", "SENSITIVE_FILE_ACCESS")
    [answer] = [m for m in messages_of(leaky) if m.get("id") == 3]
    assert "[REDACTED:GITHUB_TOKEN]" in answer["result"]["content"][0]["text"]


async def test_an_injection_in_a_result_is_withheld_on_a_strict_route(stack: Stack) -> None:
    async with Client(stack.gw.route_url("strict"), read_timeout_seconds=10) as client:
        with pytest.raises(Exception, match="RESULT_INJECTION"):
            await client.call_tool(INJECTING, {})
    async with Client(stack.gw.route_url("lab"), read_timeout_seconds=10) as client:
        warned = await client.call_tool(INJECTING, {})  # the default only warns
    assert "Ignore all previous" in text_of(warned)
    events = stack.gw.matching_events(lambda e: e.get("name") == INJECTING and "findings" in e)
    actions = {
        f["action"] for e in events for f in e["findings"] if f["rule"] == "RESULT_INJECTION"
    }
    assert actions == {"withhold", "warn"}


def test_a_rate_limit_answers_429_with_retry_after_but_never_blocks_initialize(
    stack: Stack,
) -> None:
    url = stack.gw.route_url("limited")
    with httpx.Client(timeout=10) as http:
        sid = open_session(http, url)
        codes = []
        for i in range(3):
            resp = http.post(
                url,
                json=rpc("tools/call", {"name": "get_note", "arguments": {"id": "1"}}, 10 + i),
                headers=session_headers(sid),
            )
            codes.append(resp.status_code)
        assert codes == [200, 200, 429]
        assert int(resp.headers["retry-after"]) >= 1
        assert resp.json()["id"] == 12 and resp.json()["error"]["data"]["rule"] == "RATE_LIMIT"
        # Other tools have their own bucket; pings and a new session pass.
        other = http.post(
            url,
            json=rpc("tools/call", {"name": "list_notes", "arguments": {}}, 20),
            headers=session_headers(sid),
        )
        assert other.status_code == 200
        ping = http.post(url, json=rpc("ping", {}, 21), headers=session_headers(sid))
        assert ping.status_code == 200
        assert open_session(http, url) is not None


async def test_a_secret_in_a_sampling_request_reaches_the_client_masked(stack: Stack) -> None:
    """The upstream asks the client's model to summarize a note holding a token (stored
    through a route without guardrails): the sampling request the client sees is masked."""
    if stack.json_response:
        pytest.skip("a 2025-era JSON-response connection has no way back for sampling")
    async with Client(stack.gw.route_url("raw"), read_timeout_seconds=10) as raw:
        added = await raw.call_tool("add_note", {"title": "bot", "body": f"token {TOKEN}"})
        note_id = (added.structured_content or {})["id"]
    asked: list[str] = []

    async def sampling(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        asked.extend(getattr(m.content, "text", "") for m in params.messages)
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="ok"), model="m"
        )

    async with Client(
        stack.gw.route_url("notes"),
        mode="legacy",
        sampling_callback=sampling,
        read_timeout_seconds=10,
    ) as client:
        result = await client.call_tool("summarize_note", {"id": note_id})
    assert not result.is_error
    assert asked and TOKEN not in " ".join(asked)
    assert "token [REDACTED:GITHUB_TOKEN]" in " ".join(asked)
