"""A stream of one-byte chunks: directly, through bare mitmdump, the lean master, lockgate.

    uv run python bench/stream_chunks.py            # 40 streams per path
    uv run python bench/stream_chunks.py --quick    # 8

Issue 12 §3: streaming stays unbuffered, and a stream the upstream writes one byte per
chunk (ten progress events and the answer, about 1.6 KB, each byte its own HTTP chunk and
TCP segment) costs the same time through the gateway as directly. The upstream is
tests/support/broken.py's `sse_one_byte` mode in its own process; the client is bench/run.py's
raw `http.client` session, reading each event as it arrives. `lean` is bench/lean_master.py,
the mitmproxy pieces lockgate is built on with a one-line addon (what the pipeline adds is
lockgate minus lean). Paths are measured in
interleaved rounds (rotating order). Printed: per path the p50/p90 of the whole stream
(request sent -> answer event read) and of the first event, and the ratio to direct.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402  (bench/run.py: processes, the raw client, percentiles)

UPSTREAM = """
import sys, time
sys.path.insert(0, {root!r})
from tests.support.broken import broken_upstream
with broken_upstream() as up:
    print("listening on " + up.base, flush=True)
    time.sleep(3600)
"""


def one_stream(url: str) -> tuple[float, float]:
    """Seconds to the first event and to the answer, on a fresh connection (the upstream
    closes each one after its stream)."""
    sess = run.Session(url)
    first: list[float] = []
    t0 = time.monotonic_ns()

    def on_event(now: int, msg: dict[str, object]) -> None:
        if not first:
            first.append((now - t0) / 1e9)

    try:
        sess.stream("tools/list", {}, on_event)
    finally:
        sess.close()
    return first[0], (time.monotonic_ns() - t0) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds, per_round = (4, 2) if args.quick else (8, 5)
    work = Path(tempfile.mkdtemp(prefix="lockgate-bench-chunks-"))
    try:
        up = run.spawn(
            "upstream broken",
            [sys.executable, "-c", UPSTREAM.format(root=str(HERE.parent))],
            pattern=r"listening on (http://\S+)",
        )
        base = run.wait_url(up)
        mitm, mitm_port = run.start_mitmdump(base, work / "mitmproxy")
        lean, lean_port = run.start_lean(base, work / "mitmproxy-lean")
        # The route's upstream URL is the mode's: lockgate sends the route's requests there.
        profile = run.lockgate_profile(
            {"broken": f"{base}/sse_one_byte"}, {"broken": ("broken", "")}
        )
        lg = run.start_lockgate("lockgate", profile, work / "lockgate")
        run.wait_port(mitm, mitm_port)
        run.wait_port(lean, lean_port)
        urls = {
            "direct": f"{base}/sse_one_byte",
            "mitmdump": f"http://127.0.0.1:{mitm_port}/sse_one_byte",
            "lean": f"http://127.0.0.1:{lean_port}/sse_one_byte",
            "lockgate": f"{run.wait_url(lg)}/mcp/broken",
        }
        for url in urls.values():
            one_stream(url)  # warm-up
        first: dict[str, list[float]] = {k: [] for k in urls}
        whole: dict[str, list[float]] = {k: [] for k in urls}
        for order in run.rotations(list(urls), rounds):
            for name in order:
                for _ in range(per_round):
                    f, w = one_stream(urls[name])
                    first[name].append(f)
                    whole[name].append(w)
        base_p50 = run.pct(whole["direct"], 50)
        # After the first event: the streaming alone, without the connection set-up that
        # every proxy pays on a fresh connection before it.
        rest = {k: [w - f for f, w in zip(first[k], whole[k], strict=True)] for k in urls}
        rest_p50 = run.pct(rest["direct"], 50)
        out = {}
        print(f"one-byte-chunk stream, {rounds * per_round} streams per path")
        print(
            f"{'path':10} {'whole p50':>10} {'p90':>8} {'first p50':>10} {'vs direct':>10}"
            f" {'after first p50':>16} {'vs direct':>10}"
        )
        for name in urls:
            p50, p90 = run.pct(whole[name], 50), run.pct(whole[name], 90)
            f50, r50 = run.pct(first[name], 50), run.pct(rest[name], 50)
            out[name] = {
                "whole_p50_ms": round(p50 * 1e3, 2),
                "whole_p90_ms": round(p90 * 1e3, 2),
                "first_p50_ms": round(f50 * 1e3, 2),
                "after_first_p50_ms": round(r50 * 1e3, 2),
                "ratio": round(p50 / base_p50, 2),
                "after_first_ratio": round(r50 / rest_p50, 2),
            }
            ms = f"{p50 * 1e3:8.1f}ms {p90 * 1e3:6.1f}ms {f50 * 1e3:8.1f}ms"
            print(
                f"{name:10} {ms} {p50 / base_p50:9.2f}x {r50 * 1e3:14.1f}ms {r50 / rest_p50:9.2f}x"
            )
        print(json.dumps(out))
        return 0
    finally:
        for p in run.RUNNING:
            p.stop()


if __name__ == "__main__":
    raise SystemExit(main())
