"""Who the signed-in user is, as the rest of the gateway sees them.

One small module so that the authorization server, the browser sign-in, the CLI session and
the upstream connect flow all name the user the same way without importing each other:
:class:`UserClaims` is what the identity provider said (or, for kinds "none" and "dev", the
local user from :func:`local_user`).
"""

from __future__ import annotations

import getpass

from pydantic import BaseModel, ConfigDict, Field


class UserClaims(BaseModel):
    """Who signed in, as the identity provider said."""

    model_config = ConfigDict(frozen=True)

    sub: str = Field(min_length=1)
    email: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


def local_user() -> str:
    """The signed-in user of kinds "none" and "dev": whoever runs the gateway."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "local"
