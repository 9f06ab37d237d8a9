"""The `Keep-Alive: timeout=N` hint on HTTP/1.1 answers: N is when the gateway closes a
kept-alive connection that sits idle (`gateway.client_head_timeout`, `deadlines`).

Why: a client that reuses an idle connection just as the gateway closes it sees its request
fail (a reset or an empty answer) and must retry. With the hint, clients that read it
(urllib3, Node's agent, browsers) stop reusing a connection before the gateway's deadline.
N is rounded down, so the client always gives up first.
"""

from __future__ import annotations

import math
from typing import Any

from mitmproxy.net.http import http1
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._events import ResponseHeaders

from lockgate.addons.client_wire._wire import Commands, limits

_original_send = _http1.Http1Server.send


def _keeps_alive(request: Any, response: Any) -> bool:
    if request is None or request.http_version != "HTTP/1.1":
        return False
    if http1.connection_close(request.http_version, request.headers):
        return False
    return "close" not in response.headers.get("connection", "").lower()


def hinted_send(self: Any, event: Any) -> Commands:
    if isinstance(event, ResponseHeaders):
        response = event.response
        if _keeps_alive(self.request, response):
            # Replaces an upstream's own hint: it spoke of the upstream's connection.
            response.headers["keep-alive"] = f"timeout={math.floor(limits.head_timeout)}"
        else:
            response.headers.pop("keep-alive", None)
    return (yield from _original_send(self, event))
