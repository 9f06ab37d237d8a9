"""Incremental Server-Sent Events parsing for responses streamed through the gateway.

mitmproxy hands a stream callable arbitrary chunks of the body, so events are
reassembled here, handed whole to a rewrite callback, and forwarded either as
their original bytes (untouched events stay byte-exact) or re-serialized.

Line endings follow the WHATWG spec: CRLF, LF or a lone CR. A CR that is the
last byte of a chunk is taken as a line ending at once, so an event completes
without waiting for the next chunk (streams that end lines with a bare CR would
otherwise stall an event until the next one arrives). If the next chunk then
starts with LF, that LF was the second half of a CRLF: it joins the pending
event's bytes when one is open, or, when the CR completed an event that has
already been emitted, it comes out as a *blank* event of its own. Blank events
(that LF, and blank lines between events) carry nothing; `SseRewriter` forwards
them only when the event before them went out byte-for-byte, so the output is
exactly the input when nothing is rewritten, and exactly the kept events when
some are dropped.

A stream can also break (`StreamBroken`): an event over the parser's `max_event` bytes, or
one the rewrite callback cannot accept. The rewriter then ends the stream for its client
once (`SseRewriter.end`, whose bytes are the errors for the requests still open) and lets
nothing more through.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"
_LF = 0x0A
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One event: its fields as a client would read them, and the exact bytes it came as.

    Frozen so that a rewrite callback returning the very event it got means "unchanged"
    (forward `raw`); to change an event, return `dataclasses.replace(ev, ...)`.
    `id` is this event's own id field, not the stream's last event id.
    """

    data: str | None = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    raw: bytes = b""
    blank: bool = False


class StreamBroken(Exception):
    """The stream cannot go on: its open requests get errors and nothing more of it passes.

    `what` completes "Upstream 'x' (host:port) …" ("sent an event that is not JSON"), and
    `fix` says what the user can do about it."""

    def __init__(self, what: str, fix: str, events: list[SseEvent] | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix
        # Events the same chunk completed before the break: they still go out.
        self.events = events or []


class EventTooLarge(StreamBroken):
    """An event (or a line that never ends) past the parser's `max_event` bytes."""


# A stream that ended as it should, with requests still unanswered: they get errors too
# (`SseRewriter` tells `on_end` so at the end of every stream; nothing open, nothing said).
UNANSWERED = StreamBroken("ended its event stream without answering", "try again")


class SseParser:
    """Turns arbitrary chunks into complete events; holds only the current event's bytes,
    and at most `max_event` of them (beyond, `feed` raises EventTooLarge)."""

    def __init__(self, max_event: int | None = None) -> None:
        self._max = max_event
        self._buf = bytearray()  # bytes since the end of the last emitted event
        self._line_start = 0  # where the line being received starts in _buf
        self._search = 0  # where to look for the next line ending in _buf
        self._skip_lf = False  # the last byte seen was a CR ending a line: an LF now is its pair
        self._stream_start = True  # a BOM is ignored on the first line only
        self._reset_fields()

    def _reset_fields(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._has_lines = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Events completed by this chunk, in order (including blank ones)."""
        if not chunk:
            return []
        events: list[SseEvent] = []
        buf = self._buf
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
                if buf:
                    buf.append(_LF)
                    self._line_start = self._search = len(buf)
                else:
                    events.append(SseEvent(raw=b"\n", blank=True))
        buf += chunk
        while True:
            search = self._search
            nl = buf.find(b"\n", search)
            cr = buf.find(b"\r", search) if nl < 0 else buf.find(b"\r", search, nl)
            if cr >= 0:
                end = cr
                if cr + 1 < len(buf):
                    term_end = cr + 2 if buf[cr + 1] == _LF else cr + 1
                else:
                    term_end = cr + 1
                    self._skip_lf = True
            elif nl >= 0:
                end = nl
                term_end = nl + 1
            else:
                self._search = len(buf)
                if self._max is not None and len(buf) > self._max:
                    raise self._too_large(events)
                return events
            if self._max is not None and term_end > self._max:
                raise self._too_large(events)
            line = bytes(buf[self._line_start : end])
            self._line_start = self._search = term_end
            if self._process_line(line):
                continue
            events.append(self._dispatch(bytes(buf[:term_end])))
            del buf[:term_end]
            self._line_start = self._search = 0

    def _too_large(self, events: list[SseEvent]) -> EventTooLarge:
        self._buf.clear()  # never held past the limit
        self._line_start = self._search = 0
        return EventTooLarge(
            f"sent an event larger than {self._max} bytes",
            "ask for less (a smaller page, a narrower query), or raise the limit in the profile",
            events,
        )

    def _process_line(self, line: bytes) -> bool:
        """Apply one complete line; False when it is the blank line that ends an event."""
        if self._stream_start:
            self._stream_start = False
            if line.startswith(_BOM):
                line = line[len(_BOM) :]
        if not line:
            return False
        self._has_lines = True
        if line[0] == 0x3A:  # ":" starts a comment
            return True
        text = line.decode("utf-8", "replace")
        field, sep, value = text.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            # Beyond int's digit limit: ignored like any other bad retry.
            with contextlib.suppress(ValueError):
                self._retry = int(value)
        return True

    def _dispatch(self, raw: bytes) -> SseEvent:
        if not self._has_lines:
            return SseEvent(raw=raw, blank=True)
        ev = SseEvent(
            data="\n".join(self._data) if self._data else None,
            event=self._event,
            id=self._id,
            retry=self._retry,
            raw=raw,
        )
        self._reset_fields()
        return ev

    def finish(self) -> SseEvent | None:
        """End of stream: the unterminated tail as an event (fields may be truncated), or None.

        Clients discard an unterminated event, but the gateway still shows it to its
        rewrite callback so that a filter can drop it rather than let it through unread.
        """
        buf = self._buf
        self._skip_lf = False
        if not buf:
            return None
        line = bytes(buf[self._line_start :])
        if line:
            self._process_line(line)
        ev = self._dispatch(bytes(buf))
        buf.clear()
        self._line_start = self._search = 0
        return ev

    def flush(self) -> bytes:
        """End of stream: the buffered incomplete tail, to forward as it came."""
        ev = self.finish()
        return ev.raw if ev is not None else b""


def _one_line(value: str) -> str:
    # A line break inside id or event would inject fields into the serialized event.
    return _LINE_BREAK.sub("", value)


def serialize(ev: SseEvent) -> bytes:
    """A well-formed event for `ev`'s fields (its `raw` is ignored)."""
    lines: list[str] = []
    if ev.id is not None:
        lines.append(f"id: {_one_line(ev.id)}")
    if ev.event is not None:
        lines.append(f"event: {_one_line(ev.event)}")
    if ev.retry is not None and ev.retry >= 0:
        lines.append(f"retry: {ev.retry}")
    if ev.data is not None:
        lines.extend(f"data: {line}" for line in _LINE_BREAK.split(ev.data))
    if not lines:
        lines.append(":")  # a field-less event stays an event (a keep-alive), not a blank line
    lines.append("\n")
    return "\n".join(lines).encode("utf-8")


Rewrite = Callable[[SseEvent], SseEvent | None]


class SseRewriter:
    """A `flow.response.stream` callable: rewrites whole events and never raises.

    The callback returns None to drop an event, the same event to forward its
    original bytes, or another event to forward it serialized. If it raises, the
    event is dropped (fail closed) and `on_error` is told; if it raises StreamBroken,
    or an event is over `max_event` bytes, the stream ends (`end`). Mid-stream the
    result is `[]` when nothing is ready, never `b""`, which would end an HTTP/1.1
    chunked body; `b""` in means end of stream.
    """

    def __init__(
        self,
        rewrite: Rewrite,
        on_error: Callable[[Exception], object] | None = None,
        *,
        max_event: int | None = None,
        on_end: Callable[[StreamBroken], bytes] | None = None,
        prelude: bytes = b"",
    ) -> None:
        self._parser = SseParser(max_event)
        # Events of the gateway's own that go out before the stream's first (a refused
        # batch member's error).
        self._prelude = prelude
        self._rewrite = rewrite
        self._on_error = on_error
        self._on_end = on_end
        self._last_raw = True  # did the last real event go out as its original bytes?
        self._broken = False
        self.ended = False
        # An event carried an id: after a cut the client may resume (Last-Event-ID).
        self.resumable = False
        # When bytes last came: an idle timer reads it rather than being reset per chunk.
        self.last_data = time.monotonic()

    def __call__(self, chunk: bytes) -> bytes | list[bytes]:
        if self._prelude:
            head, self._prelude = self._prelude, b""
            rest = self(chunk)
            return head + (b"".join(rest) if isinstance(rest, list) else rest)
        self.last_data = time.monotonic()
        if not chunk:
            return self._end()
        if self._broken:
            return []
        out = bytearray()
        try:
            events = self._parser.feed(chunk)
        except StreamBroken as e:
            for ev in e.events:
                self._emit(ev, out)
            out += self.end(e)
            return bytes(out) if out else []
        except Exception as e:
            self._break(e)
            return []
        for ev in events:
            if self._broken:
                break
            self._emit(ev, out)
        return bytes(out) if out else []

    def end(self, why: StreamBroken) -> bytes:
        """Once: what closes the stream for its client (`on_end`'s errors for the requests
        still open, told why); nothing of the stream passes afterwards."""
        if self.ended:
            return b""
        self.ended = self._broken = True
        if self._on_end is None:
            return b""
        try:
            return self._on_end(why)
        except Exception as e:
            self._report(e)
            return b""

    def _end(self) -> bytes:
        if self._broken:
            return b""
        try:
            ev = self._parser.finish()
        except Exception as e:
            self._break(e)
            return b""
        out = bytearray()
        if ev is not None:
            self._emit(ev, out)
        out += self.end(UNANSWERED)
        return bytes(out)

    def _emit(self, ev: SseEvent, out: bytearray) -> None:
        if ev.blank:
            if self._last_raw:
                out += ev.raw
            return
        self._last_raw = False
        if ev.id:
            self.resumable = True
        try:
            new = self._rewrite(ev)
            if new is ev:
                out += ev.raw
                self._last_raw = True
            elif new is not None:
                out += serialize(new)
        except StreamBroken as e:
            out += self.end(e)
        except Exception as e:
            self._report(e)

    def _break(self, exc: Exception) -> None:
        # The parser's state is unknown after a bug: forward nothing more rather than garbage.
        self._broken = True
        self._report(exc)

    def _report(self, exc: Exception) -> None:
        if self._on_error is None:
            return
        with contextlib.suppress(Exception):  # a reporter must not take the stream down
            self._on_error(exc)
