"""The calls to the identity provider behind a user's session: sessions from token responses,
refresh, the gateway's :class:`SessionKeeper`, and revocation.

Why it exists: the gateway refreshes a user's session with the provider before it refreshes
its own grants, and `lockgate login` and `lockgate logout` use the same calls; when the
provider refuses (``invalid_grant``), the session is deleted and the user's gateway session
ends with it. ID tokens are checked by `lockgate.identity.provider.verify_id_token` (the one
validator, with its key-rotation retry). Every provider URL is called through
`lockgate.net.fetch.post_form` (checked under the SSRF rules right before the call and
pinned to the checked addresses). Nothing here prints, logs or puts into an error a token,
code or secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lockgate.errors import KeyringUnavailable, LockgateError
from lockgate.identity.claims import UserClaims
from lockgate.identity.provider import OIDCError, Provider, verify_id_token
from lockgate.identity.session import (
    REFRESH_AFTER,
    IdpSession,
    canonical_issuer,
    cli_secret,
    current_sub,
    delete_session,
    load_session,
    save_session,
)
from lockgate.net.fetch import FetchError, post_form
from lockgate.net.oauth_client import client_authentication, error_code
from lockgate.net.urlcheck import UnsafeUrl
from lockgate.profile.model import IdentitySection

RECHECK_ENV = "LOCKGATE_IDP_RECHECK"  # seconds, overriding REFRESH_AFTER for the gateway


class SessionEnded(OIDCError):
    """The provider refused to refresh: the session is gone and the user must sign in again."""


class ProviderUnavailable(OIDCError):
    """The provider could not be asked (down, unreachable, answered nonsense): fail closed."""


# --- calls to the provider -----------------------------------------------------------------


@dataclass(frozen=True)
class IdpClient:
    """Who we are at the provider: the profile's client, its secret, the scopes to ask for."""

    identity: IdentitySection
    secret: str | None = field(default=None, repr=False)

    @property
    def client_id(self) -> str:
        return self.identity.client_id or ""


async def post_to_provider(
    provider: Provider,
    client: IdpClient,
    url: str,
    name: str,
    form: dict[str, str],
    *,
    want_json: bool = True,
) -> tuple[int, dict[str, Any]]:
    """POST to a provider endpoint; errors name the endpoint, never quote the body."""
    form, basic = client_authentication(
        form,
        client.client_id,
        client.secret,
        provider.metadata.token_endpoint_auth_methods_supported,
    )
    try:
        status, body = await post_form(url, form, basic_auth=basic)
    except UnsafeUrl as e:
        raise ProviderUnavailable(
            f"The identity provider's {name} was refused ({e.message})",
            "check [identity] issuer in the profile",
        ) from None
    except FetchError as e:
        raise ProviderUnavailable(
            f"The identity provider's {name} could not be reached ({e.message})",
            "check your network and that the provider is up, then try again",
        ) from None
    if not want_json and status == 200:
        return status, body if isinstance(body, dict) else {}  # RFC 7009: the body is empty
    if status >= 500 or not isinstance(body, dict):
        raise ProviderUnavailable(
            f"The identity provider's {name} answered {status} without a usable body",
            "try again later",
        )
    return status, body


async def _validated(
    provider: Provider, client: IdpClient, id_token: str, nonce: str | None
) -> UserClaims:
    return await verify_id_token(
        provider,
        id_token,
        client_id=client.client_id,
        nonce=nonce,
        groups_claim=client.identity.groups_claim,
        roles_claim=client.identity.roles_claim,
    )


def _expiry(body: dict[str, Any], now: float, fallback: float | None) -> float | None:
    value = body.get("refresh_expires_in")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return now + float(value)
    return fallback


async def session_from_tokens(
    provider: Provider,
    client: IdpClient,
    body: dict[str, Any],
    *,
    nonce: str | None,
    now: float | None = None,
) -> IdpSession:
    """A new session from a token response that must carry an ID token."""
    now = time.time() if now is None else now
    id_token = body.get("id_token")
    if not isinstance(id_token, str):
        raise OIDCError(
            "The identity provider's token response carries no ID token",
            'ask for the "openid" scope in [identity] scopes',
        )
    user = await _validated(provider, client, id_token, nonce)
    return session_for(provider.metadata.issuer, client.client_id, user, body, now=now)


def _id_token_exp(id_token: str) -> float | None:
    """The exp of an ID token already validated (so its payload is known to be sound)."""
    from joserfc import jws

    try:
        payload = json.loads(jws.extract_compact(id_token.encode("ascii")).payload)
        exp = payload.get("exp")
    except (ValueError, TypeError, AttributeError):
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


# --- refresh and revoke --------------------------------------------------------------------


async def refresh_session(
    provider: Provider, client: IdpClient, session: IdpSession, *, now: float | None = None
) -> IdpSession:
    """Refresh with the provider; the caller stores the result. A refusal (`invalid_grant`)
    raises SessionEnded (the caller deletes the session); a provider that cannot be asked
    raises ProviderUnavailable (the session is kept, the caller fails closed)."""
    now = time.time() if now is None else now
    ended = SessionEnded(
        f"The identity provider ended the session of {session.sub}",
        "sign in again with `lockgate login`",
    )
    if session.refresh_token is None:
        if session.alive(now):
            return session
        raise ended
    status, body = await post_to_provider(
        provider,
        client,
        provider.metadata.token_endpoint,
        "token endpoint",
        {"grant_type": "refresh_token", "refresh_token": session.refresh_token},
    )
    if status != 200:
        refusal = error_code(body, "unknown_error")
        if refusal in ("invalid_grant", "unauthorized_client", "invalid_client"):
            raise ended
        raise ProviderUnavailable(
            f"The identity provider refused the refresh ({status}: {refusal})",
            "try again later",
        )
    user = session.user()
    id_token = body.get("id_token")
    if isinstance(id_token, str):
        try:
            user = await _validated(provider, client, id_token, None)
        except ProviderUnavailable:
            raise
        except OIDCError as e:  # a refreshed ID token that fails validation: fail closed
            raise ProviderUnavailable(e.message, "sign in again with `lockgate login`") from None
        if user.sub != session.sub:
            raise ProviderUnavailable(
                "The identity provider's refreshed ID token names another user",
                "sign in again with `lockgate login`",
            )
    rotated = body.get("refresh_token")
    return session.model_copy(
        update={
            "email": user.email,
            "groups": user.groups,
            "roles": user.roles,
            # Not rotated: the old one stays valid.
            "refresh_token": rotated
            if isinstance(rotated, str) and rotated
            else session.refresh_token,
            "refreshed_at": now,
            "expires_at": _expiry(body, now, session.expires_at),
        }
    )


async def refresh_stored(
    provider: Provider,
    client: IdpClient,
    session: IdpSession,
    *,
    max_age: float = REFRESH_AFTER,
    now: float | None = None,
) -> IdpSession:
    """The CLI's refresh: ask the provider when the last answer is older than ``max_age``,
    store what it says; a refusal deletes the session from the keyring."""
    now = time.time() if now is None else now
    if not session.stale(now, max_age):
        return session
    try:
        fresh = await refresh_session(provider, client, session, now=now)
    except SessionEnded:
        delete_session(session.issuer, session.sub)
        raise
    save_session(fresh)
    return fresh


def recheck_after() -> float:
    """How old the provider's last word may be before the gateway asks again: REFRESH_AFTER,
    or LOCKGATE_IDP_RECHECK seconds (0: ask before every refresh grant)."""
    raw = os.environ.get(RECHECK_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return REFRESH_AFTER
    return value if 0 <= value <= 86_400 else REFRESH_AFTER


class SessionKeeper:
    """The gateway's provider sessions: the keyring, read in a worker thread (D-Bus calls
    must not block the event loop), with a copy in memory for when no keyring is usable; one
    provider refresh at a time per user, so a rotated refresh token is never sent twice."""

    def __init__(self, client: IdpClient, *, max_age: float | None = None) -> None:
        self.client = client
        self.max_age = recheck_after() if max_age is None else max_age
        self.keyring_ok = True
        self._memory: dict[tuple[str, str], IdpSession] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def _keyring[T](self, fn: Callable[[], T]) -> T | None:
        if not self.keyring_ok:
            return None
        try:
            return await asyncio.to_thread(fn)
        except KeyringUnavailable:
            self.keyring_ok = False  # said once at start by the gateway; memory from now on
            return None

    async def get(self, issuer: str, sub: str) -> IdpSession | None:
        try:
            stored = await self._keyring(lambda: load_session(issuer, sub))
        except LockgateError:  # a damaged entry: as good as none, the next sign-in replaces it
            stored = None
        return stored or self._memory.get((canonical_issuer(issuer), sub))

    async def put(self, session: IdpSession) -> None:
        self._memory[(session.issuer, session.sub)] = session
        await self._keyring(lambda: save_session(session))

    async def delete(self, issuer: str, sub: str) -> None:
        self._memory.pop((canonical_issuer(issuer), sub), None)
        await self._keyring(lambda: delete_session(issuer, sub))

    async def current(self, issuer: str) -> str | None:
        """The user `lockgate login` signed in on this machine (keyring only)."""
        return await self._keyring(lambda: current_sub(issuer))

    async def cli_secret(self, issuer: str) -> str | None:
        """The secret that login left for local processes (keyring only)."""
        return await self._keyring(lambda: cli_secret(issuer))

    async def fresh(
        self, provider: Provider, sub: str, *, max_age: float | None = None
    ) -> IdpSession | None:
        """The user's session, refreshed with the provider when older than ``max_age`` (the
        keeper's own by default; 0: always); None when there is none. SessionEnded (the
        session is deleted) and ProviderUnavailable pass through."""
        issuer = canonical_issuer(provider.metadata.issuer)
        max_age = self.max_age if max_age is None else max_age
        lock = self._locks.setdefault((issuer, sub), asyncio.Lock())
        async with lock:
            session = await self.get(issuer, sub)
            if session is None or not session.stale(max_age=max_age):
                if session is not None and not session.alive():
                    await self.delete(issuer, sub)
                    raise SessionEnded(f"The session of {sub} has expired", "sign in again")
                return session
            try:
                fresh = await refresh_session(provider, self.client, session)
            except SessionEnded:
                await self.delete(issuer, sub)
                raise
            await self.put(fresh)
            return fresh


def session_for(
    issuer: str, client_id: str, user: UserClaims, body: dict[str, Any], *, now: float | None = None
) -> IdpSession:
    """The session behind a browser sign-in the gateway validated (`/oauth/callback`)."""
    now = time.time() if now is None else now
    refresh = body.get("refresh_token")
    refresh = refresh if isinstance(refresh, str) and refresh else None
    id_token = body.get("id_token")
    fallback = None if refresh or not isinstance(id_token, str) else _id_token_exp(id_token)
    return IdpSession(
        issuer=canonical_issuer(issuer),
        client_id=client_id,
        sub=user.sub,
        email=user.email,
        groups=user.groups,
        roles=user.roles,
        refresh_token=refresh,
        expires_at=_expiry(body, now, fallback),
        signed_in_at=now,
        refreshed_at=now,
    )


async def revoke_session(provider: Provider, client: IdpClient, session: IdpSession) -> bool:
    """RFC 7009 at the provider's revocation_endpoint; False when it has none or refused."""
    url = provider.metadata.revocation_endpoint
    if url is None or session.refresh_token is None:
        return False
    try:
        status, _ = await post_to_provider(
            provider,
            client,
            url,
            "revocation endpoint",
            {"token": session.refresh_token, "token_type_hint": "refresh_token"},
            want_json=False,
        )
    except ProviderUnavailable:
        return False
    return status == 200


__all__ = ["IdpClient", "ProviderUnavailable", "SessionEnded", "SessionKeeper"]
