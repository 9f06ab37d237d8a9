"""The gateway as OAuth 2.1 authorization server: what its endpoints accept, and consent state.

Pure logic, no HTTP: the `oauth_server` addon parses requests into these models, keeps
pending authorizations here between the authorization request and the consent form, and
renders the consent page with :func:`consent_page`. Every refusal is a :class:`OAuthError`
carrying the RFC 6749 error code and one sentence for the user.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import html
import ipaddress
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lockgate.authserver.tokens import UserClaims
from lockgate.profile.model import is_loopback_host

# How long a consent page stays valid, and refresh tokens live.
CONSENT_TTL = 300.0
# Pending sign-in state is memory: bounded in total and per client, so a script looping on
# /oauth/authorize cannot grow it (issue 9, item 11).
MAX_PENDING = 1000
MAX_PENDING_PER_CLIENT = 20
CONSENT_COOKIE = "lockgate_consent"  # + a short hash of the request id: one per pending form
CONSENT_PATH = "/oauth/consent"
REFRESH_TOKEN_TTL = 30 * 24 * 3600.0
MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2048

Clock = Callable[[], float]


def local_user() -> str:
    """The signed-in user of kinds "none" and "dev": whoever runs the gateway."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "local"


class OAuthError(Exception):
    """A refused OAuth request: ``error`` is the RFC 6749/7591 code, ``description`` one
    sentence for whoever reads it."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


# Private-use URI schemes of native MCP clients (RFC 8252 section 7.1): the editors' own
# schemes, which predate the reverse-DNS advice, and any reverse-DNS scheme.
NATIVE_SCHEMES = frozenset({"vscode", "vscode-insiders", "cursor", "claude", "windsurf"})
_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.-]*")
_DNS_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def is_reverse_dns_scheme(scheme: str) -> bool:
    """``com.example.app``: two or more DNS labels, the first one a top-level domain."""
    labels = scheme.split(".")
    return (
        len(labels) >= 2
        and all(_DNS_LABEL_RE.fullmatch(label) for label in labels)
        and not labels[0].isdigit()
    )


def is_private_use_scheme(scheme: str) -> bool:
    """A native app's own scheme: a known MCP client's, or a reverse-DNS one."""
    return scheme in NATIVE_SCHEMES or is_reverse_dns_scheme(scheme)


def redirect_uri_problem(uri: str) -> str | None:
    """Why a client's redirect URI is refused, or None.

    Accepted: https; http to a loopback host (RFC 8252 section 7.3); a native app's
    private-use scheme (section 7.1: ``vscode:``, ``cursor:``, ``claude:``,
    ``com.example.app:``). Always refused: fragments, user info, whitespace and control
    characters, and every other scheme (``javascript:``, ``data:``, ``file:``...).
    """
    if any(ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F for c in uri):
        return f"redirect URI {uri!r} contains whitespace or control characters"
    if "\\" in uri:
        return f"redirect URI {uri!r} contains a backslash"
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        user = parts.username is not None or parts.password is not None
    except ValueError:
        return f"{uri!r} is not a URL"
    if parts.fragment or "#" in uri:
        return f"redirect URI {uri!r} has a fragment"
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if not _SCHEME_RE.fullmatch(scheme):
        return f"redirect URI {uri!r} is not an absolute URL"
    if user or "@" in parts.netloc:
        return f"redirect URI {uri!r} carries user info"
    if scheme in ("https", "http"):
        if not host:
            return f"redirect URI {uri!r} has no host"
        if scheme == "https" or is_loopback_host(host):
            return None
        return f"redirect URI {uri!r} must be https, or http to a loopback address"
    if is_private_use_scheme(scheme):
        if not (parts.path or parts.netloc):
            return f"redirect URI {uri!r} has nothing after its scheme"
        return None
    return (
        f"redirect URI {uri!r} must be https, http to a loopback address, or a native "
        "app's own scheme (vscode:, cursor:, claude:, or reverse-DNS like com.example.app:)"
    )


def is_custom_scheme(uri: str) -> bool:
    """True for a private-use scheme redirect: the consent page says which app opens it."""
    return not uri.lower().startswith(("https:", "http:"))


# --- registration rate limit ------------------------------------------------------------

REGISTRATIONS_PER_WINDOW = 20
REGISTRATION_WINDOW = 60.0
MAX_TRACKED_ADDRESSES = 4096


def address_block(address: str) -> str:
    """The block a client address belongs to for rate limits: its /24 (IPv4) or /64 (IPv6),
    so that hopping between 127.x.y.z or the addresses of one prefix buys no new allowance."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds per key (a sliding window).

    ``hit`` answers 0 when the hit is allowed, else the seconds to wait. Keys are bounded:
    the oldest are forgotten first, so a flood of addresses cannot grow memory.
    """

    def __init__(
        self,
        limit: int = REGISTRATIONS_PER_WINDOW,
        window: float = REGISTRATION_WINDOW,
        *,
        max_keys: int = MAX_TRACKED_ADDRESSES,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._clock = clock
        self._hits: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        now = self._clock()
        with self._lock:
            hits = [t for t in self._hits.pop(key, []) if t > now - self.window]
            if len(hits) >= self.limit:
                self._hits[key] = hits
                oldest = hits[0] if hits else now
                return max(oldest + self.window - now, 0.001)
            hits.append(now)
            self._hits[key] = hits  # re-inserted: dict order is least recently used first
            while len(self._hits) > self._max_keys:
                del self._hits[next(iter(self._hits))]
            return 0.0


class ClientMetadata(BaseModel):
    """RFC 7591 client metadata, as registrations and client ID metadata documents carry it;
    unknown members are ignored, public clients only."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    redirect_uris: tuple[Annotated[str, Field(max_length=MAX_URI_LENGTH)], ...] = Field(
        min_length=1, max_length=MAX_REDIRECT_URIS
    )
    client_name: str | None = Field(default=None, max_length=200)
    grant_types: tuple[str, ...] = Field(
        default=("authorization_code", "refresh_token"), max_length=2
    )
    response_types: tuple[str, ...] = Field(default=("code",), max_length=1)
    token_endpoint_auth_method: str = Field(default="none", max_length=64)
    scope: str | None = Field(default=None, max_length=1000)

    @field_validator("grant_types")
    @classmethod
    def _grants(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [g for g in v if g not in ("authorization_code", "refresh_token")]
        if unknown or "authorization_code" not in v:
            raise ValueError("grant_types may only be authorization_code and refresh_token")
        return v

    @field_validator("response_types")
    @classmethod
    def _responses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if tuple(v) != ("code",):
            raise ValueError('response_types must be ["code"]')
        return v


class RegistrationRequest(ClientMetadata):
    """A dynamic client registration (RFC 7591) body."""


def parse_registration(data: object) -> RegistrationRequest:
    """Validate a registration body; OAuthError names the first problem."""
    try:
        request = RegistrationRequest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise OAuthError("invalid_client_metadata", f"{where}: {msg}.") from e
    for uri in request.redirect_uris:
        problem = redirect_uri_problem(uri)
        if problem is not None:
            raise OAuthError("invalid_redirect_uri", f"The {problem}.")
    return request


class _Form(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AuthorizeRequest(_Form):
    client_id: str = Field(min_length=1, max_length=512)
    redirect_uri: str = Field(min_length=1, max_length=2048)
    response_type: str = ""
    state: str | None = Field(default=None, max_length=1024)
    code_challenge: str = ""
    code_challenge_method: str = ""
    resource: str = ""
    scope: str = Field(default="", max_length=1000)


class CodeTokenRequest(_Form):
    grant_type: Literal["authorization_code"]
    code: str = Field(min_length=1, max_length=512)
    redirect_uri: str = Field(min_length=1, max_length=2048)
    client_id: str = Field(min_length=1, max_length=512)
    code_verifier: str = Field(min_length=1, max_length=256)
    resource: str = Field(default="", max_length=2048)


class RefreshTokenRequest(_Form):
    grant_type: Literal["refresh_token"]
    refresh_token: str = Field(min_length=1, max_length=512)
    client_id: str = Field(min_length=1, max_length=512)
    resource: str = Field(default="", max_length=2048)
    scope: str = Field(default="", max_length=1000)


class RevokeRequest(_Form):
    token: str = Field(min_length=1, max_length=8192)
    token_type_hint: str | None = None
    client_id: str | None = Field(default=None, max_length=512)


def single_values(form: Mapping[str, list[str]]) -> dict[str, str]:
    """Form or query parameters, each at most once (RFC 6749 section 3.1)."""
    out: dict[str, str] = {}
    for key, values in form.items():
        if len(values) != 1:
            raise OAuthError("invalid_request", f"Parameter {key!r} must appear once.")
        out[key] = values[0]
    return out


def parse_form[M: _Form](model: type[M], form: Mapping[str, str]) -> M:
    try:
        return model.model_validate(dict(form))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        if first.get("type") == "missing":
            raise OAuthError("invalid_request", f"Parameter {where!r} is missing.") from e
        raise OAuthError("invalid_request", f"Parameter {where!r} is invalid.") from e


# --- pending authorizations (between /oauth/authorize and the consent form) --------------


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
        self._ttl = ttl
        self._clock = clock
        self._max_total = max_total
        self._max_per_client = max_per_client
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()

    @property
    def ttl(self) -> float:
        return self._ttl

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, **fields: object) -> tuple[str, Pending, str]:
        """Keep a request; returns its id (the form's ``request`` field), the record and the
        browser secret for the consent cookie (only its hash is kept).

        Over the caps, OAuthError 429 (this client) or 503 (the gateway as a whole)."""
        now = self._clock()
        browser = secrets.token_urlsafe(32)
        pending = Pending(
            csrf=secrets.token_urlsafe(32),
            expires_at=now + self._ttl,
            browser=_digest(browser),
            **fields,  # type: ignore[arg-type]
        )
        request_id = secrets.token_urlsafe(24)
        with self._lock:
            for key in [k for k, p in self._pending.items() if p.expires_at <= now]:
                del self._pending[key]
            if len(self._pending) >= self._max_total:
                raise OAuthError(
                    "temporarily_unavailable",
                    "Too many sign-ins are waiting for consent; try again in a few minutes.",
                    503,
                )
            mine = sum(1 for p in self._pending.values() if p.client_id == pending.client_id)
            if mine >= self._max_per_client:
                raise OAuthError(
                    "temporarily_unavailable",
                    "This client has too many sign-ins waiting for consent; finish or close "
                    "them, or try again in a few minutes.",
                    429,
                )
            self._pending[request_id] = pending
        return request_id, pending, browser

    def take(self, request_id: str, csrf: str, browser: str | None = None) -> Pending:
        """The pending request, consumed, if the CSRF token matches, the browser presents
        the consent cookie of this very request, and it has not expired. A refusal leaves
        the request for the browser that holds the cookie."""
        with self._lock:
            pending = self._pending.get(request_id)
            if pending is None or not hmac.compare_digest(
                pending.csrf.encode(), csrf.encode("utf-8", "replace")
            ):
                raise ConsentRefused(
                    "unknown_form",
                    "This consent form is unknown, already used or forged; "
                    "start the sign-in again from your MCP client.",
                )
            if not hmac.compare_digest(pending.browser, _digest(browser or "")) or not browser:
                raise ConsentRefused(
                    "browser_mismatch",
                    "This consent form was not opened in this browser, so it was refused; "
                    "start the sign-in again from your MCP client.",
                    pending,
                )
            del self._pending[request_id]
        if self._clock() >= pending.expires_at:
            raise ConsentRefused(
                "expired",
                "This consent form has expired; start the sign-in again from your MCP client.",
                pending,
            )
        return pending


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


def message_page(title: str, message: str) -> str:
    """A plain page for a refusal that must not redirect (unknown client, bad redirect URI)."""
    e = html.escape
    return _PAGE.format(title=e(title), body=f"<h1>{e(title)}</h1>\n<p>{e(message)}</p>")
