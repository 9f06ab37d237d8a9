"""Review findings, each proved over real HTTP against `lockgate up` in a subprocess.

A small scriptable upstream (raw sockets, stdlib only) answers each request with whatever
the test put in its script, and records what reached it (including bytes sent after an
HTTP upgrade). The route under test hides `delete_*` tools; `open` is the witness.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.recorder import Recorder, recording_upstream

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


def _read_request(conn: socket.socket) -> Seen | None:
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


def _http(status: str, ctype: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    up = Scripted(url=f"http://127.0.0.1:{srv.getsockname()[1]}/mcp")
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while True:
                    req = _read_request(conn)
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
    yield up
    stop.set()
    t.join(2)
    srv.close()


CURATED = '\n[routes.curated]\nupstream = "up"\ntools.deny = ["delete_*"]\n'


@pytest.fixture
def gw(scripted: Scripted, tmp_path) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    profile = profile_text(upstreams={"up": scripted.url}, routes={"open": "up"}, extra=CURATED)
    with running_gateway(profile, tmp_path) as g:
        yield g


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


# --- 1. list results on a GET stream (resumption with Last-Event-ID) are not filtered -------


def test_get_stream_replayed_tools_list_is_filtered(scripted: Scripted, gw: GatewayProcess) -> None:
    """A client resuming a tools/list stream with GET + Last-Event-ID gets the replayed result.

    DESIGN: list results are filtered "in JSON and in SSE responses"; `list_method_of` even
    says "Responses on a GET stream (resumed with Last-Event-ID) have no request in this
    flow" — but `Capabilities.request` returns before adding the list filter for non-POST.
    """
    result = {"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS}}
    body = f"id: ev-2\ndata: {json.dumps(result)}\n\n".encode()
    init = {"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-11-25"}}

    def reply(req: Seen) -> bytes:
        if req.method == "POST":  # the initialize that opens session "s" (issue 9, item 2)
            return _http("200 OK", "application/json", json.dumps(init).encode(), SESSION_S)
        return _http("200 OK", "text/event-stream", body)

    scripted.reply = reply
    opened = httpx.post(
        gw.route_url("curated"),
        json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}},
        headers={"accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert opened.headers["mcp-session-id"] == "s"
    r = httpx.get(
        gw.route_url("curated"),
        headers={"accept": "text/event-stream", "last-event-id": "ev-1", "mcp-session-id": "s"},
        timeout=10,
    )
    assert r.status_code == 200
    names = [n for p in sse_payloads(r.text) for n in tool_names(p)]
    assert "list_notes" in names
    assert HIDDEN not in names


# --- 2. a batch that reuses an id steers the list filter to the wrong method --------------


def test_batch_with_duplicate_ids_still_filters_tools_list(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """[tools/list id=1, prompts/list id=1]: `st.methods[1]` ends up "prompts/list", so the
    tools/list answer (id 1) is filtered with the prompts view, which leaves `tools` alone."""
    with recording_upstream() as rec:
        profile = profile_text(
            upstreams={"rec": rec.url},
            routes={"open": "rec"},
            extra=('\n[routes.curated]\nupstream = "rec"\ntools.deny = ["delete_*"]\n'),
        )
        with running_gateway(profile, tmp_path) as g:
            batch = [
                {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                {"jsonrpc": "2.0", "id": 1, "method": "prompts/list"},
            ]
            r = httpx.post(g.route_url("curated"), json=batch, headers=HEADERS, timeout=10)
            # Refused outright: answers are matched to requests by id.
            assert r.status_code == 400, r.text
            body = r.json()
            answers = body if isinstance(body, list) else [body]
            assert answers and all(a["error"]["code"] == -32600 for a in answers), body
            assert HIDDEN not in r.text
            assert not [q for q in rec.seen() if b"tools/list" in q.body]


# --- 3. a list result the gateway cannot parse (NaN) passes unfiltered, the SDK reads it ----


@pytest.mark.parametrize("mode", ["json", "sse", "sse-utf16"])
def test_unparseable_list_result_is_not_forwarded_unfiltered(
    scripted: Scripted, gw: GatewayProcess, mode: str
) -> None:
    """`jsonrpc.loads` refuses NaN/Infinity; the JSON and SSE paths then forward the body
    unchanged. The SDK client (pydantic) accepts NaN and shows the hidden tool."""
    from mcp_types import jsonrpc_message_adapter

    text = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS, "x": float("nan")}})
    assert "NaN" in text
    if mode == "json":
        scripted.reply = lambda req: _http("200 OK", "application/json", text.encode())
    elif mode == "sse":
        scripted.reply = lambda req: _http(
            "200 OK", "text/event-stream", f"data: {text}\n\n".encode()
        )
    else:  # valid JSON, but in the charset the content-type names: the gateway reads UTF-8
        text = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS}})
        scripted.reply = lambda req: _http(
            "200 OK",
            "text/event-stream; charset=utf-16",
            f"data: {text}\n\n".encode("utf-16"),
        )
    r = httpx.post(
        gw.route_url("curated"),
        content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        headers=HEADERS,
        timeout=10,
    )
    assert "NaN" in text or mode == "sse-utf16"
    raw = (
        r.text
        if mode == "json"
        else "\n".join(ln[5:].lstrip() for ln in r.text.splitlines() if ln.startswith("data:"))
    )
    if not raw.strip():
        return  # dropped: fine
    try:
        msg = jsonrpc_message_adapter.validate_json(raw, by_name=False)
    except Exception:
        return  # the client cannot read it either: fine
    dumped = msg.model_dump(by_alias=True)
    result = dumped.get("result")
    names = [t["name"] for t in (result or {}).get("tools", [])] if isinstance(result, dict) else []
    assert HIDDEN not in names, f"the SDK client sees the hidden tool: {names}"


# --- 4. an HTTP Upgrade turns the route into an unchecked tunnel -------------------------


def _ws_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    header = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0xFE]) + n.to_bytes(2, "big")
    return header + mask + masked


def _ws_payloads(data: bytes) -> bytes:
    """Unmask the client frames an upstream received (enough for short text frames)."""
    out = b""
    while len(data) >= 2:
        n = data[1] & 0x7F
        i = 2
        if n == 126:
            n, i = int.from_bytes(data[2:4], "big"), 4
        mask, i = (data[i : i + 4], i + 4) if data[1] & 0x80 else (b"\0\0\0\0", i)
        out += bytes(b ^ mask[k % 4] for k, b in enumerate(data[i : i + n]))
        data = data[i + n :]
    return out


def test_upgrade_to_websocket_does_not_bypass_the_pipeline(
    scripted: Scripted, gw: GatewayProcess
) -> None:
    """GET with `Upgrade: websocket` has no body, so Capabilities lets it through; once the
    upstream answers 101, mitmproxy relays frames that no hook of the pipeline inspects."""

    def accept(req: Seen) -> bytes:
        key = req.headers.get("sec-websocket-key", "")
        acc = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        return (
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            f"sec-websocket-accept: {acc}\r\n\r\n"
        ).encode()

    scripted.reply = accept
    port = int(gw.base_url.rsplit(":", 1)[1])
    hidden_call = json.dumps(
        {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": HIDDEN}}
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            (
                "GET /mcp/curated HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = s.recv(65536)
        if head.startswith(b"HTTP/1.1 101"):
            s.sendall(_ws_frame(hidden_call))
            import time

            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not any(
                HIDDEN.encode() in _ws_payloads(req.after_upgrade) for req in scripted.seen
            ):
                time.sleep(0.05)
    leaked = any(HIDDEN.encode() in _ws_payloads(req.after_upgrade) for req in scripted.seen)
    upgraded = any(req.headers.get("upgrade") for req in scripted.seen)
    assert not leaked, "a hidden tools/call reached the upstream through a WebSocket tunnel"
    assert not upgraded, "an Upgrade request reached the upstream"


# --- 5. access.users / access.groups are accepted by the profile and never enforced -------


def test_route_access_list_is_enforced(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """DESIGN: "user not allowed on route -> 403". A route restricted to another user is
    served to the local user anyway: nothing reads `RouteSection.access`."""
    with recording_upstream() as rec:
        profile = profile_text(
            upstreams={"rec": rec.url},
            routes={},
            extra=(
                '\n[routes.admins]\nupstream = "rec"\naccess.users = ["someone-else"]\n'
                'access.groups = ["admins"]\n'
            ),
        )
        with running_gateway(profile, tmp_path) as g:
            r = httpx.post(
                g.route_url("admins"),
                content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
                headers=HEADERS,
                timeout=10,
            )
            assert rec.seen() == [], f"the upstream was contacted (gateway said {r.status_code})"
            assert r.status_code == 403


_ = Recorder  # type used by helpers' callers
