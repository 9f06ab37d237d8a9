"""One HTTP/1.1 POST to an upstream on h11, for the gateway's own requests in the live path.

Why not httpx: the gateway process already holds h11 (mitmproxy's HTTP/1 layer), while httpx
and what it pulls in cost about half a second to import on a cold machine and some MB of RSS.
A call that needs the gateway's own request (a tool list for a tool never seen listed) would
pay that on the client's clock. This is only what that needs: one request per connection,
a capped body, a timeout on connecting and on each read and write, no redirects, no proxy.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from lockgate.net.tls import upstream_trust

_READ = 64 * 1024


class RequestFailed(OSError):
    """The request could not be made or its answer not read: one sentence, no body quoted."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated name keeps its last value
    body: bytes


def _context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify:
        return upstream_trust()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@asynccontextmanager
async def _connection(
    host: str, port: int, tls: ssl.SSLContext | None, timeout: float
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=tls, server_hostname=host if tls is not None else None
            )
    except TimeoutError:
        raise RequestFailed(f"connecting to {host}:{port} took longer than {timeout:g} s") from None
    except OSError as e:
        raise RequestFailed(f"could not connect to {host}:{port} ({type(e).__name__})") from None
    try:
        yield reader, writer
    finally:
        writer.close()
        try:
            async with asyncio.timeout(1):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            pass  # the connection is gone either way


async def post(
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    verify: ssl.SSLContext | bool,
    timeout: float,
    max_bytes: int,
) -> Answer:
    """POST `body` to `url` and read the whole answer (its body at most `max_bytes`).

    `timeout` bounds the connect and every read and write on its own, as an idle timeout.
    Raises RequestFailed (an OSError) for anything that is not an HTTP answer in time."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestFailed(f"{parts.scheme or 'the'} URL is not http or https")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    authority = parts.netloc.rpartition("@")[2]
    sent = [(k, v) for k, v in headers.items() if k.lower() not in ("host", "content-length")]
    sent += [("host", authority), ("content-length", str(len(body))), ("connection", "close")]
    tls = _context(verify) if parts.scheme == "https" else None
    conn = h11.Connection(our_role=h11.CLIENT)
    async with _connection(host, port, tls, timeout) as (reader, writer):
        try:
            out = conn.send(h11.Request(method="POST", target=target, headers=sent))
            out += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
            writer.write(out)
            async with asyncio.timeout(timeout):
                await writer.drain()
            return await _answer(conn, reader, timeout, max_bytes, authority)
        except h11.ProtocolError:
            raise RequestFailed(f"{authority} did not answer in HTTP/1.1") from None
        except TimeoutError:
            raise RequestFailed(f"{authority} sent nothing for {timeout:g} s") from None
        except OSError as e:
            if isinstance(e, RequestFailed):
                raise
            why = type(e).__name__
            raise RequestFailed(f"the connection to {authority} failed ({why})") from None


async def _answer(
    conn: h11.Connection,
    reader: asyncio.StreamReader,
    timeout: float,
    max_bytes: int,
    authority: str,
) -> Answer:
    response: h11.Response | None = None
    data = bytearray()
    closed = False
    while True:
        try:
            event = conn.next_event()
        except h11.ProtocolError:
            if closed:
                raise RequestFailed(
                    f"{authority} closed the connection before its answer ended"
                ) from None
            raise
        if event is h11.NEED_DATA:
            async with asyncio.timeout(timeout):
                chunk = await reader.read(_READ)
            closed = not chunk
            conn.receive_data(chunk)  # b"": the peer closed (h11 then ends or raises)
            continue
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            data += event.data
            if len(data) > max_bytes:
                raise RequestFailed(f"{authority}'s answer is larger than {max_bytes} bytes")
        elif isinstance(event, h11.EndOfMessage) and response is not None:
            heads = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
            return Answer(response.status_code, heads, bytes(data))
        elif isinstance(event, h11.ConnectionClosed):
            raise RequestFailed(f"{authority} closed the connection before its answer ended")
