"""Upstream OAuth tokens in the OS keyring, one entry per (signed-in user, upstream).

Stored as JSON under the keyring username ``oauth:<upstream>:<user sub>`` through the
chunked store of :mod:`lockgate.keyring` (tokens from some providers exceed one entry).
A stored record that is not valid JSON of the expected shape reads as "incomplete": the
user connects again, nothing half-read is ever sent upstream.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockgate import keyring
from lockgate.errors import SecretMissing


class UpstreamTokens(BaseModel):
    """What the gateway needs to call an upstream and to refresh its token later.

    ``repr`` hides the secrets: a model that ends up in a log or traceback leaks nothing.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    access_token: str = Field(min_length=1, repr=False)
    refresh_token: str | None = Field(default=None, repr=False)
    expires_at: float | None = None  # epoch seconds; None: the server did not say
    token_endpoint: str
    client_id: str
    client_secret: str | None = Field(default=None, repr=False)  # a DCR-issued secret
    token_endpoint_auth_method: str = "none"
    issuer: str
    resource: str
    scopes: tuple[str, ...] = ()
    obtained_at: float = Field(default_factory=time.time)

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        """True when the access token is gone, or will be within ``seconds``."""
        if self.expires_at is None:
            return False
        return (time.time() if now is None else now) + seconds >= self.expires_at


def entry_user(upstream: str, user: str) -> str:
    """The keyring username of one user's tokens for one upstream."""
    return f"oauth:{upstream}:{user}"


def _incomplete(upstream: str) -> SecretMissing:
    return SecretMissing(
        f"The keyring holds incomplete tokens for upstream '{upstream}'",
        f"connect again with `lockgate connect {upstream}`",
    )


def stored(upstream: str, user: str) -> bool:
    """Whether the keyring holds tokens of ``user`` for ``upstream`` (never returns them)."""
    return keyring.read_chunked(entry_user(upstream, user), _incomplete(upstream)) is not None


def load(upstream: str, user: str) -> UpstreamTokens | None:
    """The user's tokens for the upstream, or None; SecretMissing when the entry is damaged,
    KeyringUnavailable when the keyring cannot be read."""
    raw = keyring.read_chunked(entry_user(upstream, user), _incomplete(upstream))
    if raw is None:
        return None
    try:
        return UpstreamTokens.model_validate_json(raw)
    except ValidationError:
        raise _incomplete(upstream) from None


def save(upstream: str, user: str, tokens: UpstreamTokens) -> None:
    """Store (or replace) the user's tokens for the upstream."""
    keyring.write_chunked(entry_user(upstream, user), tokens.model_dump_json())


def delete(upstream: str, user: str) -> bool:
    """Forget the user's tokens for the upstream; False when none were stored."""
    return keyring.delete_chunked(entry_user(upstream, user))
