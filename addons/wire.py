"""mitmproxy's HTTP/1 wire, bounded and answering JSON: installed once by the master.

Not an addon: these replace pieces of mitmproxy's HTTP layer that no hook reaches.

- Error pages: mitmproxy answers a failed exchange with its own HTML page, and setting
  `flow.response` in the `error` hook has no effect. The upstream addon's `error` hook
  remembers the failing flow (`_flow.failed_flow`): mitmproxy writes the page right after
  the hook returns, in the same task, and the page built here is JSON naming the upstream.
- Request bodies are bounded by `gateway.max_body_bytes` as they arrive, whole upstream
  answers by `gateway.max_response_bytes`, request heads by `MAX_HEAD_BYTES`.
- Chunked trailers are dropped (mitmproxy's HTTP/1 layer would hang on them).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import h11
from h11._receivebuffer import ReceiveBuffer
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

from lockgate.addons._flow import add_cors_headers, failed_flow, state
from lockgate.mcp import jsonrpc
from lockgate.mcp.exchange import merge_answers

_original_check_body_size = http_layer.HttpStream.check_body_size
_original_read_body = _http1.Http1Connection.read_body
_original_read_headers = _http1.Http1Server.read_headers

# Body pieces already received are handed on together up to this size (see _NoTrailers).
COALESCE_BYTES = 256 * 1024

# A request head that has not ended within this many bytes is refused with a 431 (Guard
# refuses complete heads over 64 KiB with a precise message; this catches heads that never end).
MAX_HEAD_BYTES = 80 * 1024


def error_body(status: int, message: str) -> tuple[int, bytes]:
    """The status and JSON body for a failed exchange, from the flow that failed if known."""
    flow = failed_flow.get()
    failed_flow.set(None)
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
        text = f"Upstream {up.name!r} ({up.host}:{up.port}) {st.timed_out}."
    else:
        status = 502 if status >= 500 or status == 0 else status
        text = (
            f"Upstream {up.name!r} ({up.host}:{up.port}) could not be reached: {message}; "
            "check that it is running and that its url in the profile is right."
        )
    ids = [m.id for m in st.messages if m.kind == "request"]
    data = {"upstream": up.name, "status": status}
    if st.batch and (ids or st.set_aside):
        # A batch's answer is a list: an error for each request's id, beside the errors of
        # the members the gateway refused itself.
        errors = [jsonrpc.error_response(i, jsonrpc.INTERNAL_ERROR, text, data) for i in ids]
        return status, jsonrpc.encode(merge_answers(st, errors))
    rid = ids[0] if len(ids) == 1 else None
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
    """An h11 body reader that drops chunked trailers and hands on all the body a read
    brought as one piece.

    mitmproxy's HTTP/1 layer raises NotImplementedError on trailers and the exchange hangs
    until the client gives up; no MCP message uses them, so the body goes on without them.
    h11 yields each chunk as its own event, and mitmproxy passes each through its layers
    (the stream rewriter included): an upstream writing one byte per chunk cost the whole
    pipeline once per byte. The chunks already in the buffer now go on together.
    """

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.pending: Any = None  # the event after a run of data, handed on next

    def __call__(self, buf: Any) -> Any:
        if self.pending is not None:
            event, self.pending = self.pending, None
            return event
        parts: list[bytes] = []
        size = 0
        while True:
            event = self.reader(buf)
            if isinstance(event, h11.Data):
                parts.append(bytes(event.data))
                size += len(event.data)
                if size < COALESCE_BYTES:
                    continue
                event = None
            if isinstance(event, h11.EndOfMessage) and event.headers:
                event = h11.EndOfMessage()
            if not parts:
                return event
            self.pending = event
            return h11.Data(data=parts[0] if len(parts) == 1 else b"".join(parts))

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
        self.buf = ReceiveBuffer()
        self.state = self.done  # whatever else arrives on this connection is ignored
        return
    yield from _original_read_headers(self, event)


def _json_error_response(status_code: int, message: str = "") -> bytes:
    flow = failed_flow.get()
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
