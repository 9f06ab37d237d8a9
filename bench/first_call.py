"""What the lazy imports move to the first request: the first `tools/call` of a fresh gateway.

    uv run python bench/first_call.py            # 6 fresh gateways per variant
    uv run python bench/first_call.py -n 10

jsonschema-rs is imported by the first compiled `inputSchema` (lockgate.mcp.arguments), so
the first call of a listed tool pays its import. Two variants, started alternately, each a
fresh `lockgate up` in front of the same bench upstream (bench/run.py's helpers):

- `lazy`: `lockgate up` as it is;
- `eager`: the same, launched through a `python -c` that imports jsonschema_rs, httpx and
  anyio before the CLI, as every gateway did before they became lazy.

Per gateway: `initialize`, `tools/list`, then 20 `tools/call get_note`; printed: the median
over gateways of the first call's latency and of the median of the other 19. `--unlisted`
skips the `tools/list`: the first call is then of a tool the gateway has never seen listed,
and waits for the gateway's own list of the upstream (lockgate.upstream.listing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # bench/run.py: the processes, the raw client

EAGER = (
    "import sys, jsonschema_rs, httpx, anyio.to_thread\n"
    "sys.argv = ['lockgate', *sys.argv[1:]]\n"
    "from lockgate.cli.entry import main\n"
    "main()\n"
)


def one(variant: str, up_url: str, work: Path, i: int, listed: bool) -> tuple[float, float]:
    profile = run.lockgate_profile({"notes": up_url}, {"notes": ("notes", "")})
    launcher = [sys.executable, "-c", EAGER] if variant == "eager" else None
    proc = run.start_lockgate(f"{variant}-{i}", profile, work / f"{variant}-{i}", launcher=launcher)
    try:
        sess = run.Session(f"{run.wait_url(proc)}/mcp/notes").initialize()
        if listed:
            sess.rpc("tools/list", {})
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            sess.rpc("tools/call", run.CALL_PARAMS)
            times.append((time.perf_counter() - t0) * 1000)
        sess.close()
        return times[0], statistics.median(times[1:])
    finally:
        proc.stop()
        run.RUNNING.remove(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=6, help="fresh gateways per variant")
    ap.add_argument("--unlisted", action="store_true", help="call before any tools/list")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lockgate-first-"))
    got: dict[str, list[tuple[float, float]]] = {"lazy": [], "eager": []}
    try:
        up_url = f"http://127.0.0.1:{run.free_port()}/mcp"
        upstream = run.start_upstream("notes-json", run.urlsplit(up_url).port or 0)
        run.wait_url(upstream)
        for i in range(args.n):
            for variant in ("lazy", "eager") if i % 2 == 0 else ("eager", "lazy"):
                got[variant].append(one(variant, up_url, work, i, not args.unlisted))
    finally:
        for p in reversed(run.RUNNING):
            p.stop()
    for variant, runs in got.items():
        first = statistics.median(f for f, _ in runs)
        rest = statistics.median(r for _, r in runs)
        print(
            f"{variant:<6} first tools/call {first:6.2f} ms, later ones {rest:5.2f} ms "
            f"(medians over {len(runs)} gateways)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
