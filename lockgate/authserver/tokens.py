"""Access tokens the gateway issues as an OAuth 2.1 authorization server for MCP clients.

Access tokens are JWTs signed with the gateway's key (`keys`), bound to one route's
resource URI (RFC 8707), short lived, verified by the gateway itself on every request.
Authorization codes and PKCE live in `codes`.

Every refusal is a :class:`TokenError` with a machine-readable ``reason`` that the resource
server turns into a 401 and the audit log records. No message ever holds a token or code.
"""

from __future__ import annotations

import binascii
import json
import secrets
import time
from collections.abc import Iterable
from typing import Any, Literal

from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockgate.authserver.keys import ALGORITHM, SigningKey, b64url_decode
from lockgate.errors import LockgateError
from lockgate.identity.claims import UserClaims

ACCESS_TOKEN_TTL = 15 * 60
REFRESH_TOKEN_TTL = 30 * 24 * 3600.0
MAX_TOKEN_LENGTH = 8192

TokenReason = Literal[
    "malformed",
    "bad_signature",
    "expired",
    "wrong_audience",
    "wrong_issuer",
    "not_yet_valid",
    "unknown_key",
    "invalid_request",
    "invalid_grant",
    "replayed_code",
    "expired_code",
    "pkce_mismatch",
    "redirect_mismatch",
    "client_mismatch",
    "grant_revoked",
    "wrong_route",
]

_MESSAGES: dict[TokenReason, str] = {
    "malformed": "The token is not a well-formed gateway access token",
    "bad_signature": "The token's signature does not verify",
    "expired": "The token has expired",
    "wrong_audience": "The token was issued for another resource",
    "wrong_issuer": "The token was issued by another authorization server",
    "not_yet_valid": "The token is not valid yet",
    "unknown_key": "The token was signed with a key this gateway does not hold",
    "invalid_request": "The authorization request is invalid",
    "invalid_grant": "The authorization code is unknown",
    "replayed_code": "The authorization code was already used",
    "expired_code": "The authorization code has expired",
    "pkce_mismatch": "The code verifier does not match the code challenge",
    "redirect_mismatch": "The redirect_uri does not match the authorization request",
    "client_mismatch": "The authorization code was issued to another client",
    "grant_revoked": "The sign-in behind this token was revoked",
    "wrong_route": "The token was issued for another upstream behind this route",
}


class TokenError(LockgateError):
    """A refused token or code; ``reason`` is what 401s and audit events carry.

    On ``replayed_code``, ``grant_id`` names the grant issued from the code (if the token
    endpoint attached one), which the caller should revoke (OAuth 2.1 section 4.1.3).
    """

    def __init__(self, reason: TokenReason, *, grant_id: str | None = None) -> None:
        super().__init__(_MESSAGES[reason], "sign in again to get a new token")
        self.reason: TokenReason = reason
        self.grant_id = grant_id


class AccessClaims(BaseModel):
    """The verified claims of a gateway access token."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    iss: str
    sub: str = Field(min_length=1)
    aud: str
    exp: int
    iat: int
    nbf: int | None = None
    jti: str = Field(min_length=1)
    email: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    client_id: str = Field(min_length=1)
    scope: str = ""
    gid: str | None = None
    rid: str | None = None  # the route's identity (lockgate.policy.routes.route_identity)


def issue_access_token(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    user: UserClaims,
    client_id: str,
    scope: str = "",
    grant_id: str | None = None,
    route_id: str | None = None,
    ttl: int = ACCESS_TOKEN_TTL,
    now: float | None = None,
) -> str:
    """A signed JWT for one route (``audience`` is its resource URI). ``grant_id`` (claim
    ``gid``) lets the resource server refuse the token once its grant is revoked; ``route_id``
    (claim ``rid``) binds it to the route's identity, checked on every request."""
    iat = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": user.sub,
        "aud": audience,
        "exp": iat + ttl,
        "iat": iat,
        "jti": secrets.token_urlsafe(16),
        "groups": list(user.groups),
        "roles": list(user.roles),
        "client_id": client_id,
        "scope": scope,
    }
    if user.email is not None:
        claims["email"] = user.email
    if grant_id is not None:
        claims["gid"] = grant_id
    if route_id is not None:
        claims["rid"] = route_id
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key.jwk, algorithms=[ALGORITHM], default_type=None)


def _header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, checked for shape before any key is touched."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts) or len(parts[0]) > 1024:
        raise TokenError("malformed")
    try:
        for part in parts:
            b64url_decode(part)
        header = json.loads(b64url_decode(parts[0]))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError) as e:
        raise TokenError("malformed") from e
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise TokenError("malformed")
    return header


def verify_access_token(
    token: str,
    *,
    keys: SigningKey | Iterable[SigningKey],
    audience: str,
    issuer: str,
    now: float | None = None,
) -> AccessClaims:
    """Verify signature, issuer, audience and lifetime; raise :class:`TokenError` otherwise.

    Only ``Ed25519`` is accepted (no ``none``, no HMAC confusion) and only with a key the
    gateway holds, found by ``kid``.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("malformed")
    header = _header(token)
    if header["alg"] != ALGORITHM:
        raise TokenError("bad_signature")
    by_kid = {k.kid: k for k in ([keys] if isinstance(keys, SigningKey) else keys)}
    kid = header.get("kid")
    key = by_kid.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise TokenError("unknown_key")
    try:
        signed = jws.deserialize_compact(token, key.jwk, algorithms=[ALGORITHM])
        payload = json.loads(signed.payload or b"")
        claims = AccessClaims.model_validate(payload)
    except BadSignatureError as e:
        raise TokenError("bad_signature") from e
    except (JoseError, ValidationError, ValueError, TypeError, RecursionError) as e:
        raise TokenError("malformed") from e
    if claims.iss != issuer:
        raise TokenError("wrong_issuer")
    if claims.aud != audience:
        raise TokenError("wrong_audience")
    current = time.time() if now is None else now
    if current >= claims.exp:
        raise TokenError("expired")
    if current < claims.iat or (claims.nbf is not None and current < claims.nbf):
        raise TokenError("not_yet_valid")
    return claims
