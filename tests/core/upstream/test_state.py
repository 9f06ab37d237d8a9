"""lockgate.upstream.state and .catalog: each upstream's credential state, and the route catalog.

Why it exists: `lockgate servers` and `lockgate doctor` tell a developer which upstream
still needs a secret or a connect; a wrong state sends them to fix the wrong thing, and a
keyring that cannot be reached must become a state, not a crash. The real keyring is used
where one is available (CI's gnome-keyring); the no-keyring case forces keyring's fail
backend, as tests/support/keyring_env.py does for the other keyring tests.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from lockgate.errors import KeyringUnavailable, LockgateError, ProfileError, SecretMissing
from lockgate.identity import session as login
from lockgate.identity.claims import UserClaims, local_user
from lockgate.keyring import delete_chunked, write_chunked
from lockgate.profile.model import Profile, UpstreamSection, active_profile_path, parse_profile
from lockgate.upstream import secrets
from lockgate.upstream import tokens as upstream_tokens
from lockgate.upstream.catalog import catalog
from lockgate.upstream.state import (
    CredentialState,
    SignedIn,
    keyring_lookup,
    signed_in,
    user_state,
)
from tests.support.doubles import (
    login_session,
    new_issuer,
    oidc_profile_text,
    three_upstreams_text,
    upstream_tokens_for,
)


def _profile(kind: str = "none", names: tuple[str, str, str] = ("open", "static", "linear")):
    identity = (
        'kind = "oidc"\nissuer = "https://login.example.com"\nclient_id = "lockgate"'
        if kind == "oidc"
        else f'kind = "{kind}"'
    )
    open_, static, linear = names
    routes = {"zeta": open_, "alpha": linear, "alpha-ro": linear, "internal": static}
    return parse_profile(
        three_upstreams_text(identity, names, routes, descriptions={"alpha": "Linear, full."})
    )


def test_catalog_lists_every_route_with_its_upstream_and_url() -> None:
    profile = _profile()
    asked: list[str] = []

    def lookup(name: str, upstream: UpstreamSection) -> CredentialState:
        asked.append(name)
        return CredentialState("none_needed", f"state of {name} ({upstream.auth})")

    entries = catalog(profile, lookup)
    assert [e.route for e in entries] == ["alpha", "alpha-ro", "internal", "zeta"]
    assert sorted(asked) == ["linear", "open", "static"]  # once per upstream, not per route
    alpha = entries[0]
    assert (alpha.upstream, alpha.upstream_url, alpha.auth) == (
        "linear",
        "https://mcp.linear.app/mcp",
        "oauth",
    )
    assert alpha.route_url == "http://127.0.0.1:9100/mcp/alpha"
    assert alpha.state.text == "state of linear (oauth)"
    assert catalog(profile, lookup, "https://gw.example.com/")[3].route_url == (
        "https://gw.example.com/mcp/zeta"
    )
    doc = json.loads(json.dumps(alpha.as_dict()))
    assert doc["state"] == "none_needed" and doc["ready"] is True
    assert doc["description"] == "Linear, full."


def test_states_from_injected_keyring_answers() -> None:
    profile = _profile("dev")
    me = local_user()
    held = {"static"}
    tokens = {("linear", me)}
    lookup = keyring_lookup(
        profile, has_secret=lambda n: n in held, stored=lambda u, user: (u, user) in tokens
    )
    states = {e.upstream: e.state for e in catalog(profile, lookup)}
    assert states["open"] == CredentialState("none_needed", "no credential needed")
    assert states["static"] == CredentialState("secret_set", "secret set")
    assert states["linear"] == CredentialState("connected", "connected")

    held.clear()
    tokens.clear()
    states = {e.upstream: e.state for e in catalog(profile, lookup)}
    assert states["static"] == CredentialState(
        "secret_missing", "secret missing", "lockgate secret set static"
    )
    assert states["linear"] == CredentialState(
        "needs_connect", "needs connect", "lockgate connect linear"
    )
    assert not states["static"].ready and not states["linear"].ready


def test_oidc_profiles_ask_to_sign_in_before_oauth_state_is_known() -> None:
    profile = _profile("oidc")
    lookup = keyring_lookup(
        profile,
        user=SignedIn(None),
        has_secret=lambda n: True,
        stored=lambda u, user: pytest.fail("no user yet"),
    )
    states = {e.upstream: e.state for e in catalog(profile, lookup)}
    assert states["linear"] == CredentialState("sign_in_first", "sign in first", "lockgate login")
    assert states["linear"].user is None
    assert states["static"].kind == "secret_set"


def test_oidc_states_are_for_the_signed_in_sub() -> None:
    profile = _profile("oidc")
    alice = SignedIn(UserClaims(sub="alice-sub", email="alice@example.com"))
    asked: list[tuple[str, str]] = []

    def stored(upstream: str, user: str) -> bool:
        asked.append((upstream, user))
        return True

    lookup = keyring_lookup(profile, user=alice, has_secret=lambda n: True, stored=stored)
    state = lookup("linear", profile.upstreams["linear"])
    assert (state.kind, state.user) == ("connected", "alice@example.com")
    assert asked == [("linear", "alice-sub")]  # tokens are keyed by sub, not by email
    assert SignedIn(UserClaims(sub="bob-sub")).shown == "bob-sub"


def test_user_state_is_the_same_vocabulary_for_one_gateway_user() -> None:
    """The consent page's question, for the gateway's signed-in user (not the CLI's)."""
    profile = _profile("oidc")
    asked: list[tuple[str, str]] = []

    def stored(name: str, sub: str) -> bool:
        asked.append((name, sub))
        return sub == "alice"

    def has_secret(name: str) -> bool:
        return False

    alice = user_state(profile, "linear", "alice", has_secret=has_secret, stored=stored)
    bob = user_state(profile, "linear", "bob", has_secret=has_secret, stored=stored)
    assert (alice.kind, alice.text, alice.user) == ("connected", "connected", "alice")
    assert (bob.kind, bob.fix) == ("needs_connect", "lockgate connect linear")
    assert asked == [("linear", "alice"), ("linear", "bob")]
    static = user_state(profile, "static", "alice", has_secret=has_secret, stored=stored)
    assert (static.kind, static.fix) == ("secret_missing", "lockgate secret set static")
    assert user_state(profile, "open", "alice").kind == "none_needed"


def test_signed_in_turns_keyring_trouble_into_a_state() -> None:
    profile = _profile("oidc")

    def no_keyring(_: Profile) -> UserClaims | None:
        raise KeyringUnavailable("No OS keyring is available", "install gnome-keyring")

    def damaged(_: Profile) -> UserClaims | None:
        raise LockgateError("damaged sign-in", "run `lockgate logout` and then `lockgate login`")

    who = signed_in(profile, no_keyring)
    assert who.user is None and who.problem is not None
    assert (who.problem.kind, who.problem.fix) == ("keyring_unavailable", "install gnome-keyring")
    lookup = keyring_lookup(profile, user=who, has_secret=lambda n: True)
    assert lookup("linear", profile.upstreams["linear"]).kind == "keyring_unavailable"
    broken = signed_in(profile, damaged).problem
    assert broken is not None and broken.kind == "sign_in_first"
    assert broken.fix == "run `lockgate logout` and then `lockgate login`"
    assert signed_in(_profile("dev")).user == UserClaims(sub=local_user())  # no keyring read


def test_incomplete_entries_say_how_to_store_them_again() -> None:
    def incomplete(*_: str) -> bool:
        raise SecretMissing("incomplete", "store it again with `lockgate secret set static`")

    profile = _profile()
    lookup = keyring_lookup(profile, has_secret=incomplete, stored=incomplete)
    states = {e.upstream: e.state for e in catalog(profile, lookup)}
    assert states["static"].kind == "secret_missing"
    assert states["static"].fix == "store it again with `lockgate secret set static`"
    assert states["linear"].kind == "needs_connect"


def test_no_keyring_is_a_state_not_an_error(no_keyring: None) -> None:
    with pytest.raises(KeyringUnavailable):  # the real call raises...
        secrets.has_secret("static")
    profile = _profile()
    entries = catalog(profile, keyring_lookup(profile))  # ...the catalog still lists
    states = {e.upstream: e.state for e in entries}
    assert len(entries) == 4
    assert states["open"].kind == "none_needed"
    for name in ("static", "linear"):
        assert states[name].kind == "keyring_unavailable"
        assert states[name].text == "keyring unavailable"
        assert states[name].fix and "Secret Service" in states[name].fix


def test_real_keyring_states(new_upstream: Callable[[], str]) -> None:
    static, linear = new_upstream(), new_upstream()
    profile = _profile("none", ("open", static, linear))
    lookup = keyring_lookup(profile)
    assert lookup(static, profile.upstreams[static]).kind == "secret_missing"
    assert lookup(linear, profile.upstreams[linear]).kind == "needs_connect"
    secrets.set_secret(static, "s3cret-value")
    entry = upstream_tokens.entry_user(linear, local_user())
    write_chunked(entry, json.dumps({"access_token": "a" * 3000}))
    try:
        states = {e.upstream: e.state for e in catalog(profile, keyring_lookup(profile))}
        assert states[static].kind == "secret_set"
        assert states[linear].kind == "connected"
        assert "s3cret-value" not in repr(states)
    finally:
        delete_chunked(entry)


def test_real_keyring_oidc_states_follow_lockgate_login(new_upstream: Callable[[], str]) -> None:
    a, b, issuer = new_upstream(), new_upstream(), new_issuer()
    profile = parse_profile(oidc_profile_text(issuer, a, b))
    sub = f"sub-{uuid.uuid4().hex[:8]}"

    def states() -> dict[str, CredentialState]:
        return {e.upstream: e.state for e in catalog(profile, keyring_lookup(profile))}

    nobody = states()
    assert nobody[a] == CredentialState("sign_in_first", "sign in first", "lockgate login")
    assert nobody[b].kind == "sign_in_first" and signed_in(profile) == SignedIn(None)
    with login_session(issuer, sub, "alice@example.com"), upstream_tokens_for(a, sub):
        assert login.cli_user(profile.identity) == UserClaims(sub=sub, email="alice@example.com")
        alice = states()
        assert alice[a] == CredentialState("connected", "connected")
        assert alice[b] == CredentialState(
            "needs_connect", "needs connect", f"lockgate connect {b}"
        )
        assert alice[a].user == alice[b].user == "alice@example.com"
        assert "never-printed" not in repr(alice)
        # Another user's tokens are not this user's: bob signs in, a needs a connect for him.
        with login_session(issuer, "bob-sub", None):
            bob = states()
            assert bob[a].kind == "needs_connect" and bob[a].user == "bob-sub"
    assert states()[a].kind == "sign_in_first"  # logged out: the current marker is gone


def test_real_keyring_an_ended_session_is_nobody(new_upstream: Callable[[], str]) -> None:
    a, b, issuer = new_upstream(), new_upstream(), new_issuer()
    profile = parse_profile(oidc_profile_text(issuer, a, b))
    with (
        login_session(issuer, "carol-sub", "carol@example.com", expires_at=time.time() - 60),
        upstream_tokens_for(a, "carol-sub"),
    ):
        assert login.current_sub(issuer) == "carol-sub"
        assert login.cli_user(profile.identity) is None
        assert keyring_lookup(profile)(a, profile.upstreams[a]).kind == "sign_in_first"


def test_no_keyring_under_oidc_says_so(no_keyring: None) -> None:
    profile = _profile("oidc")
    state = keyring_lookup(profile)("linear", profile.upstreams["linear"])
    assert state.kind == "keyring_unavailable"


def test_active_profile_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = tmp_path / "given.toml"
    assert active_profile_path(given) == given
    monkeypatch.setenv("LOCKGATE_PROFILE", str(tmp_path / "env.toml"))
    assert active_profile_path() == tmp_path / "env.toml"
    monkeypatch.delenv("LOCKGATE_PROFILE")
    with pytest.raises(ProfileError, match="No profile given") as e:
        active_profile_path()
    assert e.value.exit_code == 2 and e.value.fix and "--profile" in e.value.fix
    from lockgate.paths import data_dir

    installed = data_dir() / "profile.toml"
    installed.write_text("")
    assert active_profile_path() == installed
