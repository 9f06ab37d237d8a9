"""lockgate.servers: the route catalog and each upstream's credential state.

Why it exists: `lockgate servers` and `lockgate doctor` tell a developer which upstream
still needs a secret or a connect; a wrong state sends them to fix the wrong thing, and a
keyring that cannot be reached must become a state, not a crash. The real keyring is used
where one is available (CI's gnome-keyring); the no-keyring case forces keyring's fail
backend, as tests/support/keyring_env.py does for the other keyring tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring.backends.fail
import pytest

from lockgate import secrets, upstream_tokens
from lockgate.errors import KeyringUnavailable, ProfileError, SecretMissing
from lockgate.oauth import local_user
from lockgate.profile import UpstreamSection, parse_profile
from lockgate.servers import (
    CredentialState,
    active_profile_path,
    catalog,
    keyring_lookup,
)
from tests.support import keyring_env


def _profile(kind: str = "none", names: tuple[str, str, str] = ("open", "static", "linear")):
    identity = (
        'kind = "oidc"\nissuer = "https://login.example.com"\nclient_id = "lockgate"'
        if kind == "oidc"
        else f'kind = "{kind}"'
    )
    open_, static, linear = names
    return parse_profile(
        f"""
[gateway]
listen = "127.0.0.1:9100"
[identity]
{identity}
[upstreams.{open_}]
url = "http://127.0.0.1:9/mcp"
[upstreams.{static}]
url = "https://mcp.internal.example.com/mcp"
auth = "header"
[upstreams.{linear}]
url = "https://mcp.linear.app/mcp"
auth = "oauth"
[routes.zeta]
upstream = "{open_}"
[routes.alpha]
upstream = "{linear}"
description = "Linear, full."
[routes.alpha-ro]
upstream = "{linear}"
[routes.internal]
upstream = "{static}"
"""
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
        profile, has_secret=lambda n: True, stored=lambda u, user: pytest.fail("no user yet")
    )
    states = {e.upstream: e.state for e in catalog(profile, lookup)}
    assert states["linear"].kind == "sign_in_first"
    assert states["linear"].text == "sign in first"
    assert states["static"].kind == "secret_set"


def test_incomplete_entries_say_how_to_store_them_again() -> None:
    def incomplete(*_: str) -> bool:
        raise SecretMissing("incomplete", "store it again with `lockgate secret set static`")

    profile = _profile()
    lookup = keyring_lookup(profile, has_secret=incomplete, stored=incomplete)
    states = {e.upstream: e.state for e in catalog(profile, lookup)}
    assert states["static"].kind == "secret_missing"
    assert states["static"].fix == "store it again with `lockgate secret set static`"
    assert states["linear"].kind == "needs_connect"


@pytest.fixture
def no_keyring() -> Iterator[None]:
    yield from keyring_env.forced_keyring(keyring.backends.fail.Keyring())


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


@pytest.fixture
def new_upstream() -> Iterator[Callable[[], str]]:
    yield from keyring_env.real_keyring()


def test_real_keyring_states(new_upstream: Callable[[], str]) -> None:
    static, linear = new_upstream(), new_upstream()
    profile = _profile("none", ("open", static, linear))
    lookup = keyring_lookup(profile)
    assert lookup(static, profile.upstreams[static]).kind == "secret_missing"
    assert lookup(linear, profile.upstreams[linear]).kind == "needs_connect"
    secrets.set_secret(static, "s3cret-value")
    entry = upstream_tokens.entry_user(linear, local_user())
    secrets.write_chunked(entry, json.dumps({"access_token": "a" * 3000}))
    try:
        states = {e.upstream: e.state for e in catalog(profile, keyring_lookup(profile))}
        assert states[static].kind == "secret_set"
        assert states[linear].kind == "connected"
        assert "s3cret-value" not in repr(states)
    finally:
        secrets.delete_chunked(entry)


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
