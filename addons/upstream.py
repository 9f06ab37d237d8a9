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
from collections.abc import Generator
from typing import Any

import h11
from mitmproxy import ctx, http
from mitmproxy import flow as flow_mod
from mitmproxy.net.http.http1 import expected_http_body_size
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers.http import SendHttp, _http1
from mitmproxy.proxy.layers.http._events import (
    ErrorCode,
    RequestProtocolError,
    ResponseProtocolError,
)
from mitmproxy.proxy.layers.http._hooks import HttpErrorHook, HttpResponseHeadersHook

from lockgate.addons._flow import (
    add_cors_headers,
    guarded,
    pending_route,
    replace_upstream_answer,
    state,
)
from lockgate.mcp import jsonrpc
from lockgate.policy.gateway import GatewayConfig
from lockgate.policy.routes import Route
from lockgate.upstream import answers

logger = logging.getLogger("lockgate")

_failed_flow: contextvars.ContextVar[http.HTTPFlow | None] = contextvars.ContextVar(
    "lockgate_failed_flow", default=None
)
_original_check_body_size = http_layer.HttpStream.check_body_size
_original_read_body = _http1.Http1Connection.read_body
_original_read_headers = _http1.Http1Server.read_headers

# A request head that has not ended within this many bytes is refused with a 431 (Guard
# refuses complete heads over 64 KiB with a precise message; this catches heads that never end).
MAX_HEAD_BYTES = 80 * 1024

# An upstream's answer says nothing about the gateway's own cookies or sign-in: these would
# reach the client with internal URLs or set state under the gateway's origin.
UPSTREAM_ONLY_HEADERS = ("set-cookie", "set-cookie2", "www-authenticate", "proxy-authenticate")


def error_body(status: int, message: str) -> tuple[int, bytes]:
    """The status and JSON body for a failed exchange, from the flow that failed if known."""
    flow = _failed_flow.get()
    _failed_flow.set(None)
    st = state(flow) if flow is not None else None
    route = st.route if st is not None else None
    if status == 431:
        return status, jsonrpc.encode(
            jsonrpc.error_response(
                None,
                jsonrpc.INVALID_REQUEST,
                f"The request's headers exceed the gateway's limit of {MAX_HEAD_BYTES} bytes; "
                "send fewer or shorter headers.",
            )
        )
    if status == 413 and route is None:
        return status, jsonrpc.encode(
            jsonrpc.error_response(None, jsonrpc.INVALID_REQUEST, too_large_message())
        )
    if flow is None or st is None or route is None:
        return status, jsonrpc.encode(
            jsonrpc.error_response(
                None, jsonrpc.INTERNAL_ERROR, f"Gateway error {status}: {message}"
            )
        )
    up = route.upstream
    if status == 413:
        return status, jsonrpc.encode(
            jsonrpc.error_response(None, jsonrpc.INVALID_REQUEST, too_large_message())
        )
    if flow.error is not None and flow.error.msg.startswith("Response body exceeds"):
        status = 502
        text = f"Upstream {up.name!r} ({up.host}:{up.port}) {response_too_large_message()}."
    elif st.timed_out:
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


def too_large_message() -> str:
    limit = ctx.options.body_size_limit if hasattr(ctx, "options") else None
    return (
        f"The request body is larger than the gateway's limit of {limit or 'max_body_bytes'} "
        "bytes (gateway.max_body_bytes); send a smaller body or raise the limit in the profile."
    )


_response_limit: list[int] = [16 * 1024 * 1024]  # gateway.max_response_bytes, set at start


def response_too_large_message() -> str:
    return (
        f"answered with more than {_response_limit[0]} bytes (gateway.max_response_bytes); "
        "ask for less (a smaller page, a narrower query) or raise the limit in the profile"
    )


def _response_bounded(self: Any) -> Generator[Any, Any, bool]:
    """A whole upstream answer is buffered before the hooks read it: past
    `gateway.max_response_bytes` (by its Content-Length, else as it arrives) the exchange
    fails as mitmproxy fails an over-limit body, and the client gets a JSON-RPC error naming
    the upstream. Streamed answers (SSE) are not buffered and not counted here."""
    if self.response_body_buf:
        size: int | None = len(self.response_body_buf)
    else:
        try:
            size = expected_http_body_size(self.flow.request, self.flow.response)
        except ValueError:
            size = None
    if size is None or size <= _response_limit[0]:
        return False
    if not self.response_body_buf:
        yield HttpResponseHeadersHook(self.flow)
    text = "Response body exceeds the gateway's max_response_bytes."
    self.flow.error = flow_mod.Error(text)
    yield HttpErrorHook(self.flow)
    yield SendHttp(
        ResponseProtocolError(self.stream_id, text, ErrorCode.RESPONSE_TOO_LARGE),
        self.context.client,
    )
    self.client_state = self.state_errored
    yield SendHttp(
        RequestProtocolError(self.stream_id, text, ErrorCode.RESPONSE_TOO_LARGE),
        self.context.server,
    )
    self.server_state = self.state_errored
    self.flow.live = False
    return True


def _requests_only(self: Any, request: bool) -> Generator[Any, Any, bool]:
    """mitmproxy's `body_size_limit`, for request bodies only (upstream answers may be larger).

    mitmproxy counts a request body as it arrives and answers 413 once it passes the limit,
    before any hook has the body: a client without a token cannot make the gateway buffer
    more than `gateway.max_body_bytes`.
    """
    if not request:
        return (yield from _response_bounded(self))
    return (yield from _original_check_body_size(self, request))


class _NoTrailers:
    """An h11 body reader that drops chunked trailers.

    mitmproxy's HTTP/1 layer raises NotImplementedError on trailers and the exchange hangs
    until the client gives up; no MCP message uses them, so the body goes on without them.
    """

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    def __call__(self, buf: Any) -> Any:
        event = self.reader(buf)
        if isinstance(event, h11.EndOfMessage) and event.headers:
            return h11.EndOfMessage()
        return event

    def read_eof(self) -> Any:
        return self.reader.read_eof()


def _read_body_without_trailers(self: Any, event: Any) -> Generator[Any, Any, None]:
    if self.body_reader is not None and not isinstance(self.body_reader, _NoTrailers):
        self.body_reader = _NoTrailers(self.body_reader)
    yield from _original_read_body(self, event)


def _bounded_read_headers(self: Any, event: Any) -> Generator[Any, Any, None]:
    """mitmproxy buffers a request head until its blank line, however long: bound it."""
    if (
        isinstance(event, events.DataReceived)
        and len(self.buf) > MAX_HEAD_BYTES
        and b"\r\n\r\n" not in bytes(self.buf)[: MAX_HEAD_BYTES + 4]
    ):
        message = f"the request's headers are longer than {MAX_HEAD_BYTES} bytes"
        yield commands.SendData(self.conn, _http1.make_error_response(431, message))
        yield commands.CloseConnection(self.conn)
        self.buf.clear()
        self.state = self.done  # whatever else arrives on this connection is ignored
        return
    yield from _original_read_headers(self, event)


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


def install_error_pages(max_response_bytes: int | None = None) -> None:
    """Swap mitmproxy's HTML error page for JSON, bound request bodies and whole answers
    while they arrive, and drop chunked trailers (idempotent)."""
    if max_response_bytes is not None:
        _response_limit[0] = max_response_bytes
    _http1.make_error_response = _json_error_response
    http_layer.HttpStream.check_body_size = _requests_only  # type: ignore[method-assign]
    _http1.Http1Connection.read_body = _read_body_without_trailers  # type: ignore[method-assign]
    _http1.Http1Server.read_headers = _bounded_read_headers  # type: ignore[method-assign]


def _timeout_of(route: Route) -> float:
    """Seconds the upstream may take to start its answer: its own timeout, else the gateway's."""
    per_upstream = route.upstream.config.timeout
    return per_upstream if per_upstream is not None else route.default_timeout


class Upstream:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config

    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = pending_route(flow)
        if route is None:
            return
        handle = asyncio.get_running_loop().call_later(_timeout_of(route), self._expire, flow)
        state(flow).timer = handle

    @guarded
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)
        st = state(flow)
        resp = flow.response
        if st.local or st.route is None or resp is None:
            return
        for name in UPSTREAM_ONLY_HEADERS:
            resp.headers.pop(name, None)
        if 300 <= resp.status_code < 400:
            self._refuse_redirect(flow, resp.status_code)
            return
        has_body = resp.status_code not in (202, 204) and resp.headers.get("content-length") != "0"
        failed = answers.failure(
            flow.request.method,
            resp.status_code,
            resp.reason,
            resp.headers.get("content-type", ""),
            resp.headers.get("retry-after"),
            has_body,
        )
        if failed is not None:
            self._refuse_failure(flow, failed)

    @guarded
    def response(self, flow: http.HTTPFlow) -> None:
        st = state(flow)
        if st.local or st.route is None or flow.response is None:
            return
        for name in UPSTREAM_ONLY_HEADERS:
            flow.response.headers.pop(name, None)
        self._check_answer_id(flow)

    @staticmethod
    def _check_answer_id(flow: http.HTTPFlow) -> None:
        """A whole JSON answer to one request must carry that request's id: one for another
        id (a look-alike such as "1" for 1 included) answers nothing the client asked, so
        the client gets an error for its id instead of waiting for an answer that never
        comes, or matching the wrong one."""
        st, resp = state(flow), flow.response
        assert st.route is not None and resp is not None
        requests = [m for m in st.messages if m.kind == "request"]
        if len(requests) != 1 or resp.status_code != 200 or callable(resp.stream):
            return
        if not resp.headers.get("content-type", "").lower().startswith("application/json"):
            return
        rid = requests[0].id
        got = answers.other_id(resp.content or b"", rid)
        if got is answers.SAME:
            return
        up = st.route.upstream
        shown = repr(got) if len(repr(got)) <= 40 else repr(got)[:40] + "…"
        text = (
            f"Upstream {up.name!r} ({up.host}:{up.port}) answered with id {shown} to the "
            f"request with id {rid!r}; the answer was dropped: check the upstream."
        )
        data = {"upstream": up.name, "status": resp.status_code}
        resp.status_code = 502
        resp.content = jsonrpc.encode(
            jsonrpc.error_response(rid, jsonrpc.INTERNAL_ERROR, text, data)
        )
        st.outcome = "upstream_error"
        st.reason = "upstream answered another id"

    @staticmethod
    def _refuse_failure(flow: http.HTTPFlow, failed: answers.Failure) -> None:
        """An answer the client could not read as JSON-RPC: a JSON-RPC error for each of its
        requests instead, naming the upstream (its body is swallowed, never relayed)."""
        st = state(flow)
        assert st.route is not None and flow.response is not None
        up = st.route.upstream
        upstream_status = flow.response.status_code
        text = f"Upstream {up.name!r} ({up.host}:{up.port}) {failed.what}; {failed.fix}."
        data: dict[str, object] = {"upstream": up.name, "status": upstream_status}
        if failed.retry_after is not None:
            data["retryAfter"] = failed.retry_after
        ids = [m.id for m in st.messages if m.kind == "request"]
        errors = [jsonrpc.error_response(i, jsonrpc.INTERNAL_ERROR, text, data) for i in ids] or [
            jsonrpc.error_response(None, jsonrpc.INTERNAL_ERROR, text, data)
        ]
        body = jsonrpc.encode(errors if len(errors) > 1 else errors[0])
        replace_upstream_answer(flow, body, failed.status)
        if failed.retry_after is not None:
            flow.response.headers["retry-after"] = failed.retry_after
        st.outcome = "upstream_error"
        st.reason = f"upstream answered {upstream_status}"

    @staticmethod
    def _refuse_redirect(flow: http.HTTPFlow, status: int) -> None:
        """A redirect would send the client, and its request, somewhere no rule applies."""
        st = state(flow)
        assert st.route is not None
        up = st.route.upstream
        text = (
            f"Upstream {up.name!r} ({up.host}:{up.port}) answered with a redirect ({status}); "
            "the gateway does not follow or pass on redirects: fix the upstream's url in the "
            "profile."
        )
        ids = [m.id for m in st.messages if m.kind == "request"]
        data = {"upstream": up.name, "status": status}
        errors = [jsonrpc.error_response(i, jsonrpc.INTERNAL_ERROR, text, data) for i in ids] or [
            jsonrpc.error_response(None, jsonrpc.INTERNAL_ERROR, text, data)
        ]
        replace_upstream_answer(flow, jsonrpc.encode(errors if len(errors) > 1 else errors[0]))
        st.outcome = "upstream_error"
        st.reason = f"upstream redirect {status}"

    def error(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)
        st = state(flow)
        if st.outcome is None:
            st.outcome = "upstream_error"
            st.reason = flow.error.msg if flow.error else "upstream failed"
        _failed_flow.set(flow)

    @staticmethod
    def _cancel(flow: http.HTTPFlow) -> None:
        st = state(flow)
        handle, st.timer = st.timer, None
        if handle is not None:
            handle.cancel()

    def _expire(self, flow: http.HTTPFlow) -> None:
        state(flow).timer = None
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
