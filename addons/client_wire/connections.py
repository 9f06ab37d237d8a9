"""The connection cap (past `max_connections` a new connection is answered 503 and closed),
and the deadline of a connection no HTTP/1 layer watches yet: one that sends nothing, or
whose first bytes start a TLS hello that never ends, is closed at the head deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mitmproxy import ctx
from mitmproxy.proxy import mode_servers

from lockgate.addons.client_wire._wire import (
    JUDGED_HEAD_BYTES,
    busy_sentence,
    client_answer,
    head_timeout_sentence,
    http1_peers,
    limits,
)

# How long a connection over the cap may take to send its request head before its 503.
TURN_AWAY_READ = 1.0

_open = [0]  # client connections being served now
_original_handle_stream = mode_servers.ServerInstance.handle_stream


def _silenced(writer: Any) -> None:
    """A connection that sent nothing within the head deadline: 408, and close (mitmproxy
    sees the close as the client's and cleans up)."""
    try:
        writer.write(client_answer(408, head_timeout_sentence()))
        writer.write_eof()
    except Exception:
        pass
    finally:
        writer.close()


async def _turn_away(reader: Any, writer: Any) -> None:
    """Answer a connection over the cap 503 once its head is in (or after a second)."""
    try:
        if isinstance(reader, asyncio.StreamReader):
            data = b""
            deadline = time.monotonic() + TURN_AWAY_READ
            while b"\r\n\r\n" not in data and len(data) < JUDGED_HEAD_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), left)
                except TimeoutError:
                    break
                if not chunk:
                    break
                data += chunk
            writer.write(client_answer(503, busy_sentence(), {"retry-after": "1"}))
            await asyncio.wait_for(writer.drain(), TURN_AWAY_READ)
            writer.write_eof()
            await asyncio.sleep(0.05)
    except Exception:  # the connection is turned away whatever fails
        pass
    finally:
        writer.close()


async def capped_handle_stream(self: Any, reader: Any, writer: Any = None) -> None:
    if _open[0] >= limits.max_connections:
        await _turn_away(reader, writer if writer is not None else reader)
        return
    _open[0] += 1
    heard = _listen(reader)
    peer = _peer(writer if writer is not None else reader)
    try:
        served = asyncio.ensure_future(_original_handle_stream(self, reader, writer))
        try:
            done, _ = await asyncio.wait({served}, timeout=limits.head_timeout)
            if not done and (not heard[0] or not _layer_picked(peer)):
                _silenced(writer if writer is not None else reader)
            await served
        except asyncio.CancelledError:
            served.cancel()
            raise
    finally:
        _open[0] -= 1
        http1_peers.discard(peer)


def _peer(writer: Any) -> object:
    try:
        return writer.get_extra_info("peername")
    except Exception:
        return None


def _layer_picked(peer: object) -> bool:
    """Whether the connection got past mitmproxy's layer choice: to the HTTP/1 layer (whose
    own head deadline then applies) or through a TLS handshake. A first byte that looks like
    TLS makes mitmproxy wait for a whole hello; one that never comes is held no longer than
    a head."""
    if peer is None or peer in http1_peers:
        return True
    try:
        proxyserver = ctx.master.addons.get("proxyserver")
        handlers = list(proxyserver.connections.values()) if proxyserver else []
    except Exception:  # no master (a test harness): nothing to tell
        return True
    for handler in handlers:
        client = getattr(handler, "client", None)
        if client is not None and client.peername == peer:
            return bool(client.tls_established)
    return True  # already gone


def _listen(reader: Any) -> list[bool]:
    """A flag that turns True once the client has sent a byte. mitmproxy picks a
    connection's layers only once its first bytes arrive (they might be a TLS hello), so a
    silent connection is watched here, from outside the layers."""
    heard = [not isinstance(reader, asyncio.StreamReader)]  # other streams: not watched
    if not heard[0]:
        read = reader.read

        async def reading(n: int = -1) -> bytes:
            data = await read(n)
            if data and not heard[0]:
                heard[0] = True
                reader.read = read  # the flag is up: back to the plain read
            return data

        reader.read = reading
    return heard


def open_connections() -> int:
    return _open[0]
