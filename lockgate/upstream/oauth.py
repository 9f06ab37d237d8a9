"""The gateway as OAuth client of an upstream MCP server (`auth = "oauth"` upstreams).

MCP authorization (spec revision 2025-11-25): `lockgate.upstream.discovery` finds the
upstream's authorization server, `lockgate.upstream.registration` gets the gateway a client
there; this module runs the flow itself: authorization code with PKCE S256 (`PendingConnects`
keeps the verifier), the `resource` indicator (RFC 8707) = the upstream's canonical URL, a
single-use state bound to the browser, the code exchange, and refreshing the tokens.

Every URL taken from metadata is a third party's choice: each passes
`lockgate.net.urlcheck.check_url` before it is posted to or shown to a browser, and each
request goes to the addresses that were checked (no second DNS lookup). Nothing here
logs or puts in an error message a token, code, verifier or secret; error messages never
quote a response body.
"""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import Field, ValidationError

from lockgate.net.fetch import checked
from lockgate.net.oauth_client import authorization_url as authorization_url_for
from lockgate.net.oauth_client import basic_authorization, pkce_pair
from lockgate.net.urlcheck import Resolver, UnsafeUrl
from lockgate.upstream._endpoint import post_endpoint
from lockgate.upstream._errors import RefreshRefused, UpstreamOAuthError, oauth_error, refused
from lockgate.upstream.discovery import Discovery, Document, loopback_allowed
from lockgate.upstream.registration import UpstreamClient
from lockgate.upstream.tokens import UpstreamTokens
from lockgate.util.expiring import ExpiringMap, same_secret

CONNECT_TTL = 600.0  # a browser has ten minutes to come back from the upstream's sign-in
REFRESH_AHEAD = 60.0  # refresh this long before the access token expires

Clock = Callable[[], float]


@dataclass(frozen=True)
class PendingConnect:
    """A connect flow waiting for the browser to come back from the upstream's sign-in."""

    upstream: str
    user: str
    discovery: Discovery
    client: UpstreamClient
    redirect_uri: str
    verifier: str = field(repr=False)
    browser: str = field(repr=False)
    return_to: str | None
    expires_at: float


class PendingConnects:
    """Keyed by the `state` sent to the authorization server: single use, short-lived, and
    bound to the browser that started the flow (a cookie it must send back)."""

    def __init__(self, *, ttl: float = CONNECT_TTL, clock: Clock = time.time) -> None:
        self._ttl = ttl
        self._pending: ExpiringMap[PendingConnect] = ExpiringMap(
            ttl=ttl, clock=clock, max_total=None
        )

    def add(
        self,
        *,
        upstream: str,
        user: str,
        discovery: Discovery,
        client: UpstreamClient,
        redirect_uri: str,
        return_to: str | None = None,
    ) -> tuple[str, str, PendingConnect]:
        """Keep a flow; returns its state, its PKCE challenge, and the record."""
        now = self._pending.now()
        verifier, challenge = pkce_pair()
        pending = PendingConnect(
            upstream=upstream,
            user=user,
            discovery=discovery,
            client=client,
            redirect_uri=redirect_uri,
            verifier=verifier,
            browser=secrets.token_urlsafe(24),
            return_to=return_to,
            expires_at=now + self._ttl,
        )
        return self._pending.add(pending, now=now), challenge, pending

    def take(self, state: str, browser: str | None) -> PendingConnect | None:
        """The flow, consumed; None if unknown, expired, or from another browser."""
        pending = self._pending.take(state)
        if pending is None or not same_secret(pending.browser, browser):
            return None
        return pending


async def authorization_url(
    pending: PendingConnect, state: str, challenge: str, *, resolve: Resolver | None = None
) -> str:
    """The URL the browser is sent to, built on an endpoint that passed the SSRF check
    (a `javascript:` or private-address endpoint is refused here, before any browser)."""
    endpoint = pending.discovery.metadata.authorization_endpoint
    loopback = loopback_allowed(pending.discovery.upstream_url)
    try:
        await checked(endpoint, allow_loopback_http=loopback, resolve=resolve)
    except UnsafeUrl as e:
        raise refused("authorization_endpoint", e) from None
    return authorization_url_for(
        endpoint,
        client_id=pending.client.client_id,
        redirect_uri=pending.redirect_uri,
        state=state,
        challenge=challenge,
        scope=" ".join(pending.discovery.scopes),
        resource=pending.discovery.resource,
    )


def check_callback_issuer(pending: PendingConnect, iss: str | None) -> None:
    """RFC 9207: the `iss` of the authorization response, when there is or must be one."""
    metadata = pending.discovery.metadata
    if iss is None:
        if metadata.authorization_response_iss_parameter_supported:
            raise UpstreamOAuthError(
                "The upstream's authorization response carries no iss although its server "
                "promises one",
                "connect again",
            )
        return
    if iss.rstrip("/") != metadata.issuer.rstrip("/"):
        raise UpstreamOAuthError(
            "The authorization response came from another authorization server (iss differs)",
            "connect again",
        )


# --- tokens -------------------------------------------------------------------------------


class _TokenResponse(Document):
    access_token: str = Field(min_length=1)
    token_type: str
    expires_in: float | None = None
    refresh_token: str | None = None
    scope: str | None = None


async def exchange_code(
    pending: PendingConnect,
    code: str,
    *,
    resolve: Resolver | None = None,
    verify: ssl.SSLContext | None = None,
) -> UpstreamTokens:
    """Redeem the authorization code (PKCE verifier, resource) for the upstream's tokens."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": pending.redirect_uri,
        "code_verifier": pending.verifier,
        "resource": pending.discovery.resource,
    }
    metadata = pending.discovery.metadata
    status, raw = await _token_request(
        metadata.token_endpoint, form, pending.client, resolve=resolve, verify=verify
    )
    if status != 200:
        raise UpstreamOAuthError(
            f"The upstream's authorization server refused the code exchange "
            f"({status}{oauth_error(raw)})",
            f"connect again with `lockgate connect {pending.upstream}`",
        )
    return _tokens(
        raw,
        token_endpoint=metadata.token_endpoint,
        client=pending.client,
        issuer=metadata.issuer,
        resource=pending.discovery.resource,
        scopes=pending.discovery.scopes,
        previous_refresh=None,
    )


async def refresh(
    tokens: UpstreamTokens,
    *,
    upstream: str,
    resolve: Resolver | None = None,
    verify: ssl.SSLContext | None = None,
) -> UpstreamTokens:
    """A new access token from the refresh token; RefreshRefused when the server says no."""
    if not tokens.refresh_token:
        raise RefreshRefused(
            f"There is no refresh token for upstream '{upstream}'",
            f"connect again with `lockgate connect {upstream}`",
        )
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens.refresh_token,
        "resource": tokens.resource,
    }
    if tokens.scopes:
        form["scope"] = " ".join(tokens.scopes)
    client = UpstreamClient(
        tokens.client_id, tokens.client_secret, tokens.token_endpoint_auth_method
    )
    status, raw = await _token_request(
        tokens.token_endpoint, form, client, resolve=resolve, verify=verify
    )
    if status in (400, 401):
        code = oauth_error(raw)
        raise RefreshRefused(
            f"The upstream's authorization server refused to refresh the token ({status}{code})",
            f"connect again with `lockgate connect {upstream}`",
            error=code.removeprefix(": "),
        )
    if status != 200:
        raise UpstreamOAuthError(
            f"The upstream's authorization server could not refresh the token ({status})",
            "try again later",
        )
    return _tokens(
        raw,
        token_endpoint=tokens.token_endpoint,
        client=client,
        issuer=tokens.issuer,
        resource=tokens.resource,
        scopes=tokens.scopes,
        previous_refresh=tokens.refresh_token,
    )


def _tokens(
    raw: bytes,
    *,
    token_endpoint: str,
    client: UpstreamClient,
    issuer: str,
    resource: str,
    scopes: tuple[str, ...],
    previous_refresh: str | None,
) -> UpstreamTokens:
    try:
        body = _TokenResponse.model_validate_json(raw)
    except ValidationError:
        raise UpstreamOAuthError(
            "The upstream's token response is not usable (no access_token or token_type)",
            "connect again",
        ) from None
    if body.token_type.lower() != "bearer":
        raise UpstreamOAuthError(
            "The upstream issued a token that is not a bearer token", "connect again"
        )
    now = time.time()
    return UpstreamTokens(
        access_token=body.access_token,
        refresh_token=body.refresh_token or previous_refresh,
        expires_at=now + body.expires_in if body.expires_in is not None else None,
        token_endpoint=token_endpoint,
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method=client.auth_method,
        issuer=issuer,
        resource=resource,
        scopes=tuple(body.scope.split()) if body.scope else scopes,
        obtained_at=now,
    )


async def _token_request(
    endpoint: str,
    form: dict[str, str],
    client: UpstreamClient,
    *,
    resolve: Resolver | None,
    verify: ssl.SSLContext | None,
) -> tuple[int, bytes]:
    headers: dict[str, str] = {}
    if client.auth_method == "client_secret_basic" and client.client_secret is not None:
        headers["authorization"] = basic_authorization(client.client_id, client.client_secret)
    else:
        form = {**form, "client_id": client.client_id}
        if client.auth_method == "client_secret_post" and client.client_secret is not None:
            form["client_secret"] = client.client_secret
    return await post_endpoint(
        endpoint, "token_endpoint", form=form, headers=headers, resolve=resolve, verify=verify
    )
