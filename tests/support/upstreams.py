"""Real upstream MCP servers for tests, started on 127.0.0.1 port 0.

Why it exists: DESIGN.md asks for real upstreams in tests, in JSON and SSE response modes,
stateful and stateless. `sdk_upstream` serves the bundled demo notes server
(`lockgate.cli.demo.server`, built with the official `mcp` SDK) in a background thread and
yields its MCP endpoint URL; the server and its socket are gone when the block exits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lockgate.cli.demo.server import MCP_PATH, BackgroundServer, build_app


@contextmanager
def sdk_upstream(*, json_response: bool = False, stateless: bool = False) -> Iterator[str]:
    """Yield the URL (`http://127.0.0.1:PORT/mcp`) of a fresh demo upstream.

    Each call gets its own server with fresh notes (three seeded notes, ids "1".."3").
    """
    with BackgroundServer(build_app(json_response=json_response, stateless=stateless)) as server:
        yield server.url + MCP_PATH
