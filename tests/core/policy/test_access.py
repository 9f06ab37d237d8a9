"""lockgate/policy/access.py: who a route and its items admit, and the scopes a request needs.

Why it exists: a profile hands dangerous tools to a team by groups, roles, users and scopes.
A user's view must hide exactly what their rules keep from them, from lists and from calls
alike (one machinery: the filters' deny patterns), must be built once per user, and the
profile syntax must fail with file:line when written wrong. Groups and roles come from the
provider's ID token, nested claims included (`realm_access.roles`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.authserver.keys import SigningKey
from lockgate.authserver.store import Store
from lockgate.authserver.tokens import issue_access_token, verify_access_token
from lockgate.errors import ProfileError
from lockgate.identity.claims import UserClaims
from lockgate.identity.provider import claim_strings
from lockgate.policy.access import (
    Principal,
    RouteAccess,
    admits,
    denial_message,
    missing_scopes,
    scopes_supported,
)
from lockgate.policy.view import Policy, Rule
from lockgate.profile.model import AccessRuleSection, AccessSection, parse_profile

PROFILE = """\
[identity]
kind = "oidc"
issuer = "https://login.example.com"
client_id = "lockgate"
roles_claim = "realm_access.roles"

[upstreams.notes]
url = "https://mcp.example.com/mcp"

[routes.notes]
upstream = "notes"
tools.deny = ["slow_*"]
access.scopes = ["notes.read"]

[[routes.notes.access.tools]]
match = ["delete_*", "add_*"]
groups = ["notes-admins"]
roles = ["editor"]

[[routes.notes.access.tools]]
match = ["delete_*"]
scopes = ["notes.write"]

[[routes.notes.access.prompts]]
match = ["summarize_*"]
users = ["carol@example.com"]

[[routes.notes.access.resource_templates]]
match = ["note://{id}/secret"]
roles = ["auditor"]
"""

TOOLS = ["list_notes", "get_note", "add_note", "delete_note", "slow_count"]


def _route() -> RouteAccess:
    profile = parse_profile(PROFILE, "p.toml")
    section = profile.routes["notes"]
    return RouteAccess("notes", section.access, section.policy())


def _tools(policy: Policy) -> list[str]:
    result = policy.filter_result(
        "tools/list", {"tools": [{"name": n, "inputSchema": {}} for n in TOOLS]}
    )
    return [t["name"] for t in result["tools"]]


def _call(name: str) -> dict[str, Any]:
    return {"name": name, "arguments": {}}


ADMIN = Principal("alice", "a@example.com", groups=("notes-admins",), roles=())
EDITOR = Principal("erin", None, groups=(), roles=("editor",))
READER = Principal("bob", "b@example.com", groups=("eng",), roles=("viewer",))
DEV = Principal("dev-user")  # kind "dev": no groups, no roles


def test_the_profile_declares_roles_claim_rules_and_scopes() -> None:
    profile = parse_profile(PROFILE, "p.toml")
    assert profile.identity.roles_claim == "realm_access.roles"
    access = profile.routes["notes"].access
    assert [r.match for r in access.tools] == [("delete_*", "add_*"), ("delete_*",)]
    assert scopes_supported(access) == ("notes.read", "notes.write")
    assert (
        parse_profile(
            PROFILE.replace('roles_claim = "realm_access.roles"\n', ""), "p"
        ).identity.roles_claim
        == "roles"
    )


@pytest.mark.parametrize(
    ("who", "visible"),
    [
        (ADMIN, ["list_notes", "get_note", "add_note", "delete_note"]),
        (EDITOR, ["list_notes", "get_note", "add_note", "delete_note"]),
        (READER, ["list_notes", "get_note"]),
        (DEV, ["list_notes", "get_note"]),
    ],
)
def test_each_user_sees_what_their_groups_and_roles_admit(
    who: Principal, visible: list[str]
) -> None:
    ra = _route()
    policy = ra.policy_for(who)
    assert _tools(policy) == visible  # slow_count: hidden by the route for everyone
    for name in TOOLS:
        hidden = policy.hidden_target("tools/call", _call(name))
        assert (hidden is None) == (name in visible)


def test_unmatched_items_are_open_and_rules_name_what_they_need() -> None:
    ra = _route()
    assert ra.refusing_rule(READER, "tools/call", _call("list_notes")) is None
    rule = ra.refusing_rule(READER, "tools/call", _call("delete_note"))
    assert rule is not None and rule.required() == {"groups": ["notes-admins"], "roles": ["editor"]}
    message = denial_message(rule, "delete_note", "notes", READER)
    assert "group 'notes-admins'" in message and "role 'editor'" in message
    assert "ask whoever maintains the profile" in message
    dev = denial_message(rule, "delete_note", "notes", DEV)
    assert 'kind = "oidc"' in dev


def test_user_lists_match_sub_or_email_and_are_never_named() -> None:
    ra = _route()
    carol = Principal("carol", "carol@example.com", groups=(), roles=())
    get = {"name": "summarize_note", "arguments": {}}
    assert ra.policy_for(carol).hidden_target("prompts/get", get) is None
    assert ra.policy_for(READER).hidden_target("prompts/get", get) == "summarize_note"
    rule = ra.refusing_rule(READER, "prompts/get", get)
    assert rule is not None and "carol" not in denial_message(rule, "summarize_note", "n", READER)


def test_a_template_rule_hides_the_reads_it_would_produce() -> None:
    ra = _route()
    auditor = Principal("ann", None, groups=(), roles=("auditor",))
    read = {"uri": "note://7/secret"}
    assert ra.policy_for(auditor).hidden_target("resources/read", read) is None
    assert ra.policy_for(READER).hidden_target("resources/read", read) == "note://7/secret"
    assert ra.policy_for(READER).hidden_target("resources/read", {"uri": "note://7"}) is None


def test_scopes_route_wide_and_per_rule() -> None:
    ra = _route()
    assert ra.scopes == ("notes.read",)
    assert ra.required_scopes("tools/call", _call("get_note")) == ("notes.read",)
    assert ra.required_scopes("tools/call", _call("delete_note")) == ("notes.read", "notes.write")
    token = Principal("alice", scopes=frozenset({"notes.read"}))
    assert missing_scopes(("notes.read", "notes.write"), token) == ("notes.write",)
    assert missing_scopes(("notes.read",), Principal("local")) == ("notes.read",)  # no token


def test_a_users_view_is_built_once_and_shared_by_equal_verdicts() -> None:
    ra = _route()
    first = ra.policy_for(READER)
    assert ra.policy_for(READER) is first
    assert ra.builds == 1
    twin = Principal("bob2", None, groups=("finance",), roles=())
    assert ra.policy_for(twin) is first  # same verdicts: same view, no new build
    assert ra.builds == 1
    ra.policy_for(ADMIN)
    assert ra.builds == 2


def test_a_route_without_rules_gives_everyone_its_own_view() -> None:
    base = Policy(tools=Rule(deny=("x",)))
    ra = RouteAccess("r", AccessSection(), base)
    assert ra.policy_for(READER) is base and not ra.restricts_items


def test_route_lists_admit_by_user_group_or_role() -> None:
    assert admits(None, None, None, READER)
    assert not admits(None, None, None, None)
    assert admits(None, None, ("viewer",), READER)
    assert not admits(None, ("notes-admins",), ("editor",), READER)
    assert admits(("b@example.com",), None, None, READER)
    # Kinds without a provider know no groups or roles: such a list admits nobody.
    assert not admits(("dev-user",), None, ("editor",), DEV)
    assert admits(("dev-user",), None, None, DEV)


# --- property: a hidden item never shows and is always refused ---------------------------

NAMES = st.text(alphabet="abcdx_*?", min_size=1, max_size=6)
GROUPS = st.lists(st.sampled_from(["g1", "g2", "g3"]), max_size=2).map(tuple)


@st.composite
def rules(draw: st.DrawFn) -> AccessRuleSection:
    groups = draw(st.one_of(st.none(), GROUPS))
    roles = draw(st.one_of(st.none(), GROUPS))
    users = draw(st.one_of(st.none(), st.just(("u1",))))
    says_who = groups is not None or roles is not None or users is not None
    return AccessRuleSection(
        match=tuple(draw(st.lists(NAMES, min_size=1, max_size=3))),
        groups=groups,
        roles=roles,
        users=users,
        scopes=("s",) if not says_who or draw(st.booleans()) else (),
    )


@given(
    tool_rules=st.lists(rules(), max_size=4),
    deny=st.lists(NAMES, max_size=2),
    names=st.lists(st.text(alphabet="abcdx_", min_size=0, max_size=6), max_size=12),
    user=st.sampled_from(["u1", "u2"]),
    groups=st.one_of(st.none(), GROUPS),
    roles=st.one_of(st.none(), GROUPS),
)
def test_a_hidden_tool_never_appears_and_its_call_is_always_refused(
    tool_rules: list[AccessRuleSection],
    deny: list[str],
    names: list[str],
    user: str,
    groups: tuple[str, ...] | None,
    roles: tuple[str, ...] | None,
) -> None:
    who = Principal(user, groups=groups, roles=roles)
    ra = RouteAccess("r", AccessSection(tools=tuple(tool_rules)), Policy(tools=Rule(deny=deny)))
    policy = ra.policy_for(who)
    listed = {
        t["name"]
        for t in policy.filter_result(
            "tools/list", {"tools": [{"name": n, "inputSchema": {}} for n in names]}
        )["tools"]
    }
    for name in names:
        refused = policy.hidden_target("tools/call", {"name": name}) is not None
        assert (name in listed) == (not refused)
        covering = [r for r in ra.rules if r.covers("tools/call", {"name": name})]
        kept = any(not r.admits(who) for r in covering) or not Rule(deny=deny).visible(name)
        assert refused == kept
        if refused and Rule(deny=deny).visible(name):
            assert ra.refusing_rule(who, "tools/call", {"name": name}) is not None


# --- the provider's claims -----------------------------------------------------------------


def test_claims_are_read_flat_or_by_dotted_path() -> None:
    claims = {
        "groups": ["eng", 3, "ops"],
        "realm_access": {"roles": ["editor", "viewer"]},
        "https://example.com/roles": "admin",
        "odd": {"x": 1},
    }
    assert claim_strings(claims, "groups") == ("eng", "ops")
    assert claim_strings(claims, "realm_access.roles") == ("editor", "viewer")
    assert claim_strings(claims, "https://example.com/roles") == ("admin",)
    assert claim_strings(claims, "odd") == ()
    assert claim_strings(claims, "odd.x") == ()
    assert claim_strings(claims, "missing.path") == ()


# --- profile errors keep file:line ---------------------------------------------------------


def _error(text: str) -> str:
    with pytest.raises(ProfileError) as info:
        parse_profile(text, "p.toml")
    return str(info.value)


def test_a_rule_without_match_names_its_line() -> None:
    msg = _error(PROFILE.replace('match = ["delete_*"]\n', ""))
    assert msg.startswith("p.toml:20: routes.notes.access.tools.1.match: required key"), msg


def test_a_rule_that_says_nothing_is_refused() -> None:
    msg = _error(PROFILE.replace('scopes = ["notes.write"]\n', ""))
    assert msg.startswith("p.toml:20: routes.notes.access.tools.1"), msg
    assert "needs users, groups, roles or scopes" in msg


def test_a_scope_with_a_space_is_refused() -> None:
    msg = _error(PROFILE.replace('access.scopes = ["notes.read"]', 'access.scopes = ["a b"]'))
    assert msg.startswith("p.toml:13: routes.notes.access.scopes.0: expected an OAuth scope"), msg


def test_an_unknown_rule_key_is_named() -> None:
    msg = _error(PROFILE.replace('roles = ["auditor"]', 'role = ["auditor"]'))
    assert "p.toml:30: routes.notes.access.resource_templates.0.role: unknown key" in msg, msg


# --- roles travel with the grant and the token ---------------------------------------------


def test_a_grant_keeps_the_roles_for_refreshed_tokens(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.db") as store:
        client = store.register_client(client_name="c", redirect_uris=["http://127.0.0.1:9/cb"])
        grant = store.create_grant(
            user_sub="alice",
            client_id=client.client_id,
            route="notes",
            groups=["eng"],
            roles=["editor"],
        )
        again = store.get_grant(grant.grant_id)
    assert again is not None and again.roles == ("editor",) and again.groups == ("eng",)


def test_an_access_token_carries_the_roles() -> None:
    key = SigningKey.generate()
    user = UserClaims(sub="alice", groups=("eng",), roles=("editor",))
    token = issue_access_token(
        key, issuer="http://gw", audience="http://gw/mcp/notes", user=user, client_id="c"
    )
    claims = verify_access_token(
        token, keys=key, audience="http://gw/mcp/notes", issuer="http://gw"
    )
    assert claims.roles == ("editor",) and claims.groups == ("eng",)
