"""Upstream OAuth tokens in the OS keyring, one entry per (signed-in user, upstream).

Stored as JSON under the keyring username ``oauth:<upstream>:<user sub>`` through the
chunked store of :mod:`lockgate.secrets` (tokens from some providers exceed one entry).
"""

from __future__ import annotations

from lockgate import secrets
from lockgate.errors import SecretMissing


def entry_user(upstream: str, user: str) -> str:
    """The keyring username of one user's tokens for one upstream."""
    return f"oauth:{upstream}:{user}"


def stored(upstream: str, user: str) -> bool:
    """Whether the keyring holds tokens of ``user`` for ``upstream`` (never returns them)."""
    incomplete = SecretMissing(
        f"The keyring holds incomplete tokens for upstream '{upstream}'",
        f"connect again with `lockgate connect {upstream}`",
    )
    return secrets.read_chunked(entry_user(upstream, user), incomplete) is not None
