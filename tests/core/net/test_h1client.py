"""`lockgate.net.h1client` against real sockets on 127.0.0.1: what it sends, the answers it
reads (length, chunked, closed), and every way an answer fails (cap, silence, refusal, TLS)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509

from lockgate.net import h1client
from lockgate.net.h1client import RequestFailed
from tests.support.hostile import read_message
from tests.support.process import free_port
from tests.support.tls import issue_certs

Script = Callable[[socket.socket], None]


@contextmanager
def raw_server(script: Script, tls: ssl.SSLContext | None = None) -> Iterator[tuple[int, list]]:
    """One connection's worth of server: read the request, then run `script` on the socket."""
    seen: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
            seen.append(read_message(conn))
            script(conn)
        except OSError:
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, seen
    finally:
        listener.close()
        thread.join(5)


def _send(data: bytes) -> Script:
    return lambda conn: conn.sendall(data)


async def _post(port: int, *, scheme: str = "http", **kw: object) -> h1client.Answer:
    options: dict = {"verify": True, "timeout": 2.0, "max_bytes": 1024} | kw
    return await h1client.post(
        f"{scheme}://127.0.0.1:{port}/mcp?x=1",
        {"accept": "application/json"},
        b'{"a":1}',
        **options,
    )


@pytest.mark.anyio
async def test_a_json_answer_is_read_and_the_request_is_framed() -> None:
    body = b'{"jsonrpc":"2.0","id":1,"result":{}}'
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    with raw_server(_send(reply % (len(body), body))) as (port, seen):
        answer = await _post(port)
    assert (answer.status, answer.body) == (200, body)
    assert answer.headers["content-type"] == "application/json"
    [request] = seen
    head = request.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"post /mcp?x=1 http/1.1\r\n")
    assert f"host: 127.0.0.1:{port}".encode() in head
    assert b"content-length: 7" in head and b"accept: application/json" in head
    assert request.endswith(b'{"a":1}')


@pytest.mark.anyio
async def test_a_chunked_event_stream_is_read_to_its_end() -> None:
    events = [b'data: {"a":1}\n\n', b'data: {"b":2}\n\n']
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with raw_server(_send(head + chunks)) as (port, _):
        answer = await _post(port)
    assert answer.body == b"".join(events)


@pytest.mark.anyio
async def test_an_answer_ended_by_close_is_read_and_a_status_passed_on() -> None:
    with raw_server(_send(b"HTTP/1.1 503 Busy\r\n\r\nlater")) as (port, _):
        answer = await _post(port)
    assert (answer.status, answer.body) == (503, b"later")


@pytest.mark.anyio
async def test_an_answer_over_the_cap_fails() -> None:
    big = b"x" * 2048
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n" + big
    with raw_server(_send(reply)) as (port, _), pytest.raises(RequestFailed, match="larger than"):
        await _post(port)


@pytest.mark.anyio
async def test_a_silent_upstream_fails_after_the_timeout() -> None:
    stop = threading.Event()

    def silent(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        stop.wait(5)

    with raw_server(silent) as (port, _):
        with pytest.raises(RequestFailed, match=r"sent nothing for 0\.2 s"):
            await _post(port, timeout=0.2)
        stop.set()


@pytest.mark.anyio
async def test_a_cut_answer_and_a_non_http_answer_fail() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    with raw_server(_send(cut)) as (port, _), pytest.raises(RequestFailed, match="closed"):
        await _post(port)
    nope = raw_server(_send(b"SSH-2.0-nope\r\n\r\n"))
    with nope as (port, _), pytest.raises(RequestFailed, match=r"did not answer in HTTP/1\.1"):
        await _post(port)


@pytest.mark.anyio
async def test_nothing_listening_fails_with_one_sentence() -> None:
    with pytest.raises(RequestFailed, match=r"could not connect to 127\.0\.0\.1"):
        await _post(free_port())


@pytest.mark.anyio
async def test_tls_is_verified_against_the_given_trust(tmp_path: Path) -> None:
    certs = issue_certs(tmp_path, x509.IPAddress(ipaddress.ip_address("127.0.0.1")), "up")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(certs.cert, certs.key)
    trusted = ssl.create_default_context(cafile=str(certs.ca))
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with raw_server(_send(reply), server) as (port, _):
        answer = await _post(port, scheme="https", verify=trusted)
    assert answer.body == b"ok"
    untrusted = pytest.raises(RequestFailed, match="SSLCertVerificationError")
    with raw_server(_send(reply), server) as (port, _), untrusted:
        await _post(port, scheme="https", verify=True)  # the default store lacks the CA
