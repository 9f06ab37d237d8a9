"""tools/call arguments against the listed inputSchema, over real HTTP, real `mcp` SDK upstream.

The demo notes server's `add_note` has a side effect (a new note): after a refused call,
`list_notes` through the gateway still shows the three seeded notes, so the upstream never
ran it. Directly, the same bad call gets the SDK's own validation text (pydantic's), which
the gateway's answer must not carry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.upstreams import sdk_upstream

HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2025-11-25",
}
SECRET = "sk-live-not-for-logs"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, GatewayProcess]]:
    with sdk_upstream(json_response=True, stateless=True) as url:
        profile = profile_text(
            upstreams={"notes": url}, routes={"notes": "notes", "fresh": "notes"}
        )
        with running_gateway(profile, tmp_path_factory.mktemp("arguments")) as gw:
            yield url, gw


def rpc(url: str, method: str, params: dict[str, Any], rpc_id: int | str = 1) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params}
    resp = httpx.post(url, content=json.dumps(body), headers=HEADERS, timeout=10)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def note_count(gw: GatewayProcess) -> int:
    out = rpc(gw.route_url("notes"), "tools/call", {"name": "list_notes", "arguments": {}})
    return len(out["result"]["structuredContent"]["result"])


BAD = {"name": "add_note", "arguments": {"title": ["x"], "body": SECRET}}


def test_the_upstream_itself_answers_with_its_internals(setup: tuple[str, GatewayProcess]) -> None:
    url, _ = setup
    out = rpc(url, "tools/call", BAD)
    text = json.dumps(out)
    assert "validation error" in text or "pydantic" in text, text


def test_a_bad_argument_is_refused_before_the_upstream(setup: tuple[str, GatewayProcess]) -> None:
    _, gw = setup
    route = gw.route_url("notes")
    rpc(route, "tools/list", {})
    before = note_count(gw)
    out = rpc(route, "tools/call", BAD, rpc_id="call-7")
    assert out["id"] == "call-7" and out["error"]["code"] == -32602, out
    message = out["error"]["message"]
    assert "arguments.title" in message and "string" in message
    assert SECRET not in json.dumps(out) and "pydantic" not in message
    assert note_count(gw) == before  # add_note never ran
    ok = rpc(route, "tools/call", {"name": "add_note", "arguments": {"title": "t", "body": "b"}})
    assert "error" not in ok and note_count(gw) == before + 1


def test_the_upstreams_internals_never_reach_the_client(setup: tuple[str, GatewayProcess]) -> None:
    """On a route that never listed its tools the call passes; its pydantic answer does not."""
    _, gw = setup
    out = rpc(gw.route_url("fresh"), "tools/call", BAD, rpc_id=9)
    assert out["id"] == 9 and out["result"]["isError"] is True, out
    text = json.dumps(out)
    assert "pydantic" not in text and "validation error" not in text and "input_value" not in text
    assert "'notes'" in out["result"]["content"][0]["text"]
