"""Hostile clients against a `lockgate up` gateway: how long each bad case holds a connection,
and what a good client's latency does while 50 slow clients attack.

Issue 12 §1. Starts a small keep-alive upstream and a gateway (profile kind "none", route `open`),
then:

1. each bad case of tests/support/hostile.py on its own connection (all at once): the time
   until the gateway answers and until it closes, and the status it answers;
2. `--slow` connections that send one header byte per second and `--silent` that send
   nothing: how many are still open after `--hold` seconds;
3. a good keep-alive client's `tools/call` p50 over `--calls` calls, alone and while 50 slow
   clients trickle their heads (each one the gateway closes is replaced at once);
4. what judging one honest request head costs (lockgate.net.framing).

    uv run python bench/hostile_clients.py [--limit 15] [--hold 30] [--gateway 'key = value' ...]
    uv run python bench/hostile_clients.py --ab   # p50 and CPU per call, guards on vs off
"""

from __future__ import annotations

import argparse
import http.client
import os
import select
import socket
import statistics
import sys
import tempfile
import threading
import time
import timeit
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lockgate.net.framing import judge_head
from tests.support.gateway import profile_text, running_gateway
from tests.support.hostile import CALL, CASES, HEAD, probe


def bad_cases(port: int, limit: float) -> None:
    with ThreadPoolExecutor(len(CASES)) as pool:
        seen = list(pool.map(lambda c: probe(port, c, limit), CASES))
    print(f"{'case':40} {'answer':>8} {'answered':>10} {'closed':>10}")
    for case, s in zip(CASES, seen, strict=True):
        answered = f"{s.answered:.2f} s" if s.answered is not None else "-"
        closed = f"{s.closed:.2f} s" if s.closed is not None else f">{limit:.0f} s"
        print(f"{case.name:40} {s.status or '-':>8} {answered:>10} {closed:>10}")


class Slow:
    """`n` connections that send one header byte every second (or nothing, `silent`)."""

    def __init__(self, port: int, n: int, *, silent: bool = False, respawn: bool = False) -> None:
        self.port = port
        self.silent = silent
        self.respawn = respawn  # keep n open: replace each one the gateway closes
        self.socks: list[socket.socket] = []
        self.open: set[socket.socket] = set()
        self.stop = threading.Event()
        for _ in range(n):
            self._connect()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _connect(self) -> None:
        s = socket.create_connection(("127.0.0.1", self.port))
        if not self.silent:
            s.sendall(HEAD.encode())
        self.socks.append(s)
        self.open.add(s)

    def _run(self) -> None:
        while not self.stop.is_set() and self.open:
            readable, _, _ = select.select(list(self.open), [], [], 1.0)
            for s in readable:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    self.open.discard(s)
                    if self.respawn:
                        self._connect()
            if not self.silent:
                for s in list(self.open):
                    try:
                        s.send(b"a")
                    except OSError:
                        self.open.discard(s)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for s in self.socks:
            s.close()


class FastUpstream:
    """A keep-alive JSON-RPC upstream that writes each answer in one send (the recorder
    writes head and body apart, and Nagle with delayed ACKs then adds ~40 ms a call)."""

    ANSWER = b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}'

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/mcp"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.server.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        answer = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(self.ANSWER), self.ANSWER)
        )
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf[length:]
                conn.sendall(answer)


def p50_ms(port: int, calls: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {"content-type": "application/json", "accept": "application/json"}
    times = []
    for i in range(calls + 20):
        t = time.perf_counter()
        conn.request("POST", "/mcp/open", CALL, headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
        if i >= 20:
            times.append((time.perf_counter() - t) * 1000)
    conn.close()
    return statistics.median(times)


def judge_us() -> float:
    """What judging one honest request head costs (lockgate.net.framing), in µs."""
    head = (
        HEAD + "Accept: application/json, text/event-stream\r\nMcp-Session-Id: 7f6c2a9e0b0d\r\n"
        f"Mcp-Protocol-Version: 2025-06-18\r\nContent-Length: {len(CALL)}\r\n\r\n"
    ).encode()
    n = 20_000
    return timeit.timeit(lambda: judge_head(head), number=n) / n * 1e6


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Loaded by the second gateway of --ab (PYTHONPATH): the guards are never installed.
NO_GUARDS = (
    "import lockgate.addons.client_wire as cw\ncw.install_client_guards = lambda *a, **k: None\n"
)


def ab(rounds: int = 8, calls: int = 200) -> None:
    """The same profile twice, with and without addons/client_wire/, in interleaved rounds."""
    up = FastUpstream()
    profile = profile_text({"up": up.url}, {"open": "up"})
    env = {"LOCKGATE_AUDIT_KEY_SOURCE": "memory"}
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        (Path(b) / "sitecustomize.py").write_text(NO_GUARDS, encoding="utf-8")
        with (
            running_gateway(profile, Path(a), env=env) as guarded,
            running_gateway(profile, Path(b) / "gw", env={**env, "PYTHONPATH": b}) as bare,
        ):
            p50s: dict[str, list[float]] = {"guards": [], "no guards": []}
            cpu: dict[str, list[float]] = {"guards": [], "no guards": []}
            pair = [("guards", guarded), ("no guards", bare)]
            for i in range(rounds):
                for name, gw in pair if i % 2 == 0 else pair[::-1]:
                    port = int(gw.base_url.rsplit(":", 1)[1])
                    before = cpu_seconds(gw.proc.pid)
                    p50s[name].append(p50_ms(port, calls))
                    cpu[name].append((cpu_seconds(gw.proc.pid) - before) / (calls + 20) * 1e3)
    for name in p50s:
        print(
            f"{name:>9}: p50 {statistics.median(p50s[name]):.2f} ms (median of {rounds} rounds), "
            f"CPU {statistics.median(cpu[name]):.2f} ms per call"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=float, default=15.0, help="seconds per bad case")
    parser.add_argument("--hold", type=float, default=30.0)
    parser.add_argument("--slow", type=int, default=50)
    parser.add_argument("--silent", type=int, default=20)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gateway", action="append", default=[], help="a [gateway] line")
    parser.add_argument("--ab", action="store_true", help="only: guards on vs off, side by side")
    args = parser.parse_args()
    if args.ab:
        ab()
        return
    with tempfile.TemporaryDirectory() as tmp:
        up = FastUpstream()
        extra = "[gateway]\n" + "\n".join(args.gateway) + "\n" if args.gateway else ""
        profile = profile_text({"up": up.url}, {"open": "up"}, extra)
        env = {"LOCKGATE_AUDIT_KEY_SOURCE": "memory"}  # the bench runs without a keyring
        with running_gateway(profile, Path(tmp), env=env) as gw:
            port = int(gw.base_url.rsplit(":", 1)[1])
            print("== bad cases (one connection each)")
            bad_cases(port, args.limit)
            print(f"\n== {args.slow} slow + {args.silent} silent connections, {args.hold:.0f} s")
            slow = Slow(port, args.slow)
            silent = Slow(port, args.silent, silent=True)
            time.sleep(args.hold)
            print(
                f"still open: slow {len(slow.open)}/{args.slow}, "
                f"silent {len(silent.open)}/{args.silent}"
            )
            slow.close()
            silent.close()
            time.sleep(1)
            print(
                f"\n== good client tools/call p50, {args.rounds} rounds of {args.calls} calls "
                "alone, then with 50 slow clients"
            )
            alone, under = [], []
            for _ in range(args.rounds):
                alone.append(p50_ms(port, args.calls))
                attack = Slow(port, 50, respawn=True)
                time.sleep(0.5)
                under.append(p50_ms(port, args.calls))
                attack.close()
            print("alone  ", " ".join(f"{x:.2f}" for x in alone), "ms")
            print("attack ", " ".join(f"{x:.2f}" for x in under), "ms")
            print(
                f"median alone {statistics.median(alone):.2f} ms, "
                f"with 50 slow clients {statistics.median(under):.2f} ms"
            )
    print(f"\n== judging one honest request head: {judge_us():.1f} µs")


if __name__ == "__main__":
    main()
