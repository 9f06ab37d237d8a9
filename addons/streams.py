"""An upstream event stream that breaks ends with JSON-RPC errors, not a dropped connection.

Not an addon: a patch of mitmproxy's HTTP layer the master installs once. When the
upstream's stream fails after its headers went out (the upstream cut it, or the gateway
closed it for being idle, too large or not MCP), mitmproxy would drop the client's
connection and leave each open request unanswered. Here the stream's rewriter writes an
error event for each open request instead, and the client's chunked body ends cleanly
(its connection stays usable). A stream whose events carried ids is left to mitmproxy when
the upstream cut it: the client may resume it with Last-Event-ID.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mitmproxy import flow as flow_mod
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers.http import DropStream, SendHttp
from mitmproxy.proxy.layers.http._events import (
    ResponseData,
    ResponseEndOfMessage,
    ResponseProtocolError,
)
from mitmproxy.proxy.layers.http._hooks import HttpErrorHook

from lockgate.addons._flow import failed_flow, state
from lockgate.mcp.sse import SseRewriter, StreamBroken

_original_handle_protocol_error = http_layer.HttpStream.handle_protocol_error

CUT = StreamBroken("closed its event stream before answering", "try again")


def _ending_broken_streams(self: Any, event: Any) -> Generator[Any, Any, None]:
    response = self.flow.response
    stream = response.stream if response is not None else None
    if not (
        isinstance(event, ResponseProtocolError)
        and isinstance(stream, SseRewriter)
        and self.server_state == self.state_stream_response_body
        and self.client_state == self.state_done
        and (stream.ended or not stream.resumable)
    ):
        return (yield from _original_handle_protocol_error(self, event))
    st = state(self.flow)
    tail = stream.end(st.broken or CUT)
    self.flow.error = flow_mod.Error(event.message)
    yield HttpErrorHook(self.flow)
    failed_flow.set(None)  # no error page follows: the stream ends with its own errors
    if tail:
        yield SendHttp(ResponseData(self.stream_id, tail), self.context.client)
    self.server_state = self.state_errored
    self.flow.live = False
    yield DropStream(self.stream_id)
    yield SendHttp(ResponseEndOfMessage(self.stream_id), self.context.client)
    return None


def install_stream_ends() -> None:
    """Idempotent."""
    http_layer.HttpStream.handle_protocol_error = _ending_broken_streams  # type: ignore[method-assign]
