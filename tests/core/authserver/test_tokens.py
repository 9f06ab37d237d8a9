"""lockgate.authserver.tokens: the signing key, access tokens, authorization codes and PKCE."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backends.fail
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import OctKey

from lockgate.authserver.codes import CodeStore, is_valid_verifier, pkce_s256
from lockgate.authserver.keys import (
    KeyringKeySource,
    MemoryKeySource,
    SigningKey,
    jwk_thumbprint,
    load_or_create_signing_key,
)
from lockgate.authserver.tokens import (
    ACCESS_TOKEN_TTL,
    AccessClaims,
    TokenError,
    issue_access_token,
    verify_access_token,
)
from lockgate.errors import KeyringUnavailable, LockgateError
from lockgate.identity.claims import UserClaims
from tests.support import keyring_env

ROOT = Path(__file__).resolve().parents[3]
ISSUER = "http://127.0.0.1:8787"
AUDIENCE = "http://127.0.0.1:8787/mcp/notes"
NOW = 1_800_000_000.0
USER = UserClaims(sub="alice", email="alice@example.com", groups=("engineering", "sre"))
KEY = SigningKey.generate()

# RFC 8037 appendix A.1/A.3: an Ed25519 key and its RFC 7638 thumbprint.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
# RFC 7636 appendix B.
RFC7636_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC7636_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(key: SigningKey = KEY, *, now: float = NOW, **overrides: object) -> str:
    kwargs: dict[str, object] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "user": USER,
        "client_id": "client-1",
        "scope": "mcp",
        "now": now,
    }
    kwargs.update(overrides)
    return issue_access_token(key, **kwargs)  # type: ignore[arg-type]


def _verify(token: str, *, now: float = NOW + 1, **overrides: object) -> AccessClaims:
    kwargs: dict[str, object] = {"keys": KEY, "audience": AUDIENCE, "issuer": ISSUER, "now": now}
    kwargs.update(overrides)
    return verify_access_token(token, **kwargs)  # type: ignore[arg-type]


def _reason(token: str, **overrides: Any) -> str:
    with pytest.raises(TokenError) as info:
        _verify(token, **overrides)
    return info.value.reason


# --- the signing key --------------------------------------------------------------------


def test_kid_is_the_rfc7638_thumbprint() -> None:
    assert jwk_thumbprint({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}) == RFC8037_THUMBPRINT
    key = SigningKey.from_text(f"ed25519:{RFC8037_D}")
    assert key.kid == RFC8037_THUMBPRINT
    assert key.public_jwk()["x"] == RFC8037_X


def test_public_jwk_is_public_only() -> None:
    other = SigningKey.generate()
    keys = [KEY.public_jwk(), other.public_jwk()]
    assert [k["kid"] for k in keys] == [KEY.kid, other.kid]
    for k in keys:
        assert k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["alg"] == "Ed25519"
        assert k["use"] == "sig"
        assert "d" not in k
    assert KEY.to_text().split(":")[1] not in json.dumps(keys)


def test_key_text_round_trip_and_repr_hides_it() -> None:
    text = KEY.to_text()
    assert SigningKey.from_text(text).kid == KEY.kid
    assert text.split(":")[1] not in repr(KEY)
    for bad in ["", "ed25519:", "rsa:abc", "ed25519:!!!", f"ed25519:{_b64(b'x' * 31)}"]:
        with pytest.raises(ValueError):
            SigningKey.from_text(bad)


def test_signing_key_is_created_once() -> None:
    source = MemoryKeySource()
    first = load_or_create_signing_key(source)
    assert source.value is not None and source.value.startswith("ed25519:")
    assert load_or_create_signing_key(source).kid == first.kid


def test_unreadable_stored_key_is_an_error_not_a_new_key() -> None:
    source = MemoryKeySource("ed25519:c2VjcmV0LWJ1dC1ub3QtYS1rZXk")
    with pytest.raises(LockgateError) as info:
        load_or_create_signing_key(source)
    assert "c2VjcmV0" not in str(info.value)
    assert "gateway:signing-key" in str(info.value)
    assert source.value == "ed25519:c2VjcmV0LWJ1dC1ub3QtYS1rZXk"


def test_no_keyring_fails_closed(no_keyring: None) -> None:
    with pytest.raises(KeyringUnavailable):
        load_or_create_signing_key()


@pytest.fixture
def keyring_user() -> Iterator[str]:
    for new_name in keyring_env.real_keyring():
        user = f"gateway:signing-key:{new_name()}"
        try:
            yield user
        finally:
            if keyring.get_password("lockgate", user) is not None:
                keyring.delete_password("lockgate", user)


@pytest.mark.keyring
def test_signing_key_persists_in_the_real_keyring(keyring_user: str) -> None:
    first = load_or_create_signing_key(KeyringKeySource(keyring_user))
    assert keyring.get_password("lockgate", keyring_user) == first.to_text()
    assert load_or_create_signing_key(KeyringKeySource(keyring_user)).kid == first.kid
    # Another process (a gateway restart) loads the same key and verifies our tokens.
    token = _token(first)
    script = textwrap.dedent(
        f"""
        from lockgate.authserver.keys import KeyringKeySource, load_or_create_signing_key
        from lockgate.authserver.tokens import verify_access_token
        key = load_or_create_signing_key(KeyringKeySource({keyring_user!r}))
        claims = verify_access_token(
            {token!r}, keys=key, audience={AUDIENCE!r}, issuer={ISSUER!r}, now={NOW + 1}
        )
        print(key.kid, claims.sub)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [first.kid, "alice"]


# --- access tokens ----------------------------------------------------------------------


def test_access_token_round_trip() -> None:
    claims = _verify(_token())
    assert claims.iss == ISSUER and claims.aud == AUDIENCE
    assert claims.sub == "alice" and claims.email == "alice@example.com"
    assert claims.groups == ("engineering", "sre")
    assert claims.client_id == "client-1" and claims.scope == "mcp"
    assert claims.iat == int(NOW) and claims.exp == int(NOW) + ACCESS_TOKEN_TTL == NOW + 900
    assert len(claims.jti) >= 16
    assert _verify(_token()).jti != claims.jti


def test_header_names_the_key_and_algorithm() -> None:
    header = json.loads(base64.urlsafe_b64decode(_token().split(".")[0] + "=="))
    assert header == {"alg": "Ed25519", "kid": KEY.kid, "typ": "at+jwt"}


def test_verifies_with_any_held_key() -> None:
    old = SigningKey.generate()
    assert _verify(_token(old), keys=[KEY, old]).sub == "alice"


def test_malformed() -> None:
    for token in ["", "abc", "a.b", "a.b.c.d", "..", "not.a.token", "é.é.é", "x" * 9000]:
        assert _reason(token) == "malformed", token
    # Correctly signed, but not our claims: the payload is not JSON, or misses client_id.
    not_json = jws.serialize_compact(
        {"alg": "Ed25519", "kid": KEY.kid}, b"hello", KEY.jwk, algorithms=["Ed25519"]
    )
    assert _reason(not_json) == "malformed"
    payload = json.dumps({"iss": ISSUER, "sub": "a", "aud": AUDIENCE, "exp": 2e9, "iat": 1e9})
    no_client = jws.serialize_compact(
        {"alg": "Ed25519", "kid": KEY.kid}, payload, KEY.jwk, algorithms=["Ed25519"]
    )
    assert _reason(no_client) == "malformed"


def test_bad_signature() -> None:
    header, payload, signature = _token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["groups"] = ["admins"]
    tampered = _b64(json.dumps(claims).encode())
    assert _reason(f"{header}.{tampered}.{signature}") == "bad_signature"
    other_sig = _token(SigningKey.generate()).split(".")[2]
    assert _reason(f"{header}.{payload}.{other_sig}") == "bad_signature"


def test_alg_none_and_hmac_confusion_are_bad_signatures() -> None:
    _, payload, _ = _token().split(".")
    none_header = _b64(json.dumps({"alg": "none", "kid": KEY.kid}).encode())
    assert _reason(f"{none_header}.{payload}.") == "malformed"  # empty signature
    assert _reason(f"{none_header}.{payload}.AAAA") == "bad_signature"
    # HS256 keyed with the public key's bytes: the classic algorithm-confusion forgery.
    public = OctKey.import_key(KEY.public_jwk()["x"].encode())
    hs = jws.serialize_compact(
        {"alg": "HS256", "kid": KEY.kid}, base64.urlsafe_b64decode(payload + "=="), public
    )
    assert _reason(hs) == "bad_signature"


def test_expired() -> None:
    token = _token()
    assert _verify(token, now=NOW + ACCESS_TOKEN_TTL - 1).sub == "alice"
    assert _reason(token, now=NOW + ACCESS_TOKEN_TTL) == "expired"
    assert _reason(_token(ttl=60), now=NOW + 61) == "expired"


def test_wrong_audience() -> None:
    assert _reason(_token(), audience="http://127.0.0.1:8787/mcp/linear") == "wrong_audience"


def test_wrong_issuer() -> None:
    assert _reason(_token(), issuer="https://mcp.example.com") == "wrong_issuer"


def test_not_yet_valid() -> None:
    assert _reason(_token(now=NOW + 300), now=NOW) == "not_yet_valid"


def test_unknown_key() -> None:
    assert _reason(_token(SigningKey.generate())) == "unknown_key"
    _, payload, signature = _token().split(".")
    no_kid = _b64(json.dumps({"alg": "Ed25519"}).encode())
    assert _reason(f"{no_kid}.{payload}.{signature}") == "unknown_key"


def test_error_names_no_token() -> None:
    token = _token()
    with pytest.raises(TokenError) as info:
        _verify(token, audience="http://elsewhere/mcp/x")
    assert token not in str(info.value) and isinstance(info.value, LockgateError)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_strings_only_raise_token_error(text: str) -> None:
    with pytest.raises(TokenError):
        _verify(text)


_SEGMENT = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=200
)


@settings(max_examples=300, deadline=None)
@given(_SEGMENT, _SEGMENT, _SEGMENT)
def test_token_shaped_strings_only_raise_token_error(h: str, p: str, s: str) -> None:
    with pytest.raises(TokenError):
        _verify(f"{h}.{p}.{s}")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_tokens_are_refused_or_unchanged(data: st.DataObject) -> None:
    token = _token()
    index = data.draw(st.integers(0, len(token) - 1))
    char = data.draw(st.characters(codec="utf-8"))
    mutated = token[:index] + char + token[index + 1 :]
    try:
        claims = _verify(mutated)
    except TokenError:
        return
    # Only a change in a base64 segment's unused trailing bits can leave a token valid.
    assert claims == _verify(token)


# --- PKCE -------------------------------------------------------------------------------


def test_pkce_rfc7636_vector() -> None:
    assert pkce_s256(RFC7636_VERIFIER) == RFC7636_CHALLENGE


def test_verifier_validation() -> None:
    assert is_valid_verifier("a" * 43) and is_valid_verifier("Az09-._~" * 16)
    for bad in ["a" * 42, "a" * 129, "a" * 42 + "+", "a" * 42 + "/", "ä" * 43, ""]:
        assert not is_valid_verifier(bad)
        with pytest.raises(ValueError):
            pkce_s256(bad)


# --- authorization codes ----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


REDIRECT = "http://127.0.0.1:33418/callback"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def codes(clock: FakeClock) -> CodeStore:
    return CodeStore(clock=clock)


def _issue(codes: CodeStore, challenge: str = RFC7636_CHALLENGE, **overrides: str) -> str:
    kwargs = {
        "client_id": "client-1",
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "resource": AUDIENCE,
        "scope": "mcp",
    }
    kwargs.update(overrides)
    return codes.issue(user=USER, **kwargs)


def _redeem(codes: CodeStore, code: str, **overrides: str) -> object:
    kwargs = {"client_id": "client-1", "redirect_uri": REDIRECT, "code_verifier": RFC7636_VERIFIER}
    kwargs.update(overrides)
    return codes.redeem(code, **kwargs)


def _code_reason(codes: CodeStore, code: str, **overrides: str) -> str:
    with pytest.raises(TokenError) as info:
        _redeem(codes, code, **overrides)
    return info.value.reason


def test_code_redeems_once(codes: CodeStore) -> None:
    code = _issue(codes)
    assert len(base64.urlsafe_b64decode(code + "=")) == 32  # 256 bits
    grant = codes.redeem(
        code, client_id="client-1", redirect_uri=REDIRECT, code_verifier=RFC7636_VERIFIER
    )
    assert grant.user == USER and grant.resource == AUDIENCE and grant.scope == "mcp"
    assert grant.client_id == "client-1" and grant.redirect_uri == REDIRECT
    assert code not in repr(grant)
    assert _code_reason(codes, code) == "replayed_code"


def test_replay_names_the_grant_to_revoke(codes: CodeStore) -> None:
    code = _issue(codes)
    grant = codes.redeem(
        code, client_id="client-1", redirect_uri=REDIRECT, code_verifier=RFC7636_VERIFIER
    )
    codes.attach_grant(grant.code_id, "grant-42")
    with pytest.raises(TokenError) as info:
        _redeem(codes, code)
    assert info.value.reason == "replayed_code" and info.value.grant_id == "grant-42"


def test_code_expires_after_60_seconds(codes: CodeStore, clock: FakeClock) -> None:
    fresh, stale = _issue(codes), _issue(codes)
    clock.now += 59.9
    assert _redeem(codes, fresh)
    clock.now += 0.1
    assert _code_reason(codes, stale) == "expired_code"


def test_unknown_code(codes: CodeStore) -> None:
    assert _code_reason(codes, "no-such-code") == "invalid_grant"
    assert _code_reason(codes, "x" * 10_000) == "invalid_grant"


def test_pkce_mismatch(codes: CodeStore) -> None:
    assert _code_reason(codes, _issue(codes), code_verifier="b" * 43) == "pkce_mismatch"
    assert _code_reason(codes, _issue(codes), code_verifier="short") == "pkce_mismatch"
    challenge = pkce_s256("c" * 64)
    assert _code_reason(codes, _issue(codes, challenge), code_verifier=challenge) == (
        "pkce_mismatch"  # the challenge itself is no verifier (no "plain" fallback)
    )


def test_redirect_mismatch(codes: CodeStore) -> None:
    for other in [REDIRECT + "/", REDIRECT.upper(), "http://127.0.0.1:33419/callback"]:
        assert _code_reason(codes, _issue(codes), redirect_uri=other) == "redirect_mismatch"


def test_client_mismatch(codes: CodeStore) -> None:
    assert _code_reason(codes, _issue(codes), client_id="client-2") == "client_mismatch"


def test_a_failed_redeem_consumes_the_code(codes: CodeStore) -> None:
    code = _issue(codes)
    assert _code_reason(codes, code, code_verifier="b" * 43) == "pkce_mismatch"
    assert _code_reason(codes, code) == "replayed_code"


def test_plain_and_malformed_challenges_are_refused(codes: CodeStore) -> None:
    for kwargs in [
        {"code_challenge_method": "plain", "challenge": RFC7636_VERIFIER},
        {"challenge": "too-short"},
        {"challenge": RFC7636_CHALLENGE + "="},
    ]:
        challenge = kwargs.pop("challenge")
        with pytest.raises(TokenError) as info:
            _issue(codes, challenge, **kwargs)
        assert info.value.reason == "invalid_request"
    assert len(codes) == 0


def test_old_codes_are_pruned(codes: CodeStore, clock: FakeClock) -> None:
    old = _issue(codes)
    clock.now += 60 + 600 + 1
    _issue(codes)
    assert len(codes) == 1
    assert _code_reason(codes, old) == "invalid_grant"
