"""First in line: DNS-rebinding Host checks, Origin checks, body size limits.

Answers before anything is parsed or routed, so a hostile page in the user's
browser or an oversized body never reaches the rest of the pipeline.
"""

from __future__ import annotations

from mitmproxy import http

from lockgate.addons._flow import answer_rpc_error, guarded
from lockgate.mcp import jsonrpc
from lockgate.net.charset import foreign_charset
from lockgate.policy.gateway import GatewayConfig
from lockgate.policy.routes import route_name_of

# Bounds on a request's head; a real MCP client sends a dozen headers of a few KiB in all.
MAX_HEADERS = 100
MAX_HEADER_BYTES = 64 * 1024


def host_of(authority: str) -> str:
    """The host part of a Host header value, lowercased, IPv6 brackets removed."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def _coding(values: list[str]) -> str | None:
    """The first content coding other than identity in these header values, or None."""
    for value in values:
        for token in value.split(","):
            token = token.strip().lower()
            if token not in ("", "identity"):
                return token[:40]
    return None


class Guard:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config

    @guarded
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        profile = self.config.profile
        if profile is None:
            answer_rpc_error(
                flow,
                503,
                jsonrpc.INTERNAL_ERROR,
                "The gateway has no profile loaded.",
                outcome="error",
            )
            return
        req = flow.request
        fields = req.headers.fields
        if len(fields) > MAX_HEADERS or sum(len(k) + len(v) + 4 for k, v in fields) > (
            MAX_HEADER_BYTES
        ):
            answer_rpc_error(
                flow,
                431,
                jsonrpc.INVALID_REQUEST,
                f"The request's headers exceed the gateway's limit of {MAX_HEADERS} headers "
                f"or {MAX_HEADER_BYTES} bytes; send fewer or shorter headers.",
                outcome="denied",
            )
            return
        host = host_of(req.host_header or "")
        if host not in self.config.allowed_hosts:
            answer_rpc_error(
                flow,
                421,
                jsonrpc.INVALID_REQUEST,
                f"Host {host or '(none)'!r} is not this gateway; connect to {profile.base_url()}.",
                outcome="denied",
            )
            return
        origin = req.headers.get("origin")
        if origin is not None and not self._origin_ok(origin):
            answer_rpc_error(
                flow,
                403,
                jsonrpc.INVALID_REQUEST,
                f"Origin {origin!r} may not use this gateway; add it to gateway.allowed_origins "
                "in the profile if it should.",
                outcome="denied",
            )
            return
        if "upgrade" in req.headers or "upgrade" in req.headers.get("connection", "").lower():
            # An upgraded connection (WebSocket) would carry messages no hook inspects.
            answer_rpc_error(
                flow,
                400,
                jsonrpc.INVALID_REQUEST,
                "The gateway does not upgrade connections; MCP uses plain HTTP requests.",
                outcome="denied",
            )
            return
        coding = _coding(req.headers.get_all("content-encoding"))
        if coding is not None:
            # What the pipeline checks is the body as sent; an upstream that inflated it
            # would act on bytes nobody checked.
            answer_rpc_error(
                flow,
                415,
                jsonrpc.INVALID_REQUEST,
                f"The gateway does not take request bodies with Content-Encoding {coding!r}; "
                "send the body uncompressed.",
                outcome="denied",
            )
            return
        charset = foreign_charset(req.headers.get_all("content-type"))
        if charset is not None and route_name_of(req.path.split("?", 1)[0]) is not None:
            # The pipeline reads a body as UTF-8; an upstream that decoded it as labelled
            # (Express's `json()` takes any `utf-*`, UTF-7 included) would act on other text.
            # The gateway's own endpoints forward nothing (a Java client's form post says
            # ISO-8859-1 of ASCII).
            answer_rpc_error(
                flow,
                415,
                jsonrpc.INVALID_REQUEST,
                f"The gateway reads request bodies as UTF-8 only, not charset {charset!r}; send "
                "the body as UTF-8 (Content-Type: application/json).",
                outcome="denied",
            )
            return
        length = req.headers.get("content-length")
        limit = profile.gateway.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            self._too_large(flow, limit)
            return
        # Upstream bodies must arrive uncompressed: the SSE rewriter reads the raw stream.
        req.headers.pop("accept-encoding", None)

    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or self.config.profile is None:
            return
        limit = self.config.profile.gateway.max_body_bytes
        if len(flow.request.raw_content or b"") > limit:
            self._too_large(flow, limit)

    def _origin_ok(self, origin: str) -> bool:
        return self.config.origin_allowed(origin)

    @staticmethod
    def _too_large(flow: http.HTTPFlow, limit: int) -> None:
        answer_rpc_error(
            flow,
            413,
            jsonrpc.INVALID_REQUEST,
            f"The request body is larger than the gateway's limit of {limit} bytes "
            "(gateway.max_body_bytes).",
            outcome="denied",
        )
