"""A soak: 8 clients through `lockgate up` for 10 minutes; RSS and open FDs must stay flat.

    uv run python bench/soak.py               # 10 minutes
    uv run python bench/soak.py --quick       # 1 minute (15 s warm-up)
    uv run python bench/soak.py --minutes 3 --threads 8 --interval 5

The bench upstream (bench/upstream.py notes-json) and one `lockgate up` (kind = "none",
`auth = "none"`), each in its own process, all on 127.0.0.1 (bench/run.py's helpers). Each
client thread runs MCP sessions back to back: `initialize`, `tools/list`, then `tools/call
get_note` with a `tools/list` every 10th request, and after 500 requests ends the session
(DELETE) and opens a new one on a new connection, so per-session state has to go as well
as come. Every few seconds the gateway's VmRSS (/proc/PID/status) and open file descriptors
(/proc/PID/fd) are sampled.

Budgets (issue 12, "Lean and flat"): RSS growth from the end of the warm-up (the first
tenth of the run, at least 15 s) to the end < 5%; no more FDs at the end than after the
warm-up; 0 errors (anything but a 200 with a JSON-RPC result). Stops by itself: the clients
stop at the deadline and every process is ended.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # bench/run.py: the processes, the raw client

LIST_EVERY = 10
SESSION_REQUESTS = 500


@dataclass
class Tally:
    calls: int = 0
    lists: int = 0
    sessions: int = 0
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors += 1
            if len(self.first_errors) < 5:
                self.first_errors.append(what[:300])


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def client(url: str, deadline: float, tally: Tally) -> None:
    """Sessions back to back until the deadline."""
    calls = lists = sessions = 0
    while time.monotonic() < deadline:
        try:
            sess = run.Session(url).initialize()
        except (OSError, run.RpcError) as e:
            tally.error(f"initialize: {e}")
            time.sleep(0.1)
            continue
        sessions += 1
        try:
            for i in range(SESSION_REQUESTS):
                if time.monotonic() >= deadline:
                    break
                listing = i % LIST_EVERY == 0
                method = "tools/list" if listing else "tools/call"
                params: dict[str, Any] = {} if listing else run.CALL_PARAMS
                status, ctype, data = sess.post(sess.request_bytes(method, params))
                try:
                    run.result_of(status, ctype, data)
                except (run.RpcError, ValueError, StopIteration) as e:
                    tally.error(f"{method}: {e}")
                    continue
                if listing:
                    lists += 1
                else:
                    calls += 1
            status = sess.delete()
            if status not in (200, 202, 204):
                tally.error(f"DELETE answered {status}")
        except OSError as e:
            tally.error(f"connection: {type(e).__name__}: {e}")
        finally:
            sess.close()
    with tally.lock:
        tally.calls += calls
        tally.lists += lists
        tally.sessions += sessions


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="1 minute")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--json", type=Path, help="also write the samples and results here")
    args = ap.parse_args()
    seconds = 60.0 if args.quick else args.minutes * 60
    warmup = max(15.0, seconds / 10)
    work = Path(tempfile.mkdtemp(prefix="lockgate-soak-"))
    tally = Tally()
    samples: list[tuple[float, int, int]] = []  # (seconds since start, RSS KiB, FDs)
    try:
        up_url = f"http://127.0.0.1:{run.free_port()}/mcp"
        upstream = run.start_upstream("notes-json", run.urlsplit(up_url).port or 0)
        lg = run.start_lockgate(
            "lockgate",
            run.lockgate_profile({"notes": up_url}, {"notes": ("notes", "")}),
            work / "lockgate",
        )
        run.wait_url(upstream)
        url = f"{run.wait_url(lg)}/mcp/notes"
        idle = (lg.rss_kib(), fd_count(lg.pid))
        t0 = time.monotonic()
        deadline = t0 + seconds
        threads = [
            threading.Thread(target=client, args=(url, deadline, tally), daemon=True)
            for _ in range(args.threads)
        ]
        for t in threads:
            t.start()
        while time.monotonic() < deadline:
            time.sleep(min(args.interval, max(deadline - time.monotonic(), 0)))
            samples.append((time.monotonic() - t0, lg.rss_kib(), fd_count(lg.pid)))
            print(
                f"[{samples[-1][0]:6.1f}s] RSS {samples[-1][1] / 1024:6.1f} MB, "
                f"{samples[-1][2]} FDs, {tally.errors} errors",
                flush=True,
            )
        for t in threads:
            t.join(30)
        time.sleep(1.0)  # the last responses written, connections closed
        end = (lg.rss_kib(), fd_count(lg.pid))
        alive = lg.popen.poll() is None
    finally:
        for p in reversed(run.RUNNING):
            p.stop()

    after_warmup = [s for s in samples if s[0] >= warmup]
    warm = after_warmup[0] if after_warmup else samples[-1]
    last = samples[-1]
    growth = (last[1] - warm[1]) / warm[1] * 100
    peak = max(s[1] for s in after_warmup or samples)
    fd_ok = last[2] <= warm[2]
    ok = growth < 5.0 and fd_ok and tally.errors == 0 and alive
    elapsed = last[0]
    requests = tally.calls + tally.lists
    print(
        f"\nlockgate soak: {seconds / 60:g} min, {args.threads} clients, "
        f"{tally.sessions} sessions, {tally.calls} tools/call + {tally.lists} tools/list "
        f"({requests / elapsed:.0f} req/s)"
    )
    print(
        f"  RSS idle {idle[0] / 1024:.1f} MB, after warm-up ({warm[0]:.0f} s) "
        f"{warm[1] / 1024:.1f} MB, final {last[1] / 1024:.1f} MB, peak {peak / 1024:.1f} MB: "
        f"growth {growth:+.2f}% (< 5%) {'PASS' if growth < 5.0 else 'FAIL'}"
    )
    slope = (
        statistics.linear_regression([s[0] for s in after_warmup], [s[1] for s in after_warmup])
        if len(after_warmup) >= 2
        else None
    )
    if slope is not None:
        print(f"  RSS trend after warm-up: {slope.slope * 60 / 1024:+.3f} MB/min")
    print(
        f"  FDs idle {idle[1]}, after warm-up {warm[2]}, final (under load) {last[2]}, "
        f"after the clients stopped {end[1]}: {'PASS' if fd_ok else 'FAIL'} (no growth)"
    )
    print(
        f"  errors {tally.errors} (0) {'PASS' if tally.errors == 0 else 'FAIL'}"
        + (f": {tally.first_errors}" if tally.first_errors else "")
    )
    if not alive:
        print("  the gateway exited during the soak: FAIL")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "seconds": seconds,
                    "threads": args.threads,
                    "warmup_seconds": warmup,
                    "samples": samples,
                    "idle": idle,
                    "end": end,
                    "growth_percent": round(growth, 2),
                    "calls": tally.calls,
                    "lists": tally.lists,
                    "sessions": tally.sessions,
                    "errors": tally.errors,
                    "ok": ok,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
