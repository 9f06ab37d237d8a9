"""lockgate.ops.checks: each check against the real thing it checks.

Why it exists: `lockgate doctor` is what a user runs when something is wrong; a check that
passes on a broken setup, or fails without a fix, sends them nowhere. Upstreams are real
mcp SDK servers (and an https one with its own CA), the busy port is a real listener, the
gateway is a real `lockgate up`, the identity provider is oidc-provider-mock, and the
keyring is keyring's fail backend, the real one, or a private locked gnome-keyring.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lockgate import keyring as keyring_store
from lockgate.authserver.keys import SigningKey
from lockgate.errors import KeyringUnavailable
from lockgate.ops import checks
from lockgate.ops.checks import CheckResult
from lockgate.ops.doctor import plan
from lockgate.profile.model import Profile, UpstreamSection, parse_profile
from lockgate.upstream.state import CredentialState, keyring_lookup
from tests.support import keyring_env
from tests.support.doubles import (
    login_session,
    new_issuer,
    oidc_profile_text,
    private_keyring_json,
    upstream_tokens_for,
)
from tests.support.gateway import profile_text, running_gateway
from tests.support.upstreams import (
    https_upstream,  # noqa: F401 (fixture)
    sdk_upstream,
)


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# ---------------------------------------------------------------------------- versions


def test_python_version() -> None:
    assert checks.check_python().status == "ok"
    assert checks.check_python((3, 12, 0)).status == "ok"
    old = checks.check_python((3, 11, 9))
    assert old.status == "fail" and "3.11.9 is too old" in old.detail and old.fix


@pytest.mark.parametrize(
    ("version", "status"),
    [("12.3.1", "ok"), ("12.3.0", "ok"), ("12.9", "ok"), ("12.2.9", "fail"), ("13.0.0", "fail")],
)
def test_mitmproxy_version(version: str, status: str) -> None:
    result = checks.check_mitmproxy(version)
    assert result.status == status
    assert (result.fix is None) == (status == "ok")


def test_installed_mitmproxy_passes() -> None:
    result = checks.check_mitmproxy()
    assert result.status == "ok" and result.detail.startswith("mitmproxy 12.")


# ---------------------------------------------------------------------------- keyring


def test_no_keyring_fails_with_the_fix(no_keyring: None) -> None:
    result = checks.check_keyring()
    assert result.status == "fail"
    assert result.detail == "No OS keyring is available to hold upstream secrets (fail.Keyring)"
    assert result.fix and "gnome-keyring" in result.fix


def test_no_keyring_is_only_a_note_when_the_profile_needs_none(no_keyring: None) -> None:
    result = checks.check_keyring(needed=False)
    assert result.status == "warn" and result.passed
    assert result.detail.endswith("(fail.Keyring); this profile does not need it")


@pytest.mark.parametrize(
    ("extra", "needed"),
    [
        ('[identity]\nkind = "none"\n', False),
        ('[identity]\nkind = "dev"\n', True),
        ('[identity]\nkind = "none"\n[upstreams.s]\nurl = "http://h/mcp"\nauth = "header"\n', True),
        ('[identity]\nkind = "none"\n[upstreams.o]\nurl = "http://h/mcp"\nauth = "oauth"\n', True),
    ],
)
def test_needs_keyring(extra: str, needed: bool) -> None:
    text = extra + '[upstreams.a]\nurl = "http://h/mcp"\n[routes.a]\nupstream = "a"\n'
    assert checks.needs_keyring(parse_profile(text)) is needed


def test_a_probe_that_finds_the_keyring_locked() -> None:
    def locked() -> None:
        raise KeyringUnavailable("The OS keyring is locked", "unlock your keyring")

    result = checks.check_keyring(locked)
    assert (result.status, result.fix) == ("fail", "unlock your keyring")
    assert result.detail.startswith("The OS keyring is locked (")


def test_real_keyring_passes() -> None:
    keyring_env.require_keyring()
    result = checks.check_keyring()
    assert result.status == "ok" and result.detail.endswith("reachable and unlocked")


LOCK_SCRIPT = textwrap.dedent(
    """
    import json
    import secretstorage
    from lockgate.ops import checks

    out = {"before": checks.check_keyring().__dict__}
    connection = secretstorage.dbus_init()
    secretstorage.get_default_collection(connection).lock()
    out["after"] = checks.check_keyring().__dict__
    print(json.dumps(out))
    """
)


def test_private_gnome_keyring_unlocked_then_locked() -> None:
    out = private_keyring_json(LOCK_SCRIPT)
    assert out["before"]["status"] == "ok", out
    assert "SecretService" in out["before"]["detail"]
    assert out["after"]["status"] == "fail"
    assert out["after"]["detail"].startswith("The OS keyring is locked")
    assert out["after"]["fix"].startswith("unlock your keyring")


# ---------------------------------------------------------------------------- profile


def test_profile_valid_bad_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.toml"
    good.write_text(profile_text({"a": "http://127.0.0.1:9/mcp"}, {"a": "a", "b": "a"}))
    result, profile = checks.check_profile(good)
    assert result.status == "ok" and profile is not None
    assert result.detail == f"{good} is valid (2 routes, 1 upstream, identity none)"

    bad = tmp_path / "bad.toml"
    bad.write_text('[upstreams.a]\nurl = "http://x/mcp"\n[routes.a]\nupstream = "nope"\n')
    result, profile = checks.check_profile(bad)
    assert profile is None and result.status == "fail"
    assert result.detail.startswith(f"{bad}:4: routes.a.upstream: names upstream 'nope'")
    assert result.fix and "lockgate profile validate" in result.fix

    monkeypatch.delenv("LOCKGATE_PROFILE", raising=False)
    result, profile = checks.check_profile(None)
    assert result.status == "fail" and result.detail == "No profile given and none installed"
    assert result.fix and "--profile" in result.fix
    monkeypatch.setenv("LOCKGATE_PROFILE", str(good))
    assert checks.check_profile(None)[0].status == "ok"


# ---------------------------------------------------------------------------- listen port


def test_free_port(closed_port: int) -> None:
    result = _run(checks.check_port(f"127.0.0.1:{closed_port}"))
    assert (result.status, result.detail) == ("ok", f"127.0.0.1:{closed_port} is free")
    assert _run(checks.check_port("127.0.0.1:0")).status == "ok"


def test_busy_port_silent_listener(silent_listener: int) -> None:
    result = _run(checks.check_port(f"127.0.0.1:{silent_listener}", timeout=0.5))
    assert result.status == "fail"
    assert result.detail == f"127.0.0.1:{silent_listener} is in use by another program"
    assert result.fix and "gateway.listen" in result.fix


def test_busy_port_other_http_server(other_http_server: int) -> None:
    result = _run(checks.check_port(f"127.0.0.1:{other_http_server}"))
    assert result.status == "fail" and "in use by another program" in result.detail


def test_port_already_serving_lockgate(tmp_path: Path) -> None:
    with (
        sdk_upstream() as url,
        running_gateway(profile_text({"n": url}, {"n": "n"}), tmp_path) as gw,
    ):
        listen = gw.base_url.removeprefix("http://")
        result = _run(checks.check_port(listen))
    assert (result.status, result.detail) == ("ok", f"{listen} is already serving lockgate")


def test_address_not_on_this_machine() -> None:
    result = _run(checks.check_port("192.0.2.1:8787"))  # TEST-NET-1: never a local address
    assert result.status == "fail" and result.detail.startswith("cannot listen on 192.0.2.1:8787")


# ---------------------------------------------------------------------------- identity


def _oidc(issuer: str):  # type: ignore[no-untyped-def]
    return parse_profile(
        f'[identity]\nkind = "oidc"\nissuer = "{issuer}"\nclient_id = "lockgate-test"\n'
        '[upstreams.a]\nurl = "http://127.0.0.1:9/mcp"\n[routes.a]\nupstream = "a"\n'
    )


def test_identity_provider_discovery(oidc_issuer: str) -> None:
    result = _run(checks.check_identity(_oidc(oidc_issuer)))
    assert result.status == "ok", result
    assert result.detail.startswith(f"{oidc_issuer}: discovery document OK, ")


def test_identity_provider_down(closed_port: int) -> None:
    issuer = f"http://127.0.0.1:{closed_port}"
    result = _run(checks.check_identity(_oidc(issuer), timeout=2))
    assert result.status == "fail"
    assert result.detail.startswith(f"The identity provider {issuer} could not be reached")
    assert result.fix == "check [identity] issuer in the profile and that the provider is up"


def test_identity_provider_that_is_not_one(other_http_server: int) -> None:
    result = _run(checks.check_identity(_oidc(f"http://127.0.0.1:{other_http_server}")))
    assert result.status == "fail"
    assert result.detail.startswith("The identity provider's discovery document is not usable")
    assert result.fix == "check [identity] issuer in the profile"


def test_identity_kinds_without_a_provider() -> None:
    for kind in ("none", "dev"):
        profile = parse_profile(
            f'[identity]\nkind = "{kind}"\n[upstreams.a]\nurl = "http://127.0.0.1:9/mcp"\n'
            '[routes.a]\nupstream = "a"\n'
        )
        assert _run(checks.check_identity(profile)).status == "ok"


# ------------------------------------------------------------ signing key and client secret


def _identity_text(identity: str) -> str:
    return (
        f"[identity]\n{identity}\n"
        '[upstreams.a]\nurl = "http://127.0.0.1:9/mcp"\n[routes.a]\nupstream = "a"\n'
    )


def _identity(identity: str) -> Profile:
    return parse_profile(_identity_text(identity))


OIDC_WITH_SECRET = (
    'kind = "oidc"\nissuer = "https://login.example.com"\nclient_id = "lockgate"\n'
    'client_secret = "keyring:{entry}"'
)


def test_signing_key_check_from_what_the_keyring_holds() -> None:
    profile = _identity('kind = "dev"')
    asked: list[str] = []

    def holding(value: str | None):  # type: ignore[no-untyped-def]
        def read(entry: str) -> str | None:
            asked.append(entry)
            return value

        return read

    absent = checks.check_signing_key(profile, holding(None))
    assert (absent.status, absent.name) == ("ok", "signing key")
    assert absent.detail == "not in the keyring yet; `lockgate up` creates 'gateway:signing-key'"
    assert asked == ["gateway:signing-key"]
    key = SigningKey.generate().to_text()
    held = checks.check_signing_key(profile, holding(key))
    assert held.status == "ok" and key not in repr(held)
    damaged = checks.check_signing_key(profile, holding("ed25519:not-a-key-never-printed"))
    assert damaged.status == "fail" and not damaged.passed
    assert damaged.detail == "the keyring entry 'gateway:signing-key' is unreadable"
    assert damaged.fix and "delete the keyring entry" in damaged.fix
    assert "never-printed" not in repr(damaged)

    def locked(entry: str) -> str | None:
        raise KeyringUnavailable("The OS keyring is locked", "unlock your keyring")

    failed = checks.check_signing_key(profile, locked)
    assert (failed.status, failed.fix) == ("fail", "unlock your keyring")
    memory = checks.check_signing_key(_identity('kind = "dev"\nsigning_key = "memory"'), locked)
    assert memory.status == "ok" and "memory" in memory.detail  # the keyring is not read


def test_client_secret_check_never_shows_the_secret() -> None:
    profile = _identity(OIDC_WITH_SECRET.format(entry="idp-secret"))
    present = checks.check_client_secret(profile, lambda entry: "s3cret-never-printed")
    assert present.status == "ok"
    assert present.detail == "the identity provider's client secret is in 'idp-secret'"
    missing = checks.check_client_secret(profile, lambda entry: None)
    assert missing.status == "fail"
    assert missing.detail == (
        "the identity provider's client secret is not in the keyring (entry 'idp-secret')"
    )
    assert missing.fix and missing.fix.startswith("store it with `keyring set lockgate idp-secret`")
    assert "never-printed" not in repr(present) + repr(missing)


def test_no_keyring_fails_both_checks(no_keyring: None) -> None:
    for result in (
        checks.check_signing_key(_identity('kind = "dev"')),
        checks.check_client_secret(_identity(OIDC_WITH_SECRET.format(entry="idp-secret"))),
    ):
        assert result.status == "fail", result
        assert result.fix and "gnome-keyring" in result.fix


def test_plan_adds_the_identity_keyring_checks_by_kind(tmp_path: Path) -> None:
    def names(identity: str) -> list[str]:
        path = tmp_path / "p.toml"
        path.write_text(_identity_text(identity))
        return [c.name for c in plan(path)]

    assert "signing key" not in names('kind = "none"')
    assert "signing key" in names('kind = "dev"') and "client secret" not in names('kind = "dev"')
    oidc = 'kind = "oidc"\nissuer = "https://login.example.com"\nclient_id = "lockgate"'
    assert "client secret" not in names(oidc)  # a public client
    assert names(OIDC_WITH_SECRET.format(entry="e"))[-4:] == [
        "signing key",
        "client secret",
        "upstream a",
        "credential a",
    ]


@pytest.fixture
def new_name() -> Iterator[Callable[[], str]]:
    yield from keyring_env.real_keyring()


def test_real_keyring_client_secret_missing_then_stored(new_name: Callable[[], str]) -> None:
    entry = new_name()
    profile = _identity(OIDC_WITH_SECRET.format(entry=entry))
    assert checks.check_client_secret(profile).status == "fail"
    keyring_store.set_entry(entry, "s3cret-never-printed")
    try:
        result = checks.check_client_secret(profile)
    finally:
        keyring_store.delete_chunked(entry)
    assert (result.status, result.detail) == (
        "ok",
        f"the identity provider's client secret is in {entry!r}",
    )
    assert "never-printed" not in repr(result)


def test_real_keyring_signing_key_check_passes() -> None:
    keyring_env.require_keyring()
    result = checks.check_signing_key(_identity('kind = "dev"'))  # read only: absent or held
    assert result.status == "ok", result


SIGNING_KEY_SCRIPT = textwrap.dedent(
    """
    import json
    from lockgate import keyring as keyring_store
    from lockgate.ops import checks
    from lockgate.profile.model import parse_profile
    from lockgate.authserver.keys import KEYRING_USERNAME, load_or_create_signing_key

    profile = parse_profile(
        '[identity]\\nkind = "dev"\\n[upstreams.a]\\nurl = "http://127.0.0.1:9/mcp"\\n'
        '[routes.a]\\nupstream = "a"\\n'
    )
    out = {"absent": checks.check_signing_key(profile).__dict__}
    out["still_absent"] = keyring_store.get_entry(KEYRING_USERNAME) is None
    load_or_create_signing_key()
    out["created"] = checks.check_signing_key(profile).__dict__
    keyring_store.set_entry(KEYRING_USERNAME, "ed25519:damaged")
    out["damaged"] = checks.check_signing_key(profile).__dict__
    print(json.dumps(out))
    """
)


def test_private_keyring_signing_key_absent_created_damaged() -> None:
    out = private_keyring_json(SIGNING_KEY_SCRIPT)
    assert out["absent"]["status"] == "ok"
    assert out["absent"]["detail"].startswith("not in the keyring yet")
    assert out["still_absent"] is True  # doctor never creates the key
    assert out["created"]["status"] == "ok"
    assert out["created"]["detail"] == "Ed25519 key held in the keyring ('gateway:signing-key')"
    assert out["damaged"]["status"] == "fail"
    assert out["damaged"]["fix"].startswith("delete the keyring entry service 'lockgate'")


# ---------------------------------------------------------------------------- upstreams


def _up(url: str) -> UpstreamSection:
    return UpstreamSection(url=url)


def test_reachable_upstream() -> None:
    with sdk_upstream() as url:
        result = _run(checks.check_upstream("notes", _up(url)))
    assert result.status == "ok", result
    assert result.detail.startswith(f"{url} answered HTTP ")


def test_an_upstream_answering_any_status_is_reachable(other_http_server: int) -> None:
    url = f"http://127.0.0.1:{other_http_server}/anything"
    assert _run(checks.check_upstream("x", _up(url))).status == "ok"


def test_unreachable_upstream(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/mcp"
    result = _run(checks.check_upstream("dead", _up(url)))
    assert result.name == "upstream dead" and result.status == "fail"
    assert result.detail == f"{url} is unreachable (ConnectError)"
    assert result.fix and "URL in the profile" in result.fix


def test_upstream_that_never_answers(silent_listener: int) -> None:
    url = f"http://127.0.0.1:{silent_listener}/mcp"
    result = _run(checks.check_upstream("slow", _up(url), timeout=0.3))
    assert (result.status, result.detail) == ("fail", f"{url} did not answer within 0.3 s")


def test_tls_upstream_trusted_only_with_its_ca(https_upstream: tuple[str, Path]) -> None:  # noqa: F811
    url, ca = https_upstream
    untrusted = _run(checks.check_upstream("secure", _up(url)))
    assert untrusted.status == "fail"
    assert untrusted.detail == f"{url}: its TLS certificate is not trusted"
    assert untrusted.fix and "gateway.upstream_ca" in untrusted.fix
    trusted = _run(checks.check_upstream("secure", _up(url), ca_file=ca))
    assert trusted.status == "ok", trusted
    missing_ca = _run(checks.check_upstream("secure", _up(url), ca_file=ca.parent / "nope.pem"))
    assert missing_ca.status == "fail" and "cannot load gateway.upstream_ca" in missing_ca.detail


def test_credential_states() -> None:
    up = UpstreamSection(url="https://x.example.com/mcp", auth="header")

    def lookup_of(state: CredentialState):  # type: ignore[no-untyped-def]
        return lambda name, upstream: state

    ok = checks.check_credential("x", up, lookup_of(CredentialState("secret_set", "secret set")))
    assert (ok.status, ok.detail) == ("ok", "auth header: secret set")
    missing = checks.check_credential(
        "x",
        up,
        lookup_of(CredentialState("secret_missing", "secret missing", "lockgate secret set x")),
    )
    assert (missing.status, missing.fix) == ("fail", "lockgate secret set x")
    later = checks.check_credential(
        "x", up, lookup_of(CredentialState("sign_in_first", "sign in first", "lockgate login"))
    )
    assert later.status == "warn" and later.passed
    assert (later.detail, later.fix) == (
        "auth header: sign in first (tokens are per user)",
        "lockgate login",
    )


def test_real_keyring_credentials_for_the_signed_in_user(new_name: Callable[[], str]) -> None:
    a, b, issuer = new_name(), new_name(), new_issuer()
    profile = parse_profile(oidc_profile_text(issuer, a, b))

    def check(name: str) -> CheckResult:
        return checks.check_credential(name, profile.upstreams[name], keyring_lookup(profile))

    nobody = check(a)
    assert (nobody.status, nobody.fix) == ("warn", "lockgate login")
    assert nobody.detail == "auth oauth: sign in first (tokens are per user)"
    with (
        login_session(issuer, "alice-sub", "alice@example.com"),
        upstream_tokens_for(a, "alice-sub"),
    ):
        connected, needs = check(a), check(b)
    assert (connected.status, connected.detail) == (
        "ok",
        "auth oauth: connected for alice@example.com",
    )
    assert (needs.status, needs.detail, needs.fix) == (
        "fail",
        "auth oauth: needs connect for alice@example.com",
        f"lockgate connect {b}",
    )
