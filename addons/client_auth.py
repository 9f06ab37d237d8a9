"""The gateway as OAuth resource server toward MCP clients.

With `[identity] kind = "none"` (loopback only, enforced when the profile is
loaded) every request is the local user's. Whatever the kind, the client's
`Authorization` header never travels upstream: no token passthrough.
"""

from __future__ import annotations

import getpass

from mitmproxy import http

from lockgate.addons._flow import guarded, state
from lockgate.addons.config import Config


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
        state(flow).user = self.local_user
