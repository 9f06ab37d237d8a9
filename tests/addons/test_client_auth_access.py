"""ClientAuth's access lists: who a route admits, by kind of identity.

Why it exists: `access.groups` is the profile's way to hand a route to a team. Only an
identity provider vouches for groups, so with kinds "none" and "dev" a group list admits
nobody (fail closed); with "oidc" the token's groups must intersect the list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http

from lockgate.addons._flow import state
from lockgate.addons.capabilities import Capabilities
from lockgate.identity.claims import UserClaims
from lockgate.policy.access import Principal, RouteAccess, admits
from lockgate.policy.view import Policy
from lockgate.profile.model import AccessSection
from tests.addons.conftest import (
    BASE,
    LISTEN,
    NOTES_URL,
    OAuthStack,
    gateway_section,
    mcp_flow,
    toml_table,
)
from tests.support.gateway import profile_text


def allowed(
    access: AccessSection,
    user: str,
    email: str | None = None,
    groups: tuple[str, ...] | None = None,
) -> bool:
    who = Principal(user, email, groups=groups)
    return RouteAccess("r", access, Policy()).admits_route(who)


def test_no_lists_admit_everyone_signed_in() -> None:
    assert allowed(AccessSection(), "alice")
    assert not admits(None, None, None, None)


def test_groups_intersect_for_provider_users() -> None:
    access = AccessSection(groups=("eng", "ops"))
    assert allowed(access, "alice", "a@example.com", ("eng",))
    assert not allowed(access, "bob", None, ("finance",))
    assert not allowed(access, "carol", None, ())


def test_a_group_list_admits_nobody_when_the_kind_knows_no_groups() -> None:
    assert not allowed(AccessSection(groups=("eng",)), "alice", None, None)
    assert not allowed(AccessSection(groups=("eng",), users=("alice",)), "alice", None, None)


def test_users_match_by_sub_or_email() -> None:
    access = AccessSection(users=("a@example.com",))
    assert allowed(access, "alice", "a@example.com", ())
    assert not allowed(access, "bob", "b@example.com", ())
    assert allowed(AccessSection(users=("alice",)), "alice", None, None)


# --- in the pipeline: route lists, item rules, scopes (kinds "oidc", "dev", "none") ---------
#
# Router, the OAuth server, ClientAuth and Capabilities in-process on real tflow flows, with
# tokens signed by the gateway's key: what a user sees in list results (JSON and SSE), what
# a call gets refused with before anything goes upstream, and the scope challenges.

OIDC = ['issuer = "http://127.0.0.1:9"', 'client_id = "lockgate-test"']
RULES = (
    toml_table(
        "[[routes.notes.access.tools]]",
        match=["delete_*", "add_*"],
        groups=["notes-admins"],
        roles=["editor"],
    )
    + toml_table("[[routes.notes.access.tools]]", match=["add_*"], users=["dev-user", "alice"])
    + toml_table("[[routes.notes.access.tools]]", match=["purge_*"], scopes=["notes.admin"])
    + toml_table("[[routes.notes.access.prompts]]", match=["summarize_*"], roles=["editor"])
    + toml_table("[[routes.scoped.access.tools]]", match=["delete_*"], scopes=["notes.write"])
)
TOOLS = ["list_notes", "add_note", "delete_note", "purge_notes"]


def profile(kind: str) -> str:
    routes = {
        "notes": "notes",
        "editors": ["notes", 'access.roles = ["editor"]'],
        "scoped": ["notes", 'access.scopes = ["notes.read"]'],
    }
    identity = ["[identity]", f'kind = "{kind}"', *(OIDC if kind == "oidc" else [])]
    extra = gateway_section() + RULES
    return profile_text({"notes": NOTES_URL}, routes, extra, identity=identity)


class Env(OAuthStack):
    def __init__(self) -> None:
        self.caps = Capabilities()
        super().__init__(self.caps)

    def token(self, route: str = "notes", scope: str = "", **user: Any) -> str:
        claims = UserClaims(**({"sub": "dev-user"} | user))
        return super().token(route, scope=scope, user=claims)

    def send(self, route: str, body: object, token: str | None) -> http.HTTPFlow:
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return self.request_side(mcp_flow(f"/mcp/{route}", body, headers=headers, host=LISTEN))


def _env(tmp_path: Path, kind: str) -> Iterator[Env]:
    return Env().started(tmp_path, profile(kind))


@pytest.fixture
def oidc(tmp_path: Path) -> Iterator[Env]:
    yield from _env(tmp_path, "oidc")


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Env]:
    yield from _env(tmp_path, "dev")


def rpc(method: str, rid: int = 1, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def listed_json(env: Env, f: http.HTTPFlow) -> list[str]:
    assert f.response is None, f.response and f.response.content
    tools = [{"name": n, "inputSchema": {}} for n in TOOLS]
    body = {"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}
    f.response = http.Response.make(200, b"", {"content-type": "application/json"})
    env.caps.responseheaders(f)
    f.response.content = json.dumps(body).encode()
    env.caps.response(f)
    return [t["name"] for t in json.loads(f.response.content or b"")["result"]["tools"]]


def listed_sse(env: Env, f: http.HTTPFlow) -> list[str]:
    assert f.response is None
    tools = [{"name": n, "inputSchema": {}} for n in TOOLS]
    body = {"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}
    f.response = http.Response.make(200, b"", {"content-type": "text/event-stream"})
    env.caps.responseheaders(f)
    stream = f.response.stream
    assert callable(stream)
    raw = b"event: message\ndata: " + json.dumps(body).encode() + b"\n\n"
    out = b"".join(
        c if isinstance(c, bytes) else b"".join(c)
        for c in (stream(raw[:7]), stream(raw[7:]), stream(b""))
    )
    data = out.decode().split("data: ", 1)[1].strip()
    return [t["name"] for t in json.loads(data)["result"]["tools"]]


def refused_403(f: http.HTTPFlow) -> dict[str, Any]:
    assert f.response is not None, "the call would have gone upstream"
    assert f.response.status_code == 403
    assert state(f).outcome == "denied" and state(f).local
    error: dict[str, Any] = json.loads(f.response.content or b"")["error"]
    return error


@pytest.mark.parametrize("listed", [listed_json, listed_sse], ids=["json", "sse"])
def test_users_see_the_tools_their_groups_and_roles_admit(oidc: Env, listed: Any) -> None:
    admin = oidc.token(sub="alice", groups=("notes-admins",))
    editor = oidc.token(sub="erin", roles=("editor",))
    reader = oidc.token(sub="bob", groups=("eng",), roles=("viewer",))
    assert listed(oidc, oidc.send("notes", rpc("tools/list"), admin)) == TOOLS
    # erin holds the role for delete_* and add_*, but add_* also needs her on its users list.
    assert listed(oidc, oidc.send("notes", rpc("tools/list"), editor)) == [
        "list_notes",
        "delete_note",
        "purge_notes",
    ]
    assert listed(oidc, oidc.send("notes", rpc("tools/list"), reader)) == [
        "list_notes",
        "purge_notes",
    ]


def test_a_call_a_rule_keeps_from_the_user_is_403_naming_the_group_or_role(oidc: Env) -> None:
    reader = oidc.token(sub="bob", groups=("eng",))
    f = oidc.send("notes", rpc("tools/call", name="delete_note", arguments={}), reader)
    error = refused_403(f)
    assert error["code"] == -32600
    assert "group 'notes-admins'" in error["message"] and "role 'editor'" in error["message"]
    assert error["data"] == {"required": {"groups": ["notes-admins"], "roles": ["editor"]}}
    admin = oidc.token(sub="alice", groups=("notes-admins",))
    ok = oidc.send("notes", rpc("tools/call", name="delete_note", arguments={}), admin)
    assert ok.response is None  # on its way upstream


def test_every_rule_matching_a_tool_must_admit(oidc: Env) -> None:
    editor = oidc.token(sub="erin", roles=("editor",))
    error = refused_403(oidc.send("notes", rpc("tools/call", name="add_note"), editor))
    assert "being named on its users list" in error["message"]
    assert "erin" not in error["message"] and "alice" not in error["message"]


def test_a_batch_with_one_kept_call_refuses_that_call_only(oidc: Env) -> None:
    reader = oidc.token(sub="bob", groups=("eng",))
    batch = [rpc("tools/call", 1, name="list_notes"), rpc("tools/call", 2, name="delete_note")]
    f = oidc.send("notes", batch, reader)
    assert f.response is None  # the visible call goes on
    st = state(f)
    assert [m.id for m in st.messages] == [1]
    [kept] = st.set_aside
    assert kept.status == 403 and kept.error is not None
    assert kept.error["id"] == 2 and kept.error["error"]["data"]["required"]
    both = oidc.send("notes", [batch[1], rpc("tools/call", 3, name="delete_note")], reader)
    assert both.response is not None and both.response.status_code == 403
    assert [e["id"] for e in json.loads(both.response.content or b"")] == [2, 3]


def test_prompts_are_ruled_like_tools(oidc: Env) -> None:
    reader = oidc.token(sub="bob", roles=("viewer",))
    error = refused_403(oidc.send("notes", rpc("prompts/get", name="summarize_note"), reader))
    assert "Prompt 'summarize_note'" in error["message"]
    completion = rpc(
        "completion/complete",
        ref={"type": "ref/prompt", "name": "summarize_note"},
        argument={"name": "id", "value": "1"},
    )
    refused_403(oidc.send("notes", completion, reader))
    editor = oidc.token(sub="erin", roles=("editor",))
    assert oidc.send("notes", rpc("prompts/get", name="summarize_note"), editor).response is None


def test_route_roles_admit_or_refuse(oidc: Env) -> None:
    assert (
        oidc.send("editors", rpc("ping"), oidc.token("editors", roles=("editor",))).response is None
    )
    f = oidc.send("editors", rpc("ping"), oidc.token("editors", sub="bob", roles=("viewer",)))
    assert f.response is not None and f.response.status_code == 403
    assert (
        "'bob' is not allowed on route 'editors'"
        in json.loads(f.response.content or b"")["error"]["message"]
    )


def test_kind_dev_knows_no_groups_or_roles(dev: Env) -> None:
    # The provider's claims in a dev token are ignored: only a provider vouches for them.
    token = dev.token(groups=("notes-admins",), roles=("editor",))
    assert listed_json(dev, dev.send("notes", rpc("tools/list"), token)) == [
        "list_notes",
        "purge_notes",
    ]
    error = refused_403(dev.send("notes", rpc("tools/call", name="delete_note"), token))
    assert 'kind = "oidc"' in error["message"]
    f = dev.send("editors", rpc("ping"), dev.token("editors", roles=("editor",)))
    assert f.response is not None and f.response.status_code == 403


def test_a_users_view_is_built_once(oidc: Env) -> None:
    reader = oidc.token(sub="bob", groups=("eng",))
    for _ in range(3):
        oidc.send("notes", rpc("tools/list"), reader)
    access = oidc.auth.route_access(oidc.cfg.routes["notes"])
    assert access.builds == 1


def test_the_401_challenge_names_the_routes_scopes(oidc: Env) -> None:
    f = oidc.send("scoped", rpc("ping"), None)
    assert f.response is not None and f.response.status_code == 401
    challenge = f.response.headers["www-authenticate"]
    assert 'scope="notes.read"' in challenge
    assert (
        f'resource_metadata="{BASE}/.well-known/oauth-protected-resource/mcp/scoped"' in challenge
    )
    plain = oidc.send("notes", rpc("ping"), None)
    assert plain.response is not None and "scope=" not in plain.response.headers["www-authenticate"]


def _insufficient(f: http.HTTPFlow, scope: str) -> None:
    error = refused_403(f)
    challenge = f.response.headers["www-authenticate"] if f.response else ""
    assert challenge.startswith('Bearer error="insufficient_scope"'), challenge
    assert f'scope="{scope}"' in challenge
    assert 'resource_metadata="' in challenge
    assert error["data"] == {"scope": scope}
    [event] = [e for e in state(f).events if e["event"] == "auth.token_refused"]
    assert event["reason"] == "insufficient_scope" and event["outcome"] == "denied"


def test_a_token_without_the_routes_scope_gets_insufficient_scope(oidc: Env) -> None:
    _insufficient(oidc.send("scoped", rpc("ping"), oidc.token("scoped")), "notes.read")
    ok = oidc.send("scoped", rpc("ping"), oidc.token("scoped", scope="notes.read"))
    assert ok.response is None


def test_a_rules_scope_is_needed_to_call_not_to_list(oidc: Env) -> None:
    read = oidc.token("scoped", scope="notes.read")
    assert "delete_note" in listed_json(oidc, oidc.send("scoped", rpc("tools/list"), read))
    f = oidc.send("scoped", rpc("tools/call", name="delete_note"), read)
    _insufficient(f, "notes.read notes.write")
    write = oidc.token("scoped", scope="notes.read notes.write")
    assert oidc.send("scoped", rpc("tools/call", name="delete_note"), write).response is None
    # On a route without baseline scopes, a rule's scope alone is asked for.
    plain = oidc.token("notes", scope="notes.read")
    _insufficient(oidc.send("notes", rpc("tools/call", name="purge_notes"), plain), "notes.admin")


def test_protected_resource_metadata_lists_the_routes_scopes(oidc: Env) -> None:
    def metadata(route: str) -> dict[str, Any]:
        f = mcp_flow(
            f"/.well-known/oauth-protected-resource/mcp/{route}", method="GET", host=LISTEN
        )
        oidc.router.requestheaders(f)
        oidc.auth.requestheaders(f)
        oidc.oauth.request(f)
        assert f.response is not None and f.response.status_code == 200
        return dict(json.loads(f.response.content or b""))

    assert metadata("scoped")["scopes_supported"] == ["notes.read", "notes.write"]
    assert metadata("notes")["scopes_supported"] == ["notes.admin"]
    assert "scopes_supported" not in metadata("editors")


@pytest.fixture
def none(tmp_path: Path) -> Iterator[Env]:
    yield from _env(tmp_path, "none")


def test_kind_none_cannot_satisfy_scopes(none: Env) -> None:
    f = none.send("scoped", rpc("ping"), None)
    assert f.response is not None and f.response.status_code == 403
    assert "www-authenticate" not in f.response.headers
    assert 'kind = "dev" or "oidc"' in json.loads(f.response.content or b"")["error"]["message"]


def test_a_client_chosen_name_never_reaches_the_challenge_header(oidc: Env) -> None:
    plain = oidc.token("notes", scope="")
    name = 'purge_"x\r\nSet-Cookie: a=b'
    f = oidc.send("notes", rpc("tools/call", name=name), plain)
    _insufficient(f, "notes.admin")
    assert f.response is not None
    assert "purge_" not in f.response.headers["www-authenticate"]
    assert "set-cookie" not in f.response.headers
    assert repr(name) in json.loads(f.response.content or b"")["error"]["message"]
