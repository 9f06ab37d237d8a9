"""The upstream OAuth errors, and the one way their messages are made.

Discovery, registration and the token calls raise `UpstreamOAuthError`; a refresh token the
upstream's server refuses is `RefreshRefused`, so a caller knows the user must connect
again. The helpers shape every message alike: the step is named, a URL loses its query, an
OAuth error body gives its error code at most; never a token, secret or response body.
"""

from __future__ import annotations

import json

from lockgate.errors import LockgateError
from lockgate.net.oauth_client import error_code
from lockgate.net.urlcheck import UnsafeUrl


class UpstreamOAuthError(LockgateError):
    """Connecting to an upstream failed; the message names the step, never a secret."""


class RefreshRefused(UpstreamOAuthError):
    """The upstream's authorization server refused the refresh token: connect again.

    `error` is the server's OAuth error code (`invalid_grant`: the refresh token is dead).
    """

    def __init__(self, message: str, fix: str | None = None, error: str = "") -> None:
        super().__init__(message, fix)
        self.error = error


def refused(what: str, e: UnsafeUrl) -> UpstreamOAuthError:
    """A metadata URL that failed the SSRF check, in the upstream's words."""
    return UpstreamOAuthError(
        f"The upstream's {what} {short(e.url)!r} was refused ({e.reason})",
        "lockgate only follows public https URLs (or loopback http) from metadata; "
        "ask the upstream's operator to fix its OAuth metadata",
    )


def oauth_error(raw: bytes) -> str:
    """`: <error code>` from an OAuth error body, at most 60 characters; never the rest."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return ""
    code = error_code(body, None)
    if code is None:
        return ""
    return ": " + "".join(c for c in code if c.isalnum() or c in "_-.")


def short(url: str) -> str:
    """The URL without its query, at most 200 characters, for messages."""
    base = url.split("?", 1)[0]
    return base if len(base) <= 200 else base[:200] + "..."
