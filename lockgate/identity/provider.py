"""The company's OpenID Connect provider: discovery, its signing keys, the code exchange and
the ONE ID-token validator (`[identity] kind = "oidc"`).

Why it exists: both sign-in paths (the gateway's `/oauth/callback` in the browser, and
`lockgate login` with its refreshes in `lockgate.identity.refresh`) trust the same provider
the same way. Discovery (`<issuer>/.well-known/openid-configuration` and its JWKS) is fetched
under the SSRF rules of `lockgate.net.urlcheck` and validated; :func:`verify_id_token` checks
an ID token (JWKS signature, iss, aud, exp, nonce) and fetches the provider's keys once more
when the token is signed by a key it has not seen (the provider rotated its keys). Nothing
here logs or returns a token, code, verifier or secret.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict, ValidationError

from lockgate.errors import LockgateError, first_validation_error
from lockgate.identity.claims import UserClaims
from lockgate.net.fetch import FetchError, fetch_json, post_form
from lockgate.net.oauth_client import client_authentication, error_code
from lockgate.net.urlcheck import UnsafeUrl, check_url

CLOCK_SKEW = 60
ID_TOKEN_ALGS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA", "Ed25519"]


class OIDCError(LockgateError):
    """The provider could not be used, or its answer was refused."""


class UnknownSigningKey(OIDCError):
    """The ID token is signed with a key the provider's key set, as last fetched, does not
    hold (its `kid` is not there, or it names none and the set's one key does not verify it):
    the provider may have rotated its keys since."""


class ProviderMetadata(BaseModel):
    """The parts of the provider's discovery document the gateway relies on."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    revocation_endpoint: str | None = None  # RFC 7009, used by `lockgate logout`
    device_authorization_endpoint: str | None = None  # RFC 8628, `lockgate login --device`
    code_challenge_methods_supported: tuple[str, ...] | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] = ("client_secret_basic",)


@dataclass
class Provider:
    """A discovered provider: its metadata and its signing keys (refreshed on an unknown kid)."""

    metadata: ProviderMetadata
    keys: KeySet


async def discover(issuer: str, *, timeout: float = 10) -> Provider:
    """Fetch and check the discovery document and the JWKS; OIDCError says what failed."""
    issuer = issuer.rstrip("/")
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        raw = await fetch_json(url, timeout=timeout)
    except (FetchError, UnsafeUrl) as e:
        raise OIDCError(
            f"The identity provider {issuer} could not be reached for discovery ({e.message})",
            "check [identity] issuer in the profile and that the provider is up",
        ) from None
    try:
        metadata = ProviderMetadata.model_validate(raw)
    except ValidationError as e:
        where, message, _ = first_validation_error(e, "document")
        raise OIDCError(
            f"The identity provider's discovery document is not usable ({where}: {message})",
            "check [identity] issuer in the profile",
        ) from None
    if metadata.issuer.rstrip("/") != issuer:
        raise OIDCError(
            f"The identity provider calls itself {metadata.issuer!r}, not {issuer!r}",
            "set [identity] issuer to exactly the provider's issuer",
        )
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        try:
            check_url(getattr(metadata, name))
        except UnsafeUrl as e:
            raise OIDCError(
                f"The identity provider's {name} was refused ({e.message})",
                "the provider's metadata must use https (loopback http allowed) and "
                "public addresses",
            ) from None
    methods = metadata.code_challenge_methods_supported
    if methods is not None and "S256" not in methods:
        raise OIDCError(
            "The identity provider does not offer PKCE with S256",
            "use a provider that supports PKCE S256",
        )
    return Provider(metadata=metadata, keys=await fetch_keys(metadata, timeout=timeout))


async def fetch_keys(metadata: ProviderMetadata, *, timeout: float = 10) -> KeySet:
    try:
        raw = await fetch_json(metadata.jwks_uri, timeout=timeout)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        return KeySet.import_key_set(raw)  # type: ignore[arg-type]
    except (FetchError, UnsafeUrl) as e:
        raise OIDCError(
            f"The identity provider's keys could not be fetched ({e.message})",
            "check that the provider is up",
        ) from None
    except (ValueError, TypeError, KeyError, JoseError) as e:
        raise OIDCError(
            f"The identity provider's JWKS is not usable ({type(e).__name__})",
            "check the provider's jwks_uri",
        ) from None


# --- code exchange and ID token validation ------------------------------------------------


async def exchange_code(
    metadata: ProviderMetadata,
    *,
    code: str,
    redirect_uri: str,
    verifier: str,
    client_id: str,
    client_secret: str | None,
    timeout: float = 10,
) -> dict[str, Any]:
    """The provider's token response; OIDCError never quotes the response body."""
    form, basic = client_authentication(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        client_id,
        client_secret,
        metadata.token_endpoint_auth_methods_supported,
    )
    try:
        # Checked again and pinned: the name may resolve elsewhere since discovery.
        status, body = await post_form(
            metadata.token_endpoint, form, basic_auth=basic, timeout=timeout
        )
    except UnsafeUrl as e:
        raise OIDCError(
            f"The identity provider's token_endpoint was refused ({e.message})"
        ) from None
    except FetchError as e:
        raise OIDCError(
            f"The identity provider's token endpoint could not be reached ({e.message})",
            "try signing in again",
        ) from None
    if status != 200:
        refusal = error_code(body, None)
        error = "" if refusal is None else f": {refusal}"
        raise OIDCError(
            f"The identity provider refused the code exchange ({status}{error})",
            "try signing in again",
        )
    if body is None:
        raise OIDCError("The identity provider's token response is not JSON", "")
    if not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
        raise OIDCError("The identity provider's token response carries no ID token", "")
    return body


async def verify_id_token(
    provider: Provider,
    token: str,
    *,
    client_id: str,
    nonce: str | None,
    groups_claim: str = "groups",
    roles_claim: str = "roles",
    now: float | None = None,
) -> UserClaims:
    """The ID-token check of every sign-in (the gateway's callback, `lockgate login`, each
    refresh): :func:`validate_id_token` against the provider's keys, for its issuer. A token
    signed with a key the provider published after its keys were fetched (a rotation) is
    checked once more against the keys fetched again; any other refusal is final."""

    def check(keys: KeySet) -> UserClaims:
        return validate_id_token(
            token,
            keys,
            issuer=provider.metadata.issuer,
            client_id=client_id,
            nonce=nonce,
            groups_claim=groups_claim,
            roles_claim=roles_claim,
            now=now,
        )

    try:
        return check(provider.keys)
    except UnknownSigningKey:
        # The provider may have rotated its keys: fetch them once, then decide.
        provider.keys = await fetch_keys(provider.metadata)
        return check(provider.keys)


def validate_id_token(
    token: str,
    keys: KeySet,
    *,
    issuer: str,
    client_id: str,
    nonce: str | None,
    groups_claim: str = "groups",
    roles_claim: str = "roles",
    now: float | None = None,
) -> UserClaims:
    """Verify signature, iss, aud, exp and nonce against ``keys``; the user the provider
    vouches for. Sign-ins call :func:`verify_id_token`, which adds the key-rotation retry.

    ``nonce=None`` is for ID tokens the token endpoint answered to a request that carried no
    nonce (a refresh, the device grant): they come over the back channel, and their nonce
    is not checked (Core 12.2 says there should be none; some providers repeat the first)."""
    try:
        decoded = jwt.decode(token, keys, algorithms=ID_TOKEN_ALGS)
    except (JoseError, ValueError, TypeError) as e:
        unknown = isinstance(e, InvalidKeyIdError) or (
            isinstance(e, BadSignatureError) and _kid(token) is None
        )
        error = UnknownSigningKey if unknown else OIDCError
        raise error(f"The ID token's signature was refused ({type(e).__name__})", "") from None
    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(
        now=int(time.time() if now is None else now),
        leeway=CLOCK_SKEW,
        iss={"essential": True, "value": issuer},
        sub={"essential": True},
        exp={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as e:
        detail = getattr(e, "description", None) or e.error
        raise OIDCError(f"The ID token was refused ({detail})", "") from None
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if client_id not in audiences:
        raise OIDCError("The ID token was refused (it is meant for another client)", "")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise OIDCError("The ID token was refused (azp is not this client)", "")
    got = claims.get("nonce")
    if nonce is not None and (not isinstance(got, str) or not secrets.compare_digest(got, nonce)):
        raise OIDCError("The ID token was refused (its nonce does not match)", "")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise OIDCError("The ID token was refused (no subject)", "")
    email = claims.get("email")
    if claims.get("email_verified") is False:
        email = None  # `access.users` may name emails: never trust an unverified one
    return UserClaims(
        sub=sub,
        email=email if isinstance(email, str) else None,
        groups=claim_strings(claims, groups_claim),
        roles=claim_strings(claims, roles_claim),
    )


def _kid(token: str) -> str | None:
    """The `kid` a compact JWS names in its protected header, if any."""
    try:
        kid = jws.extract_compact(token.encode("ascii")).headers().get("kid")
    except (JoseError, ValueError, TypeError, UnicodeError):
        return None
    return kid if isinstance(kid, str) else None


def claim_strings(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """The strings of a claim holding one string or a list of them; anything else is none.

    A claim with exactly this name wins; otherwise a dotted name is a path into nested
    objects (Keycloak's `realm_access.roles`). Namespaced claims such as
    `https://example.com/roles` contain dots too, hence the literal lookup first."""
    value: Any = claims.get(name)
    if value is None and "." in name:
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))
