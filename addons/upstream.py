"""Upstream failures as JSON-RPC errors that name the upstream, never an HTML page.

mitmproxy answers a failed upstream exchange with its own HTML error page, and
setting `flow.response` in the `error` hook has no effect. Two pieces fix that:

- the `error` hook remembers the failing flow in a context variable: mitmproxy
  writes the error page right after the hook returns, in the same task;
- `install_error_pages()` replaces mitmproxy's HTTP/1 error page builder with
  one that answers JSON, naming the upstream when it knows the flow.

A slow upstream is cut after its timeout (per upstream, else the gateway's), and
the answer becomes a 504.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

from mitmproxy import ctx, http
from mitmproxy.proxy.layers.http import _http1

from lockgate import jsonrpc
from lockgate.addons._flow import add_cors_headers, guarded, pending_route, state
from lockgate.addons.config import Config
from lockgate.routing import Route

logger = logging.getLogger("lockgate")

_failed_flow: contextvars.ContextVar[http.HTTPFlow | None] = contextvars.ContextVar(
    "lockgate_failed_flow", default=None
)
_original_error_response = _http1.make_error_response


def error_body(status: int, message: str) -> tuple[int, bytes]:
    """The status and JSON body for a failed exchange, from the flow that failed if known."""
    flow = _failed_flow.get()
    _failed_flow.set(None)
    st = state(flow) if flow is not None else None
    route = st.route if st is not None else None
    if flow is None or st is None or route is None:
        return status, jsonrpc.encode(
            jsonrpc.error_response(
                None, jsonrpc.INTERNAL_ERROR, f"Gateway error {status}: {message}"
            )
        )
    up = route.upstream
    if st.timed_out:
        status = 504
        text = (
            f"Upstream {up.name!r} ({up.host}:{up.port}) did not answer within "
            f"{_timeout_of(route)} seconds; try again, or raise its timeout in the profile."
        )
    else:
        status = 502 if status >= 500 or status == 0 else status
        text = (
            f"Upstream {up.name!r} ({up.host}:{up.port}) could not be reached: {message}; "
            "check that it is running and that its url in the profile is right."
        )
    ids = [m.id for m in st.messages if m.kind == "request"]
    rid = ids[0] if len(ids) == 1 else None
    data = {"upstream": up.name, "status": status}
    return status, jsonrpc.encode(jsonrpc.error_response(rid, jsonrpc.INTERNAL_ERROR, text, data))


def _json_error_response(status_code: int, message: str = "") -> bytes:
    flow = _failed_flow.get()
    status, body = error_body(status_code, message)
    resp = http.Response.make(
        status, body, {"content-type": "application/json", "connection": "close"}
    )
    # A browser page allowed by Cors may read why its request failed.
    add_cors_headers(resp, state(flow).cors_origin if flow is not None else None)
    return _assemble(resp)


def _assemble(resp: http.Response) -> bytes:
    from mitmproxy.net.http import http1

    return http1.assemble_response(resp)


def install_error_pages() -> None:
    """Swap mitmproxy's HTML error page for JSON (idempotent)."""
    _http1.make_error_response = _json_error_response


def uninstall_error_pages() -> None:
    _http1.make_error_response = _original_error_response


def _timeout_of(route: Route) -> float:
    """Seconds the upstream may take to start its answer: its own timeout, else the gateway's."""
    per_upstream = route.upstream.config.timeout
    return per_upstream if per_upstream is not None else route.default_timeout


class Upstream:
    def __init__(self, config: Config) -> None:
        self.config = config

    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = pending_route(flow)
        if route is None:
            return
        handle = asyncio.get_running_loop().call_later(_timeout_of(route), self._expire, flow)
        flow.metadata["lockgate_timer"] = handle

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)
        st = state(flow)
        if st.outcome is None:
            st.outcome = "upstream_error"
            st.reason = flow.error.msg if flow.error else "upstream failed"
        _failed_flow.set(flow)

    @staticmethod
    def _cancel(flow: http.HTTPFlow) -> None:
        handle = flow.metadata.pop("lockgate_timer", None)
        if handle is not None:
            handle.cancel()

    def _expire(self, flow: http.HTTPFlow) -> None:
        flow.metadata.pop("lockgate_timer", None)
        if flow.response is not None or not flow.live:
            return
        st = state(flow)
        st.timed_out = True
        st.outcome = "upstream_error"
        st.reason = "upstream timed out"
        proxyserver = ctx.master.addons.get("proxyserver")
        handler = proxyserver.connections.get(flow.client_conn.id) if proxyserver else None
        io = handler.transports.get(flow.server_conn) if handler is not None else None
        if io is None:
            return
        if io.writer is not None:
            io.writer.close()
        elif io.handler is not None:
            io.handler.cancel("upstream timed out")
