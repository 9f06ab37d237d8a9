"""A stdlib HTTP server on a free loopback port, served from a thread for one `with` block.

Why it exists: the recording upstream, the page server and the hostile upstreams of the
security tests all run a `ThreadingHTTPServer` the same way: port 0, daemon threads, a
short poll interval so that shutdown is quick, and a clean stop when the block exits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def http_server(
    handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1"
) -> Iterator[ThreadingHTTPServer]:
    """Serve `handler` on `host`, port 0; yield the server (its port: `server_address[1]`)."""
    server = ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
