"""SSE streaming: events survive arbitrary chunking byte-for-byte, rewrites stay well-formed."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.mcp.sse import (
    EventTooLarge,
    SseEvent,
    SseParser,
    SseRewriter,
    StreamBroken,
    serialize,
)

BOM = b"\xef\xbb\xbf"


def fields(ev: SseEvent) -> tuple[str | None, str | None, str | None, int | None]:
    return (ev.data, ev.event, ev.id, ev.retry)


def real(events: list[SseEvent]) -> list[SseEvent]:
    return [ev for ev in events if not ev.blank]


def run(rewriter: SseRewriter, chunks: list[bytes]) -> bytes:
    """Drive a rewriter as mitmproxy does, checking it never ends the body early."""
    out = bytearray()
    for chunk in chunks:
        assert chunk
        got = rewriter(chunk)
        if isinstance(got, list):
            assert all(part for part in got), "an empty part would end a chunked body"
            out += b"".join(got)
        else:
            assert got != b"", "b'' mid-stream ends an HTTP/1.1 chunked body"
            out += got
    end = rewriter(b"")
    assert isinstance(end, bytes)
    return bytes(out + end)


def identity(ev: SseEvent) -> SseEvent:
    return ev


# --- parser units -------------------------------------------------------------------------


def test_one_event() -> None:
    [ev] = SseParser().feed(b"event: message\nid: 4\ndata: hello\n\n")
    assert fields(ev) == ("hello", "message", "4", None)
    assert ev.raw == b"event: message\nid: 4\ndata: hello\n\n"
    assert not ev.blank


@pytest.mark.parametrize(
    ("first", "second", "last"),
    [
        # An incomplete event waits for its blank line.
        (b"data: a\n", b"data: b\n", b"\n"),
        # A CRLF split inside an event stays one line ending.
        (b"data: a\r", b"\ndata: b\r", b"\n\r\n"),
    ],
    ids=["incomplete-event-waits-for-its-blank-line", "crlf-split-stays-one-line-ending"],
)
def test_an_event_fed_in_pieces_is_one_event(first: bytes, second: bytes, last: bytes) -> None:
    p = SseParser()
    assert p.feed(first) == []
    assert p.feed(second) == []
    [ev] = p.feed(last)
    assert ev.data == "a\nb"
    assert ev.raw == first + second + last


@pytest.mark.parametrize(
    ("line", "data"),
    [
        (b"data", ""),
        (b"data:", ""),
        (b"data:x", "x"),
        (b"data: x", "x"),
        (b"data:  x", " x"),
        (b"data: a:b", "a:b"),
        (b"data: ", ""),
    ],
)
def test_data_field_spacing(line: bytes, data: str) -> None:
    [ev] = SseParser().feed(line + b"\n\n")
    assert ev.data == data


def test_data_lines_keep_empty_ones() -> None:
    [ev] = SseParser().feed(b"data: a\ndata:\ndata\n\n")
    assert ev.data == "a\n\n"


def test_comment_only_block_is_an_event_to_forward() -> None:
    [ev] = SseParser().feed(b": ping\n\n")
    assert fields(ev) == (None, None, None, None)
    assert ev.raw == b": ping\n\n"
    assert not ev.blank


def test_event_without_data_has_data_none() -> None:
    [ev] = SseParser().feed(b"event: x\nunknown: y\n\n")
    assert fields(ev) == (None, "x", None, None)


def test_last_event_and_id_win() -> None:
    [ev] = SseParser().feed(b"event: a\nevent: b\nid: 1\nid: 2\ndata: d\n\n")
    assert (ev.event, ev.id) == ("b", "2")


@pytest.mark.parametrize(
    ("value", "retry"),
    [(b"3000", 3000), (b"0", 0), (b"", None), (b"-1", None), (b"1.5", None), (b"\xd9\xa3", None)],
)
def test_retry_takes_ascii_digits_only(value: bytes, retry: int | None) -> None:
    [ev] = SseParser().feed(b"retry: " + value + b"\n\n")
    assert ev.retry == retry


def test_retry_beyond_int_digit_limit_is_ignored_not_raised() -> None:
    [ev] = SseParser().feed(b"retry: " + b"9" * 10_000 + b"\ndata: x\n\n")
    assert (ev.retry, ev.data) == (None, "x")


def test_id_with_nul_is_ignored() -> None:
    [ev] = SseParser().feed(b"id: 1\nid: a\x00b\n\n")
    assert ev.id == "1"


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(ending: bytes) -> None:
    body = b"data: a" + ending + b"data: b" + ending + ending
    [ev] = SseParser().feed(body)
    assert ev.data == "a\nb"
    assert ev.raw == body


def test_lone_cr_at_chunk_end_completes_the_event_at_once() -> None:
    p = SseParser()
    [ev] = p.feed(b"data: a\r\r")
    assert ev.data == "a"
    assert ev.raw == b"data: a\r\r"
    # The LF completing that CRLF arrives later: a blank event, not a new line of the next.
    first, second = p.feed(b"\ndata: b\n\n")
    assert first.blank and first.raw == b"\n"
    assert second.data == "b"
    assert second.raw == b"data: b\n\n"


def test_cr_then_cr_is_two_line_endings() -> None:
    p = SseParser()
    assert p.feed(b"data: a\r") == []
    [ev] = p.feed(b"\r")
    assert ev.raw == b"data: a\r\r"


def test_utf8_split_across_chunks() -> None:
    body = "data: é€😀\n\n".encode()
    p = SseParser()
    events = [ev for i in range(len(body)) for ev in p.feed(body[i : i + 1])]
    [ev] = events
    assert ev.data == "é€😀"
    assert ev.raw == body


def test_invalid_utf8_is_replaced_not_raised() -> None:
    [ev] = SseParser().feed(b"data: \xff\xfe\n\n")
    assert ev.data == "\ufffd\ufffd"
    assert ev.raw == b"data: \xff\xfe\n\n"


def test_bom_at_stream_start_is_ignored_even_when_split() -> None:
    p = SseParser()
    assert p.feed(BOM[:1]) == []
    assert p.feed(BOM[1:2]) == []
    [ev] = p.feed(BOM[2:] + b"data: x\n\n")
    assert ev.data == "x"
    assert ev.raw == BOM + b"data: x\n\n"


def test_bom_later_is_not_ignored() -> None:
    p = SseParser()
    p.feed(b"data: a\n\n")
    [ev] = p.feed(BOM + b"data: b\n\n")
    assert ev.data is None  # the field name is "\ufeffdata", an unknown field


def test_blank_lines_between_events_are_blank_events() -> None:
    events = SseParser().feed(b"\n\ndata: a\n\n\r\n")
    assert [(ev.blank, ev.raw) for ev in events] == [
        (True, b"\n"),
        (True, b"\n"),
        (False, b"data: a\n\n"),
        (True, b"\r\n"),
    ]


def test_flush_returns_the_incomplete_tail() -> None:
    p = SseParser()
    [ev] = p.feed(b"data: a\n\ndata: b\ndata: par")
    assert ev.data == "a"
    assert p.flush() == b"data: b\ndata: par"
    assert p.flush() == b""


def test_finish_parses_the_tail_for_the_rewriter() -> None:
    p = SseParser()
    p.feed(b'event: e\ndata: {"trunc')
    tail = p.finish()
    assert tail is not None
    assert fields(tail) == ('{"trunc', "e", None, None)
    assert tail.raw == b'event: e\ndata: {"trunc'
    assert p.finish() is None


def test_long_line_fed_in_small_chunks() -> None:
    payload = b"x" * 200_000
    body = b"data: " + payload + b"\n\n"
    p = SseParser()
    events = [ev for i in range(0, len(body), 1000) for ev in p.feed(body[i : i + 1000])]
    [ev] = events
    assert ev.data == payload.decode()


# --- serialize ----------------------------------------------------------------------------


def test_serialize_all_fields() -> None:
    ev = SseEvent(data="a\nb", event="message", id="7", retry=10)
    assert serialize(ev) == b"id: 7\nevent: message\nretry: 10\ndata: a\ndata: b\n\n"


def test_serialize_data_leading_space_survives() -> None:
    [ev] = SseParser().feed(serialize(SseEvent(data=" x")))
    assert ev.data == " x"


def test_serialize_normalises_cr_in_data() -> None:
    [ev] = SseParser().feed(serialize(SseEvent(data="a\r\nb\rc")))
    assert ev.data == "a\nb\nc"


def test_serialize_cannot_inject_fields_through_id_or_event() -> None:
    out = serialize(SseEvent(data="d", id="1\ndata: evil", event="e\r\nretry: 1"))
    [ev] = SseParser().feed(out)
    assert fields(ev) == ("d", "eretry: 1", "1data: evil", None)


def test_serialize_fieldless_event_stays_an_event() -> None:
    out = serialize(SseEvent())
    assert out == b":\n\n"
    [ev] = SseParser().feed(out)
    assert not ev.blank


# --- rewriter units -----------------------------------------------------------------------


def test_rewriter_returns_empty_list_while_incomplete_and_bytes_when_ready() -> None:
    rw = SseRewriter(identity)
    assert rw(b"data: a") == []
    assert rw(b"\n\n") == b"data: a\n\n"
    assert rw(b"") == b""


def test_rewriter_forwards_keepalives() -> None:
    assert run(SseRewriter(identity), [b": ping\n\n", b"data: x\n\n"]) == b": ping\n\ndata: x\n\n"


def test_rewriter_serializes_changed_events() -> None:
    def upper(ev: SseEvent) -> SseEvent:
        return dataclasses.replace(ev, data=ev.data.upper()) if ev.data else ev

    out = run(SseRewriter(upper), [b"id: 1\r\ndata: abc\r\n\r\n: ping\r\n\r\n"])
    assert out == b"id: 1\ndata: ABC\n\n: ping\r\n\r\n"


def test_rewriter_drops_events_and_their_split_lf() -> None:
    def keep_b(ev: SseEvent) -> SseEvent | None:
        return ev if ev.data == "b" else None

    out = run(SseRewriter(keep_b), [b"data: a\r\n\r", b"\ndata: b\r\n\r", b"\n"])
    assert out == b"data: b\r\n\r\n"


def test_rewriter_runs_the_unterminated_tail_through_the_callback() -> None:
    assert run(SseRewriter(identity), [b"data: a\n\ndata: tail"]) == b"data: a\n\ndata: tail"
    assert run(SseRewriter(lambda ev: None), [b"data: a\n\ndata: tail"]) == b""


def test_callback_error_drops_the_event_and_is_reported() -> None:
    seen: list[Exception] = []

    def boom(ev: SseEvent) -> SseEvent:
        if ev.data == "bad":
            raise RuntimeError("callback bug")
        return ev

    out = run(SseRewriter(boom, seen.append), [b"data: bad\n\ndata: good\n\n"])
    assert out == b"data: good\n\n"
    assert [str(e) for e in seen] == ["callback bug"]


def test_a_failing_error_reporter_does_not_raise() -> None:
    def boom(ev: SseEvent) -> SseEvent:
        raise ValueError("x")

    def bad_reporter(exc: Exception) -> None:
        raise RuntimeError("reporter bug")

    assert run(SseRewriter(boom, bad_reporter), [b"data: a\n\n"]) == b""


def test_unserializable_rewrite_is_dropped() -> None:
    seen: list[Exception] = []
    rw = SseRewriter(lambda ev: SseEvent(data="\ud800"), seen.append)
    assert run(rw, [b"data: a\n\n"]) == b""
    assert isinstance(seen[0], UnicodeEncodeError)


def test_parser_failure_stops_forwarding(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Exception] = []
    rw = SseRewriter(identity, seen.append)

    def broken(chunk: bytes) -> list[SseEvent]:
        raise AssertionError("parser bug")

    monkeypatch.setattr(rw._parser, "feed", broken)
    assert rw(b"data: a\n\n") == []
    assert rw(b"data: b\n\n") == []
    assert rw(b"") == b""
    assert len(seen) == 1


# --- properties ---------------------------------------------------------------------------

ENDINGS = ["\n", "\r\n", "\r"]
value_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"))


@dataclass
class Gen:
    """A generated event: its exact bytes and the fields a client would read."""

    text: str
    data: str | None
    event: str | None
    id: str | None
    retry: int | None


@st.composite
def gen_events(draw: st.DrawFn) -> Gen:
    data: list[str] = []
    event = id_ = None
    retry = None
    out = []
    prev_ending = ""
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["data", "data", "event", "id", "retry", "comment", "other"]))
        if kind == "comment":
            line = ":" + draw(value_text)
        elif kind == "retry":
            value = draw(st.from_regex(r"\A[0-9]{1,6}\Z") | value_text)
            line = "retry: " + value
            if value.isascii() and value.isdigit():
                retry = int(value)
        elif kind == "other":
            line = "x-" + draw(st.sampled_from(["a", "b"])) + ": " + draw(value_text)
        else:
            value = draw(value_text | st.sampled_from(["drop", "keep me", " lead"]))
            if kind == "id" and "\0" in value:
                value = value.replace("\0", "")
            colon = ": " if draw(st.booleans()) or value.startswith(" ") else ":"
            line = kind + colon + value if value or draw(st.booleans()) else kind
            if kind == "data":
                data.append(value)
            elif kind == "event":
                event = value
            else:
                id_ = value
        prev_ending = draw(st.sampled_from(ENDINGS))
        out.append(line + prev_ending)
    # A blank "\n" right after a line's "\r" would merge with it into one CRLF.
    out.append(draw(st.sampled_from(["\r\n", "\r"] if prev_ending == "\r" else ENDINGS)))
    return Gen("".join(out), "\n".join(data) if data else None, event, id_, retry)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Gen], bool, list[bytes]]:
    events = draw(st.lists(gen_events(), max_size=8))
    bom = bool(events) and draw(st.booleans())
    body = (BOM if bom else b"") + "".join(ev.text for ev in events).encode()
    cuts = set(draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=12)))
    if draw(st.booleans()):  # the awkward case, made common: every CR ends a chunk
        cuts |= {i + 1 for i, byte in enumerate(body) if byte == 0x0D}
    bounds = [0, *sorted(c for c in cuts if c < len(body)), len(body)]
    chunks = [body[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return events, bom, chunks


@given(streams())
def test_identity_rewrite_is_byte_exact(stream: tuple[list[Gen], bool, list[bytes]]) -> None:
    _, _, chunks = stream
    assert run(SseRewriter(identity), chunks) == b"".join(chunks)


@given(streams())
def test_parsed_events_match_generated(stream: tuple[list[Gen], bool, list[bytes]]) -> None:
    gens, bom, chunks = stream
    p = SseParser()
    events = [ev for chunk in chunks for ev in p.feed(chunk)]
    assert p.flush() == b""
    got = real(events)
    assert [fields(ev) for ev in got] == [(g.data, g.event, g.id, g.retry) for g in gens]
    for i, (ev, g) in enumerate(zip(got, gens, strict=True)):
        expected = (BOM if bom and i == 0 else b"") + g.text.encode()
        # Only a CRLF cut right after its CR leaves the LF to a blank event that follows.
        assert ev.raw == expected or (expected.endswith(b"\r\n") and ev.raw == expected[:-1])
    assert b"".join(ev.raw for ev in events) == b"".join(chunks)


@given(streams())
def test_filtering_rewrite_outputs_exactly_the_kept_events(
    stream: tuple[list[Gen], bool, list[bytes]],
) -> None:
    gens, bom, chunks = stream

    def drop(ev: SseEvent) -> SseEvent | None:
        return None if ev.data is not None and "drop" in ev.data else ev

    expected = b"".join(
        (BOM if bom and i == 0 else b"") + g.text.encode()
        for i, g in enumerate(gens)
        if not (g.data is not None and "drop" in g.data)
    )
    assert run(SseRewriter(drop), chunks) == expected


@given(streams())
def test_rewritten_events_parse_back_to_the_rewrite(
    stream: tuple[list[Gen], bool, list[bytes]],
) -> None:
    gens, _, chunks = stream

    def tag(ev: SseEvent) -> SseEvent:
        return dataclasses.replace(ev, data=f"<{ev.data}>") if ev.data is not None else ev

    out = run(SseRewriter(tag), chunks)
    parsed = real(SseParser().feed(out))
    expected = [(f"<{g.data}>" if g.data is not None else None, g.event) for g in gens]
    assert [(ev.data, ev.event) for ev in parsed] == expected


@given(st.lists(st.binary(min_size=1), max_size=10))
def test_arbitrary_bytes_never_raise_and_pass_through(chunks: list[bytes]) -> None:
    assert run(SseRewriter(identity), chunks) == b"".join(chunks)


@given(st.lists(st.binary(min_size=1), max_size=10))
def test_arbitrary_bytes_with_a_raising_callback(chunks: list[bytes]) -> None:
    errors: list[Exception] = []

    def boom(ev: SseEvent) -> SseEvent:
        raise KeyError(ev.data)

    out = run(SseRewriter(boom, errors.append), chunks)
    whole = SseParser()
    events = whole.feed(b"".join(chunks))
    tail = whole.finish()
    events += [tail] if tail is not None else []
    # Every real event is dropped; only blank lines ahead of the first one go through.
    leading = b""
    for ev in events:
        if not ev.blank:
            break
        leading += ev.raw
    assert out == leading
    assert len(errors) == len(real(events))
    assert all(isinstance(e, KeyError) for e in errors)


@given(
    st.builds(
        SseEvent,
        data=st.none() | st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r")),
        event=st.none() | value_text,
        id=st.none() | value_text.filter(lambda s: "\0" not in s),
        retry=st.none() | st.integers(0, 10**9),
    )
)
def test_serialize_round_trips(ev: SseEvent) -> None:
    [back] = SseParser().feed(serialize(ev))
    assert fields(back) == fields(ev)


# --- breaking: an event too large, a callback that says the stream is not MCP ----------------


def test_an_event_over_max_event_raises_and_keeps_the_events_before_it() -> None:
    p = SseParser(max_event=100)
    with pytest.raises(EventTooLarge) as e:
        p.feed(b"data: a\n\ndata: " + b"x" * 200)
    assert [ev.data for ev in e.value.events] == ["a"]
    assert "larger than 100 bytes" in e.value.what


@given(st.integers(1, 300), st.integers(1, 64))
def test_a_line_that_never_ends_is_held_to_max_event(limit: int, piece: int) -> None:
    """Fed in pieces of any size, the parser raises before it holds more than the limit
    plus one piece (what it holds never grows past that)."""
    p = SseParser(max_event=limit)
    fed = 0
    with pytest.raises(EventTooLarge):
        while fed < 10 * limit + 64:
            p.feed(b"x" * piece)
            fed += piece
    assert fed <= limit + piece


def test_an_event_at_max_event_passes() -> None:
    event = b"data: " + b"x" * 10 + b"\n\n"
    [ev] = SseParser(max_event=len(event)).feed(event)
    assert ev.data == "x" * 10


def _ending(reasons: list[str]) -> SseRewriter:
    def on_end(why: StreamBroken) -> bytes:
        reasons.append(why.what)
        return b"data: ended\n\n"

    def rewrite(ev: SseEvent) -> SseEvent | None:
        if ev.data == "bad":
            raise StreamBroken("sent a bad event", "check it")
        return ev

    return SseRewriter(rewrite, max_event=64, on_end=on_end)


def test_a_broken_stream_ends_once_and_passes_nothing_more() -> None:
    reasons: list[str] = []
    rw = _ending(reasons)
    assert rw(b"data: ok\n\ndata: bad\n\ndata: after\n\n") == b"data: ok\n\ndata: ended\n\n"
    assert rw(b"data: later\n\n") == [] and rw(b"") == b""
    assert rw.ended and reasons == ["sent a bad event"]
    assert rw.end(StreamBroken("again", "x")) == b""  # once only


def test_an_oversized_event_ends_the_stream() -> None:
    reasons: list[str] = []
    rw = _ending(reasons)
    out = rw(b"data: ok\n\ndata: " + b"y" * 100)
    assert out == b"data: ok\n\ndata: ended\n\n" and reasons == [
        "sent an event larger than 64 bytes"
    ]


def test_event_ids_make_a_stream_resumable_and_data_is_timed() -> None:
    rw = SseRewriter(lambda ev: ev)
    before = rw.last_data
    rw(b"data: a\n\n")
    assert not rw.resumable and rw.last_data >= before
    rw(b"id: 7\ndata: b\n\n")
    assert rw.resumable


def test_a_failing_end_callback_ends_quietly() -> None:
    seen: list[Exception] = []

    def on_end(why: StreamBroken) -> bytes:
        raise RuntimeError("bug")

    rw = SseRewriter(lambda ev: ev, on_error=seen.append, on_end=on_end)
    assert rw.end(StreamBroken("x", "y")) == b"" and rw.ended
    assert [type(e) for e in seen] == [RuntimeError]
