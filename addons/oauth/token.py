"""`/oauth/token` and `/oauth/revoke`: the form in, the core's grant decision out
(`lockgate.authserver.grants`). No token, code or verifier reaches an event or a message."""

from __future__ import annotations

from mitmproxy import http

from lockgate.addons._flow import answer, state
from lockgate.addons.oauth._http import CORS, NO_STORE, OAuthContext, form_params
from lockgate.authserver.grants import TokenGrants


class Tokens:
    def __init__(self, ctx: OAuthContext) -> None:
        self.ctx = ctx
        self.grants = TokenGrants(ctx.auth)

    def token(self, flow: http.HTTPFlow) -> None:
        st = state(flow)
        body = self.grants.token(form_params(flow), st.events, st.fresh_claims)
        answer(flow, 200, body, outcome="success", headers={**NO_STORE, **CORS})

    async def provider_check(self, flow: http.HTTPFlow) -> None:
        """Kind "oidc", before a refresh_token grant: the provider's word on the user."""
        st = state(flow)
        fresh = await self.grants.provider_check(form_params(flow), st.events)
        if fresh is not None:
            st.fresh_claims = fresh

    def revoke(self, flow: http.HTTPFlow) -> None:
        self.grants.revoke(form_params(flow), state(flow).events)
        answer(flow, 200, {}, outcome="success", headers={**NO_STORE, **CORS})
