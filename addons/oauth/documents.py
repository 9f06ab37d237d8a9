"""Client ID metadata documents at `/oauth/authorize` and `/oauth/token` (the metadata
documents the gateway reads; its own RFC 8414/9728 metadata is `AuthServer.as_metadata`).

When a client_id is an https URL, the document behind it is fetched (under the SSRF rules,
without blocking the event loop: this is an async hook, a child of `OAuthServer`, which
leaves such requests to it), validated, cached, and recorded in the store as a client of
kind "cimd"; then the endpoint answers as for any registered client. A refusal is a
denied page at /oauth/authorize and a JSON OAuth error at /oauth/token, each audited.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from mitmproxy import ctx, http

from lockgate.addons._flow import guarded_async, state
from lockgate.addons.oauth._http import OAuthContext, refuse
from lockgate.authserver.cimd import (
    ClientDocument,
    DocumentCache,
    allow_loopback_from_env,
    fetch_document,
    looks_like_cimd,
)
from lockgate.authserver.ratelimit import RateLimiter
from lockgate.authserver.requests import OAuthError
from lockgate.net.tls import profile_ca, trust_store

if TYPE_CHECKING:
    import ssl


AUTHORIZE, TOKEN = "/oauth/authorize", "/oauth/token"


def _one(values: dict[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[0] if found and len(found) == 1 else None


def cimd_client_id(flow: http.HTTPFlow) -> str | None:
    """The metadata document URL this request names as its client, or None."""
    path, _, query = flow.request.path.partition("?")
    method = flow.request.method.upper()
    if path == AUTHORIZE and method == "GET":
        client_id = _one(parse_qs(query), "client_id")
    elif path == TOKEN and method == "POST":
        try:
            body = (flow.request.get_content(strict=False) or b"").decode("utf-8")
        except UnicodeDecodeError:
            return None
        client_id = _one(parse_qs(body), "client_id")
    else:
        return None
    return client_id if client_id is not None and looks_like_cimd(client_id) else None


class Throttled(OAuthError):
    """Too many document fetches for one client address: 429 with Retry-After."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "temporarily_unavailable",
            "Too many client metadata documents fetched for this address; "
            f"try again in {retry_after} s.",
            429,
        )
        self.retry_after = retry_after


class ClientDocuments:
    """Resolves metadata document clients before their request is dispatched."""

    def __init__(self, ctx: OAuthContext) -> None:
        self.ctx = ctx
        self.cache = DocumentCache()
        # Each cache miss makes the gateway fetch a URL someone else chose: per client
        # address, as many fetches a minute as registrations.
        self.limiter = RateLimiter()
        self._verify: ssl.SSLContext | None = None

    def verify(self) -> ssl.SSLContext:
        """certifi's bundle plus `gateway.upstream_ca` (`lockgate.net.tls.trust_store`)."""
        if self._verify is None:
            profile = self.ctx.config.profile
            ca = profile.gateway.upstream_ca if profile is not None else None
            profile_file = ctx.options.lockgate_profile
            self._verify = trust_store(profile_ca(ca, Path(profile_file) if profile_file else None))
        return self._verify

    @guarded_async
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or state(flow).route is not None:
            return
        profile = self.ctx.config.profile
        if profile is None or profile.identity.kind == "none":
            return
        client_id = cimd_client_id(flow)
        if client_id is None:
            return
        path = flow.request.path.split("?", 1)[0]
        try:
            document = await self.resolve(flow, client_id)
            if path == AUTHORIZE:
                redirect_uri = _one(parse_qs(flow.request.path.partition("?")[2]), "redirect_uri")
                if redirect_uri not in document.redirect_uris:
                    raise OAuthError(
                        "invalid_request",
                        f"The redirect_uri is not listed in the client's metadata document "
                        f"at {client_id}, so the gateway will not send anything there.",
                    )
        except OAuthError as e:
            self._refused(flow, path, client_id, e)
            refuse(flow, path, e)
            if isinstance(e, Throttled) and flow.response is not None:
                flow.response.headers["retry-after"] = str(e.retry_after)
            return
        self.ctx.answer_request(flow)

    async def resolve(self, flow: http.HTTPFlow, url: str) -> ClientDocument:
        """The client's document, from the cache or fetched; recorded in the store."""
        document = self.cache.get(url)
        if document is not None:
            return document
        address = str(flow.client_conn.peername[0]) if flow.client_conn.peername else "?"
        wait = self.limiter.hit(address)
        if wait > 0:
            raise Throttled(max(1, math.ceil(wait)))
        document, ttl = await fetch_document(
            url, verify=self.verify(), allow_loopback=allow_loopback_from_env()
        )
        store = self.ctx.auth.store()
        known = store.get_client(url)
        if known is not None and known.kind != "cimd":
            raise OAuthError("invalid_client", "This client_id is taken by another client.")
        store.register_client(
            kind="cimd",
            client_id=url,
            client_name=document.client_name,
            redirect_uris=document.redirect_uris,
            grant_types=document.grant_types,
            token_endpoint_auth_method="none",
            metadata=document.metadata(),
        )
        self.cache.put(url, document, ttl)
        if known is None:
            self.ctx.event(
                flow,
                "auth.client_registered",
                client=url,
                client_name=document.client_name,
                redirect_uris=list(document.redirect_uris),
                kind="cimd",
                host=document.host,
            )
        elif tuple(known.redirect_uris) != document.redirect_uris:
            self.ctx.event(
                flow,
                "auth.client_updated",
                client=url,
                redirect_uris=list(document.redirect_uris),
                kind="cimd",
            )
        return document

    def _refused(self, flow: http.HTTPFlow, path: str, client_id: str, e: OAuthError) -> None:
        if path == TOKEN:
            self.ctx.event(
                flow,
                "auth.token_refused",
                client=client_id,
                outcome="denied",
                reason="client_metadata_refused",
                detail=e.description,
            )
        else:
            self.ctx.event(
                flow,
                "auth.authorize_refused",
                client=client_id,
                kind="cimd",
                outcome="denied",
                reason=e.description,
            )
