"""addons/client_wire/ on mitmproxy's own Http1Server, event by event (no sockets, no sleeps):
deadlines fire on the wakeups they ask for, a failing judge refuses, bad chunking gets its 400
before the close, and every head the core judge passes, mitmproxy parses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from mitmproxy import options
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import RequestHeaders, RequestProtocolError
from mitmproxy.test.tflow import tclient_conn

from lockgate.addons import client_wire
from lockgate.addons.client_wire import _wire, connections, deadlines, framing
from lockgate.addons.wire import install_error_pages
from tests.core.net.test_framing import honest_heads

HEAD = b"POST /mcp/open HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    install_error_pages()
    client_wire.install_client_guards(head_timeout=10.0, idle_timeout=5.0, max_connections=8)
    fake = Clock()
    for module in (_wire, deadlines, connections):  # each reads the clock
        monkeypatch.setattr(module, "time", fake)
    yield fake


class Conn:
    """One client connection's Http1Server, fed events one at a time."""

    def __init__(self) -> None:
        self.client = tclient_conn()
        self.layer = _http1.Http1Server(Context(self.client, options.Options()))
        self.wakeups: list[commands.RequestWakeup] = []
        self.feed(events.Start())

    def feed(self, event: events.Event) -> list[commands.Command]:
        out = list(self.layer.handle_event(event))
        self.wakeups += [c for c in out if isinstance(c, commands.RequestWakeup)]
        return out

    def data(self, raw: bytes) -> list[commands.Command]:
        return self.feed(events.DataReceived(self.client, raw))

    def wake(self) -> list[commands.Command]:
        """The latest wakeup fires (as mitmproxy's server would deliver it)."""
        return self.feed(events.Wakeup(self.wakeups.pop()))


def sent(out: list[commands.Command]) -> bytes:
    return b"".join(c.data for c in out if isinstance(c, commands.SendData))


def status(out: list[commands.Command]) -> int | None:
    raw = sent(out)
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else None


def closes(out: list[commands.Command]) -> bool:
    return any(isinstance(c, commands.CloseConnection) for c in out)


def received(out: list[commands.Command], kind: type[Any]) -> list[Any]:
    return [c.event for c in out if isinstance(c, ReceiveHttp) and isinstance(c.event, kind)]


def test_a_head_not_done_by_its_deadline_gets_408(clock: Clock) -> None:
    conn = Conn()
    assert conn.data(HEAD) == []  # not yet complete, not refused
    clock.now += 10.5
    out = conn.wake()
    assert status(out) == 408 and b"client_head_timeout" in sent(out)
    assert any(isinstance(c, commands.CloseTcpConnection) and c.half_close for c in out)
    clock.now += 1.5  # the lingering close ends
    assert any(type(c) is commands.CloseConnection for c in conn.wake())


def test_a_body_that_pauses_too_long_gets_408_and_the_flow_an_error(clock: Clock) -> None:
    conn = Conn()
    out = conn.data(HEAD + b"Content-Length: 10\r\n\r\nab")
    assert received(out, RequestHeaders)
    for _ in range(4):  # 4 s pauses: each moves the deadline on, past the head's
        clock.now += 4
        assert status(conn.data(b"c")) is None
    out = conn.wake()  # the first wakeup (due at the head's 10 s) fires: not yet
    assert status(out) is None and [c for c in out if isinstance(c, commands.RequestWakeup)]
    clock.now += 5.5
    out = conn.wake()
    assert status(out) == 408 and b"client_idle_timeout" in sent(out)
    assert received(out, RequestProtocolError)  # the flow ends in an error, not dangling


def test_after_a_refusal_further_bytes_are_dropped(clock: Clock) -> None:
    conn = Conn()
    assert status(conn.data(b"GET /mcp/open\r\n")) == 400
    assert conn.data(b"x" * 100_000) == []


def test_a_stale_wakeup_is_dropped(clock: Clock) -> None:
    conn = Conn()
    stale = conn.wakeups[0]  # the head's, due in 10 s
    conn.data(b"GET /x\r\n")  # refused: a new, earlier wakeup for the lingering close
    assert len(conn.wakeups) == 2
    clock.now += 10.5
    assert conn.feed(events.Wakeup(stale)) == []  # superseded: no second answer, no close
    assert conn.feed(events.Wakeup(client_wire.Deadline(1))) == []  # not this connection's
    assert any(type(c) is commands.CloseConnection for c in conn.wake())


def test_a_failing_judge_refuses_the_request(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes, *, blank_before: bool = False) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(framing, "judge_head", broken)
    conn = Conn()
    out = conn.data(HEAD + b"Content-Length: 0\r\n\r\n")
    assert status(out) == 400 and client_wire.JUDGE_FAILED.encode() in sent(out)
    assert not received(out, RequestHeaders)  # nothing reaches the hooks


def test_a_bad_chunk_size_gets_400_before_the_close(clock: Clock) -> None:
    conn = Conn()
    out = conn.data(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 40 + b"\r\n")
    assert status(out) == 400 and b"chunked" in sent(out)
    first_close = next(i for i, c in enumerate(out) if isinstance(c, commands.CloseConnection))
    first_send = next(i for i, c in enumerate(out) if isinstance(c, commands.SendData))
    assert first_send < first_close


def test_an_empty_line_then_another_is_an_empty_request(clock: Clock) -> None:
    conn = Conn()
    assert conn.data(b"\r\n") == []
    assert status(conn.data(b"\r\n")) == 400


@settings(max_examples=150, deadline=None)
@given(honest_heads())
def test_every_head_the_judge_passes_mitmproxy_parses(head: bytes) -> None:
    install_error_pages()
    client_wire.install_client_guards()
    conn = Conn()
    out = conn.data(head)
    assert status(out) is None, sent(out)
    assert received(out, RequestHeaders)


def test_an_honest_head_sent_byte_by_byte_is_parsed(clock: Clock) -> None:
    conn = Conn()
    head = HEAD + b"Content-Length: 2\r\n\r\n"
    outs = [conn.data(head[i : i + 1]) for i in range(len(head))]
    assert all(status(out) is None for out in outs)
    assert received(outs[-1], RequestHeaders)


def test_a_request_line_that_never_ends_gets_414(clock: Clock) -> None:
    conn = Conn()
    assert status(conn.data(b"GET /" + b"a" * 4000)) is None
    out = conn.data(b"a" * (client_wire.MAX_REQUEST_LINE - 4000))
    assert status(out) == 414 and b"request line" in sent(out)


def test_one_empty_line_before_a_request_in_the_same_piece_is_dropped(clock: Clock) -> None:
    conn = Conn()
    out = conn.data(b"\r\n" + HEAD + b"Content-Length: 0\r\n\r\n")
    assert status(out) is None and received(out, RequestHeaders)  # read now, not later
