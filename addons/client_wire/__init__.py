"""mitmproxy's HTTP/1 server side against hostile clients: installed once by the master.

Not an addon: these wrap pieces of mitmproxy's client-facing HTTP/1 layer that no hook
reaches (a hook runs only once a request head has been parsed).

- Framing: each piece of a request head is judged as it arrives (lockgate.net.framing) and a
  malformed one (HTTP/0.9, a garbage or empty request line, Content-Length with
  Transfer-Encoding, differing or non-numeric lengths, an unknown transfer coding, a bad
  header line) is answered 400 at once, a request line over MAX_REQUEST_LINE bytes 414; a
  malformed chunked body too (mitmproxy closes without a word).
- Deadlines: a request head must arrive whole within `gateway.client_head_timeout` seconds
  (408), a request body may pause at most `gateway.client_idle_timeout` seconds and must be
  whole within `gateway.client_body_timeout` seconds (408). A kept-alive connection idle
  that long between two requests is closed without an answer (the client may be sending
  its next request at that very moment; a 408 would confuse it). A connection whose first
  bytes pick no HTTP/1 layer (a TLS hello that stalls) is closed at the head deadline too.
- Keep-alive: an HTTP/1.1 answer on a connection kept alive says when the gateway closes
  it idle (`Keep-Alive: timeout=N`, N the head deadline rounded down).
- Connections: past `gateway.max_connections` open client connections, a new one is answered
  503 (with Retry-After) and closed.

One module per concern: `framing` (the judge), `deadlines` (head and body), `keepalive`
(the hint), `connections`
(the cap, and connections no HTTP/1 layer watches yet); `_wire` is what they share. This
module installs them.

Every refusal is JSON with one sentence, then a lingering close: the gateway sends FIN and
discards what the client still sends for at most `LINGER` seconds before it closes, so that
the client reads the answer instead of a connection reset. Fail closed: an exception while
judging a head refuses the request, never passes it on.
"""

from __future__ import annotations

from mitmproxy.proxy import mode_servers
from mitmproxy.proxy.layers.http import _http1

from lockgate.addons.client_wire._wire import Deadline, client_answer, limits
from lockgate.addons.client_wire.connections import capped_handle_stream, open_connections
from lockgate.addons.client_wire.deadlines import watched_handle_event
from lockgate.addons.client_wire.framing import (
    JUDGE_FAILED,
    MAX_REQUEST_LINE,
    inner_read_headers,
    judged_read_headers,
)
from lockgate.addons.client_wire.keepalive import hinted_send

__all__ = [
    "JUDGE_FAILED",
    "MAX_REQUEST_LINE",
    "Deadline",
    "client_answer",
    "install_client_guards",
    "limits",
    "open_connections",
]


def install_client_guards(
    head_timeout: float = 10.0,
    idle_timeout: float = 10.0,
    max_connections: int = 256,
    *,
    body_timeout: float = 60.0,
) -> None:
    """Judge request heads as they arrive, put deadlines on heads and bodies, and cap
    the open client connections (idempotent)."""
    limits.head_timeout = head_timeout
    limits.idle_timeout = idle_timeout
    limits.max_connections = max_connections
    limits.body_timeout = body_timeout
    current = _http1.Http1Server.read_headers
    if current is not judged_read_headers:
        inner_read_headers[0] = current
    _http1.Http1Server.read_headers = judged_read_headers  # type: ignore[method-assign]
    _http1.Http1Server._handle_event = watched_handle_event  # type: ignore[method-assign]
    _http1.Http1Server.send = hinted_send  # type: ignore[method-assign]
    mode_servers.ServerInstance.handle_stream = capped_handle_stream  # type: ignore[method-assign]
