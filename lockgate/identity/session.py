"""`lockgate login`: the user's own session with the identity provider, kept in the OS keyring.

The CLI signs the user in (authorization code + PKCE S256 through the browser with a
loopback redirect, RFC 8252; or the device authorization grant, RFC 8628), validates the ID
token (JWKS signature, iss, aud, exp, nonce) with `lockgate.identity.browser`, and keeps an
:class:`IdpSession` (the provider's refresh token and who the user is) in the keyring under
``idp:<issuer>:sub:<sub>``; ``idp:<issuer>:current`` names the user `lockgate login` signed
in. The gateway refreshes that session with the provider before it refreshes its own grants:
when the provider refuses (``invalid_grant``), the session is deleted and the user's gateway
session ends with it.

Every provider URL is called through `lockgate.net.urlcheck.post_form` (checked under the SSRF
rules right before the call and pinned to the checked addresses). Nothing here prints, logs
or puts into an error a token, code, verifier, user code's device code or secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockgate import keyring as keyring_store
from lockgate.audit import log as audit
from lockgate.authserver.tokens import UserClaims
from lockgate.errors import KeyringUnavailable, LockgateError
from lockgate.identity.provider import OIDCError, Provider, fetch_keys, validate_id_token
from lockgate.net.oauth_client import authorization_url, pkce_pair
from lockgate.net.urlcheck import FetchError, UnsafeUrl, post_form
from lockgate.profile.model import IdentitySection

REFRESH_AFTER = 300.0  # a provider refresh older than this is repeated before it is relied on
RECHECK_ENV = "LOCKGATE_IDP_RECHECK"  # seconds, overriding REFRESH_AFTER for the gateway
LOGIN_TIMEOUT = 300.0
CALLBACK_PATH = "/callback"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP = 5  # RFC 8628 section 3.5

Clock = Callable[[], float]


class SessionEnded(OIDCError):
    """The provider refused to refresh: the session is gone and the user must sign in again."""


class ProviderUnavailable(OIDCError):
    """The provider could not be asked (down, unreachable, answered nonsense): fail closed."""


class IdpSession(BaseModel):
    """The user's session with the identity provider, as stored (JSON) in the keyring."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    issuer: str
    client_id: str
    sub: str
    email: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    refresh_token: str | None = Field(default=None, repr=False)
    # When the session ends without a refresh: the last ID token's exp; with a refresh token,
    # the provider's refresh_expires_in when it says one (Keycloak), else None (unknown).
    expires_at: float | None = None
    signed_in_at: float
    refreshed_at: float

    def user(self) -> UserClaims:
        return UserClaims(sub=self.sub, email=self.email, groups=self.groups, roles=self.roles)

    def alive(self, now: float | None = None) -> bool:
        """Whether the session can still be used (as far as we know without asking)."""
        now = time.time() if now is None else now
        return self.expires_at is None or now < self.expires_at

    def stale(self, now: float | None = None, max_age: float = REFRESH_AFTER) -> bool:
        now = time.time() if now is None else now
        return now - self.refreshed_at >= max_age


# --- keyring -------------------------------------------------------------------------------


def _issuer(issuer: str) -> str:
    return issuer.rstrip("/")


def session_entry(issuer: str, sub: str) -> str:
    """The keyring entry of one user's session; the sub is quoted so that no `#` (the chunk
    separator) or `:` of a provider's subject can collide with another entry."""
    return f"idp:{_issuer(issuer)}:sub:{quote(sub, safe='@.-_+')}"


def current_entry(issuer: str) -> str:
    return f"idp:{_issuer(issuer)}:current"


def cli_secret_entry(issuer: str) -> str:
    return f"idp:{_issuer(issuer)}:cli-secret"


def cli_secret(issuer: str) -> str | None:
    """The secret a local process presents (cookie ``lockgate_cli``) for the gateway to sign
    it in as the user `lockgate login` signed in: in the OS user's keyring, which no other
    OS user can read; a new one with every login."""
    return keyring_store.get_entry(cli_secret_entry(issuer)) or None


def _damaged(issuer: str) -> LockgateError:
    return LockgateError(
        f"The keyring holds a damaged sign-in for {_issuer(issuer)}",
        "run `lockgate logout` and then `lockgate login`",
    )


def save_session(session: IdpSession, *, make_current: bool = False) -> None:
    keyring_store.write_chunked(
        session_entry(session.issuer, session.sub), session.model_dump_json()
    )
    if make_current:
        keyring_store.set_entry(current_entry(session.issuer), session.sub)
        keyring_store.set_entry(cli_secret_entry(session.issuer), secrets.token_urlsafe(32))


def load_session(issuer: str, sub: str) -> IdpSession | None:
    raw = keyring_store.read_chunked(session_entry(issuer, sub), _damaged(issuer))
    if raw is None:
        return None
    try:
        session = IdpSession.model_validate_json(raw)
    except ValidationError:
        raise _damaged(issuer) from None
    if _issuer(session.issuer) != _issuer(issuer) or session.sub != sub:
        raise _damaged(issuer)
    return session


def current_sub(issuer: str) -> str | None:
    return keyring_store.get_entry(current_entry(issuer)) or None


def current_session(issuer: str) -> IdpSession | None:
    """The session `lockgate login` left for this issuer, if any."""
    sub = current_sub(issuer)
    return load_session(issuer, sub) if sub else None


def cli_user(identity: IdentitySection) -> UserClaims | None:
    """Whom the CLI acts for, from the keyring alone (the provider is not asked): whoever
    runs lockgate for kinds none/dev; for oidc the live session `lockgate login` left, or
    None when nobody is signed in. Upstream tokens are stored under the returned sub."""
    if identity.kind != "oidc":
        from lockgate.authserver.requests import local_user

        return UserClaims(sub=local_user())
    session = current_session(identity.issuer or "")
    return session.user() if session is not None and session.alive() else None


def delete_session(issuer: str, sub: str) -> bool:
    """Forget one user's session (and the `current` marker when it names them)."""
    removed = keyring_store.delete_chunked(session_entry(issuer, sub))
    if current_sub(issuer) == sub:
        keyring_store.delete_chunked(current_entry(issuer))
        keyring_store.delete_chunked(cli_secret_entry(issuer))
    return removed


def client_secret(identity: IdentitySection) -> str | None:
    """The confidential client's secret from the keyring (`client_secret = "keyring:NAME"`)."""
    if identity.client_secret is None:
        return None
    entry = identity.client_secret.removeprefix("keyring:")
    value = keyring_store.get_entry(entry)
    if not value:
        raise LockgateError(
            f"The identity provider's client secret is not in the keyring (entry {entry!r})",
            "store it there, or remove [identity] client_secret for a public client",
        )
    return value


# --- calls to the provider -----------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """Who we are at the provider: the profile's client, its secret, the scopes to ask for."""

    identity: IdentitySection
    secret: str | None = field(default=None, repr=False)

    @property
    def client_id(self) -> str:
        return self.identity.client_id or ""


def _auth(
    provider: Provider, client: Client, form: dict[str, str]
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Client authentication as `oidc.exchange_code` does it: basic when offered, else post."""
    form = dict(form)
    if client.secret is None:
        form["client_id"] = client.client_id
        return form, None
    if "client_secret_basic" in provider.metadata.token_endpoint_auth_methods_supported:
        return form, (client.client_id, client.secret)
    form["client_id"] = client.client_id
    form["client_secret"] = client.secret
    return form, None


async def _post(
    provider: Provider,
    client: Client,
    url: str,
    name: str,
    form: dict[str, str],
    *,
    want_json: bool = True,
) -> tuple[int, dict[str, Any]]:
    """POST to a provider endpoint; errors name the endpoint, never quote the body."""
    form, basic = _auth(provider, client, form)
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


def _error(body: dict[str, Any]) -> str:
    error = body.get("error")
    return error[:60] if isinstance(error, str) else "unknown_error"


async def _validated(
    provider: Provider, client: Client, id_token: str, nonce: str | None
) -> UserClaims:
    check: dict[str, Any] = {
        "issuer": provider.metadata.issuer,
        "client_id": client.client_id,
        "nonce": nonce,
        "groups_claim": client.identity.groups_claim,
        "roles_claim": client.identity.roles_claim,
    }
    try:
        return validate_id_token(id_token, provider.keys, **check)
    except OIDCError:
        # The provider may have rotated its keys: fetch them once, then decide.
        provider.keys = await fetch_keys(provider.metadata)
        return validate_id_token(id_token, provider.keys, **check)


def _expiry(body: dict[str, Any], now: float, fallback: float | None) -> float | None:
    value = body.get("refresh_expires_in")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return now + float(value)
    return fallback


async def session_from_tokens(
    provider: Provider,
    client: Client,
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
    provider: Provider, client: Client, session: IdpSession, *, now: float | None = None
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
    status, body = await _post(
        provider,
        client,
        provider.metadata.token_endpoint,
        "token endpoint",
        {"grant_type": "refresh_token", "refresh_token": session.refresh_token},
    )
    if status != 200:
        if _error(body) in ("invalid_grant", "unauthorized_client", "invalid_client"):
            raise ended
        raise ProviderUnavailable(
            f"The identity provider refused the refresh ({status}: {_error(body)})",
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
    client: Client,
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

    def __init__(self, client: Client, *, max_age: float | None = None) -> None:
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
        return stored or self._memory.get((_issuer(issuer), sub))

    async def put(self, session: IdpSession) -> None:
        self._memory[(session.issuer, session.sub)] = session
        await self._keyring(lambda: save_session(session))

    async def delete(self, issuer: str, sub: str) -> None:
        self._memory.pop((_issuer(issuer), sub), None)
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
        issuer = _issuer(provider.metadata.issuer)
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
        issuer=_issuer(issuer),
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


async def revoke_session(provider: Provider, client: Client, session: IdpSession) -> bool:
    """RFC 7009 at the provider's revocation_endpoint; False when it has none or refused."""
    url = provider.metadata.revocation_endpoint
    if url is None or session.refresh_token is None:
        return False
    try:
        status, _ = await _post(
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


# --- sign-in through the browser (RFC 8252 loopback redirect) ------------------------------


def browser_url(url: str) -> str:
    """A provider URL we hand to a browser: https, or http on loopback; never `javascript:`."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise OIDCError(
            f"The identity provider gave a sign-in URL lockgate will not open ({parts.scheme}:)",
            "the provider's URLs must use https",
        )
    return url


_PAGE = (
    "<!doctype html><meta charset=utf-8><title>lockgate</title>"
    "<body style='font-family:sans-serif;margin:3em'><p>{}</p></body>"
)


async def _answer(writer: asyncio.StreamWriter, status: str, text: str) -> None:
    body = _PAGE.format(text).encode("utf-8")
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\ncache-control: no-store\r\n"
        "referrer-policy: no-referrer\r\nx-frame-options: DENY\r\n"
        "content-security-policy: default-src 'none'; style-src 'unsafe-inline'\r\n"
        "connection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        writer.write(head.encode("ascii") + body)
        await writer.drain()
        writer.close()


class LoopbackRedirect:
    """A one-shot HTTP listener on 127.0.0.1 for the provider's redirect: it answers the
    request carrying our state, ignores everything else, and closes."""

    def __init__(self, state: str) -> None:
        self._state = state
        self._result: asyncio.Future[dict[str, str]] | None = None
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    async def __aenter__(self) -> LoopbackRedirect:
        self._result = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def wait(self, timeout: float) -> dict[str, str]:
        assert self._result is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), timeout)
        except TimeoutError:
            raise OIDCError(
                f"The sign-in was not finished within {timeout:g} seconds",
                "run `lockgate login` again and finish it in the browser",
            ) from None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            for _ in range(100):  # headers: read and ignore
                header = await asyncio.wait_for(reader.readline(), 10)
                if header in (b"\r\n", b"\n", b""):
                    break
        except (TimeoutError, OSError, ValueError):
            writer.close()
            return
        parts = line.decode("latin-1").split(" ")
        target = parts[1] if len(parts) == 3 else ""
        path, _, query = target.partition("?")
        assert self._result is not None
        if parts[0] != "GET" or path != CALLBACK_PATH or self._result.done():
            await _answer(writer, "404 Not Found", "Nothing here.")
            return
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        got = params.get("state", "")
        if not secrets.compare_digest(got.encode(), self._state.encode()):
            # Not our sign-in (a stale tab, or a forged link): refuse it and keep waiting.
            await _answer(
                writer, "400 Bad Request", "This sign-in is not the one lockgate started."
            )
            return
        if "error" in params or not params.get("code"):
            await _answer(writer, "200 OK", "The sign-in was refused. You can close this tab.")
        else:
            await _answer(writer, "200 OK", "Signed in to lockgate. You can close this tab.")
        self._result.set_result(params)


async def login_browser(
    provider: Provider,
    client: Client,
    *,
    show: Callable[[str], None],
    timeout: float = LOGIN_TIMEOUT,
) -> IdpSession:
    """Authorization code + PKCE S256 + state + nonce, redirected to a loopback listener.

    ``show`` gets the authorization URL (to print it and/or open a browser with it)."""
    metadata = provider.metadata
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    verifier, challenge = pkce_pair()
    async with LoopbackRedirect(state) as listener:
        show(
            authorization_url(
                browser_url(metadata.authorization_endpoint),
                client_id=client.client_id,
                redirect_uri=listener.redirect_uri,
                state=state,
                challenge=challenge,
                scope=" ".join(client.identity.scopes),
                nonce=nonce,
            )
        )
        answer = await listener.wait(timeout)
    if "error" in answer or not answer.get("code"):
        error = answer.get("error", "no code")[:60]
        raise OIDCError(
            f"The identity provider refused the sign-in ({error})",
            "check that you may use this client, then run `lockgate login` again",
        )
    status, body = await _post(
        provider,
        client,
        metadata.token_endpoint,
        "token endpoint",
        {
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": listener.redirect_uri,
            "code_verifier": verifier,
        },
    )
    if status != 200:
        raise OIDCError(
            f"The identity provider refused the code exchange ({status}: {_error(body)})",
            "run `lockgate login` again",
        )
    return await session_from_tokens(provider, client, body, nonce=nonce)


# --- the device authorization grant (RFC 8628) ---------------------------------------------


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float


async def start_device(provider: Provider, client: Client) -> DeviceAuthorization:
    url = provider.metadata.device_authorization_endpoint
    if url is None:
        raise OIDCError(
            "The identity provider does not offer the device authorization grant",
            "run `lockgate login` without --device to sign in through the browser",
        )
    status, body = await _post(
        provider,
        client,
        url,
        "device authorization endpoint",
        {"scope": " ".join(client.identity.scopes)},
    )
    if status != 200:
        raise OIDCError(
            f"The identity provider refused the device sign-in ({status}: {_error(body)})",
            "check that the profile's client may use the device grant at the provider",
        )
    device_code, user_code = body.get("device_code"), body.get("user_code")
    uri = body.get("verification_uri") or body.get("verification_url")  # Google says _url
    complete = body.get("verification_uri_complete")
    if not (isinstance(device_code, str) and isinstance(user_code, str) and isinstance(uri, str)):
        raise OIDCError("The identity provider's device authorization answer is incomplete", "")
    expires_in = body.get("expires_in")
    interval = body.get("interval")
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=browser_url(uri),
        verification_uri_complete=browser_url(complete) if isinstance(complete, str) else None,
        expires_in=float(expires_in) if isinstance(expires_in, int | float) else 600.0,
        interval=float(interval) if isinstance(interval, int | float) and interval > 0 else 5.0,
    )


async def finish_device(
    provider: Provider,
    client: Client,
    device: DeviceAuthorization,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Clock = time.monotonic,
) -> IdpSession:
    """Poll the token endpoint at the provider's pace until the user has approved."""
    deadline = clock() + device.expires_in
    interval = device.interval
    while True:
        await sleep(interval)
        if clock() >= deadline:
            break
        status, body = await _post(
            provider,
            client,
            provider.metadata.token_endpoint,
            "token endpoint",
            {"grant_type": DEVICE_GRANT, "device_code": device.device_code},
        )
        if status == 200:
            return await session_from_tokens(provider, client, body, nonce=None)
        error = _error(body)
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += SLOW_DOWN_STEP
            continue
        if error == "expired_token":
            break
        if error == "access_denied":
            raise OIDCError("The device sign-in was denied at the identity provider", "")
        raise OIDCError(
            f"The identity provider refused the device sign-in ({status}: {error})",
            "run `lockgate login --device` again",
        )
    raise OIDCError(
        "The device code expired before the sign-in was approved",
        "run `lockgate login --device` again and enter the code sooner",
    )


# --- audit events from the CLI -------------------------------------------------------------


def record_event(audit_path: Path, event: dict[str, Any]) -> str:
    """Append one `auth.*` event from the CLI: "written", or "pending" while a running
    gateway holds the log (see :func:`lockgate.audit.log.record`)."""
    return audit.record(audit_path, {**event, "source": "cli"})


__all__ = [
    "REFRESH_AFTER",
    "Client",
    "DeviceAuthorization",
    "IdpSession",
    "LoopbackRedirect",
    "ProviderUnavailable",
    "SessionEnded",
    "SessionKeeper",
]
