"""Profile the lockgate process (cProfile) under one bench workload; print the hot spots.

    uv run python bench/profile_lockgate.py call [--calls 3000]     # tools/call get_note, JSON
    uv run python bench/profile_lockgate.py list [--calls 100]      # tools/list of 2,000
    uv run python bench/profile_lockgate.py list-filtered           # same, tools.deny = ["tool_1*"]
    uv run python bench/profile_lockgate.py sse                     # slow_count progress over SSE

Runs `python -m cProfile -m lockgate.cli up ...` against a bench upstream (each in its own
process), drives it with the bench client, stops it with SIGTERM (a clean shutdown, so
cProfile writes its file) and prints the top functions by own time and by cumulative time.
cProfile slows small functions down more than big ones: read the ranking, not the absolute
times. The .prof file is kept for snakeviz / pstats.
"""

from __future__ import annotations

import argparse
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import run as bench

from tests.support.gateway import lockgate_up_args


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["call", "list", "list-filtered", "sse"])
    ap.add_argument("--calls", type=int, default=None)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", type=Path, default=None, help="where to keep the .prof file")
    args = ap.parse_args()
    kind = {
        "call": "notes-json",
        "list": "many-json",
        "list-filtered": "many-json",
        "sse": "notes-sse",
    }[args.workload]
    calls = (
        args.calls or {"call": 3000, "list": 100, "list-filtered": 100, "sse": 20}[args.workload]
    )
    work = Path(tempfile.mkdtemp(prefix="lockgate-prof-"))
    prof = args.out or work / f"lockgate-{args.workload}.prof"
    extra = 'tools.deny = ["tool_1*"]' if args.workload == "list-filtered" else ""
    try:
        port = bench.free_port()
        up = bench.start_upstream(kind, port)
        up_url = bench.wait_url(up)
        home = work / "home"
        home.mkdir()
        profile = home / "profile.toml"
        profile.write_text(
            bench.lockgate_profile({"u": up_url}, {"r": ("u", extra)}), encoding="utf-8"
        )
        env = {
            "LOCKGATE_HOME": str(home),
            "LOCKGATE_AUDIT_LOG": str(home / "audit.jsonl"),
            "LOCKGATE_AUDIT_KEY_SOURCE": "memory",  # no keyring needed to measure
        }
        lg = bench.spawn(
            "lockgate (cProfile)",
            [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(prof),
                *lockgate_up_args(profile, quiet=True),
            ],
            pattern=r"listening on (http://\S+)",
            env=env,
        )
        url = bench.wait_url(lg) + "/mcp/r"
        sess = bench.Session(url).initialize()
        t0 = time.perf_counter()
        for i in range(calls):
            if args.workload == "call":
                sess.rpc("tools/call", bench.CALL_PARAMS)
            elif args.workload == "sse":
                sess.stream(
                    "tools/call",
                    {
                        "name": "slow_count",
                        "arguments": {"n": 20, "delay_ms": 1},
                        "_meta": {"progressToken": i},
                    },
                    lambda _t, _m: None,
                )
            else:
                sess.rpc("tools/list", {})
        elapsed = time.perf_counter() - t0
        sess.close()
        cpu = lg.cpu_seconds()
        lg.stop()
        deadline = time.monotonic() + 10
        while not prof.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for p in reversed(bench.RUNNING):
            p.stop()
    print(
        f"{args.workload}: {calls} requests in {elapsed:.1f} s; lockgate CPU {cpu:.1f} s "
        f"(includes start-up) under cProfile; profile: {prof}"
    )
    stats = pstats.Stats(str(prof))
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(
        r"lockgate|addons|mitmproxy/(proxy|addonmanager)", args.top
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
