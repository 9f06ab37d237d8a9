"""CORS for browser-based MCP clients (the MCP Inspector, web IDEs) on `/mcp/<route>`.

Right after Guard, which has already refused every Origin its rule does not allow: a
loopback page for a loopback gateway, gateway.allowed_origins, the public_url's origin.
For a request from such an origin this addon

- answers a preflight (`OPTIONS` with `Access-Control-Request-Method`) to a route itself,
  204 with the methods and headers MCP uses: it never reaches client auth or the upstream,
  and needs no token (a browser never sends one on a preflight);
- adds `Access-Control-Allow-Origin` (that exact origin, never `*`), the headers a page
  may read, and `Vary: Origin` to every response of the exchange, the upstream's and the
  gateway's own (401, JSON-RPC errors, 502/504) alike.

The upstream's own CORS headers never reach the browser: the gateway alone decides which
pages may read its answers. The gateway's OAuth endpoints answer their CORS themselves.
"""

from __future__ import annotations

from mitmproxy import http

from lockgate.addons._flow import add_cors_headers, guarded, state
from lockgate.policy.gateway import GatewayConfig
from lockgate.policy.routes import route_name_of

ALLOW_METHODS = "GET, POST, DELETE"
ALLOW_HEADERS = (
    "content-type, authorization, mcp-session-id, mcp-protocol-version, last-event-id, "
    "mcp-method, mcp-name"
)
MAX_AGE = "600"  # seconds; Chromium caps it at 7200


def is_preflight(req: http.Request) -> bool:
    return (
        req.method.upper() == "OPTIONS"
        and "origin" in req.headers
        and "access-control-request-method" in req.headers
    )


class Cors:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config

    @guarded
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        name = route_name_of(req.path)
        origin = req.headers.get("origin")
        if name is None or origin is None or not self.config.origin_allowed(origin):
            return
        st = state(flow)
        st.cors_origin = origin
        if flow.response is not None or not is_preflight(req):
            return
        route = self.config.routes.get(name)
        if route is None:
            return  # the router's 404 names the known routes
        st.route = route  # for the audit event
        st.local = True
        st.preflight = True
        st.outcome = "success"
        flow.response = http.Response.make(204, b"", {"cache-control": "no-store"})
        add_cors_headers(flow.response, origin)
        flow.response.headers["access-control-allow-methods"] = ALLOW_METHODS
        flow.response.headers["access-control-allow-headers"] = ALLOW_HEADERS
        flow.response.headers["access-control-max-age"] = MAX_AGE

    @guarded
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Streamed (SSE) responses send their headers right after this hook.
        self._add(flow)

    @guarded
    def response(self, flow: http.HTTPFlow) -> None:
        self._add(flow)

    def _add(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        st = state(flow)
        if resp is None or st.preflight or st.cors_done is resp:
            return  # a preflight was answered above; an answer seen at responseheaders is done
        if st.route is None and route_name_of(flow.request.path) is None:
            return  # the gateway's own endpoints
        add_cors_headers(resp, st.cors_origin)
        st.cors_done = resp
