"""Credentials the gateway issues as an OAuth 2.1 authorization server for MCP clients.

- A signing key (Ed25519), made once and kept in the OS keyring, never on disk.
- Access tokens: JWTs signed with it, bound to one route's resource URI (RFC 8707), short
  lived, verified by the gateway itself on every request.
- Authorization codes: in memory, single use, 60 s, PKCE S256 only (OAuth 2.1).

Every refusal is a :class:`TokenError` with a machine-readable ``reason`` that the resource
server turns into a 401 and the audit log records. No message ever holds a token or code.
The JWS algorithm is ``Ed25519``: EdDSA on Ed25519 under its fully specified name (RFC
9864), which joserfc prefers over the deprecated ``EdDSA``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import OKPKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockgate import keyring as keyring_secrets
from lockgate.errors import LockgateError
from lockgate.net.oauth_client import s256

ALGORITHM = "Ed25519"
KEYRING_USERNAME = "gateway:signing-key"
ACCESS_TOKEN_TTL = 15 * 60
CODE_TTL = 60.0
# A redeemed code is remembered this long so that a second redeem reports a replay.
CODE_REPLAY_WINDOW = 600.0
MAX_TOKEN_LENGTH = 8192

Clock = Callable[[], float]

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

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_VERIFIER_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")


class TokenError(LockgateError):
    """A refused token or code; ``reason`` is what 401s and audit events carry.

    On ``replayed_code``, ``grant_id`` names the grant issued from the code (if the token
    endpoint attached one), which the caller should revoke (OAuth 2.1 section 4.1.3).
    """

    def __init__(self, reason: TokenReason, *, grant_id: str | None = None) -> None:
        super().__init__(_MESSAGES[reason], "sign in again to get a new token")
        self.reason: TokenReason = reason
        self.grant_id = grant_id


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(segment: str) -> bytes:
    if not _B64URL_RE.fullmatch(segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# --- the signing key --------------------------------------------------------------------


def jwk_thumbprint(public_jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint of an OKP key: SHA-256 over its required members, base64url."""
    required = {name: public_jwk[name] for name in ("crv", "kty", "x")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True)
class SigningKey:
    """The gateway's Ed25519 key; ``kid`` is its public key's RFC 7638 thumbprint."""

    private_key: Ed25519PrivateKey = field(repr=False)
    kid: str = field(init=False)
    _jwk: OKPKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        kid = jwk_thumbprint({"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)})
        object.__setattr__(self, "kid", kid)
        object.__setattr__(self, "_jwk", OKPKey.import_key(self.private_key, {"kid": kid}))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str) -> SigningKey:
        """Parse the keyring form (``ed25519:`` and the raw private key in base64url)."""
        prefix, _, encoded = text.partition(":")
        if prefix != "ed25519":
            raise ValueError("not an ed25519 signing key")
        try:
            raw = _b64url_decode(encoded)
        except (ValueError, binascii.Error) as e:
            raise ValueError("signing key is not base64url") from e
        if len(raw) != 32:
            raise ValueError("an Ed25519 private key is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def to_text(self) -> str:
        """The keyring form: short enough for every backend, no chunking needed."""
        raw = self.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return f"ed25519:{_b64url(raw)}"

    def public_jwk(self) -> dict[str, str]:
        """The public JWK, as published in the JWK set."""
        public = {str(k): str(v) for k, v in self._jwk.as_dict(private=False).items()}
        return {**public, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    @property
    def jwk(self) -> OKPKey:
        return self._jwk


def jwks(*keys: SigningKey) -> dict[str, list[dict[str, str]]]:
    """The public JWK set of the given keys (the current one, plus any still verifying)."""
    return {"keys": [key.public_jwk() for key in keys]}


class KeySource(Protocol):
    """Where the signing key lives; the OS keyring in the gateway, a dict in tests."""

    def load(self) -> str | None: ...

    def store(self, value: str) -> None: ...


@dataclass
class KeyringKeySource:
    """The signing key's entry in the OS keyring (service ``lockgate``), with the same
    fail-closed error translation as upstream secrets."""

    username: str = KEYRING_USERNAME

    def load(self) -> str | None:
        return keyring_secrets.get_entry(self.username)

    def store(self, value: str) -> None:
        keyring_secrets.set_entry(self.username, value)


@dataclass
class MemoryKeySource:
    """A key source that forgets on exit: tests, and throwaway gateways."""

    value: str | None = field(default=None, repr=False)

    def load(self) -> str | None:
        return self.value

    def store(self, value: str) -> None:
        self.value = value


SIGNING_KEY_SOURCE_ENV = "LOCKGATE_SIGNING_KEY_SOURCE"
_MEMORY_SOURCE = MemoryKeySource()


def default_key_source(profile_setting: str = "keyring") -> KeySource:
    """The OS keyring; memory when the profile says ``[identity] signing_key = "memory"``
    (kind "dev" only) or ``LOCKGATE_SIGNING_KEY_SOURCE=memory`` (tests): the key lives in
    this process's memory, so tokens die with the gateway. Nothing else, never a file."""
    if profile_setting == "memory":
        return _MEMORY_SOURCE
    choice = os.environ.get(SIGNING_KEY_SOURCE_ENV, "keyring").strip().lower()
    if choice in ("", "keyring"):
        return KeyringKeySource()
    if choice == "memory":
        return _MEMORY_SOURCE
    raise LockgateError(
        f"{SIGNING_KEY_SOURCE_ENV}={choice!r} is not a signing key source",
        'unset it (the OS keyring is used) or set it to "memory" in tests',
    )


def load_or_create_signing_key(source: KeySource | None = None) -> SigningKey:
    """The gateway's signing key: loaded, or generated and stored on first use.

    After storing a new key it is read back, so two gateways starting at once settle on the
    one the keyring kept. An unreadable entry is an error, never silently replaced.
    """
    source = source if source is not None else KeyringKeySource()
    stored = source.load()
    if stored is None:
        source.store(SigningKey.generate().to_text())
        stored = source.load()
        if stored is None:
            raise LockgateError(
                "The OS keyring did not keep the gateway's signing key",
                "check that your keyring is unlocked and writable, then try again",
            )
    try:
        return SigningKey.from_text(stored)
    except ValueError as e:
        raise LockgateError(
            "The gateway's signing key in the OS keyring is unreadable",
            f"delete the keyring entry service 'lockgate', user '{KEYRING_USERNAME}'; "
            "lockgate makes a new one and MCP clients sign in again",
        ) from e


# --- access tokens ----------------------------------------------------------------------


class UserClaims(BaseModel):
    """Who signed in, as the identity provider said."""

    model_config = ConfigDict(frozen=True)

    sub: str = Field(min_length=1)
    email: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


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
            _b64url_decode(part)
        header = json.loads(_b64url_decode(parts[0]))
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


# --- PKCE -------------------------------------------------------------------------------


def is_valid_verifier(verifier: str) -> bool:
    """RFC 7636: 43 to 128 characters of ``[A-Za-z0-9-._~]``."""
    return isinstance(verifier, str) and _VERIFIER_RE.fullmatch(verifier) is not None


def pkce_s256(verifier: str) -> str:
    """The S256 code challenge of a verifier; ``ValueError`` for an invalid verifier."""
    if not is_valid_verifier(verifier):
        raise ValueError("a PKCE code verifier is 43-128 characters of [A-Za-z0-9-._~]")
    return s256(verifier)


# --- authorization codes ----------------------------------------------------------------


@dataclass(frozen=True)
class CodeGrant:
    """What a redeemed authorization code carries to the token endpoint."""

    code_id: str
    client_id: str
    redirect_uri: str
    user: UserClaims
    resource: str
    scope: str
    issued_at: float


@dataclass
class _Code:
    grant: CodeGrant
    code_challenge: str
    expires_at: float
    redeemed_at: float | None = None
    grant_id: str | None = None


def _code_id(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


class CodeStore:
    """Authorization codes in memory (a gateway restart voids them: they live 60 s anyway).

    Codes are kept by hash. Every redeem of a known code consumes it, failed or not, and
    it is remembered for a while so that a second redeem is reported as a replay.
    """

    def __init__(
        self,
        *,
        ttl: float = CODE_TTL,
        replay_window: float = CODE_REPLAY_WINDOW,
        clock: Clock = time.time,
    ) -> None:
        self._ttl = ttl
        self._replay_window = replay_window
        self._clock = clock
        self._codes: dict[str, _Code] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._codes)

    def issue(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        code_challenge: str,
        user: UserClaims,
        resource: str,
        scope: str = "",
        code_challenge_method: str = "S256",
    ) -> str:
        """A new 256-bit code for a completed authorization; PKCE S256 is required."""
        if code_challenge_method != "S256" or not _CHALLENGE_RE.fullmatch(code_challenge):
            raise TokenError("invalid_request")
        code = secrets.token_urlsafe(32)
        now = self._clock()
        code_id = _code_id(code)
        entry = _Code(
            grant=CodeGrant(
                code_id=code_id,
                client_id=client_id,
                redirect_uri=redirect_uri,
                user=user,
                resource=resource,
                scope=scope,
                issued_at=now,
            ),
            code_challenge=code_challenge,
            expires_at=now + self._ttl,
        )
        with self._lock:
            self._prune(now)
            self._codes[code_id] = entry
        return code

    def redeem(
        self, code: str, *, client_id: str, redirect_uri: str, code_verifier: str
    ) -> CodeGrant:
        """Exchange a code once: same client, same redirect_uri, matching verifier, in time."""
        if not isinstance(code, str) or len(code) > 512:
            raise TokenError("invalid_grant")
        with self._lock:
            now = self._clock()
            entry = self._codes.get(_code_id(code))
            if entry is None:
                raise TokenError("invalid_grant")
            if entry.redeemed_at is not None:
                raise TokenError("replayed_code", grant_id=entry.grant_id)
            entry.redeemed_at = now
        grant = entry.grant
        if now >= entry.expires_at:
            raise TokenError("expired_code")
        if client_id != grant.client_id:
            raise TokenError("client_mismatch")
        if redirect_uri != grant.redirect_uri:
            raise TokenError("redirect_mismatch")
        if not is_valid_verifier(code_verifier) or not hmac.compare_digest(
            pkce_s256(code_verifier), entry.code_challenge
        ):
            raise TokenError("pkce_mismatch")
        return grant

    def attach_grant(self, code_id: str, grant_id: str) -> None:
        """Link the grant issued from a code, so that a replay names the grant to revoke."""
        with self._lock:
            entry = self._codes.get(code_id)
            if entry is not None:
                entry.grant_id = grant_id

    def _prune(self, now: float) -> None:
        horizon = now - self._ttl - self._replay_window
        stale = [cid for cid, c in self._codes.items() if c.grant.issued_at < horizon]
        for cid in stale:
            del self._codes[cid]
