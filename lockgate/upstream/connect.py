"""Connecting an `auth = "oauth"` upstream: the gateway as that upstream's OAuth client.

`ConnectService` runs MCP authorization discovery against the upstream (see
`lockgate.upstream.discovery`), registers the gateway there (`.registration`), and sends the
browser to the upstream's authorization server with PKCE, the resource indicator and a state
that is single-use, short-lived and bound to this browser by a cookie; its callback checks all that,
exchanges the code, and stores the tokens in the OS keyring under the signed-in user
(`lockgate.upstream.tokens`). The gateway's client ID metadata document, used when the
gateway has an https public URL and the upstream's server supports them, is served at
`/connect/_client-metadata.json`.

Free of mitmproxy, so `lockgate connect` serves the same two URLs itself when no gateway
is running without loading the proxy (the `Connect` addon adapts flows to it).
Whether a user is connected is `lockgate.upstream.state.user_state` (the one vocabulary).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lockgate.audit.events import Outcome
from lockgate.authserver.consent import PAGE_HEADERS, message_page
from lockgate.errors import LockgateError
from lockgate.identity.browser import cookie_value
from lockgate.keyring import get_entry
from lockgate.mcp import jsonrpc
from lockgate.net.tls import profile_ca, trust_store, upstream_trust
from lockgate.profile.model import Profile, UpstreamSection
from lockgate.upstream import discovery, oauth, registration
from lockgate.upstream import tokens as upstream_tokens
from lockgate.upstream._errors import UpstreamOAuthError
from lockgate.upstream.oauth import PendingConnects
from lockgate.upstream.registration import METADATA_DOCUMENT_PATH, UpstreamClient
from lockgate.util import threads

logger = logging.getLogger("lockgate")

PREFIX = "/connect/"
COOKIE_PREFIX = "lockgate_connect_"
TICKET_TTL = 300.0


def is_connect_path(path: str) -> bool:
    """Paths this addon answers (the router leaves them to it)."""
    return path == "/connect" or path.startswith(PREFIX)


def connect_url(base_url: str, upstream: str) -> str:
    """The URL that connects the signed-in user to `upstream` (what -32042 errors carry)."""
    return f"{base_url.rstrip('/')}{PREFIX}{upstream}"


def callback_url(base_url: str, upstream: str) -> str:
    """The redirect URI registered at the upstream: always the gateway's own."""
    return f"{connect_url(base_url, upstream)}/callback"


# --- the flow, free of mitmproxy -------------------------------------------------------------


@dataclass
class Reply:
    """An answer of ConnectService: status, headers, body, and what to audit."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    cookies: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    user: str | None = None
    outcome: Outcome = "success"
    reason: str | None = None


def _page(status: int, title: str, message: str, **kw: Any) -> Reply:
    return Reply(
        status,
        dict(PAGE_HEADERS),
        message_page(title, message).encode("utf-8"),
        outcome="success" if status < 400 else "denied",
        reason=None if status < 400 else message,
        **kw,
    )


Connected = Callable[[str, str, "LockgateError | None"], None]


class ConnectService:
    """Starts connect flows and finishes them; one per gateway (or per `lockgate connect`)."""

    def __init__(
        self,
        profile: Callable[[], Profile],
        base_url: Callable[[], str],
        user_of: Callable[[str, str | None, dict[str, str]], str | None],
        *,
        resolve: Any = None,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self._profile = profile
        self._base_url = base_url
        self._user_of = user_of
        self.pending = PendingConnects()
        self.listeners: list[Connected] = []
        self.resolve = resolve
        self.verify = verify  # None: certifi's bundle plus the profile's upstream_ca

    async def handle(self, method: str, path: str, query: str, cookie: str | None) -> Reply:
        try:
            params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        except ValueError:
            params = {}
        rest = path[len(PREFIX) :] if path.startswith(PREFIX) else ""
        if method != "GET":  # not even HEAD: only a navigation starts or ends a flow
            return _page(405, "lockgate: not here", "Use GET here.")
        if rest == METADATA_DOCUMENT_PATH[len(PREFIX) :]:
            return self._metadata_document()
        upstream, _, action = rest.partition("/")
        profile = self._profile()
        section = profile.upstreams.get(upstream)
        if not upstream or section is None or action not in ("", "callback"):
            known = [n for n, u in profile.upstreams.items() if u.auth == "oauth"]
            return _page(
                404,
                "lockgate: unknown upstream",
                f"Nothing is served at {path!r}; the upstreams that connect with OAuth are: "
                f"{', '.join(sorted(known)) or 'none'}.",
            )
        if section.auth != "oauth":
            return _page(
                404,
                "lockgate: nothing to connect",
                f'Upstream {upstream!r} does not use auth = "oauth", so there is nothing to '
                "connect.",
            )
        if action == "callback":
            return await self._callback(upstream, params, cookie)
        return await self._start(upstream, section, params, cookie)

    # --- start ------------------------------------------------------------------------------

    async def _start(
        self, upstream: str, section: UpstreamSection, params: dict[str, str], cookie: str | None
    ) -> Reply:
        user = self._user_of(upstream, cookie, params)
        if user is None:
            return _page(
                401,
                "lockgate: sign in first",
                "Sign in to the gateway first (let your MCP client connect, or use the Connect "
                "button of the gateway's consent page), then connect this upstream.",
            )
        return_to = params.get("return")
        if return_to is not None and not self._own_consent_url(return_to):
            return _page(
                400,
                "lockgate: connect refused",
                "The return address is not a page of this gateway, so the connect flow was "
                "not started.",
            )
        base = self._base_url()
        redirect_uri = callback_url(base, upstream)
        try:
            verify = self._trust()
            challenge = await discovery.probe(section.url, verify=self._trust(upstream_trust))
            found = await discovery.discover(
                section.url,
                challenge,
                configured_scopes=section.scopes,
                resolve=self.resolve,
                verify=verify,
            )
            client = await registration.register(
                found,
                redirect_uri=redirect_uri,
                preregistered=await self._preregistered(upstream, section),
                base_url=base,
                resolve=self.resolve,
                verify=verify,
            )
            state_, pkce_challenge, pending = self.pending.add(
                upstream=upstream,
                user=user,
                discovery=found,
                client=client,
                redirect_uri=redirect_uri,
                return_to=return_to,
            )
            location = await oauth.authorization_url(
                pending, state_, pkce_challenge, resolve=self.resolve
            )
        except LockgateError as e:
            event = {
                "event": "auth.upstream_connected",
                "upstream": upstream,
                "user": user,
                "outcome": "error",
                "reason": e.message,
            }
            return _page(502, "lockgate: cannot connect", str(e), events=[event], user=user)
        secure = base.startswith("https://")
        cookie_out = (
            f"{COOKIE_PREFIX}{upstream}={pending.browser}; Path={PREFIX}{upstream}; HttpOnly; "
            f"SameSite=Lax; Max-Age={int(oauth.CONNECT_TTL)}" + ("; Secure" if secure else "")
        )
        return Reply(
            302,
            {"location": location, "cache-control": "no-store", "referrer-policy": "no-referrer"},
            cookies=[cookie_out],
            user=user,
        )

    def _trust(
        self, build: Callable[[Path | None], ssl.SSLContext] = trust_store
    ) -> ssl.SSLContext:
        """What TLS is verified against: `build` (`lockgate.net.tls`: `trust_store` for the
        OAuth servers, `upstream_trust` for the upstream itself) with the profile's
        upstream_ca (next to the profile file, as the gateway reads it)."""
        if self.verify is not None:
            return self.verify
        profile = self._profile()
        ca_file = profile_ca(profile.gateway.upstream_ca, Path(profile.source))
        try:
            return build(ca_file)
        except (OSError, ssl.SSLError) as e:
            raise UpstreamOAuthError(
                f"cannot load gateway.upstream_ca {ca_file} ({type(e).__name__})",
                "point gateway.upstream_ca at a PEM file of the CA that signs your upstreams",
            ) from None

    async def _preregistered(
        self, upstream: str, section: UpstreamSection
    ) -> UpstreamClient | None:
        if section.client_id is None:
            return None
        secret: str | None = None
        if section.client_secret is not None:
            entry = section.client_secret.removeprefix("keyring:")
            secret = await threads.run_sync(get_entry, entry)
            if not secret:
                raise UpstreamOAuthError(
                    f"The keyring holds no client secret {entry!r} for upstream {upstream!r}",
                    "store it there, or remove client_secret for a public client",
                )
        return UpstreamClient(section.client_id, secret)

    def _own_consent_url(self, url: str) -> bool:
        """Only the gateway's own consent page may be returned to: no open redirect."""
        base = self._base_url().rstrip("/")
        parts = urlsplit(url)
        own = urlsplit(base)
        return (
            parts.scheme == own.scheme
            and parts.netloc == own.netloc
            and parts.path == "/oauth/authorize"
            and not parts.fragment
            and "\\" not in url
        )

    # --- callback ---------------------------------------------------------------------------

    async def _callback(self, upstream: str, params: dict[str, str], cookie: str | None) -> Reply:
        browser = cookie_value(cookie, f"{COOKIE_PREFIX}{upstream}")
        pending = self.pending.take(params["state"], browser) if params.get("state") else None
        clear = (
            f"{COOKIE_PREFIX}{upstream}=; Path={PREFIX}{upstream}; HttpOnly; SameSite=Lax; "
            "Max-Age=0"
        )
        if pending is None or pending.upstream != upstream:
            refused = {
                "event": "auth.upstream_connected",
                "upstream": upstream,
                "outcome": "denied",
                "reason": "unknown_state",
            }
            return _page(
                400,
                "lockgate: connect refused",
                "This connect flow is unknown, already finished, expired, or was started in "
                f"another browser; start it again with `lockgate connect {upstream}`.",
                events=[refused],
                cookies=[clear],
            )
        user = pending.user
        try:
            if "error" in params or not params.get("code"):
                raise UpstreamOAuthError(
                    "The upstream's authorization server did not grant access",
                    f"start again with `lockgate connect {upstream}`",
                )
            oauth.check_callback_issuer(pending, params.get("iss"))
            tokens = await oauth.exchange_code(
                pending, params["code"], resolve=self.resolve, verify=self._trust()
            )
            await threads.run_sync(upstream_tokens.save, upstream, user, tokens)
        except LockgateError as e:
            failed: dict[str, Any] = {
                "event": "auth.upstream_connected",
                "upstream": upstream,
                "user": user,
                "outcome": "denied" if isinstance(e, UpstreamOAuthError) else "error",
                "reason": e.message,
            }
            self._notify(upstream, user, e)
            return _page(
                502, "lockgate: connect failed", str(e), events=[failed], user=user, cookies=[clear]
            )
        event: dict[str, Any] = {
            "event": "auth.upstream_connected",
            "upstream": upstream,
            "user": user,
            "outcome": "success",
            "issuer": tokens.issuer,
            "scopes": list(tokens.scopes),
        }
        self._notify(upstream, user, None)
        if pending.return_to is not None:
            return Reply(
                303,
                {"location": pending.return_to, "cache-control": "no-store"},
                cookies=[clear],
                events=[event],
                user=user,
            )
        return _page(
            200,
            "lockgate: connected",
            f"lockgate is connected to {upstream} as {user}; you can close this tab.",
            cookies=[clear],
            events=[event],
            user=user,
        )

    def _notify(self, upstream: str, user: str, error: LockgateError | None) -> None:
        for listener in list(self.listeners):
            try:
                listener(upstream, user, error)
            except Exception:  # a listener must not turn a stored token into an error page
                logger.exception("lockgate: connect listener failed")

    # --- the client ID metadata document ------------------------------------------------------

    def _metadata_document(self) -> Reply:
        base = self._base_url()
        if not base.startswith("https://"):
            return _page(
                404,
                "lockgate: no metadata document",
                "The gateway serves a client ID metadata document only with an https public_url.",
            )
        profile = self._profile()
        uris = [callback_url(base, n) for n, u in profile.upstreams.items() if u.auth == "oauth"]
        doc = registration.client_metadata_document(base, uris)
        return Reply(
            200,
            {"content-type": "application/json", "cache-control": "max-age=300"},
            jsonrpc.encode(doc),
        )


# --- the mitmproxy addon ---------------------------------------------------------------------
