"""lockgate.authserver.tokens: access tokens issued and verified, and every way one is refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import OctKey

from lockgate.authserver.keys import SigningKey
from lockgate.authserver.tokens import (
    ACCESS_TOKEN_TTL,
    AccessClaims,
    TokenError,
    verify_access_token,
)
from lockgate.errors import LockgateError
from tests.core.authserver.issuing import AUDIENCE, ISSUER, KEY, NOW, b64url, mint


def _verify(token: str, *, now: float = NOW + 1, **overrides: object) -> AccessClaims:
    kwargs: dict[str, object] = {"keys": KEY, "audience": AUDIENCE, "issuer": ISSUER, "now": now}
    kwargs.update(overrides)
    return verify_access_token(token, **kwargs)  # type: ignore[arg-type]


def _reason(token: str, **overrides: Any) -> str:
    with pytest.raises(TokenError) as info:
        _verify(token, **overrides)
    return info.value.reason


# --- access tokens ----------------------------------------------------------------------


def test_access_token_round_trip() -> None:
    claims = _verify(mint())
    assert claims.iss == ISSUER and claims.aud == AUDIENCE
    assert claims.sub == "alice" and claims.email == "alice@example.com"
    assert claims.groups == ("engineering", "sre")
    assert claims.client_id == "client-1" and claims.scope == "mcp"
    assert claims.iat == int(NOW) and claims.exp == int(NOW) + ACCESS_TOKEN_TTL == NOW + 900
    assert len(claims.jti) >= 16
    assert _verify(mint()).jti != claims.jti


def test_header_names_the_key_and_algorithm() -> None:
    header = json.loads(base64.urlsafe_b64decode(mint().split(".")[0] + "=="))
    assert header == {"alg": "Ed25519", "kid": KEY.kid, "typ": "at+jwt"}


def test_verifies_with_any_held_key() -> None:
    old = SigningKey.generate()
    assert _verify(mint(old), keys=[KEY, old]).sub == "alice"


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
    header, payload, signature = mint().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["groups"] = ["admins"]
    tampered = b64url(json.dumps(claims).encode())
    assert _reason(f"{header}.{tampered}.{signature}") == "bad_signature"
    other_sig = mint(SigningKey.generate()).split(".")[2]
    assert _reason(f"{header}.{payload}.{other_sig}") == "bad_signature"


def test_alg_none_and_hmac_confusion_are_bad_signatures() -> None:
    _, payload, _ = mint().split(".")
    none_header = b64url(json.dumps({"alg": "none", "kid": KEY.kid}).encode())
    assert _reason(f"{none_header}.{payload}.") == "malformed"  # empty signature
    assert _reason(f"{none_header}.{payload}.AAAA") == "bad_signature"
    # HS256 keyed with the public key's bytes: the classic algorithm-confusion forgery.
    public = OctKey.import_key(KEY.public_jwk()["x"].encode())
    hs = jws.serialize_compact(
        {"alg": "HS256", "kid": KEY.kid}, base64.urlsafe_b64decode(payload + "=="), public
    )
    assert _reason(hs) == "bad_signature"


def test_expired() -> None:
    token = mint()
    assert _verify(token, now=NOW + ACCESS_TOKEN_TTL - 1).sub == "alice"
    assert _reason(token, now=NOW + ACCESS_TOKEN_TTL) == "expired"
    assert _reason(mint(ttl=60), now=NOW + 61) == "expired"


def test_wrong_audience() -> None:
    assert _reason(mint(), audience="http://127.0.0.1:8787/mcp/linear") == "wrong_audience"


def test_wrong_issuer() -> None:
    assert _reason(mint(), issuer="https://mcp.example.com") == "wrong_issuer"


def test_not_yet_valid() -> None:
    assert _reason(mint(now=NOW + 300), now=NOW) == "not_yet_valid"


def test_unknown_key() -> None:
    assert _reason(mint(SigningKey.generate())) == "unknown_key"
    _, payload, signature = mint().split(".")
    no_kid = b64url(json.dumps({"alg": "Ed25519"}).encode())
    assert _reason(f"{no_kid}.{payload}.{signature}") == "unknown_key"


def test_error_names_no_token() -> None:
    token = mint()
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
    token = mint()
    index = data.draw(st.integers(0, len(token) - 1))
    char = data.draw(st.characters(codec="utf-8"))
    mutated = token[:index] + char + token[index + 1 :]
    try:
        claims = _verify(mutated)
    except TokenError:
        return
    # Only a change in a base64 segment's unused trailing bits can leave a token valid.
    assert claims == _verify(token)
