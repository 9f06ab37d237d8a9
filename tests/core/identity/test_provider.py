"""lockgate.identity.provider: discovery checks and ID token validation, with tokens signed here.

Why it exists: the ID token is the only proof of who signed in. A token for another client,
from another issuer, replayed into another sign-in (nonce), expired or signed by another
key must be refused; and a discovery document that names another issuer or a private
address must never be used. `oidc-provider-mock` only makes good tokens, so the bad ones
are signed here against a key set the test controls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import anyio
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from lockgate.identity.provider import (
    OIDCError,
    Provider,
    UnknownSigningKey,
    discover,
    validate_id_token,
    verify_id_token,
)
from tests.support.httpd import http_server

ISSUER = "https://login.example.com"
CLIENT = "lockgate"
NONCE = "n-123"

KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "k1"})
KEYS = KeySet([KEY])


def sign(key: RSAKey = KEY, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": CLIENT,
        "exp": now + 300,
        "iat": now,
        "nonce": NONCE,
        "email": "a@example.com",
        "groups": ["eng", "ops"],
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)


def check(token: str, **kw: Any) -> Any:
    args = {"issuer": ISSUER, "client_id": CLIENT, "nonce": NONCE, **kw}
    return validate_id_token(token, KEYS, **args)


def test_a_good_id_token_gives_sub_email_and_groups() -> None:
    user = check(sign())
    assert (user.sub, user.email, user.groups) == ("alice", "a@example.com", ("eng", "ops"))


def test_an_unverified_email_is_dropped() -> None:
    assert check(sign(email_verified=False)).email is None
    assert check(sign(email_verified=True)).email == "a@example.com"


def test_the_groups_claim_is_configurable() -> None:
    user = check(sign(roles=["admin"]), groups_claim="roles")
    assert user.groups == ("admin",)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"nonce": "another"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"aud": "someone-else"}, "another client"),
        ({"aud": ["someone-else", CLIENT]}, "azp"),
        ({"iss": "https://evil.example.com"}, "iss"),
        ({"exp": int(time.time()) - 3600}, "exp"),
        ({"sub": None}, "sub"),
    ],
)
def test_bad_id_tokens_are_refused(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(OIDCError) as e:
        check(sign(**overrides))
    assert reason in e.value.message


def test_a_token_signed_by_another_key_is_refused() -> None:
    with pytest.raises(OIDCError, match="signature"):
        check(sign(OTHER))


def test_an_unsigned_token_is_refused() -> None:
    header = "eyJhbGciOiJub25lIn0"  # {"alg":"none"}
    import base64

    body = base64.urlsafe_b64encode(json.dumps({"sub": "alice"}).encode()).rstrip(b"=").decode()
    with pytest.raises(OIDCError):
        check(f"{header}.{body}.")


# --- discovery ------------------------------------------------------------------------------


def _serve(documents: dict[str, Any], hits: list[str]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            doc = documents.get(self.path)
            body = json.dumps(doc).encode()
            self.send_response(200 if doc is not None else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with http_server(Handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def hits() -> list[str]:
    """The paths the test provider was asked for, in order."""
    return []


@pytest.fixture
def idp(hits: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    documents: dict[str, Any] = {}
    for base in _serve(documents, hits):
        documents["/.well-known/openid-configuration"] = {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "code_challenge_methods_supported": ["S256"],
        }
        documents["/jwks"] = KeySet([KEY]).as_dict(private=False)
        yield base, documents


def test_discovery_loads_metadata_and_keys(idp: tuple[str, dict[str, Any]]) -> None:
    base, _ = idp
    provider = anyio.run(discover, base)
    assert provider.metadata.token_endpoint == f"{base}/token"
    assert provider.keys.get_by_kid("k1") is not None


def test_discovery_refuses_another_issuer(idp: tuple[str, dict[str, Any]]) -> None:
    base, docs = idp
    docs["/.well-known/openid-configuration"]["issuer"] = "https://login.example.com"
    with pytest.raises(OIDCError, match="calls itself"):
        anyio.run(discover, base)


def test_discovery_refuses_an_endpoint_at_a_private_address(
    idp: tuple[str, dict[str, Any]],
) -> None:
    base, docs = idp
    docs["/.well-known/openid-configuration"]["token_endpoint"] = "http://10.0.0.5/token"
    with pytest.raises(OIDCError, match="token_endpoint was refused"):
        anyio.run(discover, base)


def test_discovery_refuses_a_javascript_endpoint(idp: tuple[str, dict[str, Any]]) -> None:
    base, docs = idp
    docs["/.well-known/openid-configuration"]["authorization_endpoint"] = "javascript:alert(1)"
    with pytest.raises(OIDCError, match="authorization_endpoint was refused"):
        anyio.run(discover, base)


def test_discovery_without_pkce_s256_is_refused(idp: tuple[str, dict[str, Any]]) -> None:
    base, docs = idp
    docs["/.well-known/openid-configuration"]["code_challenge_methods_supported"] = ["plain"]
    with pytest.raises(OIDCError, match="PKCE"):
        anyio.run(discover, base)


def test_an_unreachable_provider_is_one_sentence() -> None:
    with pytest.raises(OIDCError, match="could not be reached"):
        anyio.run(discover, "http://127.0.0.1:9")


# --- key rotation: the provider's JWKS served over HTTP, changed between calls ----------------

NEW = RSAKey.generate_key(2048, parameters={"kid": "k2"})


def signed_at(base: str, key: RSAKey, kid: str | None, **overrides: Any) -> str:
    """An ID token from the test provider at `base`, its header naming `kid` (or none)."""
    now = int(time.time())
    claims = {"iss": base, "sub": "alice", "aud": CLIENT, "exp": now + 300, "nonce": NONCE}
    header = {"alg": "RS256", **({"kid": kid} if kid else {})}
    return jwt.encode(header, {**claims, **overrides}, key)


def verify(
    idp: tuple[str, dict[str, Any]],
    token: str,
    hits: list[str],
    *,
    then: list[RSAKey] | None = None,
) -> tuple[Any, int, Provider]:
    """Discover the provider (it publishes KEY), then, once it publishes `then` instead (its
    rotation), verify `token`: the user, the JWKS fetches made after discovery (each one a
    real request to the provider) and the provider as the gateway keeps it."""
    base, docs = idp

    async def run() -> tuple[Any, int, Provider]:
        provider = await discover(base)
        if then is not None:
            docs["/jwks"] = KeySet(then).as_dict(private=False)
        before = hits.count("/jwks")
        try:
            user = await verify_id_token(provider, token, client_id=CLIENT, nonce=NONCE)
        finally:
            fetched = hits.count("/jwks") - before
        return user, fetched, provider

    return anyio.run(run)


def test_a_rotated_key_is_fetched_once_and_signs_the_user_in(
    idp: tuple[str, dict[str, Any]], hits: list[str]
) -> None:
    token = signed_at(idp[0], NEW, "k2")
    user, fetched, provider = verify(idp, token, hits, then=[KEY, NEW])
    assert user.sub == "alice" and fetched == 1
    assert provider.keys.get_by_kid("k2") is not None  # kept for the next sign-in


def test_a_provider_without_kids_that_replaced_its_key_still_signs_users_in(
    idp: tuple[str, dict[str, Any]], hits: list[str]
) -> None:
    user, fetched, _ = verify(idp, signed_at(idp[0], NEW, None), hits, then=[NEW])
    assert user.sub == "alice" and fetched == 1


def test_a_key_the_provider_never_published_is_refused_after_one_fetch(
    idp: tuple[str, dict[str, Any]], hits: list[str]
) -> None:
    with pytest.raises(UnknownSigningKey, match="signature was refused"):
        verify(idp, signed_at(idp[0], NEW, "k2"), hits)
    assert hits.count("/jwks") == 2  # discovery, then the one retry


def test_other_refusals_fetch_no_keys(idp: tuple[str, dict[str, Any]], hits: list[str]) -> None:
    base = idp[0]
    expired = signed_at(base, KEY, "k1", exp=int(time.time()) - 3600)
    forged = signed_at(base, OTHER, "k1")  # a known kid, another key: not a rotation
    for token, reason in ((expired, "exp"), (forged, "signature")):
        with pytest.raises(OIDCError, match=reason) as e:
            verify(idp, token, hits)
        assert not isinstance(e.value, UnknownSigningKey)
    assert hits.count("/jwks") == 2  # one per discovery, none for the refusals


def test_validate_id_token_tells_an_unknown_key_from_a_bad_signature() -> None:
    with pytest.raises(UnknownSigningKey):
        check(signed_at(ISSUER, NEW, "k2"))
    with pytest.raises(OIDCError) as e:
        check(sign(OTHER))
    assert not isinstance(e.value, UnknownSigningKey)
