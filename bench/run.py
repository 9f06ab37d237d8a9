"""lockgate benchmark: direct vs bare mitmdump vs lockgate, same upstream, one run.

    uv run python bench/run.py                  # full run (about 4 minutes)
    uv run python bench/run.py --quick          # smoke run (< 1 minute)
    uv run python bench/run.py --with-patched   # also lockgate with the proposed patches

Every component runs in its own process: the upstreams (bench/upstream.py), one
`mitmdump` per upstream (reverse mode, bench/oneline_addon.py, connection_strategy=lazy),
a lean embedded master (bench/lean_master.py, the floor lockgate builds on), one
`lockgate up` serving every route, and a fresh `lockgate up` for the memory phase.
The client is this process: raw `http.client` with keep-alive, speaking JSON-RPC directly
(initialize once per session, then requests). Paths are measured in interleaved rounds so
that background load on the machine hits them alike.

Prints a table and writes bench/results.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PROTOCOL = "2025-11-25"
TICK = os.sysconf("SC_CLK_TCK")


# --- settings -------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    seq_calls: int  # timed sequential tools/call per path
    seq_rounds: int  # interleaved rounds they are split into
    warmup: int  # untimed calls per path before each round
    conc_threads: int
    conc_seconds: float  # per path per round
    conc_rounds: int
    list_calls: int  # tools/list per path
    sse_runs: int  # stamped_count runs per path
    sse_events: int  # progress events per run
    sse_delay_ms: int
    drop_runs: int  # slow_count runs per path (drop + streaming check)
    mem_calls: int  # calls before the first RSS sample; the second comes after 2x
    mem_threads: int


FULL = Settings(
    seq_calls=2000,
    seq_rounds=10,
    warmup=20,
    conc_threads=8,
    conc_seconds=5.0,
    conc_rounds=3,
    list_calls=120,
    sse_runs=10,
    sse_events=40,
    sse_delay_ms=15,
    drop_runs=4,
    mem_calls=10_000,
    mem_threads=4,
)
QUICK = Settings(
    seq_calls=300,
    seq_rounds=3,
    warmup=10,
    conc_threads=8,
    conc_seconds=1.5,
    conc_rounds=1,
    list_calls=12,
    sse_runs=3,
    sse_events=15,
    sse_delay_ms=10,
    drop_runs=1,
    mem_calls=1000,
    mem_threads=4,
)


# --- processes ------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str | None = None
    _found: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        """user + system CPU time of the process so far (/proc/PID/stat)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.name}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait()


RUNNING: list[Proc] = []


def stop_all() -> None:
    """Stop every process the bench started, the last started first."""
    for p in reversed(RUNNING):
        p.stop()


def spawn(
    name: str, cmd: list[str], *, pattern: str | None, env: dict[str, str] | None = None
) -> Proc:
    """Start `cmd` in its own session; a thread drains its output, `pattern` finds its URL."""
    popen = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", **(env or {})},
        start_new_session=True,
    )
    proc = Proc(name, popen)
    RUNNING.append(proc)

    def pump() -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            proc.lines.append(line)
            if pattern and proc.url is None and (m := re.search(pattern, line)):
                proc.url = m.group(1)
                proc._found.set()
        proc._found.set()

    threading.Thread(target=pump, daemon=True).start()
    return proc


def wait_url(proc: Proc, timeout: float = 60.0) -> str:
    if not proc._found.wait(timeout) or proc.url is None:
        raise RuntimeError(f"{proc.name} did not start:\n" + "".join(proc.lines[-30:]))
    return proc.url


def wait_port(proc: Proc, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not listen on {port}:\n" + "".join(proc.lines[-30:]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_upstream(kind: str, port: int) -> Proc:
    return spawn(
        f"upstream {kind}",
        [sys.executable, str(HERE / "upstream.py"), kind, "--port", str(port)],
        pattern=r"listening on (http://\S+)",
    )


def start_mitmdump(upstream_url: str, confdir: Path) -> tuple[Proc, int]:
    parts = urlsplit(upstream_url)
    port = free_port()
    cmd = [
        str(BIN / "mitmdump"),
        "--mode",
        f"reverse:{parts.scheme}://{parts.netloc}@127.0.0.1:{port}",
        "-q",
        "-s",
        str(HERE / "oneline_addon.py"),
        "--set",
        "connection_strategy=lazy",
        "--set",
        f"confdir={confdir}",
    ]
    return spawn(f"mitmdump -> {parts.netloc}", cmd, pattern=None), port


def start_lean(upstream_url: str, confdir: Path) -> tuple[Proc, int]:
    parts = urlsplit(upstream_url)
    port = free_port()
    cmd = [
        sys.executable,
        str(HERE / "lean_master.py"),
        f"{parts.scheme}://{parts.netloc}",
        str(port),
        str(confdir),
    ]
    return spawn(f"lean master -> {parts.netloc}", cmd, pattern=None), port


def start_lockgate(
    name: str,
    profile: str,
    home: Path,
    *,
    patched: bool = False,
    launcher: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Proc:
    """`lockgate up` on `profile` (kind "none"), any free port; `launcher` replaces the
    `lockgate` command (bench/rss.py's instrumented one), `extra_env` adds to its env."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "profile.toml"
    path.write_text(profile, encoding="utf-8")
    env = {
        "LOCKGATE_HOME": str(home),
        "LOCKGATE_AUDIT_LOG": str(home / "audit.jsonl"),
        # The same HMAC chain as with the keyring's key; the bench runs without a keyring.
        "LOCKGATE_AUDIT_KEY_SOURCE": "memory",
        **(extra_env or {}),
    }
    if launcher is None:
        launcher = (
            [sys.executable, str(HERE / "patched_gateway.py")]
            if patched
            else [str(BIN / "lockgate")]
        )
    cmd = [
        *launcher,
        "up",
        "--profile",
        str(path),
        "--listen",
        "127.0.0.1:0",
        "--quiet",
    ]
    return spawn(name, cmd, pattern=r"listening on (http://\S+)", env=env)


def lockgate_profile(upstreams: dict[str, str], routes: dict[str, tuple[str, str]]) -> str:
    """kind = "none"; `routes`: name -> (upstream, extra TOML lines for the route)."""
    lines = ["[identity]", 'kind = "none"', ""]
    for name, url in upstreams.items():
        lines += [f"[upstreams.{name}]", f'url = "{url}"', 'auth = "none"', ""]
    for name, (upstream, extra) in routes.items():
        lines += [f'[routes."{name}"]', f'upstream = "{upstream}"', *([extra] if extra else []), ""]
    return "\n".join(lines)


# --- a raw MCP client -----------------------------------------------------------------


class RpcError(RuntimeError):
    pass


class Session:
    """One MCP session over one keep-alive HTTP/1.1 connection (http.client, no framework)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.session_id: str | None = None
        self.next_id = 0
        self.reconnects = 0

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.session_id is not None:
            h["Mcp-Session-Id"] = self.session_id
            h["MCP-Protocol-Version"] = PROTOCOL
        return h

    def _send(self, body: bytes) -> http.client.HTTPResponse:
        for attempt in (0, 1):
            try:
                self.conn.request("POST", self.path, body, self._headers())
                return self.conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                if attempt:
                    raise
                self.conn.close()
                self.reconnects += 1
        raise AssertionError("unreachable")

    def request_bytes(self, method: str, params: dict[str, Any]) -> bytes:
        self.next_id += 1
        return json.dumps(
            {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        ).encode()

    def post(self, body: bytes) -> tuple[int, str, bytes]:
        """Send one message; returns (status, content-type, whole body)."""
        resp = self._send(body)
        data = resp.read()
        return resp.status, resp.getheader("content-type", ""), data

    def rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        status, ctype, data = self.post(self.request_bytes(method, params))
        return result_of(status, ctype, data)

    def initialize(self) -> Session:
        body = self.request_bytes(
            "initialize",
            {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "lockgate-bench", "version": "0"},
            },
        )
        resp = self._send(body)
        data = resp.read()
        result_of(resp.status, resp.getheader("content-type", ""), data)
        self.session_id = resp.getheader("mcp-session-id")
        note = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
        status, _, _ = self.post(note)
        if status not in (200, 202, 204):
            raise RpcError(f"notifications/initialized answered {status}")
        return self

    def stream(
        self, method: str, params: dict[str, Any], on_event: Callable[[int, dict[str, Any]], None]
    ) -> dict[str, Any]:
        """POST a request answered over SSE; `on_event(monotonic_ns, message)` per whole event."""
        body = self.request_bytes(method, params)
        rid = self.next_id
        resp = self._send(body)
        ctype = resp.getheader("content-type", "")
        if not ctype.startswith("text/event-stream"):
            return result_of(resp.status, ctype, resp.read())
        final: dict[str, Any] | None = None
        data: list[str] = []
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.rstrip(b"\r\n")
            if line:
                if line.startswith(b"data:"):
                    data.append(line[5:].removeprefix(b" ").decode())
                continue
            now = time.monotonic_ns()
            if data:
                msg = json.loads("\n".join(data))
                data = []
                on_event(now, msg)
                if msg.get("id") == rid:
                    final = msg
        resp.read()
        if final is None:
            raise RpcError("the SSE stream ended without the response")
        return checked(final)

    def delete(self) -> int:
        """End the MCP session (DELETE with its id); the HTTP status."""
        self.conn.request("DELETE", self.path, headers=self._headers())
        resp = self.conn.getresponse()
        resp.read()
        return resp.status

    def close(self) -> None:
        self.conn.close()


def checked(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict) or "result" not in obj:
        raise RpcError(f"not a result: {str(obj)[:300]}")
    result = obj["result"]
    if isinstance(result, dict) and result.get("isError"):
        raise RpcError(f"tool error: {str(result)[:300]}")
    return result  # type: ignore[no-any-return]


def result_of(status: int, ctype: str, data: bytes) -> dict[str, Any]:
    if status != 200:
        raise RpcError(f"HTTP {status}: {data[:300]!r}")
    if ctype.startswith("text/event-stream"):
        msgs = [
            json.loads(line[5:])
            for line in data.splitlines()
            if line.startswith(b"data:") and line[5:].strip()
        ]
        return checked(next(m for m in msgs if "result" in m or "error" in m))
    return checked(json.loads(data))


# --- background load ------------------------------------------------------------------


def machine_busy_seconds() -> float:
    """CPU seconds used by all processes, summed over CPUs (/proc/stat, minus idle/iowait)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, f.readline().split()[1:9]
        )
    return (user + nice + system + irq + softirq + steal) / TICK


def own_cpu_seconds() -> float:
    """CPU seconds used by this client and every process the bench started."""
    t = os.times()
    total = t.user + t.system
    for p in RUNNING:
        with contextlib.suppress(OSError):
            total += p.cpu_seconds()
    return total


PHASES: dict[str, dict[str, float | None]] = {}


@contextlib.contextmanager
def phase(name: str, started: float) -> Iterator[None]:
    """Times a phase and records how much CPU *other* processes took meanwhile (noise)."""
    print(f"[{time.perf_counter() - started:5.1f}s] {name} ...", flush=True)
    t0, busy0, own0 = time.perf_counter(), machine_busy_seconds(), own_cpu_seconds()
    yield
    secs = time.perf_counter() - t0
    other = (machine_busy_seconds() - busy0) - (own_cpu_seconds() - own0)
    PHASES[name] = {"seconds": r(secs, 1), "other_cpu_percent": r(max(other, 0) / secs * 100, 0)}


# --- statistics -----------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def r(x: float, nd: int = 3) -> float | None:
    return None if x != x else round(x, nd)  # NaN -> None for JSON


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def rotations(names: list[str], rounds: int) -> Iterator[list[str]]:
    for i in range(rounds):
        k = i % len(names)
        yield names[k:] + names[:k]


# --- phases ---------------------------------------------------------------------------

CALL_PARAMS = {"name": "get_note", "arguments": {"id": "1"}}


def phase_sequential(
    s: Settings, urls: dict[str, str], cpu_of: dict[str, list[Proc]]
) -> dict[str, Any]:
    sessions = {name: Session(url).initialize() for name, url in urls.items()}
    lat: dict[str, list[float]] = {name: [] for name in urls}
    cpu: dict[str, dict[str, float]] = {name: {} for name in urls}
    per_round = s.seq_calls // s.seq_rounds
    for order in rotations(list(urls), s.seq_rounds):
        for name in order:
            sess = sessions[name]
            for _ in range(s.warmup):
                sess.rpc("tools/call", CALL_PARAMS)
            bodies = [sess.request_bytes("tools/call", CALL_PARAMS) for _ in range(per_round)]
            out: list[tuple[int, str, bytes]] = []
            times = lat[name]
            before = {p.name: p.cpu_seconds() for p in cpu_of[name]}
            with no_gc():
                for body in bodies:
                    t0 = time.perf_counter_ns()
                    res = sess.post(body)
                    times.append((time.perf_counter_ns() - t0) / 1e6)
                    out.append(res)
            for p in cpu_of[name]:
                cpu[name][p.name] = cpu[name].get(p.name, 0.0) + p.cpu_seconds() - before[p.name]
            for res in out:
                result_of(*res)
    calls = per_round * s.seq_rounds
    base = pct(lat["direct"], 50)
    results: dict[str, Any] = {}
    for name, times in lat.items():
        p50 = pct(times, 50)
        results[name] = {
            "calls": len(times),
            "p50_ms": r(p50),
            "p90_ms": r(pct(times, 90)),
            "p99_ms": r(pct(times, 99)),
            "mean_ms": r(statistics.fmean(times)),
            "added_p50_ms": r(p50 - base),
            "cpu_us_per_call": {k: r(v / calls * 1e6, 1) for k, v in cpu[name].items()},
            "reconnects": sessions[name].reconnects,
        }
    for sess in sessions.values():
        sess.close()
    return results


def phase_concurrent(
    s: Settings, urls: dict[str, str], cpu_of: dict[str, list[Proc]]
) -> dict[str, Any]:
    agg: dict[str, dict[str, Any]] = {
        name: {"lat": [], "done": 0, "secs": 0.0, "errors": 0, "cpu": {}} for name in urls
    }
    for order in rotations(list(urls), s.conc_rounds):
        for name in order:
            sessions = [Session(urls[name]).initialize() for _ in range(s.conc_threads)]
            for sess in sessions:
                for _ in range(3):
                    sess.rpc("tools/call", CALL_PARAMS)
            start = threading.Barrier(s.conc_threads + 1)
            stop = threading.Event()
            lats: list[list[float]] = [[] for _ in sessions]
            errors = [0] * len(sessions)

            def worker(
                i: int,
                sess: Session,
                lats: list[list[float]] = lats,
                errors: list[int] = errors,
                start: threading.Barrier = start,
                stop: threading.Event = stop,
            ) -> None:
                mine = lats[i]
                start.wait()
                while not stop.is_set():
                    body = sess.request_bytes("tools/call", CALL_PARAMS)
                    t0 = time.perf_counter_ns()
                    status, _, data = sess.post(body)
                    mine.append((time.perf_counter_ns() - t0) / 1e6)
                    if status != 200 or b'"result"' not in data:
                        errors[i] += 1

            threads = [
                threading.Thread(target=worker, args=(i, sess)) for i, sess in enumerate(sessions)
            ]
            for t in threads:
                t.start()
            before = {p.name: p.cpu_seconds() for p in cpu_of[name]}
            start.wait()
            t0 = time.perf_counter()
            time.sleep(s.conc_seconds)
            stop.set()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0
            a = agg[name]
            for p in cpu_of[name]:
                a["cpu"][p.name] = a["cpu"].get(p.name, 0.0) + p.cpu_seconds() - before[p.name]
            a["lat"].extend(x for part in lats for x in part)
            a["done"] += sum(len(part) for part in lats)
            a["secs"] += elapsed
            a["errors"] += sum(errors)
            for sess in sessions:
                sess.close()
    results: dict[str, Any] = {}
    for name, a in agg.items():
        results[name] = {
            "threads": s.conc_threads,
            "requests": a["done"],
            "errors": a["errors"],
            "req_per_s": r(a["done"] / a["secs"], 1),
            "p50_ms": r(pct(a["lat"], 50)),
            "p99_ms": r(pct(a["lat"], 99)),
            "cpu_percent": {k: r(v / a["secs"] * 100, 1) for k, v in a["cpu"].items()},
        }
    return results


def phase_tools_list(s: Settings, urls: dict[str, str]) -> dict[str, Any]:
    sessions = {name: Session(url).initialize() for name, url in urls.items()}
    lat: dict[str, list[float]] = {name: [] for name in urls}
    counts: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for sess in sessions.values():
        for _ in range(2):
            sess.rpc("tools/list", {})
    rounds = max(1, s.list_calls // 10)
    for order in rotations(list(urls), rounds):
        for name in order:
            sess = sessions[name]
            for _ in range(s.list_calls // rounds):
                body = sess.request_bytes("tools/list", {})
                with no_gc():
                    t0 = time.perf_counter_ns()
                    res = sess.post(body)
                    lat[name].append((time.perf_counter_ns() - t0) / 1e6)
                counts[name] = len(result_of(*res)["tools"])
                sizes[name] = len(res[2])
    results: dict[str, Any] = {}
    for name, times in lat.items():
        results[name] = {
            "calls": len(times),
            "tools": counts[name],
            "body_bytes": sizes[name],
            "p50_ms": r(pct(times, 50)),
            "p99_ms": r(pct(times, 99)),
        }
    unf = pct(lat["lockgate"], 50)
    filt = pct(lat["lockgate_filtered"], 50)
    direct = pct(lat["direct"], 50)
    results["ratio_filtered_unfiltered"] = r(filt / unf)
    results["added_p50_ms"] = {
        name: r(pct(times, 50) - direct) for name, times in lat.items() if name != "direct"
    }
    for sess in sessions.values():
        sess.close()
    return results


def phase_sse(s: Settings, urls: dict[str, str]) -> dict[str, Any]:
    """One-way latency per progress event (upstream send stamp -> complete event at the client)."""
    one_way: dict[str, list[float]] = {name: [] for name in urls}
    dropped: dict[str, int] = {name: 0 for name in urls}
    spreads: dict[str, list[float]] = {name: [] for name in urls}
    sessions = {name: Session(url).initialize() for name, url in urls.items()}
    n, delay = s.sse_events, s.sse_delay_ms
    for run, order in enumerate(rotations(list(urls), s.sse_runs + s.drop_runs)):
        stamped = run < s.sse_runs
        for name in order:
            sess = sessions[name]
            token = f"{name}-{run}"
            got: list[tuple[int, dict[str, Any]]] = []

            def on_event(
                now: int,
                msg: dict[str, Any],
                got: list[tuple[int, dict[str, Any]]] = got,
                token: str = token,
            ) -> None:
                if (
                    msg.get("method") == "notifications/progress"
                    and msg["params"].get("progressToken") == token
                ):
                    got.append((now, msg["params"]))

            tool = "stamped_count" if stamped else "slow_count"
            params = {
                "name": tool,
                "arguments": {"n": n, "delay_ms": delay},
                "_meta": {"progressToken": token},
            }
            with no_gc():
                sess.stream("tools/call", params, on_event)
            dropped[name] += n - len({p["progress"] for _, p in got})
            if stamped:
                one_way[name].extend((now - int(p["message"])) / 1e6 for now, p in got)
            elif got:
                spreads[name].append((got[-1][0] - got[0][0]) / 1e6)
    results: dict[str, Any] = {}
    base = pct(one_way["direct"], 50)
    for name, lats in one_way.items():
        results[name] = {
            "events": len(lats),
            "dropped": dropped[name],
            "one_way_p50_ms": r(pct(lats, 50)),
            "one_way_p99_ms": r(pct(lats, 99)),
            "added_p50_ms": r(pct(lats, 50) - base),
        }
    # Streaming check on slow_count (no stamps): time from the first progress event to the
    # response; (n - 1) x delay when events are forwarded as they come, ~0 when buffered.
    for name, spans in spreads.items():
        results[name]["first_to_last_ms"] = r(statistics.median(spans), 1) if spans else None
        results[name]["first_to_last_expected_ms"] = (n - 1) * delay
    for sess in sessions.values():
        sess.close()
    return results


def phase_memory(s: Settings, url: str, proc: Proc) -> dict[str, Any]:
    sessions = [Session(url).initialize() for _ in range(s.mem_threads)]
    samples: dict[str, int] = {"0": proc.rss_kib()}
    errors = [0]
    lock = threading.Lock()

    def work(sess: Session, calls: int) -> None:
        bad = 0
        for _ in range(calls):
            status, _, data = sess.post(sess.request_bytes("tools/call", CALL_PARAMS))
            if status != 200 or b'"result"' not in data:
                bad += 1
        with lock:
            errors[0] += bad

    done = 0
    t0 = time.perf_counter()
    for target in (s.mem_calls, 2 * s.mem_calls):
        per = (target - done) // len(sessions)
        threads = [threading.Thread(target=work, args=(sess, per)) for sess in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done += per * len(sessions)
        time.sleep(0.5)
        samples[str(done)] = proc.rss_kib()
    elapsed = time.perf_counter() - t0
    for sess in sessions:
        sess.close()
    first, second = samples[str(s.mem_calls)], samples[str(2 * s.mem_calls)]
    return {
        "rss_kib": samples,
        "growth_percent": r((second - first) / first * 100, 2),
        "calls": done,
        "errors": errors[0],
        "req_per_s": r(done / elapsed, 1),
    }


# --- report ---------------------------------------------------------------------------


def report(res: dict[str, Any]) -> list[str]:
    seq, conc, lst, sse, mem = (
        res[k] for k in ("sequential", "concurrent", "tools_list", "sse", "memory")
    )
    out = [
        f"lockgate bench ({res['mode']}): {res['machine']['cpus']} CPUs, loadavg "
        f"{res['machine']['loadavg_before']} -> {res['machine']['loadavg_after']}; "
        "client, proxy and upstream share these cores",
        "other processes' CPU per phase (100% = one core): "
        + ", ".join(f"{k} {v['other_cpu_percent']:.0f}%" for k, v in res["phases"].items()),
        "",
        f"{'path':<10} {'seq p50':>8} {'p99':>7} {'added':>7} {'cpu/call':>9} │ "
        f"{'conc req/s':>10} {'p50':>7} {'p99':>7} {'proxy cpu':>9}",
    ]
    for name in ("direct", "mitmdump", "lean", "lockgate", "patched"):
        if name not in seq:
            continue
        a, c = seq[name], conc[name]
        proxy_cpu = next(
            (v for k, v in a["cpu_us_per_call"].items() if not k.startswith("upstream")), None
        )
        conc_cpu = next(
            (v for k, v in c["cpu_percent"].items() if not k.startswith("upstream")), None
        )
        out.append(
            f"{name:<10} {a['p50_ms']:>8.3f} {a['p99_ms']:>7.3f} {a['added_p50_ms']:>+7.3f} "
            f"{(f'{proxy_cpu:.0f}us' if proxy_cpu is not None else '-'):>9} │ "
            f"{c['req_per_s']:>10.1f} {c['p50_ms']:>7.2f} {c['p99_ms']:>7.2f} "
            f"{(f'{conc_cpu:.0f}%' if conc_cpu is not None else '-'):>9}"
        )
    b = res["budgets"]

    def cpu(name: str) -> float:
        return next(v for k, v in seq[name]["cpu_us_per_call"].items() if k != "upstream")

    out += [
        "lean = embedded master (core, proxyserver, next_layer, tlsconfig) + one-line addon",
        "pipeline cost (lockgate - lean): "
        f"{seq['lockgate']['p50_ms'] - seq['lean']['p50_ms']:+.3f} ms p50,"
        f" {cpu('lockgate') - cpu('lean'):+.0f} us CPU/call; default addons (mitmdump - lean): "
        f"{seq['mitmdump']['p50_ms'] - seq['lean']['p50_ms']:+.3f} ms, "
        f"{cpu('mitmdump') - cpu('lean'):+.0f} us CPU/call",
    ]
    if "patched" in seq:
        tp = conc["patched"]["req_per_s"] / conc["mitmdump"]["req_per_s"]
        out.append(
            "patched = lockgate + bench/patched_gateway.py (nested pipeline, deferred audit "
            f"write): {seq['patched']['added_p50_ms'] / seq['mitmdump']['added_p50_ms']:.2f}x "
            f"mitmdump's added p50, {tp:.2f}x its throughput"
        )
    out += [
        "",
        f"added p50: lockgate/mitmdump = {b['added_ratio']:.2f}x (target <= 1.0, ceiling 1.25) "
        f"{'PASS' if b['added_ok'] else 'FAIL'};  throughput lockgate/mitmdump = "
        f"{b['throughput_ratio']:.2f} (>= 1.0) {'PASS' if b['throughput_ok'] else 'FAIL'}",
        f"tools/list 2000: direct {lst['direct']['p50_ms']:.1f} ms, mitmdump "
        f"{lst['mitmdump']['p50_ms']:.1f}, lockgate {lst['lockgate']['p50_ms']:.1f} "
        f"({lst['lockgate']['tools']} tools), filtered {lst['lockgate_filtered']['p50_ms']:.1f} "
        f"({lst['lockgate_filtered']['tools']} tools): "
        f"ratio {lst['ratio_filtered_unfiltered']:.2f}x "
        f"(<= 1.3) {'PASS' if b['list_ok'] else 'FAIL'}",
        "SSE one-way per event p50 (added over direct), dropped:",
    ]
    for name in ("direct", "mitmdump", "lockgate", "patched"):
        if name not in sse:
            continue
        e = sse[name]
        out.append(
            f"  {name:<9} {e['one_way_p50_ms']:.3f} ms ({e['added_p50_ms']:+.3f}), "
            f"p99 {e['one_way_p99_ms']:.3f}, {e['events']} events, dropped {e['dropped']}, "
            f"first->last event {e['first_to_last_ms']} ms (streamed: ~"
            f"{e['first_to_last_expected_ms']})"
        )
    out += [
        f"  lockgate SSE added <= 1 ms, none dropped: {'PASS' if b['sse_ok'] else 'FAIL'}",
        f"memory (lockgate RSS): {mem['rss_kib']} KiB -> growth {mem['growth_percent']:.2f}% "
        f"(< 5%) {'PASS' if b['memory_ok'] else 'FAIL'}, {mem['errors']} errors",
    ]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run under a minute")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument(
        "--with-patched",
        action="store_true",
        help="also measure bench/patched_gateway.py (lockgate with the proposed patches)",
    )
    args = ap.parse_args()
    s = QUICK if args.quick else FULL
    started = time.perf_counter()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="lockgate-bench-"))
    try:
        # Ports are picked up front so that every process starts at once (each takes ~2 s of
        # CPU to import; one after another they would take most of a --quick run).
        up_url = {
            k: f"http://127.0.0.1:{free_port()}/mcp"
            for k in ("notes-json", "many-json", "notes-sse")
        }
        ups = {k: start_upstream(k, urlsplit(u).port or 0) for k, u in up_url.items()}
        mitm: dict[str, tuple[Proc, int]] = {
            k: start_mitmdump(u, work / f"mitmproxy-{k}") for k, u in up_url.items()
        }
        lean, lean_port = start_lean(up_url["notes-json"], work / "mitmproxy-lean")
        profile = lockgate_profile(
            {
                "notes": up_url["notes-json"],
                "many": up_url["many-json"],
                "sse": up_url["notes-sse"],
            },
            {
                "notes": ("notes", ""),
                "many": ("many", ""),
                "many-filtered": ("many", 'tools.deny = ["tool_1*"]'),
                "sse": ("sse", ""),
            },
        )
        lg = start_lockgate("lockgate", profile, work / "lockgate")
        lgp = (
            start_lockgate("patched", profile, work / "patched", patched=True)
            if args.with_patched
            else None
        )
        lg_mem = start_lockgate(
            "lockgate-mem",
            lockgate_profile({"notes": up_url["notes-json"]}, {"notes": ("notes", "")}),
            work / "lockgate-mem",
        )
        for k, p in ups.items():
            if wait_url(p) != up_url[k]:
                raise RuntimeError(f"{p.name} listens on {p.url}, not {up_url[k]}")
        for p, port in [*mitm.values(), (lean, lean_port)]:
            wait_port(p, port)
        lg_url, lg_mem_url = wait_url(lg), wait_url(lg_mem)
        lgp_url = wait_url(lgp) if lgp is not None else None

        def mitm_url(kind: str) -> str:
            return f"http://127.0.0.1:{mitm[kind][1]}/mcp"

        cpu_of = {
            "direct": [ups["notes-json"]],
            "mitmdump": [mitm["notes-json"][0], ups["notes-json"]],
            "lean": [lean, ups["notes-json"]],
            "lockgate": [lg, ups["notes-json"]],
        }
        if lgp is not None:
            cpu_of["patched"] = [lgp, ups["notes-json"]]
        for name, procs in cpu_of.items():
            for p in procs:
                p.name = "upstream" if p is ups["notes-json"] else name
        notes = {
            "direct": up_url["notes-json"],
            "mitmdump": mitm_url("notes-json"),
            "lean": f"http://127.0.0.1:{lean_port}/mcp",
            "lockgate": f"{lg_url}/mcp/notes",
        }
        if lgp_url is not None:
            notes["patched"] = f"{lgp_url}/mcp/notes"
        with phase("sequential", started):
            seq = phase_sequential(s, notes, cpu_of)
        with phase("concurrent", started):
            conc = phase_concurrent(s, notes, cpu_of)
        with phase("tools_list", started):
            lst = phase_tools_list(
                s,
                {
                    "direct": up_url["many-json"],
                    "mitmdump": mitm_url("many-json"),
                    "lockgate": f"{lg_url}/mcp/many",
                    "lockgate_filtered": f"{lg_url}/mcp/many-filtered",
                },
            )
        with phase("sse", started):
            sse = phase_sse(
                s,
                {
                    "direct": up_url["notes-sse"],
                    "mitmdump": mitm_url("notes-sse"),
                    "lockgate": f"{lg_url}/mcp/sse",
                    **({"patched": f"{lgp_url}/mcp/sse"} if lgp_url else {}),
                },
            )
        with phase("memory", started):
            mem = phase_memory(s, f"{lg_mem_url}/mcp/notes", lg_mem)
    finally:
        stop_all()
    added_ratio = seq["lockgate"]["added_p50_ms"] / seq["mitmdump"]["added_p50_ms"]
    tp_ratio = conc["lockgate"]["req_per_s"] / conc["mitmdump"]["req_per_s"]
    res: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "settings": s.__dict__,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "caveat": "client, proxies and upstreams share the machine's cores",
        },
        "phases": PHASES,
        "sequential": seq,
        "concurrent": conc,
        "tools_list": lst,
        "sse": sse,
        "memory": mem,
        "budgets": {
            "added_ratio": r(added_ratio),
            "added_ok": added_ratio <= 1.25,
            "throughput_ratio": r(tp_ratio),
            "throughput_ok": tp_ratio >= 1.0,
            "list_ok": lst["ratio_filtered_unfiltered"] <= 1.3,
            "sse_ok": sse["lockgate"]["added_p50_ms"] <= 1.0 and sse["lockgate"]["dropped"] == 0,
            "memory_ok": mem["growth_percent"] < 5.0,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print("\n".join(report(res)))
    print(f"({res['seconds']} s; written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
