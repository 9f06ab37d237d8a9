"""The user's own session with the identity provider, kept in the OS keyring.

Why it exists: `lockgate login` leaves an :class:`IdpSession` (the provider's refresh token
and who the user is) in the keyring under ``idp:<issuer>:sub:<sub>``, and
``idp:<issuer>:current`` names the user it signed in; the CLI (:func:`cli_user`), the gateway
(`lockgate.identity.refresh.SessionKeeper`) and `lockgate logout` read and forget it here.
How a session is obtained is `lockgate.identity.cli_login`; how it is refreshed with the
provider, `lockgate.identity.refresh`. Nothing here prints, logs or puts into an error a
token or secret.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockgate import keyring as keyring_store
from lockgate.errors import LockgateError
from lockgate.identity.claims import UserClaims
from lockgate.profile.model import IdentitySection

REFRESH_AFTER = 300.0  # a provider refresh older than this is repeated before it is relied on


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


def canonical_issuer(issuer: str) -> str:
    """The issuer as entries and sessions hold it: without a trailing slash."""
    return issuer.rstrip("/")


def session_entry(issuer: str, sub: str) -> str:
    """The keyring entry of one user's session; the sub is quoted so that no `#` (the chunk
    separator) or `:` of a provider's subject can collide with another entry."""
    return f"idp:{canonical_issuer(issuer)}:sub:{quote(sub, safe='@.-_+')}"


def current_entry(issuer: str) -> str:
    return f"idp:{canonical_issuer(issuer)}:current"


def cli_secret_entry(issuer: str) -> str:
    return f"idp:{canonical_issuer(issuer)}:cli-secret"


def cli_secret(issuer: str) -> str | None:
    """The secret a local process presents (cookie ``lockgate_cli``) for the gateway to sign
    it in as the user `lockgate login` signed in: in the OS user's keyring, which no other
    OS user can read; a new one with every login."""
    return keyring_store.get_entry(cli_secret_entry(issuer)) or None


def _damaged(issuer: str) -> LockgateError:
    return LockgateError(
        f"The keyring holds a damaged sign-in for {canonical_issuer(issuer)}",
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
    if canonical_issuer(session.issuer) != canonical_issuer(issuer) or session.sub != sub:
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
        from lockgate.identity.claims import local_user

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


__all__ = ["REFRESH_AFTER", "IdpSession"]
