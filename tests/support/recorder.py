"""A real recording upstream: proves what reached an upstream, and what never did.

Why it exists: the gateway's refusals (bad input, hidden tools, missing credentials) must
stop a request before it leaves the gateway, and the client's own `Authorization` header
must never travel upstream. `recording_upstream()` serves a tiny JSON-RPC endpoint over
real HTTP on 127.0.0.1 (port 0, stdlib `ThreadingHTTPServer` in a background thread),
records every request it receives (method, path, headers, body) and answers each JSON-RPC
request with a valid result: a small tool list for `tools/list`, a text result for
`tools/call`, a minimal `initialize` result, `{}` otherwise. Notifications get a 202.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.httpd import http_server

MCP_PATH = "/mcp"

TOOLS: list[dict[str, Any]] = [
    {
        "name": name,
        "description": f"{name} (recorder)",
        "inputSchema": {"type": "object", "properties": {}},
    }
    for name in ("list_notes", "get_note", "add_note", "delete_note")
]


@dataclass(frozen=True)
class Recorded:
    """One request as the upstream received it."""

    method: str
    path: str
    headers: dict[str, str]  # lowercased names; repeated headers joined with ", "
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self) -> list[Recorded]:
        with self.lock:
            return list(self.requests)

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    def add(self, rec: Recorded) -> None:
        with self.lock:
            self.requests.append(rec)


def result_for(method: str, params: Any) -> dict[str, Any]:
    if method == "initialize":
        version = params.get("protocolVersion") if isinstance(params, dict) else None
        return {
            "protocolVersion": version or "2025-06-18",
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "recorder", "version": "0"},
        }
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        name = params.get("name") if isinstance(params, dict) else None
        return {"content": [{"type": "text", "text": f"called {name}"}], "isError": False}
    return {}


def reply_to(message: Any) -> dict[str, Any] | None:
    """The answer to one decoded message; None for notifications and responses."""
    if not isinstance(message, dict) or "method" not in message or "id" not in message:
        return None
    return {
        "jsonrpc": "2.0",
        "id": message["id"],
        "result": result_for(str(message["method"]), message.get("params")),
    }


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _record(self) -> bytes:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                body = self._read_chunked()
            else:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            recorder.add(Recorded(self.command, self.path, headers, body))
            return body

        def _read_chunked(self) -> bytes:
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()

        def _send(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            if body:
                self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def do_POST(self) -> None:
            body = self._record()
            try:
                decoded = json.loads(body)
            except ValueError:
                self._send(
                    400,
                    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,'
                    b'"message":"recorder: not JSON"}}',
                )
                return
            if isinstance(decoded, list):
                replies = [r for r in map(reply_to, decoded) if r is not None]
                self._send(200, json.dumps(replies).encode()) if replies else self._send(202)
                return
            reply = reply_to(decoded)
            self._send(200, json.dumps(reply).encode()) if reply else self._send(202)

        def do_GET(self) -> None:
            self._record()
            self._send(405)

        def do_DELETE(self) -> None:
            self._record()
            self._send(200)

        def _not_allowed(self) -> None:
            self._record()
            self._send(405)

        do_PUT = do_PATCH = do_OPTIONS = _not_allowed

    return Handler


@contextmanager
def recording_upstream() -> Iterator[Recorder]:
    """Yield a Recorder whose `url` is `http://127.0.0.1:PORT/mcp`; stopped on exit."""
    recorder = Recorder(url="")
    with http_server(_handler(recorder)) as server:
        recorder.url = f"http://127.0.0.1:{server.server_address[1]}{MCP_PATH}"
        yield recorder
