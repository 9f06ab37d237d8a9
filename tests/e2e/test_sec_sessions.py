"""Sessions are bound to the user, client and route that opened them (issue 9, item 2).

Why it exists: an `Mcp-Session-Id` is not a credential, yet the upstream treats it as the
whole of a session: whoever presents it can call tools in it, open its GET stream, end it,
and answer the server-to-client requests it has pending. Through the gateway, a second
signed-in user who learned the first user's session id (from a log, a screen, the audit
view) could do all of that, and so could the first user's token for another route in front
of the same upstream. The gateway now learns each session from the upstream's answer to
`initialize` and answers 404 (the spec's "unknown session": clients start a new one) to any
request carrying it from another user, client or route, with a `session.refused` audit event.
The audit and `watch` carry only a short hash of the session id, never the id itself.

A real gateway (`kind = "oidc"`) in front of `oidc-provider-mock` and the demo upstream (SSE,
stateful); tokens come from the real sign-in flow; the victim is the official `mcp` SDK client
or raw HTTP, the intruder raw HTTP.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client

from lockgate.audit.verify import verify
from tests.support.demo_mcp import text_of
from tests.support.gateway import profile_text, running_gateway
from tests.support.oauth import ENV, sync_sign_in
from tests.support.oidc_mock import OidcStack, oidc_identity, oidc_mock
from tests.support.upstreams import sdk_upstream

USERS = {
    "alice": {"email": "alice@example.com", "groups": ["eng"]},
    "bob": {"email": "bob@example.com", "groups": ["eng"]},
}
VERSION = "2025-11-25"
ACCEPT = "application/json, text/event-stream"


@dataclass
class Stack(OidcStack):
    upstream_url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ExitStack() as es:
        mock = es.enter_context(oidc_mock(claims=USERS))
        notes = es.enter_context(sdk_upstream())
        # Two routes in front of one upstream: the upstream itself would honour a session id
        # opened on either of them.
        routes = {"notes": "notes", "notes-too": "notes"}
        profile = profile_text({"notes": notes}, routes, identity=oidc_identity(mock.issuer))
        gw = es.enter_context(
            running_gateway(profile, tmp_path_factory.mktemp("sessions"), env=ENV)
        )
        yield Stack(gw, mock, notes)


@pytest.fixture(scope="module")
def tokens(stack: Stack) -> dict[str, str]:
    """Gateway access tokens from the real sign-in flow, each for its own registered client."""
    return {
        "alice": sync_sign_in(stack, "notes", "alice"),
        "alice-other-client": sync_sign_in(stack, "notes", "alice"),
        "alice-other-route": sync_sign_in(stack, "notes-too", "alice"),
        "bob": sync_sign_in(stack, "notes", "bob"),
    }


def short_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()[:12]


def headers(token: str, sid: str | None = None) -> dict[str, str]:
    out = {
        "Accept": ACCEPT,
        "Authorization": f"Bearer {token}",
        "MCP-Protocol-Version": VERSION,
    }
    if sid is not None:
        out["Mcp-Session-Id"] = sid
    return out


def rpc(method: str, params: dict[str, Any] | None = None, rid: int = 1) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def open_session(url: str, token: str) -> str:
    """A 2025-era handshake over raw HTTP through the gateway; the session id it carried."""
    init = rpc(
        "initialize",
        {
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    )
    r = httpx.post(url, json=init, headers=headers(token))
    assert r.status_code == 200, r.text
    sid = r.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert httpx.post(url, json=note, headers=headers(token, sid)).status_code == 202
    return sid


def list_tools(url: str, token: str, sid: str) -> httpx.Response:
    return httpx.post(url, json=rpc("tools/list", rid=2), headers=headers(token, sid))


def refused_events(stack: Stack, sid: str, user: str, n: int = 1) -> list[dict[str, Any]]:
    def mine(e: dict[str, Any]) -> bool:
        return (
            e.get("event") == "session.refused"
            and e.get("session") == short_hash(sid)
            and e.get("user") == user
        )

    events = stack.gw.wait_for_events(lambda evs: sum(mine(e) for e in evs) >= n)
    return [e for e in events if mine(e)]


def alices_session(stack: Stack, tokens: dict[str, str]) -> tuple[str, str]:
    """Alice opens a session on route `notes`: the route's URL and the session id."""
    url = stack.gw.route_url("notes")
    return url, open_session(url, tokens["alice"])


def assert_404(r: httpx.Response) -> None:
    assert r.status_code == 404, (r.status_code, r.text[:300])
    body = r.json()
    assert body["error"]["code"] == -32600 and "new session" in body["error"]["message"]


def test_another_user_presenting_a_session_id_gets_404(
    stack: Stack, tokens: dict[str, str]
) -> None:
    url, sid = alices_session(stack, tokens)
    assert list_tools(url, tokens["alice"], sid).status_code == 200

    # Bob holds a valid token for the same route, and alice's session id.
    call = rpc("tools/call", {"name": "get_note", "arguments": {"id": "1"}}, rid=3)
    assert_404(httpx.post(url, json=call, headers=headers(tokens["bob"], sid)))
    assert_404(list_tools(url, tokens["bob"], sid))
    with httpx.stream(
        "GET", url, headers=headers(tokens["bob"], sid) | {"Accept": "text/event-stream"}
    ) as stream:
        assert stream.status_code == 404
    assert httpx.delete(url, headers=headers(tokens["bob"], sid)).status_code == 404

    # Bob's DELETE did not reach the upstream: alice's session is alive and hers.
    assert list_tools(url, tokens["alice"], sid).status_code == 200

    events = refused_events(stack, sid, "bob", n=4)
    assert len(events) >= 4
    for e in events:
        assert e["route"] == "notes" and e["outcome"] == "denied"
        assert e["reason"] == "other_user"


def test_the_same_users_other_client_gets_404(stack: Stack, tokens: dict[str, str]) -> None:
    url, sid = alices_session(stack, tokens)
    assert_404(list_tools(url, tokens["alice-other-client"], sid))
    [event] = refused_events(stack, sid, "alice")
    assert event["reason"] == "other_client"
    assert list_tools(url, tokens["alice"], sid).status_code == 200


def test_the_same_user_from_another_route_gets_404(stack: Stack, tokens: dict[str, str]) -> None:
    sid = open_session(stack.gw.route_url("notes"), tokens["alice"])
    # The other route fronts the same upstream, which would honour the id.
    direct = httpx.post(
        stack.upstream_url,
        json=rpc("tools/list", rid=2),
        headers={"Accept": ACCEPT, "MCP-Protocol-Version": VERSION, "Mcp-Session-Id": sid},
    )
    assert direct.status_code == 200
    assert_404(list_tools(stack.gw.route_url("notes-too"), tokens["alice-other-route"], sid))
    [event] = refused_events(stack, sid, "alice")
    assert event["route"] == "notes-too" and event["reason"] == "other_route"


def test_a_session_the_gateway_never_saw_opened_gets_404(
    stack: Stack, tokens: dict[str, str]
) -> None:
    # Opened directly at the upstream, behind the gateway's back: nobody owns it here.
    init = rpc(
        "initialize",
        {
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": {"name": "x", "version": "0"},
        },
    )
    r = httpx.post(
        stack.upstream_url, json=init, headers={"Accept": ACCEPT, "MCP-Protocol-Version": VERSION}
    )
    sid = r.headers["mcp-session-id"]
    assert_404(list_tools(stack.gw.route_url("notes"), tokens["alice"], sid))
    [event] = refused_events(stack, sid, "alice")
    assert event["reason"] == "unknown"


def test_the_owners_delete_ends_the_binding(stack: Stack, tokens: dict[str, str]) -> None:
    url, sid = alices_session(stack, tokens)
    assert httpx.delete(url, headers=headers(tokens["alice"], sid)).status_code == 200
    assert_404(list_tools(url, tokens["alice"], sid))
    [event] = refused_events(stack, sid, "alice")
    assert event["reason"] == "unknown"


@pytest.mark.anyio
async def test_another_user_cannot_answer_a_pending_elicitation(
    stack: Stack, tokens: dict[str, str]
) -> None:
    """Alice's SDK client is asked "Delete note 2?"; bob answers "yes" in her session first."""
    url = stack.gw.route_url("notes")
    seen: list[str] = []

    async def remember_session(response: httpx2.Response) -> None:
        sid = response.headers.get("mcp-session-id")
        if sid and sid not in seen:
            seen.append(sid)

    intruder: list[int] = []

    async def alice_declines(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        # While alice reads the question, bob posts an "accept" for its request id.
        answer = {
            "jsonrpc": "2.0",
            "id": context.request_id,
            "result": {"action": "accept", "content": {"confirm": True}},
        }
        async with httpx.AsyncClient() as bob:
            r = await bob.post(url, json=answer, headers=headers(tokens["bob"], seen[0]))
            intruder.append(r.status_code)
        return types.ElicitResult(action="accept", content={"confirm": False})

    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {tokens['alice']}"},
            event_hooks={"response": [remember_session]},
            timeout=30,
        ) as http,
        Client(
            streamable_http_client(url, http_client=http),
            mode="legacy",
            elicitation_callback=alice_declines,
            read_timeout_seconds=15,
        ) as client,
    ):
        result = await client.call_tool("confirm_delete", {"id": "2"})
        # Today's hole: bob's "accept" got 202 and the upstream deleted alice's note.
        assert not result.is_error and text_of(result) == "kept note 2"
        assert intruder == [404], "another user's answer reached alice's pending elicitation"
        note = await client.call_tool("get_note", {"id": "2"})
        assert not note.is_error

    [sid] = seen
    [event] = refused_events(stack, sid, "bob")
    assert event["reason"] == "other_user"


def test_the_audit_carries_a_short_hash_never_the_session_id(
    stack: Stack, tokens: dict[str, str]
) -> None:
    url, sid = alices_session(stack, tokens)
    assert list_tools(url, tokens["alice"], sid).status_code == 200
    assert_404(list_tools(url, tokens["bob"], sid))
    refused_events(stack, sid, "bob")

    events = stack.gw.events()
    mine = [e for e in events if e.get("session") == short_hash(sid)]
    assert {e.get("method") for e in mine} >= {"initialize", "tools/list"}
    assert {e.get("user") for e in mine} == {"alice", "bob"}
    text = stack.gw.audit_path.read_text(encoding="utf-8")
    assert sid not in text, "a full session id reached the audit log"
    for e in events:
        if "session" in e:
            assert len(str(e["session"])) == 12, json.dumps(e)[:300]
    assert verify(stack.gw.audit_path).ok
