"""Hostile clients over raw sockets against a real `lockgate up`: bad framing is answered 400
at once, slow or silent clients 408 at the deadline, over-limit lengths 413 before the body,
connections over the cap 503; nothing reaches the upstream, and the gateway serves on.

One gateway (head and idle deadlines of 2 s, a 4 KiB body limit) in front of a recording
upstream (tests/support/recorder.py); the cases themselves are tests/support/hostile.py's,
the same the bench (bench/hostile_clients.py) times. A second, small gateway
(`max_connections = 4`) checks the connection cap.
"""

from __future__ import annotations

import socket
import ssl
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.hostile import CALL, CASES, HEAD, Case, Seen, probe, read_message
from tests.support.recorder import Recorder, recording_upstream

DEADLINE = 2.0  # client_head_timeout and client_idle_timeout in the test profile
BODY_DEADLINE = 4.0  # client_body_timeout in the test profile
MAX_BODY = 4096
AT_ONCE = 1.0  # an answer "at once", on a busy CI machine
JSON = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@dataclass
class Env:
    gw: GatewayProcess
    rec: Recorder
    port: int

    def probe(self, case: Case, limit: float = 8.0) -> Seen:
        return probe(self.port, case, limit)

    def serves(self) -> None:
        """A good request right afterwards is answered by the upstream."""
        resp = httpx.post(self.gw.route_url("open"), content=CALL, headers=JSON, timeout=10)
        assert resp.status_code == 200, resp.text
        assert resp.json()["result"]["content"][0]["text"] == "called get_note"


def _profile(rec: Recorder, gateway: str) -> str:
    return profile_text({"rec": rec.url}, {"open": "rec"}, f"[gateway]\n{gateway}\n")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    settings = (
        f"client_head_timeout = {DEADLINE}\nclient_idle_timeout = {DEADLINE}\n"
        f"client_body_timeout = {BODY_DEADLINE}\nmax_body_bytes = {MAX_BODY}\n"
    )
    with recording_upstream() as rec:
        profile = _profile(rec, settings)
        with running_gateway(profile, tmp_path_factory.mktemp("hostile")) as gw:
            yield Env(gw, rec, int(gw.base_url.rsplit(":", 1)[1]))


@pytest.fixture
def clean(env: Env) -> Iterator[Env]:
    env.rec.clear()
    yield env
    assert env.rec.seen() == []  # nothing of a refused request reached the upstream
    env.serves()


def _sentence(seen: Seen) -> str:
    error = seen.json()["error"]
    assert error["code"] == -32600
    message = error["message"]
    assert isinstance(message, str) and message.endswith(".") and "\n" not in message
    return str(message)


def _refused(seen: Seen, status: int) -> str:
    assert seen.status == status, (seen.raw[:300], seen.summary())
    assert b"content-type: application/json" in seen.raw.lower()
    assert seen.closed is not None, seen.summary()  # and closed
    return _sentence(seen)


AT_ONCE_CASES = [c for c in CASES if c.expect in (400, 413)]
DEADLINE_CASES = [c for c in CASES if c.expect == 408]


@pytest.mark.parametrize("case", AT_ONCE_CASES, ids=[c.name for c in AT_ONCE_CASES])
def test_bad_framing_is_answered_at_once_and_closed(clean: Env, case: Case) -> None:
    seen = clean.probe(case)
    _refused(seen, case.expect or 0)
    assert seen.answered is not None and seen.answered < AT_ONCE, seen.summary()
    assert seen.closed is not None and seen.closed < AT_ONCE + 0.5, seen.summary()


@pytest.mark.parametrize("case", DEADLINE_CASES, ids=[c.name for c in DEADLINE_CASES])
def test_a_slow_or_stalled_request_gets_408_at_its_deadline(clean: Env, case: Case) -> None:
    seen = clean.probe(case)
    sentence = _refused(seen, 408)
    assert seen.answered is not None and DEADLINE - 0.2 < seen.answered < DEADLINE + 2.0
    assert "gateway.client_head_timeout" in sentence or "gateway.client_idle_timeout" in sentence


def test_a_length_over_the_body_limit_is_413_before_the_body_is_sent(clean: Env) -> None:
    head = (HEAD + f"Content-Length: {10 * MAX_BODY}\r\n\r\n").encode()
    seen = clean.probe(Case("over the limit", head))
    assert "max_body_bytes" in _refused(seen, 413)
    assert seen.answered is not None and seen.answered < AT_ONCE


def test_a_body_that_keeps_coming_outlives_the_head_deadline(env: Env) -> None:
    """The idle deadline counts pauses, not the whole body: an honest slow upload passes."""
    env.rec.clear()
    with socket.create_connection(("127.0.0.1", env.port), timeout=10) as sock:
        sock.sendall((HEAD + "Transfer-Encoding: chunked\r\n\r\n").encode())
        pieces = [CALL[i : i + 8] for i in range(0, len(CALL), 8)]
        start = time.monotonic()
        for piece in pieces:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep((DEADLINE * 1.5) / len(pieces))
        sock.sendall(b"0\r\n\r\n")
        answer = sock.recv(65536)
    assert time.monotonic() - start > DEADLINE  # it took longer than a head may
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert "tools/call" in [r.json()["method"] for r in env.rec.seen()]


def test_a_body_trickled_under_the_idle_deadline_gets_408_at_the_body_deadline(
    clean: Env,
) -> None:
    """One byte a second never trips the 2 s idle deadline; the whole body's 4 s does."""
    trickle = Case("trickle", (HEAD + "Content-Length: 4000\r\n\r\n").encode(), b"x", 1.0)
    seen = clean.probe(trickle, BODY_DEADLINE + 6)
    sentence = _refused(seen, 408)
    assert "gateway.client_body_timeout" in sentence, sentence
    assert seen.answered is not None and BODY_DEADLINE - 0.2 < seen.answered < BODY_DEADLINE + 2
    assert seen.closed is not None and seen.closed < BODY_DEADLINE + 3


@pytest.mark.parametrize(
    "opening",
    [b"\x16\x03\x01\x00\xc8\x01", b"\x16", b"X"],
    ids=["tls-hello-start", "tls-first-byte", "garbage-first-byte"],
)
def test_a_tls_hello_that_stalls_is_closed_at_the_head_deadline(clean: Env, opening: bytes) -> None:
    """A first byte that looks like TLS makes mitmproxy wait for a whole hello (it used to
    wait 600 s): the head deadline holds for it too, as for any other first byte."""
    seen = clean.probe(Case("first byte, then nothing", opening), DEADLINE + 8)
    assert seen.closed is not None and seen.closed < DEADLINE + 2, seen.summary()
    if opening != b"\x16":  # a lone 0x16 is judged a garbage request line at once (400)
        assert seen.status == 408 and (seen.closed or 0) > DEADLINE - 0.2, seen.summary()


def test_http2_with_prior_knowledge_is_refused_at_once(clean: Env) -> None:
    seen = clean.probe(Case("h2c preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
    assert "HTTP/2.0 is not served" in _refused(seen, 400)


def _tls(port: int) -> ssl.SSLSocket:
    """A TLS client that offers h2 first (the gateway's certificate is mitmproxy's own)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_a_tls_client_gets_http1_and_its_deadlines(env: Env) -> None:
    """HTTP/2 is not offered in ALPN, so a TLS client speaks HTTP/1.1, and the head deadline
    holds for it as for a plain one (HTTP/2 would be past the HTTP/1 guards)."""
    with _tls(env.port) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"
        sock.sendall((HEAD + f"Content-Length: {len(CALL)}\r\n\r\n").encode() + CALL)
        assert read_message(sock).startswith(b"HTTP/1.1 200")
    with _tls(env.port) as sock:
        start = time.monotonic()
        sock.sendall(HEAD.encode())  # the head never ends
        sock.settimeout(DEADLINE + 5)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        took = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert DEADLINE - 0.2 < took < DEADLINE + 2.0


def test_a_kept_alive_connection_left_idle_is_closed_quietly(env: Env) -> None:
    with socket.create_connection(("127.0.0.1", env.port), timeout=10) as sock:
        sock.sendall((HEAD + f"Content-Length: {len(CALL)}\r\n\r\n").encode() + CALL)
        answer = read_message(sock)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        # It says when: the idle deadline, in whole seconds (rounded down).
        head = answer.split(b"\r\n\r\n")[0].lower().split(b"\r\n")
        assert f"keep-alive: timeout={int(DEADLINE)}".encode() in head, head
        start = time.monotonic()
        sock.settimeout(DEADLINE + 3)
        rest = sock.recv(65536)  # the gateway closes: EOF, no 408 to misread
        assert rest == b""
        assert DEADLINE - 0.2 < time.monotonic() - start < DEADLINE + 2.0


def test_an_answer_on_a_connection_that_closes_has_no_keep_alive_hint(env: Env) -> None:
    with socket.create_connection(("127.0.0.1", env.port), timeout=10) as sock:
        head = HEAD + f"Connection: close\r\nContent-Length: {len(CALL)}\r\n\r\n"
        sock.sendall(head.encode() + CALL)
        answer = read_message(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"keep-alive:" not in answer.split(b"\r\n\r\n")[0].lower()


def test_a_bad_request_behind_a_good_one_in_the_same_piece_is_judged_too(clean: Env) -> None:
    good = (HEAD + f"Content-Length: {len(CALL)}\r\n\r\n").encode() + CALL
    seen = clean.probe(Case("pipelined", good + b"GET /mcp/open\r\n"))
    assert seen.raw.startswith(b"HTTP/1.1 200"), seen.raw[:200]
    assert b"HTTP/1.1 400 " in seen.raw and b"HTTP/0.9" in seen.raw, seen.raw[-300:]
    assert seen.closed is not None and seen.closed < AT_ONCE
    clean.rec.clear()  # the good one reached the upstream, as it should


def _p50(url: str, calls: int) -> float:
    times = []
    with httpx.Client(timeout=10) as client:
        for _ in range(calls):
            t = time.perf_counter()
            resp = client.post(url, content=CALL, headers=JSON)
            times.append(time.perf_counter() - t)
            assert resp.status_code == 200
    return statistics.median(times)


def test_slow_and_silent_clients_are_cut_and_good_clients_keep_their_latency(env: Env) -> None:
    url = env.gw.route_url("open")
    alone = _p50(url, 40)
    slow = [socket.create_connection(("127.0.0.1", env.port)) for _ in range(50)]
    silent = [socket.create_connection(("127.0.0.1", env.port)) for _ in range(20)]
    try:
        for s in slow:
            s.sendall(HEAD.encode())
        start = time.monotonic()
        under = _p50(url, 40)  # while the 50 trickle (below) and the 20 say nothing
        closed: set[socket.socket] = set()
        while len(closed) < 70 and time.monotonic() - start < DEADLINE + 4:
            for s in slow:
                if s not in closed:
                    try:
                        s.send(b"a")
                    except OSError:
                        closed.add(s)
            for s in [*slow, *silent]:
                if s in closed:
                    continue
                s.setblocking(False)
                try:
                    data = s.recv(65536)
                    while data:
                        data = s.recv(65536)
                    closed.add(s)
                except BlockingIOError:
                    pass
                except OSError:
                    closed.add(s)
            time.sleep(0.2)
        assert len(closed) == 70, f"{70 - len(closed)} of 70 slow/silent connections still open"
    finally:
        for s in [*slow, *silent]:
            s.close()
    assert under < 2 * alone + 0.010, (alone, under)


def test_connections_over_the_cap_get_503_and_the_gateway_recovers(tmp_path: Path) -> None:
    with recording_upstream() as rec:
        profile = _profile(rec, "max_connections = 4\nclient_head_timeout = 5")
        with running_gateway(profile, tmp_path) as gw:
            port = int(gw.base_url.rsplit(":", 1)[1])
            held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
            try:
                for s in held:
                    s.sendall(HEAD.encode())  # a head that has not ended: open, served
                time.sleep(0.5)
                over = Case(
                    "over the cap", (HEAD + f"Content-Length: {len(CALL)}\r\n\r\n").encode() + CALL
                )
                seen = probe(port, over, 5)
                assert seen.status == 503, seen.summary()
                assert b"retry-after: 1" in seen.raw.lower()
                assert "gateway.max_connections" in seen.json()["error"]["message"]
                assert seen.answered is not None and seen.answered < AT_ONCE
                assert rec.seen() == []
            finally:
                for s in held:
                    s.close()
            time.sleep(0.5)
            resp = httpx.post(gw.route_url("open"), content=CALL, headers=JSON, timeout=10)
            assert resp.status_code == 200
