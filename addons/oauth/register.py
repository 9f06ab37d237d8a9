"""Dynamic client registration (RFC 7591) at `/oauth/register`."""

from __future__ import annotations

import json
import math
from typing import Any

from mitmproxy import http

from lockgate.addons._flow import answer
from lockgate.addons.oauth._http import CORS, NO_STORE, OAuthContext
from lockgate.authserver.ratelimit import RateLimiter, address_block
from lockgate.authserver.requests import OAuthError, parse_registration
from lockgate.authserver.store import StoreFull

AUDIT_URI_CHARS = 200  # what the audit keeps of each redirect URI


class Registration:
    def __init__(self, ctx: OAuthContext) -> None:
        self.ctx = ctx
        # Registration writes a row per call: a local page or a runaway client looping on
        # it must not fill the database. Per address block (/24, /64), 20 a minute.
        self.limiter = RateLimiter()

    def register(self, flow: http.HTTPFlow) -> None:
        address = str(flow.client_conn.peername[0]) if flow.client_conn.peername else "?"
        wait = self.limiter.hit(address_block(address))
        if wait > 0:
            retry = max(1, math.ceil(wait))
            description = (
                f"Too many client registrations from this address block; try again in {retry} s."
            )
            self.ctx.event(flow, "auth.client_registered", outcome="denied", reason="rate_limited")
            answer(
                flow,
                429,
                {"error": "temporarily_unavailable", "error_description": description},
                outcome="denied",
                reason="rate_limited",
                headers={**NO_STORE, **CORS, "retry-after": str(retry)},
            )
            return
        try:
            data = json.loads(flow.request.get_content(strict=False) or b"")
        except (ValueError, UnicodeDecodeError) as e:
            raise OAuthError(
                "invalid_client_metadata", "The registration body is not a JSON object."
            ) from e
        if not isinstance(data, dict):
            raise OAuthError(
                "invalid_client_metadata", "The registration body is not a JSON object."
            )
        request = parse_registration(data)
        try:
            client = self.ctx.auth.store().register_client(
                redirect_uris=request.redirect_uris,
                client_name=request.client_name,
                grant_types=request.grant_types,
                token_endpoint_auth_method="none",
                metadata={"scope": request.scope} if request.scope else {},
            )
        except StoreFull:
            self.ctx.event(flow, "auth.client_registered", outcome="denied", reason="full")
            raise OAuthError(
                "temporarily_unavailable",
                "The gateway holds as many client registrations as it keeps; "
                "try again tomorrow, when unused ones have expired.",
                503,
            ) from None
        self.ctx.event(
            flow,
            "auth.client_registered",
            client=client.client_id,
            client_name=client.client_name,
            redirect_uris=[u[:AUDIT_URI_CHARS] for u in client.redirect_uris],
            kind="dcr",
        )
        body: dict[str, Any] = {
            "client_id": client.client_id,
            "client_id_issued_at": int(client.created_at),
            "redirect_uris": list(client.redirect_uris),
            "grant_types": list(client.grant_types),
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        if client.client_name is not None:
            body["client_name"] = client.client_name
        if request.scope:
            body["scope"] = request.scope
        answer(flow, 201, body, outcome="success", headers={**NO_STORE, **CORS})
