"""Access by groups, roles and scopes, end to end: a real gateway with `kind = "oidc"`, a
real identity provider (`oidc-provider-mock`), real upstreams and the `mcp` SDK client.

Why it exists: the profile hands dangerous tools to a team. Two users signed in through
the provider with different groups and roles must see different tool lists on one route;
a call their rules refuse must be answered 403 by the gateway, naming the group it needs,
without the upstream ever seeing it, and be audited as denied. A route that declares
scopes must challenge for them (401 `scope=...`), answer a token lacking a tool's scope
with 403 `insufficient_scope`, and the SDK client must step up (re-authorize with the
wider scope) and retry by itself. The users' claims are set through the provider's
`PUT /users/<sub>` API before they sign in; roles sit in a nested claim
(`realm_access.roles`) to exercise the dotted `roles_claim`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lockgate.audit.verify import verify
from tests.support.demo_mcp import DEMO_TOOLS, text_of
from tests.support.gateway import profile_text, running_gateway
from tests.support.oauth import (
    ENV,
    authorize_url,
    pkce,
    redirect_params,
    register,
    sync_sign_in,
)
from tests.support.oauth_client import MemoryStorage, signed_in_client
from tests.support.oidc_mock import OidcMock, OidcStack, oidc_identity, oidc_mock
from tests.support.recorder import Recorder, recording_upstream
from tests.support.scripted import HEADERS
from tests.support.upstreams import sdk_upstream

USERS = {
    "alice": {
        "email": "alice@example.com",
        "groups": ["notes-admins"],
        "realm_access": {"roles": ["editor"]},
    },
    "bob": {"email": "bob@example.com", "groups": ["eng"], "realm_access": {"roles": ["viewer"]}},
}
ADMIN_TOOLS = {"add_note", "delete_note", "confirm_delete"}


@dataclass
class Stack(OidcStack):
    recorder: Recorder


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcMock]:
    with oidc_mock(claims=USERS) as mock:
        yield mock


@pytest.fixture(scope="module")
def stack(provider: OidcMock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ExitStack() as es:
        notes = es.enter_context(sdk_upstream())
        recorder = es.enter_context(recording_upstream())
        rules = [
            "[[routes.{r}.access.tools]]",
            'match = ["delete_*", "add_*"]',
            'groups = ["notes-admins"]',
            "[[routes.{r}.access.tools]]",
            'match = ["confirm_*"]',
            'roles = ["editor"]',
        ]
        routes = {r: [r, *(line.format(r=r) for line in rules)] for r in ("notes", "rec")} | {
            "scoped": [
                "notes",
                'access.scopes = ["notes.read"]',
                "[[routes.scoped.access.tools]]",
                'match = ["delete_*"]',
                'scopes = ["notes.write"]',
            ]
        }
        profile = profile_text(
            {"notes": notes, "rec": recorder.url},
            routes,
            identity=oidc_identity(provider.issuer, 'roles_claim = "realm_access.roles"'),
        )
        gw = es.enter_context(running_gateway(profile, tmp_path_factory.mktemp("access"), env=ENV))
        yield Stack(gw, provider, recorder)


async def browse(browser: httpx.AsyncClient, stack: Stack, url: str, sub: str) -> httpx.Response:
    """Follow a sign-in as a browser would, signing in at the provider as `sub`; returns the
    answer that goes to the client's redirect URI."""
    return await stack.mock.browse(browser, stack.base, url, sub)


def post(url: str, token: str, message: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        url,
        json={"jsonrpc": "2.0", "id": 7, **message},
        headers={
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {token}",
            "MCP-Protocol-Version": "2025-11-25",
        },
    )


INIT = {
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}


def call(name: str) -> dict[str, Any]:
    return {"method": "tools/call", "params": {"name": name, "arguments": {}}}


@pytest.mark.anyio
async def test_two_users_see_different_tools_on_one_route(stack: Stack) -> None:
    seen: dict[str, set[str]] = {}
    for sub in ("alice", "bob"):
        async with httpx.AsyncClient() as browser:

            async def sign_in(url: str, sub: str = sub) -> dict[str, str]:
                return redirect_params(await browse(browser, stack, url, sub))

            async with signed_in_client(
                stack.gw.route_url("notes"), sign_in, client_name=f"{sub}'s client"
            ) as client:
                seen[sub] = {t.name for t in (await client.list_tools()).tools}
                result = await client.call_tool("get_note", {"id": "1"})
                assert not result.is_error and text_of(result)
    assert seen["alice"] == DEMO_TOOLS
    assert seen["bob"] == DEMO_TOOLS - ADMIN_TOOLS


def test_a_refused_call_is_403_naming_the_group_and_never_reaches_the_upstream(
    stack: Stack,
) -> None:
    bob = sync_sign_in(stack, "rec", "bob")
    stack.recorder.clear()
    r = post(stack.gw.route_url("rec"), bob, call("delete_note"))
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert "group 'notes-admins'" in error["message"]
    assert error["data"] == {"required": {"groups": ["notes-admins"], "roles": []}}
    # The role from the nested claim: bob is a viewer, confirm_* is for editors.
    r = post(stack.gw.route_url("rec"), bob, call("confirm_delete"))
    assert r.status_code == 403 and "role 'editor'" in r.json()["error"]["message"]
    assert not stack.recorder.seen(), "a refused call reached the upstream"
    # A call the rules leave open goes through.
    assert post(stack.gw.route_url("rec"), bob, call("get_note")).status_code == 200
    # Before the first call of a tool it has not seen listed, the gateway lists the tools
    # itself (guardrails: pins and scans), under its own request id.
    sent = [rec.json() for rec in stack.recorder.seen()]
    assert [m["method"] for m in sent if m.get("id") != "lockgate-pin-check"] == ["tools/call"]

    alice = sync_sign_in(stack, "rec", "alice")
    assert post(stack.gw.route_url("rec"), alice, call("delete_note")).status_code == 200

    events = stack.gw.wait_for_events(
        lambda evs: any(e.get("route") == "rec" and e.get("name") == "confirm_delete" for e in evs)
    )
    denied = [
        e
        for e in events
        if e.get("event") == "tool.call"  # not the tool.call.started of alice's call
        and e.get("route") == "rec"
        and e.get("name") in ("delete_note", "confirm_delete")
    ]
    assert {(e["user"], e["name"], e["outcome"], e["status"]) for e in denied} >= {
        ("bob", "delete_note", "denied", 403),
        ("bob", "confirm_delete", "denied", 403),
    }
    assert verify(stack.gw.audit_path).ok


def test_insufficient_scope_challenge_and_declared_scopes(stack: Stack) -> None:
    url = stack.gw.route_url("scoped")
    # The 401 asks for the route's scope; the metadata lists every scope the route offers.
    first = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert first.status_code == 401
    assert 'scope="notes.read"' in first.headers["www-authenticate"]
    prm = httpx.get(f"{stack.base}/.well-known/oauth-protected-resource/mcp/scoped").json()
    assert prm["scopes_supported"] == ["notes.read", "notes.write"]

    # A token without the route's scope gets 403 insufficient_scope on any request.
    bare = sync_sign_in(stack, "scoped", "bob")
    r = post(url, bare, INIT)
    assert r.status_code == 403
    assert r.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert 'scope="notes.read"' in r.headers["www-authenticate"]

    # With it, reads pass; the tool's own scope is asked for when it is called.
    read = sync_sign_in(stack, "scoped", "bob", scope="notes.read")
    assert post(url, read, INIT).status_code == 200
    r = post(url, read, call("delete_note"))
    assert r.status_code == 403
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope"'), challenge
    assert 'scope="notes.read notes.write"' in challenge
    assert (
        f'resource_metadata="{stack.base}/.well-known/oauth-protected-resource/mcp/scoped"'
        in challenge
    )

    # The authorization endpoint grants only scopes the route declares.
    client_id = register(stack.base)
    refused = httpx.get(
        authorize_url(stack.base, client_id, url, pkce()[1], scope="notes.read notes.admin")
    )
    params = redirect_params(refused)
    assert params["error"] == "invalid_scope" and "notes.admin" in params["error_description"]

    events = stack.gw.wait_for_events(
        lambda evs: any(e.get("reason") == "insufficient_scope" for e in evs)
    )
    assert any(
        e["event"] == "auth.token_refused" and e.get("scope") == "notes.read notes.write"
        for e in events
    )
    assert bare not in stack.gw.audit_path.read_text()


@pytest.mark.anyio
async def test_the_sdk_client_steps_up_when_a_tool_needs_more_scope(stack: Stack) -> None:
    authorizations: list[str] = []
    storage = MemoryStorage()
    async with httpx.AsyncClient() as browser:

        async def sign_in(url: str) -> dict[str, str]:
            authorizations.append(url)
            return redirect_params(await browse(browser, stack, url, "alice"))

        async with signed_in_client(
            stack.gw.route_url("scoped"), sign_in, client_name="step-up", storage=storage
        ) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "delete_note" in names  # listed: the scope is needed to call, not to see
            assert len(authorizations) == 1
            result = await client.call_tool("delete_note", {"id": "3"})
            assert not result.is_error, text_of(result)

    scopes = [parse_qs(urlsplit(u).query)["scope"][0].split() for u in authorizations]
    assert scopes == [["notes.read"], ["notes.read", "notes.write"]]
    assert storage.tokens is not None
    assert set((storage.tokens.scope or "").split()) == {"notes.read", "notes.write"}
    events = stack.gw.wait_for_events(
        lambda evs: any(
            e.get("route") == "scoped" and e.get("name") == "delete_note" and e.get("status") == 200
            for e in evs
        )
    )
    outcomes = [
        (e["outcome"], e.get("status"))
        for e in events
        if e.get("route") == "scoped" and e.get("name") == "delete_note" and e["user"] == "alice"
    ]
    assert ("denied", 403) in outcomes and ("success", 200) in outcomes
    assert json.dumps(events).find(storage.tokens.access_token) == -1


# --- a route's access list holds for the local user of `kind = "none"` too -----------------


def test_route_access_list_is_enforced(tmp_path: Path) -> None:
    """DESIGN: "user not allowed on route -> 403". A route restricted to another user is
    served to the local user anyway: nothing reads `RouteSection.access`."""
    with recording_upstream() as rec:
        profile = profile_text(
            upstreams={"rec": rec.url},
            routes={},
            extra=(
                '\n[routes.admins]\nupstream = "rec"\naccess.users = ["someone-else"]\n'
                'access.groups = ["admins"]\n'
            ),
        )
        with running_gateway(profile, tmp_path) as g:
            r = httpx.post(
                g.route_url("admins"),
                content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
                headers=HEADERS,
                timeout=10,
            )
            assert rec.seen() == [], f"the upstream was contacted (gateway said {r.status_code})"
            assert r.status_code == 403


def test_a_kept_member_of_a_batch_gets_its_403_error_in_the_batch_answer(stack: Stack) -> None:
    """On a revision with batches, a member a rule keeps from the user is refused alone: the
    batch's one 200 answer carries its error (its id, its `data`) beside the others' answers."""
    bob = sync_sign_in(stack, "rec", "bob")
    stack.recorder.clear()
    batch = [
        {"jsonrpc": "2.0", "id": 7, **call("delete_note")},
        {"jsonrpc": "2.0", "id": 8, **call("get_note")},
    ]
    r = httpx.post(
        stack.gw.route_url("rec"),
        json=batch,
        headers={
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {bob}",
            "MCP-Protocol-Version": "2025-03-26",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [m["id"] for m in body] == [7, 8]
    assert body[0]["error"]["code"] == -32600
    assert "group 'notes-admins'" in body[0]["error"]["message"]
    assert body[0]["error"]["data"] == {"required": {"groups": ["notes-admins"], "roles": []}}
    assert "result" in body[1]
    sent = json.dumps([rec.json() for rec in stack.recorder.seen()])
    assert "delete_note" not in sent
    events = stack.gw.wait_for_events(
        lambda evs: any(e.get("id") == 7 and e.get("outcome") == "denied" for e in evs)
    )
    [denied] = [e for e in events if e.get("id") == 7 and e.get("event") == "tool.call"][-1:]
    assert denied["outcome"] == "denied" and denied["user"] == "bob"
    assert denied["error"] == body[0]["error"]


def test_a_batch_the_upstream_refuses_whole_answers_each_member_by_its_id(stack: Stack) -> None:
    """The SDK upstream takes no batches (400, one error with id null): beside the kept
    member's own 403 error, the member that went up gets that error under its own id."""
    bob = sync_sign_in(stack, "notes", "bob")
    headers = {
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {bob}",
        "MCP-Protocol-Version": "2025-03-26",
    }
    init = httpx.post(stack.gw.route_url("notes"), json={"jsonrpc": "2.0", "id": 1, **INIT},
                      headers=headers)  # fmt: skip
    assert init.status_code == 200, init.text
    headers["mcp-session-id"] = init.headers["mcp-session-id"]
    get = {"method": "tools/call", "params": {"name": "get_note", "arguments": {"id": "1"}}}
    batch = [{"jsonrpc": "2.0", "id": 7, **call("delete_note")}, {"jsonrpc": "2.0", "id": 8, **get}]
    r = httpx.post(stack.gw.route_url("notes"), json=batch, headers=headers)
    body = r.json()
    assert [m["id"] for m in body] == [7, 8], body
    assert body[0]["error"]["data"] == {"required": {"groups": ["notes-admins"], "roles": []}}
    assert "upstream 'notes'" in body[1]["error"]["message"]
