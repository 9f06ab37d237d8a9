"""Consent state and pages: an authorization request between /oauth/authorize and the form.

A pending authorization is single use, short lived and bounded (in total and per client),
bound to its own CSRF token and to the browser that was shown the page (a cookie only that
browser holds). :func:`consent_page` renders the form and :func:`message_page` a refusal
that must not redirect.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from lockgate.authserver.requests import OAuthError, is_custom_scheme
from lockgate.identity.claims import UserClaims
from lockgate.util.expiring import Expired, ExpiringMap, MapFull

# How long a consent page stays valid.
CONSENT_TTL = 300.0
# Pending sign-in state is memory: bounded in total and per client, so a script looping on
# /oauth/authorize cannot grow it (issue 9, item 11).
MAX_PENDING = 1000
MAX_PENDING_PER_CLIENT = 20
CONSENT_COOKIE = "lockgate_consent"  # + a short hash of the request id: one per pending form
CONSENT_PATH = "/oauth/consent"

Clock = Callable[[], float]


@dataclass(frozen=True)
class Pending:
    """An authorization request waiting for the user's decision on the consent page."""

    client_id: str
    client_name: str
    redirect_uri: str
    state: str | None
    code_challenge: str
    resource: str
    route: str
    scope: str
    user: UserClaims
    csrf: str = field(repr=False)
    expires_at: float
    # SHA-256 of the consent cookie's value: the browser that was shown the page.
    browser: str = field(default="", repr=False)

    def audit_fields(self) -> dict[str, str]:
        """Who the decision is about, as the `auth.consent` event names them."""
        return {"client": self.client_id, "route": self.route, "user": self.user.sub}


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def consent_cookie_name(request_id: str) -> str:
    """The consent cookie of one pending authorization: several consent tabs may be open."""
    return f"{CONSENT_COOKIE}_{_digest(request_id)[:16]}"


def consent_cookie(request_id: str, value: str, ttl: float, *, secure: bool = False) -> str:
    """HttpOnly (no script reads it), SameSite=Strict (no other site sends it), sent to the
    consent endpoint only; ``value=""`` with ``ttl=0`` drops it."""
    flags = "; Secure" if secure else ""
    return (
        f"{consent_cookie_name(request_id)}={value}; Path={CONSENT_PATH}; HttpOnly; "
        f"SameSite=Strict; Max-Age={int(ttl)}{flags}"
    )


class ConsentRefused(OAuthError):
    """A consent form refused; ``reason`` names why in the audit, ``pending`` whose it was."""

    def __init__(self, reason: str, description: str, pending: Pending | None = None) -> None:
        super().__init__("access_denied", description, 403)
        self.reason = reason
        self.pending = pending


class PendingAuthorizations:
    """Single-use, short-lived consent state, each bound to its own CSRF token and to the
    browser that was shown the consent page (a cookie only that browser holds)."""

    def __init__(
        self,
        *,
        ttl: float = CONSENT_TTL,
        clock: Clock = time.time,
        max_total: int = MAX_PENDING,
        max_per_client: int = MAX_PENDING_PER_CLIENT,
    ) -> None:
        self._pending: ExpiringMap[Pending] = ExpiringMap(
            ttl=ttl,
            clock=clock,
            max_total=max_total,
            max_per_group=max_per_client,
            group=lambda p: p.client_id,
            key_bytes=24,
        )

    @property
    def ttl(self) -> float:
        return self._pending.ttl

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, **fields: object) -> tuple[str, Pending, str]:
        """Keep a request; returns its id (the form's ``request`` field), the record and the
        browser secret for the consent cookie (only its hash is kept).

        Over the caps, OAuthError 429 (this client) or 503 (the gateway as a whole)."""
        now = self._pending.now()
        browser = secrets.token_urlsafe(32)
        pending = Pending(
            csrf=secrets.token_urlsafe(32),
            expires_at=now + self._pending.ttl,
            browser=_digest(browser),
            **fields,  # type: ignore[arg-type]
        )
        try:
            request_id = self._pending.add(pending, now=now)
        except MapFull as e:
            if e.scope == "total":
                raise OAuthError(
                    "temporarily_unavailable",
                    "Too many sign-ins are waiting for consent; try again in a few minutes.",
                    503,
                ) from None
            raise OAuthError(
                "temporarily_unavailable",
                "This client has too many sign-ins waiting for consent; finish or close "
                "them, or try again in a few minutes.",
                429,
            ) from None
        return request_id, pending, browser

    def take(self, request_id: str, csrf: str, browser: str | None = None) -> Pending:
        """The pending request, consumed, if the CSRF token matches, the browser presents
        the consent cookie of this very request, and it has not expired. A refusal leaves
        the request for the browser that holds the cookie."""

        def check(pending: Pending) -> None:
            if not hmac.compare_digest(pending.csrf.encode(), csrf.encode("utf-8", "replace")):
                raise _unknown_form()
            if not hmac.compare_digest(pending.browser, _digest(browser or "")) or not browser:
                raise ConsentRefused(
                    "browser_mismatch",
                    "This consent form was not opened in this browser, so it was refused; "
                    "start the sign-in again from your MCP client.",
                    pending,
                )

        try:
            pending = self._pending.take(request_id, check, report_expired=True)
        except Expired as e:
            raise ConsentRefused(
                "expired",
                "This consent form has expired; start the sign-in again from your MCP client.",
                e.value,
            ) from None
        if pending is None:
            raise _unknown_form()
        return pending


def _unknown_form() -> ConsentRefused:
    return ConsentRefused(
        "unknown_form",
        "This consent form is unknown, already used or forged; "
        "start the sign-in again from your MCP client.",
    )


# --- pages ------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}}
dt{{font-weight:600;margin-top:.6rem}}dd{{margin:0;word-break:break-all}}
button{{font-size:1rem;padding:.5rem 1.2rem;margin:1.2rem .6rem 0 0}}</style>
</head><body>
{body}
</body></html>
"""


def client_id_host(client_id: str) -> str | None:
    """The host of a client ID metadata document URL, or None for a registered client."""
    if not client_id.lower().startswith("https://"):
        return None
    try:
        return urlsplit(client_id).hostname
    except ValueError:
        return None


@dataclass(frozen=True)
class UpstreamRow:
    """The consent page's line about the route's upstream: its credential state, and the
    link that connects it when the user still has to (auth = "oauth")."""

    name: str
    state: str
    connect_link: str | None = None
    new_tab: bool = False


def consent_page(
    request_id: str, pending: Pending, action: str, upstream: UpstreamRow | None = None
) -> str:
    """The consent page: who asks, where the answer goes, for which route and upstream;
    HTML-escaped."""
    e = html.escape
    client = f"{e(pending.client_name)} <small>({e(pending.client_id)})</small>"
    host = client_id_host(pending.client_id)
    if host is not None:
        # A metadata document names itself: the host that serves it is what vouches for it.
        client = (
            f"{e(pending.client_name)} <small>(described by <strong>{e(host)}</strong>: "
            f"{e(pending.client_id)})</small>"
        )
    redirect = e(pending.redirect_uri)
    if is_custom_scheme(pending.redirect_uri):
        scheme = pending.redirect_uri.split(":", 1)[0].lower()
        redirect += (
            f"<br><strong>Opens the app registered for &quot;{e(scheme)}:&quot; on this "
            "computer.</strong> Allow only if you started this sign-in from that app."
        )
    body = f"""<h1>Allow {e(pending.client_name)} to use lockgate?</h1>
<p>Signed in as <strong>{e(pending.user.sub)}</strong>.</p>
<dl>
<dt>Client</dt><dd>{client}</dd>
<dt>Redirect URI</dt><dd>{redirect}</dd>
<dt>Route</dt><dd>{e(pending.route)} <small>({e(pending.resource)})</small></dd>
{_upstream_row(upstream)}</dl>
<form method="post" action="{e(action)}">
<input type="hidden" name="request" value="{e(request_id)}">
<input type="hidden" name="csrf" value="{e(pending.csrf)}">
<button type="submit" name="decision" value="approve">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>"""
    return _PAGE.format(title="lockgate: allow access?", body=body)


def _upstream_row(row: UpstreamRow | None) -> str:
    if row is None:
        return ""
    e = html.escape
    text = f"{e(row.name)}: <strong>{e(row.state)}</strong>"
    if row.connect_link is not None:
        target = ' target="_blank" rel="noopener"' if row.new_tab else ""
        text += (
            f' <a href="{e(row.connect_link)}"{target}>Connect</a>'
            "<br><small>Sign in to the upstream first, or allow now and connect later: "
            "until then its calls are answered with the connect link.</small>"
        )
    return f"<dt>Upstream</dt><dd>{text}</dd>\n"


# What a browser may do with a page of ours: show it, never inside a frame, never keep it.
PAGE_HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "pragma": "no-cache",
}


def message_page(title: str, message: str) -> str:
    """A plain page for a refusal that must not redirect (unknown client, bad redirect URI)."""
    e = html.escape
    return _PAGE.format(title=e(title), body=f"<h1>{e(title)}</h1>\n<p>{e(message)}</p>")
