"""Injects each upstream's own credential, read from the OS keyring.

The client never sees it and never sends it. When the keyring holds none, or
cannot be read, the request does not go upstream: the client gets a JSON-RPC
error that says what to run.
"""

from __future__ import annotations

import time

from mitmproxy import http

from lockgate import jsonrpc, secrets
from lockgate.addons._flow import answer_rpc_error, guarded, pending_route
from lockgate.addons.config import Config
from lockgate.errors import KeyringUnavailable, SecretMissing

# Keyring reads cost a D-Bus round trip (or a Keychain prompt): keep a secret briefly.
CACHE_SECONDS = 30.0


class Credentials:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._cache: dict[str, tuple[float, str | None]] = {}

    def configure(self, updated: set[str]) -> None:
        self._cache.clear()

    def _secret(self, upstream: str) -> str | None:
        now = time.monotonic()
        hit = self._cache.get(upstream)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        value = secrets.get_secret(upstream)
        if value is not None:
            self._cache[upstream] = (now, value)
        return value

    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = pending_route(flow)
        if route is None:
            return
        target = route.upstream
        auth = target.config.auth
        if auth == "none":
            return
        if auth == "oauth":
            self._not_connected(
                flow,
                target.name,
                f"Upstream {target.name!r} uses OAuth, which this lockgate version cannot "
                'connect yet; use auth = "header" with a token stored by '
                f"`lockgate secret set {target.name}`.",
            )
            return
        try:
            secret = self._secret(target.name)
        except KeyringUnavailable as e:
            answer_rpc_error(flow, 503, jsonrpc.INTERNAL_ERROR, str(e), outcome="error")
            return
        except SecretMissing as e:
            self._not_connected(flow, target.name, str(e))
            return
        if secret is None:
            self._not_connected(
                flow,
                target.name,
                f"No credential is stored for upstream {target.name!r}; run "
                f"`lockgate secret set {target.name}`.",
            )
            return
        flow.request.headers[target.config.header] = target.config.value.replace("{secret}", secret)

    def _not_connected(self, flow: http.HTTPFlow, upstream: str, message: str) -> None:
        data = {"upstream": upstream, "command": f"lockgate secret set {upstream}"}
        answer_rpc_error(
            flow, 200, jsonrpc.CONNECT_REQUIRED, message, outcome="connect_required", data=data
        )
