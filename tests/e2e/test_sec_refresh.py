"""Issue 9, items 5 and 11: what a refresh_token grant may still give, end to end.

Why it exists: a refreshed gateway token used to repeat the groups the identity provider
named at sign-in, for ever (each rotation also got a fresh 30-day life), so a user removed
from a group at the provider kept it. Now every refresh grant asks the provider (its session
is refreshed with the provider's refresh token), stores the fresh claims on the grant,
re-runs the route's access rules (refused: `invalid_grant`) and the new token carries the
new groups, which the item rules read on every request. A rotated refresh token keeps the
grant's first expiry. Smaller holes: a refresh with a wrong `resource` used to spend the
refresh token (so the client's retry was taken for a replay and the whole grant revoked);
a client registered for `authorization_code` only still got refresh tokens.

Real parts: `oidc-provider-mock` as the provider (its `PUT /users/<sub>` changes a user's
claims, which its next refreshed ID token carries), the gateway as a process, an SDK
upstream, raw OAuth over HTTP.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lockgate.authserver.store import Store
from lockgate.identity import session as login
from tests.support.gateway import profile_text, running_gateway
from tests.support.oauth import (
    CALLBACK,
    ENV,
    authorize_url,
    exchange,
    pkce,
    redirect_params,
    refresh,
)
from tests.support.oidc_mock import OidcStack, oidc_identity, oidc_mock
from tests.support.upstreams import sdk_upstream

USERS = ("carol", "dave", "erin", "frank", "gina")


@dataclass
class Stack(OidcStack):
    home: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ExitStack() as es:
        mock = es.enter_context(oidc_mock())
        notes = es.enter_context(sdk_upstream())
        eng = ["notes", 'access.groups = ["eng"]', "[[routes.eng.access.tools]]"]
        eng += ['match = ["get_note"]', 'groups = ["ops"]']
        profile = profile_text({"notes": notes}, {"eng": eng}, identity=oidc_identity(mock.issuer))
        tmp = tmp_path_factory.mktemp("sec-refresh")
        gw = es.enter_context(running_gateway(profile, tmp, env=ENV))
        try:
            yield Stack(gw, mock, tmp / "gateway-home")
        finally:
            for sub in USERS:  # a real keyring (CI) kept the provider sessions
                with contextlib.suppress(Exception):  # cleanup only: no keyring is fine
                    login.delete_session(mock.issuer, sub)


def claims_of(access_token: str) -> dict[str, Any]:
    """The payload of a gateway JWT (the gateway checks the signature; the test reads)."""
    payload = access_token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def register(stack: Stack, grant_types: list[str] | None = None) -> str:
    body: dict[str, Any] = {"client_name": "sec refresh", "redirect_uris": [CALLBACK]}
    if grant_types is not None:
        body["grant_types"] = grant_types
    r = httpx.post(f"{stack.base}/oauth/register", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["client_id"])


async def sign_in(
    stack: Stack, sub: str, groups: list[str], grant_types: list[str] | None = None
) -> tuple[str, dict[str, Any]]:
    """`sub` with `groups` at the provider signs in to route eng in a fresh browser; the
    client id and the token response."""
    stack.mock.put_user(sub, {"email": f"{sub}@example.com", "groups": groups})
    client_id = register(stack, grant_types)
    verifier, challenge = pkce()
    resource = stack.gw.route_url("eng")
    async with httpx.AsyncClient() as browser:
        answer = await stack.mock.browse(
            browser, stack.base, authorize_url(stack.base, client_id, resource, challenge), sub
        )
    code = redirect_params(answer)["code"]
    r = exchange(stack.base, client_id, code, verifier, resource)
    assert r.status_code == 200, r.text
    return client_id, r.json()


def tool_names(url: str, token: str) -> set[str]:
    """initialize, then tools/list through the gateway with `token`: the names it shows."""
    headers = {
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {token}",
    }
    init = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    }
    with httpx.Client(headers=headers) as client:
        r = client.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
        )
        assert r.status_code == 200, r.text
        session = {"mcp-session-id": r.headers["mcp-session-id"]}
        client.post(
            url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
        )
        r = client.post(
            url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=session
        )
        assert r.status_code == 200, r.text
    return {t["name"] for t in _rpc_result(r)["tools"]}


def _rpc_result(r: httpx.Response) -> dict[str, Any]:
    text = r.text
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        text = data[-1]
    body = json.loads(text)
    assert "result" in body, body
    return dict(body["result"])


# --- item 5: stale groups ---------------------------------------------------------------


@pytest.mark.anyio
async def test_a_user_removed_from_the_routes_group_gets_invalid_grant(stack: Stack) -> None:
    client_id, tokens = await sign_in(stack, "carol", ["eng"])
    assert claims_of(tokens["access_token"])["groups"] == ["eng"]

    stack.mock.put_user("carol", {"email": "carol@example.com", "groups": ["sales"]})
    r = refresh(stack.base, client_id, tokens["refresh_token"])
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_grant"
    assert "no longer allowed on route 'eng'" in r.json()["error_description"]
    # The grant is gone: its access token is refused too, and no refresh brings it back.
    mcp = httpx.post(
        stack.gw.route_url("eng"),
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert mcp.status_code == 401, mcp.text
    stack.mock.put_user("carol", {"email": "carol@example.com", "groups": ["eng"]})
    assert refresh(stack.base, client_id, tokens["refresh_token"]).json()["error"] == (
        "invalid_grant"
    )
    events = stack.gw.wait_for_events(
        lambda evs: any(e.get("reason") == "route_access" for e in evs)
    )
    refused = [e for e in events if e.get("reason") == "route_access"]
    assert refused and refused[0]["event"] == "auth.token_refused"
    assert refused[0]["user"] == "carol"


@pytest.mark.anyio
async def test_a_user_who_loses_a_group_gets_a_token_with_the_new_groups(stack: Stack) -> None:
    client_id, tokens = await sign_in(stack, "dave", ["eng", "ops"])
    url = stack.gw.route_url("eng")
    assert claims_of(tokens["access_token"])["groups"] == ["eng", "ops"]
    assert "get_note" in tool_names(url, tokens["access_token"])

    stack.mock.put_user("dave", {"email": "dave@example.com", "groups": ["eng"]})
    r = refresh(stack.base, client_id, tokens["refresh_token"])
    assert r.status_code == 200, r.text
    fresh = r.json()
    assert claims_of(fresh["access_token"])["groups"] == ["eng"]
    # The item rule (get_note needs "ops") reads the new groups.
    shown = tool_names(url, fresh["access_token"])
    assert "get_note" not in shown and "list_notes" in shown
    # The grant keeps the new claims: the next refresh says the same.
    again = refresh(stack.base, client_id, fresh["refresh_token"])
    assert again.status_code == 200, again.text
    assert claims_of(again.json()["access_token"])["groups"] == ["eng"]


@pytest.mark.anyio
async def test_a_rotated_refresh_token_keeps_the_grants_first_expiry(stack: Stack) -> None:
    client_id, tokens = await sign_in(stack, "erin", ["eng"])
    token = tokens["refresh_token"]
    for _ in range(2):
        r = refresh(stack.base, client_id, token)
        assert r.status_code == 200, r.text
        token = r.json()["refresh_token"]
    with Store.open(stack.home / "lockgate.db") as store:
        grant = store.grant_of_refresh_token(token)
        assert grant is not None
        rows = store._read(
            "SELECT created_at, expires_at FROM refresh_tokens WHERE grant_id = ?"
            " ORDER BY created_at",
            (grant.grant_id,),
        )
    assert len(rows) == 3
    assert rows[0][0] < rows[-1][0]
    assert {expires for _, expires in rows} == {rows[0][1]}


# --- item 11: a wrong resource, a client without the refresh_token grant ----------------


@pytest.mark.anyio
async def test_a_refresh_with_a_wrong_resource_fails_only_that_request(stack: Stack) -> None:
    client_id, tokens = await sign_in(stack, "frank", ["eng"])
    wrong = httpx.post(
        f"{stack.base}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client_id,
            "resource": "http://127.0.0.1:9/mcp/elsewhere",
        },
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_target", wrong.text
    # The same refresh token is still good, and so is the grant.
    r = refresh(stack.base, client_id, tokens["refresh_token"])
    assert r.status_code == 200, r.text
    assert refresh(stack.base, client_id, r.json()["refresh_token"]).status_code == 200


@pytest.mark.anyio
async def test_a_client_registered_without_refresh_token_gets_none(stack: Stack) -> None:
    _, tokens = await sign_in(stack, "gina", ["eng"], ["authorization_code"])
    assert tokens["access_token"]
    assert "refresh_token" not in tokens
    r = httpx.post(f"{stack.base}/oauth/register", json={"redirect_uris": [CALLBACK]})
    assert "refresh_token" in r.json()["grant_types"]  # the default still offers both
