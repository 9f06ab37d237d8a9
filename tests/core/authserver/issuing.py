"""Access tokens issued as the gateway issues them, for test_keys.py and test_tokens.py: one
issuer, audience, user, clock and signing key for both."""

from __future__ import annotations

import base64

from lockgate.authserver.keys import SigningKey
from lockgate.authserver.tokens import issue_access_token
from lockgate.identity.claims import UserClaims

ISSUER = "http://127.0.0.1:8787"
AUDIENCE = "http://127.0.0.1:8787/mcp/notes"
NOW = 1_800_000_000.0
USER = UserClaims(sub="alice", email="alice@example.com", groups=("engineering", "sre"))
KEY = SigningKey.generate()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(key: SigningKey = KEY, *, now: float = NOW, **overrides: object) -> str:
    """An access token of USER for AUDIENCE, signed by `key` at `now`; `overrides` replace
    any argument of issue_access_token."""
    kwargs: dict[str, object] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "user": USER,
        "client_id": "client-1",
        "scope": "mcp",
        "now": now,
    }
    kwargs.update(overrides)
    return issue_access_token(key, **kwargs)  # type: ignore[arg-type]
