"""Fixtures of the ops tests: ports nothing answers on, and an HTTP server that is not lockgate."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from tests.support.httpd import http_server
from tests.support.process import free_port


@pytest.fixture
def closed_port() -> int:
    return free_port()


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port something listens on but never answers (the kernel accepts into the backlog)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


class _NotLockgate(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok"}'  # looks healthy, but is not a lockgate gateway
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_http_server() -> Iterator[int]:
    with http_server(_NotLockgate) as server:
        yield int(server.server_address[1])
