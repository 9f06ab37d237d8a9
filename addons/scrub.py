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
        state(flow).transforms.append(_Scrubber(route.upstream.name))


class _Scrubber:
    """The transform; `errors_only`: it changes nothing in a body that names no error, so a
    large answer without one may still pass unparsed (see Capabilities.response)."""

    __slots__ = ("upstream",)
    errors_only = True

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream

    def __call__(self, obj: dict[str, Any]) -> dict[str, Any]:
        return scrub(obj, self.upstream)
