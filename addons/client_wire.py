"""mitmproxy's HTTP/1 server side against hostile clients: installed once by the master.

Not an addon: these wrap pieces of mitmproxy's client-facing HTTP/1 layer that no hook
reaches (a hook runs only once a request head has been parsed).

- Framing: each piece of a request head is judged as it arrives (lockgate.net.framing) and a
  malformed one (HTTP/0.9, a garbage or empty request line, Content-Length with
  Transfer-Encoding, differing or non-numeric lengths, an unknown transfer coding, a bad
  header line) is answered 400 at once, a request line over MAX_REQUEST_LINE bytes 414; a
  malformed chunked body too (mitmproxy closes without a word).
- Deadlines: a request head must arrive whole within `gateway.client_head_timeout` seconds
  (408), a request body may pause at most `gateway.client_idle_timeout` seconds and must be
  whole within `gateway.client_body_timeout` seconds (408). A kept-alive connection idle
  that long between two requests is closed without an answer (the client may be sending
  its next request at that very moment; a 408 would confuse it). A connection whose first
  bytes pick no HTTP/1 layer (a TLS hello that stalls) is closed at the head deadline too.
- Connections: past `gateway.max_connections` open client connections, a new one is answered
  503 (with Retry-After) and closed.

Every refusal is JSON with one sentence, then a lingering close: the gateway sends FIN and
discards what the client still sends for at most `LINGER` seconds before it closes, so that
the client reads the answer instead of a connection reset. Fail closed: an exception while
judging a head refuses the request, never passes it on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from h11._receivebuffer import ReceiveBuffer
from mitmproxy import ctx, http
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events, mode_servers
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import ErrorCode, RequestProtocolError

from lockgate.mcp import jsonrpc
from lockgate.net.framing import judge_head

log = logging.getLogger(__name__)

# Heads longer than this are wire.py's (431); the judge only reads up to here.
JUDGED_HEAD_BYTES = 80 * 1024
# After a refusal, how long the client's further bytes are read and dropped before the close.
LINGER = 1.0
# How long a connection over the cap may take to send its request head before its 503.
TURN_AWAY_READ = 1.0
CHUNKED_SENTENCE = (
    "The request's chunked body is malformed (a bad or oversized chunk size, or a missing "
    "CRLF); send valid chunked encoding or a Content-Length."
)
JUDGE_FAILED = "The gateway could not judge this request's head; send it again."
MAX_REQUEST_LINE = 8192
TOO_LONG_LINE = f"The request line is longer than {MAX_REQUEST_LINE} bytes; send a shorter URL."
_HEAD_END = re.compile(rb"\n\r?\n")  # where h11 ends a head

Commands = Generator[commands.Command, Any, None]


@dataclass
class Limits:
    head_timeout: float = 10.0
    idle_timeout: float = 10.0
    max_connections: int = 256
    body_timeout: float = 60.0


limits = Limits()
_open = [0]  # client connections being served now
# The peers (address, port) whose connection reached the HTTP/1 layer: the head deadline
# is its watch's from then on.
_http1_peers: set[object] = set()

_original_handle_event = _http1.Http1Connection._handle_event
_inner_read_headers: list[Any] = [None]  # wire.py's bounded read_headers, at install
_original_handle_stream = mode_servers.ServerInstance.handle_stream


class _Deadline(commands.RequestWakeup):
    """A wakeup this module asked for (a stale one, superseded by an earlier deadline, is
    dropped when it fires)."""


class _Watch:
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
        self.pending: _Deadline | None = None
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


def _watch(layer: Any) -> _Watch:
    w: _Watch | None = layer.__dict__.get("_lockgate_watch")
    if w is None:
        w = layer._lockgate_watch = _Watch()
        _http1_peers.add(getattr(layer.conn, "peername", None))
    return w


def _wake(w: _Watch, now: float) -> Commands:
    """Ask for a wakeup at the deadline, unless the pending one comes no later."""
    if w.phase is not None and (w.pending is None or w.due > w.deadline):
        delay = max(w.deadline - now, 0.001)
        w.pending, w.due = _Deadline(delay), now + delay
        yield w.pending


def _linger(layer: Any, w: _Watch) -> Commands:
    """Half-close, then drop what arrives until LINGER has passed (see _on_wakeup)."""
    yield commands.CloseTcpConnection(layer.conn, half_close=True)
    layer.state = layer.done
    layer.buf = ReceiveBuffer()
    now = time.monotonic()
    w.phase, w.deadline = "linger", now + LINGER
    yield from _wake(w, now)


def _refuse(layer: Any, w: _Watch, status: int, sentence: str) -> Commands:
    yield commands.SendData(layer.conn, client_answer(status, sentence))
    yield from _linger(layer, w)


def _on_wakeup(layer: Any, w: _Watch) -> Commands:
    now = time.monotonic()
    if w.phase is None:
        return
    if now < w.deadline:  # the body moved the deadline on
        yield from _wake(w, now)
        return
    if w.phase == "linger":
        w.phase = None
        yield commands.CloseConnection(layer.conn)
    elif w.phase == "head":
        if w.got or layer.stream_id == 1 or layer.buf:
            yield from _refuse(layer, w, 408, head_timeout_sentence())
        else:  # kept alive and idle: close quietly
            w.phase = None
            yield commands.CloseConnection(layer.conn)
    elif w.phase == "body":
        whole = now >= w.body_end
        sentence = body_timeout_sentence() if whole else idle_timeout_sentence()
        yield commands.SendData(layer.conn, client_answer(408, sentence))
        stream_id = layer.stream_id
        yield from _linger(layer, w)
        yield ReceiveHttp(
            RequestProtocolError(
                stream_id, "Request body idle timeout.", code=ErrorCode.GENERIC_CLIENT_ERROR
            )
        )


def _judge(layer: Any, w: _Watch) -> tuple[int, str] | None:
    """The status and sentence to refuse the head in `layer.buf` with, or None (fine so far).

    Bounded work per piece received, however the head is cut: the request line is judged
    (within its first MAX_REQUEST_LINE bytes) until it is whole, then only the new bytes are
    searched for the head's end, and the whole head is judged once, when it ends."""
    if w.stream != layer.stream_id:  # a new request on this connection
        w.stream, w.line_ok, w.searched, w.blank = layer.stream_id, False, 0, False
    data: bytearray = layer.buf._data  # h11's ReceiveBuffer: no copy of what is buffered
    if len(data) > JUDGED_HEAD_BYTES:
        return None  # wire.py answers 431
    end = _HEAD_END.search(data, max(w.searched - 2, 0))
    w.searched = len(data)
    if end is not None:  # the head is whole: judged once
        refusal = judge_head(bytes(data[: end.end()]), blank_before=w.blank)
    elif w.line_ok:
        return None
    else:
        first = bytes(data[: MAX_REQUEST_LINE + 4])
        refusal = judge_head(first, blank_before=w.blank)
        if refusal is None:
            if b"\n" in first.lstrip(b"\r\n"):
                w.line_ok = True
            elif len(data) > MAX_REQUEST_LINE:
                return 414, TOO_LONG_LINE
    if refusal is not None:
        return refusal.status, refusal.sentence
    blank = 2 if data[:2] == b"\r\n" else 1 if data[:1] == b"\n" else 0
    if blank:
        # mitmproxy drops one leading empty line, then waits for more bytes: drop it here, so
        # that a request in the same piece is read now.
        w.blank = True
        rest = bytes(data[blank:])
        layer.buf = ReceiveBuffer()
        layer.buf += rest
        w.searched = max(w.searched - blank, 0)
    w.got = w.got or bool(layer.buf)
    return None


def _is_chunk_error(cmd: commands.Command) -> bool:
    return (
        isinstance(cmd, ReceiveHttp)
        and isinstance(cmd.event, RequestProtocolError)
        and cmd.event.message.startswith("HTTP/1 protocol error")
    )


def _judged_read_headers(self: Any, event: events.Event) -> Commands:
    """Judge the head in the buffer before mitmproxy parses it (for a request that follows
    another one in the same piece too: mitmproxy calls this directly then)."""
    if isinstance(event, events.DataReceived):
        w = _watch(self)
        try:
            verdict = _judge(self, w)
        except Exception:  # fail closed: an unjudged head is not served
            log.exception("judging a request head failed")
            verdict = 400, JUDGE_FAILED
        if verdict is not None:
            yield from _refuse(self, w, *verdict)
            return
    yield from _inner_read_headers[0](self, event)


def _watched_handle_event(self: Any, event: events.Event) -> Commands:
    w = _watch(self)
    if isinstance(event, events.Wakeup) and isinstance(event.command, _Deadline):
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
            if _is_chunk_error(cmd):
                yield commands.SendData(self.conn, client_answer(400, CHUNKED_SENTENCE))
            yield from _linger(self, w)
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
        yield from _linger(self, w)
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
    yield from _wake(w, now)


def _silenced(writer: Any) -> None:
    """A connection that sent nothing within the head deadline: 408, and close (mitmproxy
    sees the close as the client's and cleans up)."""
    try:
        writer.write(client_answer(408, head_timeout_sentence()))
        writer.write_eof()
    except Exception:
        pass
    finally:
        writer.close()


async def _turn_away(reader: Any, writer: Any) -> None:
    """Answer a connection over the cap 503 once its head is in (or after a second)."""
    try:
        if isinstance(reader, asyncio.StreamReader):
            data = b""
            deadline = time.monotonic() + TURN_AWAY_READ
            while b"\r\n\r\n" not in data and len(data) < JUDGED_HEAD_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), left)
                except TimeoutError:
                    break
                if not chunk:
                    break
                data += chunk
            writer.write(client_answer(503, busy_sentence(), {"retry-after": "1"}))
            await asyncio.wait_for(writer.drain(), TURN_AWAY_READ)
            writer.write_eof()
            await asyncio.sleep(0.05)
    except Exception:  # the connection is turned away whatever fails
        pass
    finally:
        writer.close()


async def _capped_handle_stream(self: Any, reader: Any, writer: Any = None) -> None:
    if _open[0] >= limits.max_connections:
        await _turn_away(reader, writer if writer is not None else reader)
        return
    _open[0] += 1
    heard = _listen(reader)
    peer = _peer(writer if writer is not None else reader)
    try:
        served = asyncio.ensure_future(_original_handle_stream(self, reader, writer))
        try:
            done, _ = await asyncio.wait({served}, timeout=limits.head_timeout)
            if not done and (not heard[0] or not _layer_picked(peer)):
                _silenced(writer if writer is not None else reader)
            await served
        except asyncio.CancelledError:
            served.cancel()
            raise
    finally:
        _open[0] -= 1
        _http1_peers.discard(peer)


def _peer(writer: Any) -> object:
    try:
        return writer.get_extra_info("peername")
    except Exception:
        return None


def _layer_picked(peer: object) -> bool:
    """Whether the connection got past mitmproxy's layer choice: to the HTTP/1 layer (whose
    own head deadline then applies) or through a TLS handshake. A first byte that looks like
    TLS makes mitmproxy wait for a whole hello; one that never comes is held no longer than
    a head."""
    if peer is None or peer in _http1_peers:
        return True
    try:
        proxyserver = ctx.master.addons.get("proxyserver")
        handlers = list(proxyserver.connections.values()) if proxyserver else []
    except Exception:  # no master (a test harness): nothing to tell
        return True
    for handler in handlers:
        client = getattr(handler, "client", None)
        if client is not None and client.peername == peer:
            return bool(client.tls_established)
    return True  # already gone


def _listen(reader: Any) -> list[bool]:
    """A flag that turns True once the client has sent a byte. mitmproxy picks a
    connection's layers only once its first bytes arrive (they might be a TLS hello), so a
    silent connection is watched here, from outside the layers."""
    heard = [not isinstance(reader, asyncio.StreamReader)]  # other streams: not watched
    if not heard[0]:
        read = reader.read

        async def reading(n: int = -1) -> bytes:
            data = await read(n)
            if data and not heard[0]:
                heard[0] = True
                reader.read = read  # the flag is up: back to the plain read
            return data

        reader.read = reading
    return heard


def open_connections() -> int:
    return _open[0]


def install_client_guards(
    head_timeout: float = 10.0,
    idle_timeout: float = 10.0,
    max_connections: int = 256,
    *,
    body_timeout: float = 60.0,
) -> None:
    """Judge request heads as they arrive, put deadlines on heads and bodies, and cap
    the open client connections (idempotent)."""
    limits.head_timeout = head_timeout
    limits.idle_timeout = idle_timeout
    limits.max_connections = max_connections
    limits.body_timeout = body_timeout
    current = _http1.Http1Server.read_headers
    if current is not _judged_read_headers:
        _inner_read_headers[0] = current
    _http1.Http1Server.read_headers = _judged_read_headers  # type: ignore[method-assign]
    _http1.Http1Server._handle_event = _watched_handle_event  # type: ignore[method-assign]
    mode_servers.ServerInstance.handle_stream = _capped_handle_stream  # type: ignore[method-assign]
