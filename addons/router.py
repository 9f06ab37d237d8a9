"""Maps `/mcp/<route>` to its upstream and answers the gateway's own endpoints."""

from __future__ import annotations

from collections.abc import Iterable

from mitmproxy import http

from lockgate.addons._flow import answer, drop_headers, guarded, state
from lockgate.mcp import jsonrpc
from lockgate.policy.gateway import GatewayConfig, is_own_path
from lockgate.policy.routes import route_name_of
from lockgate.profile.registry import registry_servers
from lockgate.upstream.connect import is_connect_path

# Toward the upstream the gateway is the client: these describe the user's browser or
# the user's credentials and stay here.
CLIENT_ONLY_HEADERS = ("origin", "referer", "cookie", "authorization", "proxy-authorization")
# Dropped here; `authorization` later: client_auth reads it, then strips it.
FORWARDED_CLIENT_ONLY = frozenset(CLIENT_ONLY_HEADERS) - {"authorization"}
# What a client claims about the path its request took (or hop-by-hop headers it names in
# `Connection`) means nothing past the gateway: an upstream trusting it would be misled.
FORWARDING_HEADERS = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-cluster-client-ip",
    "x-host",
    "via",
    "keep-alive",
    "proxy-connection",
    "te",
)
# Claims that make an upstream's framework read another method or path than the one the
# gateway checked (`X-HTTP-Method-Override: DELETE` on a POST, `X-Original-URL: /admin`), and
# the rest of the `X-Forwarded-*` family (`-Uri`, `-Method`, `-Server`, ...): by prefix.
_CLAIM_PREFIXES = (b"x-forwarded-", b"x-original-", b"x-rewrite-", b"x-http-method", b"x-method-")


def strip_hop_headers(headers: http.Headers, also: Iterable[str] = ()) -> None:
    """Drop forwarding and override claims, every header the client's `Connection` lists,
    names with an underscore, and `also`.

    CGI and WSGI servers read `Mcp_Session_Id` as `Mcp-Session-Id` (both are
    `HTTP_MCP_SESSION_ID`), a header the gateway checks under its own name only: another
    user's session id, or any checked header, would pass under it (nginx drops such names
    by default for the same reason).

    `Connection: close` stays: mitmproxy reads it to close the client's connection.
    """
    listed = [t.strip().lower() for v in headers.get_all("connection") for t in v.split(",")]
    claimed = [
        k.decode("utf-8", "surrogateescape")
        for k, _ in headers.fields
        if k.lower().startswith(_CLAIM_PREFIXES) or b"_" in k
    ]
    drop_headers(
        headers, {*FORWARDING_HEADERS, *also, *claimed, *(t for t in listed if t != "close")}
    )
    if "connection" in headers:
        if "close" in listed:
            headers["connection"] = "close"
        else:
            del headers["connection"]


class Router:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config

    @guarded
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        req = flow.request
        path = req.path.split("?", 1)[0]
        name = route_name_of(path)
        if name is None:
            self._own_endpoint(flow, path)
            return
        route = self.config.routes.get(name)
        if route is None:
            self._not_found(flow, f"There is no route {name!r} on this gateway.")
            return
        st = state(flow)
        st.route = route
        st.client = req.headers.get("user-agent")
        target = route.upstream
        # The client's query string stays here: only the upstream URL's own query travels.
        req.scheme = target.scheme
        req.host = target.host
        req.port = target.port
        req.path = f"{target.path}?{target.query}" if target.query else target.path
        req.host_header = target.host_header
        strip_hop_headers(req.headers, also=FORWARDED_CLIENT_ONLY)

    def _own_endpoint(self, flow: http.HTTPFlow, path: str) -> None:
        profile = self.config.profile
        assert profile is not None
        if path == "/healthz":
            answer(
                flow, 200, {"status": "ok", "routes": len(self.config.routes)}, outcome="success"
            )
        elif path.rstrip("/") == "/registry/v0.1/servers":
            answer(flow, 200, registry_servers(profile, self.config.base_url), outcome="success")
        elif is_connect_path(path):
            return  # the connect addon answers these (upstream OAuth)
        elif profile.identity.kind != "none" and is_own_path(path):
            return  # the OAuth server answers these, once their body has arrived
        else:
            self._not_found(flow, f"Nothing is served at {path!r}.")

    def _not_found(self, flow: http.HTTPFlow, message: str) -> None:
        profile = self.config.profile
        assert profile is not None
        routes = {name: self.config.route_url(name) for name in sorted(self.config.routes)}
        body = jsonrpc.error_response(
            None,
            jsonrpc.INVALID_REQUEST,
            f"{message} Known routes: {', '.join(routes) or 'none'}.",
            {"routes": routes},
        )
        answer(flow, 404, body, outcome="denied", reason=message)
