"""The framing judge: each piece of a request head is judged as it arrives
(lockgate.net.framing) before mitmproxy parses it; a malformed head is answered 400 (a
request line over MAX_REQUEST_LINE bytes 414) and the connection closed. Fail closed: an
exception while judging refuses the request, never passes it on."""

from __future__ import annotations

import logging
import re
from typing import Any

from h11._receivebuffer import ReceiveBuffer
from mitmproxy.proxy import events

from lockgate.addons.client_wire._wire import (
    JUDGED_HEAD_BYTES,
    Commands,
    Watch,
    refuse,
    watch,
)
from lockgate.net.framing import judge_head

log = logging.getLogger("lockgate.addons.client_wire")

JUDGE_FAILED = "The gateway could not judge this request's head; send it again."
MAX_REQUEST_LINE = 8192
TOO_LONG_LINE = f"The request line is longer than {MAX_REQUEST_LINE} bytes; send a shorter URL."
_HEAD_END = re.compile(rb"\n\r?\n")  # where h11 ends a head

inner_read_headers: list[Any] = [None]  # wire.py's bounded read_headers, at install


def _judge(layer: Any, w: Watch) -> tuple[int, str] | None:
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


def judged_read_headers(self: Any, event: events.Event) -> Commands:
    """Judge the head in the buffer before mitmproxy parses it (for a request that follows
    another one in the same piece too: mitmproxy calls this directly then)."""
    if isinstance(event, events.DataReceived):
        w = watch(self)
        try:
            verdict = _judge(self, w)
        except Exception:  # fail closed: an unjudged head is not served
            log.exception("judging a request head failed")
            verdict = 400, JUDGE_FAILED
        if verdict is not None:
            yield from refuse(self, w, *verdict)
            return
    yield from inner_read_headers[0](self, event)
