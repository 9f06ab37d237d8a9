"""What the client-wire guards share: their limits, one connection's watch (phase and
deadline), the JSON answers, and the lingering close that follows every refusal.

The package's support module (`addons/client_wire/__init__.py` says what the guards do).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from h11._receivebuffer import ReceiveBuffer
from mitmproxy import http
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import RequestProtocolError

from lockgate.mcp import jsonrpc

# Heads longer than this are wire.py's (431); the judge only reads up to here.
JUDGED_HEAD_BYTES = 80 * 1024
# After a refusal, how long the client's further bytes are read and dropped before the close.
LINGER = 1.0
CHUNKED_SENTENCE = (
    "The request's chunked body is malformed (a bad or oversized chunk size, or a missing "
    "CRLF); send valid chunked encoding or a Content-Length."
)

Commands = Generator[commands.Command, Any, None]


@dataclass
class Limits:
    head_timeout: float = 10.0
    idle_timeout: float = 10.0
    max_connections: int = 256
    body_timeout: float = 60.0


limits = Limits()
# The peers (address, port) whose connection reached the HTTP/1 layer: the head deadline
# is its watch's from then on.
http1_peers: set[object] = set()


class Deadline(commands.RequestWakeup):
    """A wakeup this module asked for (a stale one, superseded by an earlier deadline, is
    dropped when it fires)."""


class Watch:
    """One client connection's phase and deadline (kept on its Http1Server)."""

    __slots__ = (
        "blank",
        "body_end",
        "deadline",
        "due",
        "got",
        "line_ok",
        "pending",
        "phase",
        "searched",
        "stream",
    )

    def __init__(self) -> None:
        self.phase: str | None = None  # "head", "body", "linger" or None (nothing to watch)
        self.deadline = 0.0
        self.body_end = 0.0  # when the current request's body must be whole
        self.pending: Deadline | None = None
        self.due = 0.0  # when the pending wakeup fires
        self.got = False  # a byte of the current request's head arrived
        self.blank = False  # an empty line came before this head (mitmproxy drops one)
        self.stream = -1  # the request (stream id) the three below are about
        self.line_ok = False  # its request line is whole and good
        self.searched = 0  # how far its head's end was looked for


def client_answer(status: int, sentence: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 answer: a JSON-RPC error (id null) holding `sentence`, then close."""
    code = jsonrpc.INTERNAL_ERROR if status >= 500 else jsonrpc.INVALID_REQUEST
    body = jsonrpc.encode(jsonrpc.error_response(None, code, sentence))
    resp = http.Response.make(
        status,
        body,
        {"content-type": "application/json", "connection": "close", **(headers or {})},
    )
    return http1.assemble_response(resp)


def head_timeout_sentence() -> str:
    return (
        f"The request's head did not arrive within {limits.head_timeout:g} s "
        "(gateway.client_head_timeout); send the whole head at once."
    )


def idle_timeout_sentence() -> str:
    return (
        f"The request's body paused for more than {limits.idle_timeout:g} s "
        "(gateway.client_idle_timeout); send the body without pauses."
    )


def body_timeout_sentence() -> str:
    return (
        f"The request's body did not arrive whole within {limits.body_timeout:g} s "
        "(gateway.client_body_timeout); send it faster, or raise the setting."
    )


def busy_sentence() -> str:
    return (
        f"The gateway already serves {limits.max_connections} connections "
        "(gateway.max_connections); retry in a moment."
    )


def watch(layer: Any) -> Watch:
    w: Watch | None = layer.__dict__.get("_lockgate_watch")
    if w is None:
        w = layer._lockgate_watch = Watch()
        http1_peers.add(getattr(layer.conn, "peername", None))
    return w


def wake(w: Watch, now: float) -> Commands:
    """Ask for a wakeup at the deadline, unless the pending one comes no later."""
    if w.phase is not None and (w.pending is None or w.due > w.deadline):
        delay = max(w.deadline - now, 0.001)
        w.pending, w.due = Deadline(delay), now + delay
        yield w.pending


def linger(layer: Any, w: Watch) -> Commands:
    """Half-close, then drop what arrives until LINGER has passed (see _on_wakeup)."""
    yield commands.CloseTcpConnection(layer.conn, half_close=True)
    layer.state = layer.done
    layer.buf = ReceiveBuffer()
    now = time.monotonic()
    w.phase, w.deadline = "linger", now + LINGER
    yield from wake(w, now)


def refuse(layer: Any, w: Watch, status: int, sentence: str) -> Commands:
    yield commands.SendData(layer.conn, client_answer(status, sentence))
    yield from linger(layer, w)


def is_chunk_error(cmd: commands.Command) -> bool:
    return (
        isinstance(cmd, ReceiveHttp)
        and isinstance(cmd.event, RequestProtocolError)
        and cmd.event.message.startswith("HTTP/1 protocol error")
    )
