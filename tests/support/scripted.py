"""A scriptable upstream on raw sockets: each answer is whatever the test scripted.

Why it exists: some gateway paths only show with an upstream that misbehaves in one exact way
(a list result replayed on a GET stream, NaN in a result, an SSE body in another charset, a
`101 Switching Protocols`). The upstream answers each request with the test's `reply`, and
records what reached it, including the bytes sent after an HTTP upgrade. Stdlib only.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# The curated route in front of it hides `delete_*` tools: HIDDEN must never show there.
HIDDEN = "delete_note"
TOOLS = [{"name": n, "inputSchema": {"type": "object"}} for n in ("list_notes", "get_note", HIDDEN)]
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    after_upgrade: bytes = b""


Reply = Callable[[Seen], bytes]  # the whole raw HTTP response (upgrade: then reads on)


@dataclass
class Scripted:
    url: str
    reply: Reply | None = None
    seen: list[Seen] = field(default_factory=list)


def read_request(conn: socket.socket) -> Seen | None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        # keep the raw chunked body, trailers included (ends with an empty line after 0)
        while not (body.startswith(b"0\r\n") or b"\r\n0\r\n" in body) or not body.endswith(
            b"\r\n\r\n"
        ):
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return Seen(method, path, headers, body)
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        body += conn.recv(65536)
    return Seen(method, path, headers, body)


SESSION_S = "mcp-session-id: s\r\n"


def http_response(status: str, ctype: str, body: bytes, extra: str = "") -> bytes:
    """A whole HTTP/1.1 response with a content-length."""
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


@contextmanager
def accepting(srv: socket.socket, serve: Callable[[socket.socket], None]) -> Iterator[None]:
    """Accept on the listening `srv`, each connection served by `serve` in its own thread,
    until the block exits (then `srv` is closed)."""
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(2)
        srv.close()


@contextmanager
def scripted_upstream() -> Iterator[Scripted]:
    """A raw-socket upstream on 127.0.0.1:0 (`url` ends in /mcp) that answers each request
    with `reply(seen)` and records it in `seen`; stopped when the block exits."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    up = Scripted(url=f"http://127.0.0.1:{srv.getsockname()[1]}/mcp")

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while True:
                    req = read_request(conn)
                    if req is None:
                        return
                    up.seen.append(req)
                    assert up.reply is not None
                    conn.sendall(up.reply(req))
                    if req.headers.get("upgrade"):
                        while chunk := conn.recv(65536):
                            req.after_upgrade += chunk
                        return
            except OSError:
                return

    with accepting(srv, serve):
        yield up


def tool_names(obj: object) -> list[str]:
    out: list[str] = []
    items = obj if isinstance(obj, list) else [obj]
    for o in items:
        if isinstance(o, dict) and isinstance(o.get("result"), dict):
            out += [t["name"] for t in o["result"].get("tools", [])]
    return out


def sse_payloads(text: str) -> list[object]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [ln[5:].lstrip(" ") for ln in block.split("\n") if ln.startswith("data:")]
        if data and "".join(data).strip():
            out.append(json.loads("\n".join(data)))
    return out
