"""`/connect/<upstream>` on the gateway: adapts flows to `lockgate.upstream.connect.ConnectService`.

For the consent page: `Connect.connect_link(upstream, user, return_to)` is the URL of its
Connect button (the pipeline hands the bound method to the OAuth composite's context: no
addon imports another); whether a user is connected is `lockgate.upstream.state.user_state`.
"""

from __future__ import annotations

from mitmproxy import http

from lockgate.addons._flow import guarded_async, state
from lockgate.identity.browser import Sessions, cookie_value
from lockgate.identity.claims import local_user
from lockgate.policy.gateway import GatewayConfig
from lockgate.profile.model import Profile
from lockgate.upstream.connect import (
    TICKET_TTL,
    ConnectService,
    connect_url,
    is_connect_path,
)
from lockgate.util.expiring import ExpiringMap


class Connect:
    """Answers `/connect/*` on the gateway; the user is the gateway's signed-in user."""

    def __init__(self, config: GatewayConfig, sessions: Sessions | None = None) -> None:
        self.config = config
        self.sessions = sessions  # the gateway's browser sessions: kind "oidc" users
        self.service = ConnectService(self._profile, lambda: self.config.base_url, self._user_of)
        # A ticket stands for one user and one upstream, once, for a few minutes.
        self._tickets: ExpiringMap[tuple[str, str]] = ExpiringMap(
            ttl=TICKET_TTL, max_total=None, key_bytes=24
        )

    def _profile(self) -> Profile:
        profile = self.config.profile
        assert profile is not None
        return profile

    def connect_link(self, upstream: str, user: str, return_to: str | None = None) -> str:
        """The consent page's Connect button: `/connect/<upstream>` with a single-use ticket
        that stands for `user` (kind "oidc": the gateway session cookie is scoped to /oauth
        and does not reach /connect/), and the page to come back to."""
        from urllib.parse import urlencode

        ticket = self._tickets.add((user, upstream))
        params = {"ticket": ticket}
        if return_to is not None:
            params["return"] = return_to
        return f"{connect_url(self.config.base_url, upstream)}?{urlencode(params)}"

    def _user_of(self, upstream: str, cookie: str | None, params: dict[str, str]) -> str | None:
        kind = self._profile().identity.kind
        if kind in ("none", "dev"):
            return local_user()
        ticket = params.get("ticket")
        if ticket:
            entry = self._tickets.take(ticket)
            return entry[0] if entry is not None and entry[1] == upstream else None
        if self.sessions is None:
            return None
        claims = self.sessions.get(cookie_value(cookie))
        return None if claims is None else str(claims.sub)

    @guarded_async
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or state(flow).route is not None:
            return
        path = flow.request.path.split("?", 1)[0]
        if not is_connect_path(path):
            return
        query = flow.request.path.split("?", 1)[1] if "?" in flow.request.path else ""
        reply = await self.service.handle(
            flow.request.method.upper(), path, query, flow.request.headers.get("cookie")
        )
        st = state(flow)
        st.local = True
        st.outcome = reply.outcome
        st.reason = reply.reason
        if reply.user is not None:
            st.user = reply.user
        st.events.extend(reply.events)
        flow.response = http.Response.make(reply.status, reply.body, reply.headers)
        if reply.cookies:
            flow.response.headers.set_all("set-cookie", reply.cookies)
