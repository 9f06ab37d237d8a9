"""The deadlines: a request head must arrive whole within `client_head_timeout` (408), a
body may pause at most `client_idle_timeout` and must be whole within `client_body_timeout`
(408); a kept-alive connection idle past the head deadline is closed quietly. mitmproxy's
own closes after a bad chunked body or its own 400/413/431 become lingering ones."""

from __future__ import annotations

import time
from typing import Any

from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import ErrorCode, RequestProtocolError

from lockgate.addons.client_wire._wire import (
    CHUNKED_SENTENCE,
    Commands,
    Deadline,
    Watch,
    body_timeout_sentence,
    client_answer,
    head_timeout_sentence,
    idle_timeout_sentence,
    is_chunk_error,
    limits,
    linger,
    refuse,
    wake,
    watch,
)

_original_handle_event = _http1.Http1Connection._handle_event


def _on_wakeup(layer: Any, w: Watch) -> Commands:
    now = time.monotonic()
    if w.phase is None:
        return
    if now < w.deadline:  # the body moved the deadline on
        yield from wake(w, now)
        return
    if w.phase == "linger":
        w.phase = None
        yield commands.CloseConnection(layer.conn)
    elif w.phase == "head":
        if w.got or layer.stream_id == 1 or layer.buf:
            yield from refuse(layer, w, 408, head_timeout_sentence())
        else:  # kept alive and idle: close quietly
            w.phase = None
            yield commands.CloseConnection(layer.conn)
    elif w.phase == "body":
        whole = now >= w.body_end
        sentence = body_timeout_sentence() if whole else idle_timeout_sentence()
        yield commands.SendData(layer.conn, client_answer(408, sentence))
        stream_id = layer.stream_id
        yield from linger(layer, w)
        yield ReceiveHttp(
            RequestProtocolError(
                stream_id, "Request body idle timeout.", code=ErrorCode.GENERIC_CLIENT_ERROR
            )
        )


def watched_handle_event(self: Any, event: events.Event) -> Commands:
    w = watch(self)
    if isinstance(event, events.Wakeup) and isinstance(event.command, Deadline):
        if event.command is w.pending:
            w.pending = None
            yield from _on_wakeup(self, w)
        return
    if w.phase == "linger" and isinstance(event, events.DataReceived):
        return  # dropped: the answer is sent, the connection closes at the deadline
    # mitmproxy closes on a bad chunked body without an answer, and closes at once after
    # its own 400/413/431: the close waits for the next command, which tells which it was,
    # and becomes a lingering one after an answer.
    held = False
    closing = not isinstance(event, events.ConnectionClosed)
    for cmd in _original_handle_event(self, event):
        if held:
            held = False
            if is_chunk_error(cmd):
                yield commands.SendData(self.conn, client_answer(400, CHUNKED_SENTENCE))
            yield from linger(self, w)
        if (
            closing
            and type(cmd) is commands.CloseConnection
            and cmd.connection is self.conn
            and not self.request_done
        ):
            held = True
            continue
        yield cmd
    if held:
        yield from linger(self, w)
    if w.phase == "linger":
        return
    now = time.monotonic()
    if self.state == self.read_headers:
        if w.phase != "head":
            w.phase, w.deadline = "head", now + limits.head_timeout
            w.got, w.blank = bool(self.buf), False
    elif self.state == self.read_body:
        if w.phase != "body":
            w.body_end = now + limits.body_timeout
        if w.phase != "body" or isinstance(event, events.DataReceived):
            # Each piece moves the idle deadline on, never past the whole body's.
            w.phase, w.deadline = "body", min(now + limits.idle_timeout, w.body_end)
    else:
        w.phase = None
    yield from wake(w, now)
