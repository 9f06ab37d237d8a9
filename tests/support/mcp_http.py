"""MCP over raw HTTP for tests: JSON-RPC messages, the initialize handshake, session headers.

Why it exists: many e2e tests look at the bytes on the wire rather than through the SDK client
(status codes, headers, `Mcp-Session-Id`, an SSE body as it came). They build the same
JSON-RPC messages and open the same 2025-era session; this module is where that lives.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.demo_mcp import LEGACY_VERSION

ACCEPT = {"Accept": "application/json, text/event-stream"}


def rpc(method: str, params: dict[str, Any] | None = None, rid: int | str = 1) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def initialize_request(
    version: str = LEGACY_VERSION, client: str = "raw-httpx", client_version: str = "0"
) -> dict[str, Any]:
    """An `initialize` request (id 1) of protocol `version` from a client named `client`."""
    return rpc(
        "initialize",
        {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": client, "version": client_version},
        },
    )


INITIALIZE = initialize_request()
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def messages_of(resp: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a response, whether a JSON body or an SSE stream."""
    ctype = resp.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        obj = resp.json()
        return obj if isinstance(obj, list) else [obj]
    assert ctype.startswith("text/event-stream"), ctype
    out = []
    for block in resp.text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(
            line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")
        )
        if data:
            out.append(json.loads(data))
    return out


def open_session(client: httpx.Client, url: str) -> str | None:
    """A 2025-era initialize handshake over raw HTTP; the session id the answer carried."""
    resp = client.post(url, json=INITIALIZE, headers=ACCEPT)
    assert resp.status_code == 200, resp.text
    [reply] = messages_of(resp)
    assert reply["result"]["protocolVersion"] == LEGACY_VERSION
    sid = resp.headers.get("mcp-session-id")
    headers = session_headers(sid)
    assert client.post(url, json=INITIALIZED, headers=headers).status_code == 202
    return sid


def session_headers(sid: str | None) -> dict[str, str]:
    headers = ACCEPT | {"MCP-Protocol-Version": LEGACY_VERSION}
    if sid is not None:
        headers["Mcp-Session-Id"] = sid
    return headers
