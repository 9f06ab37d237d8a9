"""Real upstream MCP servers for tests, started on 127.0.0.1 port 0.

Why it exists: DESIGN.md asks for real upstreams in tests, in JSON and SSE response modes,
stateful and stateless. `sdk_upstream` serves the bundled demo notes server
(`lockgate.cli.demo.server`, built with the official `mcp` SDK) in a background thread and
yields its MCP endpoint URL; the server and its socket are gone when the block exits.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from cryptography import x509

from lockgate.cli.demo.server import MCP_PATH, BackgroundServer, build_app
from tests.support.process import wait_until
from tests.support.tls import issue_certs


@contextmanager
def sdk_upstream(*, json_response: bool = False, stateless: bool = False) -> Iterator[str]:
    """Yield the URL (`http://127.0.0.1:PORT/mcp`) of a fresh demo upstream.

    Each call gets its own server with fresh notes (three seeded notes, ids "1".."3").
    """
    with BackgroundServer(build_app(json_response=json_response, stateless=stateless)) as server:
        yield server.url + MCP_PATH


def _make_certs(tmp: Path) -> tuple[Path, Path, Path]:
    certs = issue_certs(tmp, x509.IPAddress(ipaddress.ip_address("127.0.0.1")), "127.0.0.1")
    return certs.ca, certs.cert, certs.key


@pytest.fixture(scope="module")
def https_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    ca, cert, key = _make_certs(tmp)
    config = uvicorn.Config(
        build_app(json_response=True),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the https upstream to start", timeout=10, interval=0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}/mcp", ca
    server.should_exit = True
    thread.join(10)
