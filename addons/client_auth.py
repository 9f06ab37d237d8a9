"""The gateway as OAuth resource server toward MCP clients.

With `[identity] kind = "none"` (loopback only, enforced when the profile is
loaded) every request is the local user's. Whatever the kind, the client's
`Authorization` header never travels upstream: no token passthrough.
"""

from __future__ import annotations

import getpass

from mitmproxy import http

from lockgate import jsonrpc
from lockgate.addons._flow import answer_rpc_error, guarded, state
from lockgate.addons.config import Config
from lockgate.profile import AccessSection


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "local"


class ClientAuth:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.local_user = _local_user()

    @guarded
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # Strip first, whatever happens next: a client token must not reach an upstream.
        flow.request.headers.pop("authorization", None)
        flow.request.headers.pop("proxy-authorization", None)
        if flow.response is not None:
            return
        profile = self.config.profile
        assert profile is not None
        if profile.identity.kind != "none":
            raise RuntimeError(f"identity kind {profile.identity.kind!r} is not available yet")
        st = state(flow)
        st.user = self.local_user
        route = st.route
        if route is not None and not self._allowed(route.config.access, self.local_user):
            answer_rpc_error(
                flow,
                403,
                jsonrpc.INVALID_REQUEST,
                f"User {self.local_user!r} is not allowed on route {route.name!r}; "
                "ask whoever maintains the profile to add you to its access list.",
                outcome="denied",
            )

    @staticmethod
    def _allowed(access: AccessSection, user: str) -> bool:
        """kind = "none" knows one local user and no groups: a group list admits nobody."""
        if access.groups is not None:
            return False
        return access.users is None or user in access.users
