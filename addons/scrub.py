"""Upstream errors that carry the upstream's internals are replaced before the client sees them.

One transform per routed exchange, on JSON bodies and SSE events alike; what counts as
internals, and the replacement, are the core's (`lockgate.mcp.scrub`).
"""

from __future__ import annotations

from typing import Any

from mitmproxy import http

from lockgate.addons._flow import guarded, pending_route, state
from lockgate.mcp.scrub import scrub


class Scrub:
    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = pending_route(flow)
        if route is None or flow.request.method not in ("POST", "GET"):
            return
        upstream = route.upstream.name

        def transform(obj: dict[str, Any]) -> dict[str, Any]:
            return scrub(obj, upstream)

        state(flow).transforms.append(transform)
