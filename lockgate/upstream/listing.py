"""The gateway's own `tools/list` of an upstream, for a call to a tool it has not seen listed.

Why it exists: a pinned or scanned tool is only safe if every call is checked against a
definition the gateway has seen. A client may call a tool it listed in an earlier session, or
through another gateway; rather than trusting that, the gateway asks the upstream itself, on
the caller's session and with the caller's upstream credential, and judges the call against
that answer. Pages are followed up to a bound, so a hostile upstream cannot keep it busy.
It goes over `lockgate.net.h1client` (h11, already loaded by mitmproxy), not httpx: the call
that waits for it should not wait for an import too.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from lockgate.mcp import jsonrpc
from lockgate.mcp.sse import SseParser
from lockgate.net import h1client

MAX_PAGES = 20
MAX_BYTES = 32 * 1024 * 1024
# The request headers a listing copies from the client's call: the session and protocol,
# what the upstream needs to answer on the same session.
_COPIED = ("mcp-session-id", "mcp-protocol-version")
LIST_ID = "lockgate-pin-check"


class ListingFailed(ValueError):
    """The upstream did not answer the gateway's own `tools/list` with a list."""


def _result_of(body: bytes, ctype: str) -> dict[str, Any]:
    messages: list[Any] = []
    if ctype.startswith("text/event-stream"):
        parser = SseParser()
        events = parser.feed(body)
        last = parser.finish()
        for ev in [*events, *([last] if last is not None else [])]:
            if ev.data:
                messages.append(jsonrpc.loads(ev.data))
    else:
        obj = jsonrpc.loads(body)
        messages.extend(obj if isinstance(obj, list) else [obj])
    for m in messages:
        if isinstance(m, dict) and m.get("id") == LIST_ID:
            result = m.get("result")
            if isinstance(result, dict) and isinstance(result.get("tools"), list):
                return result
            raise ListingFailed("the upstream answered tools/list with an error")
    raise ListingFailed("the upstream's answer to tools/list holds no list")


async def fetch_tools(
    url: str,
    call_headers: Mapping[str, str],
    auth_headers: Mapping[str, str],
    *,
    verify: ssl.SSLContext | bool,
    timeout: float,
    envelope: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every tool the upstream lists on the caller's session, following `nextCursor`.

    `envelope`: the caller's `params._meta` protocol keys (2026-07-28 carries the protocol
    version and client capabilities in every request, not in a session)."""
    headers = {k: v for k, v in call_headers.items() if k.lower() in _COPIED}
    headers |= dict(auth_headers)
    headers |= {
        "mcp-method": "tools/list",
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "accept-encoding": "identity",
    }
    tools: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"cursor": cursor} if cursor is not None else {}
        if envelope:
            params["_meta"] = dict(envelope)
        body = jsonrpc.encode(
            {"jsonrpc": "2.0", "id": LIST_ID, "method": "tools/list"}
            | ({"params": params} if params else {})
        )
        try:
            answer = await h1client.post(
                url, headers, body, verify=verify, timeout=timeout, max_bytes=MAX_BYTES
            )
        except h1client.RequestFailed as e:
            raise ListingFailed(str(e)) from None
        if answer.status != 200:
            raise ListingFailed(f"the upstream answered tools/list with {answer.status}")
        result = _result_of(answer.body, answer.headers.get("content-type", "").lower())
        tools.extend(t for t in result["tools"] if isinstance(t, dict))
        next_cursor = result.get("nextCursor")
        if not isinstance(next_cursor, str) or not next_cursor:
            return tools
        cursor = next_cursor
    raise ListingFailed(f"the upstream's tool list has more than {MAX_PAGES} pages")
