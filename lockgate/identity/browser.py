"""The gateway's browser sign-in state: the logins waiting for the provider's callback, the
signed-in browser sessions, and their cookies.

Why it exists: `/oauth/authorize` sends the browser to the provider (code flow, PKCE S256,
state, nonce) and `/oauth/callback` must find that request again, from the same browser,
once; after it, the browser is known by a session cookie. The provider itself (discovery,
code exchange, ID-token validation) is `lockgate.identity.provider`. Nothing here logs or
returns a token, code, verifier or secret.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lockgate.identity.claims import UserClaims
from lockgate.net.oauth_client import pkce_pair
from lockgate.util.expiring import ExpiringMap, MapFull, same_secret

LOGIN_TTL = 300.0
SESSION_TTL = 30 * 60.0
SESSION_COOKIE = "lockgate_session"
LOGIN_COOKIE = "lockgate_login"  # binds a pending login to the browser that started it

Clock = Callable[[], float]


# --- PKCE, state, nonce -------------------------------------------------------------------


@dataclass(frozen=True)
class PendingLogin:
    """A gateway authorization request waiting for the provider's callback."""

    request: dict[str, Any]  # the validated MCP client request (client, redirect, PKCE, ...)
    nonce: str = field(repr=False)
    verifier: str = field(repr=False)
    challenge: str
    browser: str = field(repr=False)
    expires_at: float


MAX_PENDING_LOGINS = 1000
MAX_PENDING_LOGINS_PER_CLIENT = 20


class TooManyLogins(Exception):
    """Over the cap of sign-ins waiting for the provider: ``status`` 429 (one client) or 503."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PendingLogins:
    """Keyed by the `state` sent to the provider: single use, short-lived, bounded in total
    and per client (memory that anyone reaching /oauth/authorize can add to)."""

    def __init__(
        self,
        *,
        ttl: float = LOGIN_TTL,
        clock: Clock = time.time,
        max_total: int = MAX_PENDING_LOGINS,
        max_per_client: int = MAX_PENDING_LOGINS_PER_CLIENT,
    ) -> None:
        self._ttl = ttl
        self._pending: ExpiringMap[PendingLogin] = ExpiringMap(
            ttl=ttl,
            clock=clock,
            max_total=max_total,
            max_per_group=max_per_client,
            group=lambda login: login.request.get("client_id"),
        )

    def add(self, request: dict[str, Any]) -> tuple[str, PendingLogin]:
        now = self._pending.now()
        verifier, challenge = pkce_pair()
        login = PendingLogin(
            request=request,
            nonce=secrets.token_urlsafe(24),
            verifier=verifier,
            challenge=challenge,
            browser=secrets.token_urlsafe(24),
            expires_at=now + self._ttl,
        )
        try:
            state = self._pending.add(login, now=now)
        except MapFull as e:
            if e.scope == "total":
                raise TooManyLogins(
                    503, "Too many sign-ins are in progress; try again in a few minutes."
                ) from None
            raise TooManyLogins(
                429,
                "This client has too many sign-ins in progress; finish them, "
                "or try again in a few minutes.",
            ) from None
        return state, login

    def take(self, state: str, browser: str | None) -> PendingLogin | None:
        """The login, consumed; None if unknown, expired, or from another browser (the
        login cookie set with the redirect to the provider must come back: no login CSRF)."""
        login = self._pending.take(state)
        if login is None or not same_secret(login.browser, browser):
            return None
        return login


class Sessions:
    """Gateway browser sessions: a random id in an HttpOnly cookie, the user in memory."""

    def __init__(self, *, ttl: float = SESSION_TTL, clock: Clock = time.time) -> None:
        self.ttl = ttl
        self._sessions: ExpiringMap[UserClaims] = ExpiringMap(ttl=ttl, clock=clock, max_total=None)

    def create(self, user: UserClaims) -> str:
        return self._sessions.add(user)

    def get(self, sid: str | None) -> UserClaims | None:
        return self._sessions.get(sid)


def session_cookie(sid: str, ttl: float, *, secure: bool = False, path: str = "/oauth") -> str:
    """The gateway session. Set twice: for /oauth (sign-in) and for /connect (connecting
    upstreams), never for /mcp, so it cannot travel upstream with a proxied request."""
    flags = "; Secure" if secure else ""
    return f"{SESSION_COOKIE}={sid}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={int(ttl)}{flags}"


def login_cookie(value: str, ttl: float, *, secure: bool = False) -> str:
    flags = "; Secure" if secure else ""
    return (
        f"{LOGIN_COOKIE}={value}; Path=/oauth/callback; HttpOnly; SameSite=Lax; "
        f"Max-Age={int(ttl)}{flags}"
    )


def cookie_value(header: str | None, name: str = SESSION_COOKIE) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None
