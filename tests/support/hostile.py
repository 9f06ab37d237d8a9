"""Hostile HTTP/1 clients over raw sockets: bad framing, slow heads, idle bodies.

Why it exists: the client-side hardening (issue 12 §1) is judged by what a raw socket sees:
how long the gateway takes to answer or close, and what it answers. The same cases serve
the e2e suite (tests/e2e/test_hostile_clients.py) and the bench (bench/hostile_clients.py).

`probe(port, case, limit)` opens one connection, sends the case's opening bytes, then keeps
trickling its drip bytes (one piece every `drip_every` seconds) until the gateway answers or
closes, or `limit` seconds pass; it returns what it saw and when.
"""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass
from typing import Any

HEAD = "POST /mcp/open HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
CALL = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_note"}}'


@dataclass(frozen=True)
class Case:
    name: str
    opening: bytes
    drip: bytes = b""  # sent again and again after the opening, one piece per drip_every
    drip_every: float = 1.0
    expect: int | None = None  # the status the hardened gateway answers (None: closes)


def _head(*lines: str) -> bytes:
    return (HEAD + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()


CASES: tuple[Case, ...] = (
    Case("slow head (1 byte/s)", HEAD.encode(), b"a", 1.0, 408),
    Case("silent connection", b"", expect=408),
    Case(
        "50 MiB body sent slowly",
        _head(f"Content-Length: {50 * 1024 * 1024}"),
        b"a" * 1024,
        0.05,
        413,
    ),
    Case(
        "Content-Length larger than body",
        _head("Content-Length: 100") + b'{"jsonrpc"',
        b"",
        1.0,
        408,
    ),
    Case("Content-Length: 10^18", _head(f"Content-Length: {10**18}"), expect=413),
    Case(
        "chunk size overflow", _head("Transfer-Encoding: chunked") + b"f" * 40 + b"\r\n", expect=400
    ),
    Case("bad chunk size", _head("Transfer-Encoding: chunked") + b"zz\r\nab\r\n", expect=400),
    Case("missing last chunk", _head("Transfer-Encoding: chunked") + b'5\r\n{"a":\r\n', expect=408),
    Case("HTTP/0.9 request", b"GET /mcp/open\r\n", expect=400),
    Case("garbage request line", b"\x00\xffgarbage\x01\r\n", expect=400),
    Case("empty request", b"\r\n\r\n", expect=400),
    Case(
        "Content-Length with Transfer-Encoding",
        _head("Content-Length: 5", "Transfer-Encoding: chunked") + b"0\r\n\r\n",
        expect=400,
    ),
    Case(
        "two different Content-Lengths",
        _head("Content-Length: 5", "Content-Length: 6") + b"hello",
        expect=400,
    ),
    Case("negative Content-Length", _head("Content-Length: -1"), expect=400),
    Case("unknown Transfer-Encoding", _head("Transfer-Encoding: gzip") + b"hello", expect=400),
)


@dataclass
class Seen:
    answered: float | None = None  # seconds until the first byte of an answer
    closed: float | None = None  # seconds until the gateway closed (EOF or reset)
    status: int | None = None
    body: bytes = b""
    raw: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)

    def summary(self) -> str:
        what = f"{self.status}" if self.status is not None else "no answer"
        closed = f"closed after {self.closed:.2f} s" if self.closed is not None else "still open"
        return f"{what}, {closed}"


def _parse(seen: Seen) -> None:
    head, _, body = seen.raw.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        seen.status = int(parts[1])
    seen.body = body


def probe(port: int, case: Case, limit: float = 15.0) -> Seen:
    """Play `case` against 127.0.0.1:`port` for at most `limit` seconds."""
    seen = Seen()
    start = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(False)
    try:
        if case.opening:
            sock.sendall(case.opening)  # small enough for the send buffer
        next_drip = start + case.drip_every
        while (now := time.monotonic()) - start < limit:
            wait = min(next_drip - now, start + limit - now) if case.drip else limit - (now - start)
            readable, _, _ = select.select([sock], [], [], max(wait, 0.0))
            if readable:
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                if not data:
                    seen.closed = time.monotonic() - start
                    break
                if seen.answered is None:
                    seen.answered = time.monotonic() - start
                seen.raw += data
                continue
            if case.drip and time.monotonic() >= next_drip:
                try:
                    sock.send(case.drip)
                except BlockingIOError:
                    pass
                except OSError:  # reset by the gateway
                    seen.closed = time.monotonic() - start
                    break
                next_drip += case.drip_every
    finally:
        sock.close()
    _parse(seen)
    return seen


def read_message(sock: socket.socket) -> bytes:
    """One whole HTTP/1 message with a Content-Length (a request or an answer), read from a
    connection that stays open after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before the head's end: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the body's end")
        body += chunk
    return head + b"\r\n\r\n" + body
