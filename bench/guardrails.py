"""What the guardrail stage costs through the gateway: the same gateway, guardrails on and off.

    uv run python bench/guardrails.py            # about a minute
    uv run python bench/guardrails.py --quick    # smoke run
    uv run python bench/guardrails.py --aa       # both routes off: the bench's noise floor

One `lockgate up` serves the 2,000-tool upstream (bench/upstream.py `many-json`) on two routes:
`on` with the default guardrail policy (secrets masked, contact data logged, definitions
scanned, tools pinned on first use) and `off` with `[routes.off.guardrails] enabled = false`;
`direct` is the upstream itself. Measured in interleaved rounds:

1. a 1 KB `tools/call` (`tool_0001`, whose echo answers the ~1 KB text back: 1 KB up and
   1 KB down through the redactor), p50 per path and the added p50 of `on` over `off`
   (budget: 0.1 ms), the median over rounds of each round's on-minus-off p50 (robust to
   the host's speed drifting during the run), and the gateway process's CPU per call on each
   route;
2. `tools/list` of the 2,000 tools, scanned and pinned on `on`: p50 per path and the ratio
   on/off (budget: 1.3x).

Prints a table and writes bench/guardrails.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (bench/run.py: the processes, the raw client, the statistics)

TEXT = (
    "Quarterly planning notes: the team reviewed the roadmap, agreed on the release train and "
    "moved the search rewrite to the next cycle; action items are tracked in the usual board. "
) * 6
CALL = {"name": "tool_0001", "arguments": {"text": TEXT[:1000]}}


# Per path, where each round's batch starts in its latency list (for per-round medians).
ROUNDS: dict[str, list[int]] = {}


def paired_added(lat: dict[str, list[float]]) -> float:
    """The median over rounds of (on's p50 - off's p50) in the same round: the host's speed
    drifts over a run, and a round's two batches run next to each other."""
    diffs = []
    for i, (a, b) in enumerate(zip(ROUNDS["on"], ROUNDS["off"], strict=True)):
        end_a = ROUNDS["on"][i + 1] if i + 1 < len(ROUNDS["on"]) else len(lat["on"])
        end_b = ROUNDS["off"][i + 1] if i + 1 < len(ROUNDS["off"]) else len(lat["off"])
        diffs.append(run.pct(lat["on"][a:end_a], 50) - run.pct(lat["off"][b:end_b], 50))
    return run.pct(diffs, 50)


def measure_calls(
    urls: dict[str, str], calls: int, rounds: int, gateway: run.Proc
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Latencies per path, and the gateway's CPU seconds spent on each path's batches (the
    host's scheduling moves latency more than it moves CPU time)."""
    sessions = {name: run.Session(url).initialize() for name, url in urls.items()}
    lat: dict[str, list[float]] = {name: [] for name in urls}
    cpu: dict[str, float] = dict.fromkeys(urls, 0.0)
    for order in run.rotations(list(urls), rounds):
        for name in order:
            ROUNDS.setdefault(name, []).append(len(lat[name]))
            sess = sessions[name]
            for _ in range(20):
                sess.rpc("tools/call", CALL)
            bodies = [sess.request_bytes("tools/call", CALL) for _ in range(calls // rounds)]
            with run.no_gc():
                c0 = gateway.cpu_seconds()
                for body in bodies:
                    t0 = time.perf_counter_ns()
                    res = sess.post(body)
                    lat[name].append((time.perf_counter_ns() - t0) / 1e6)
                    run.result_of(*res)
                cpu[name] += gateway.cpu_seconds() - c0
    for sess in sessions.values():
        sess.close()
    return lat, cpu


def measure_lists(urls: dict[str, str], calls: int) -> dict[str, list[float]]:
    sessions = {name: run.Session(url).initialize() for name, url in urls.items()}
    lat: dict[str, list[float]] = {name: [] for name in urls}
    for sess in sessions.values():
        for _ in range(2):
            sess.rpc("tools/list", {})
    for order in run.rotations(list(urls), max(1, calls // 5)):
        for name in order:
            sess = sessions[name]
            for _ in range(5):
                body = sess.request_bytes("tools/list", {})
                with run.no_gc():
                    t0 = time.perf_counter_ns()
                    res = sess.post(body)
                    lat[name].append((time.perf_counter_ns() - t0) / 1e6)
                assert len(run.result_of(*res)["tools"]) == 2000, name
    for sess in sessions.values():
        sess.close()
    return lat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--aa",
        action="store_true",
        help="A/A run: guardrails off on both routes, to see the bench's own noise floor",
    )
    args = parser.parse_args()
    calls, rounds, lists = (400, 4, 10) if args.quick else (4000, 20, 60)
    try:
        up = run.start_upstream("many-json", run.free_port())
        upstream = run.wait_url(up)
        profile = run.lockgate_profile(
            {"many": upstream},
            {"on": ("many", ""), "off": ("many", "")},
        )
        profile += "\n[routes.off.guardrails]\nenabled = false\n"
        if args.aa:
            profile += "\n[routes.on.guardrails]\nenabled = false\n"
        with tempfile.TemporaryDirectory() as tmp:
            gw = run.start_lockgate("lockgate", profile, Path(tmp))
            base = run.wait_url(gw)
            urls = {"direct": upstream, "off": f"{base}/mcp/off", "on": f"{base}/mcp/on"}
            call_lat, call_cpu = measure_calls(urls, calls, rounds, gw)
            list_lat = measure_lists(urls, lists)
    finally:
        run.stop_all()
    p = {name: run.pct(v, 50) for name, v in call_lat.items()}
    lp = {name: run.pct(v, 50) for name, v in list_lat.items()}
    res: dict[str, Any] = {
        "call_1kb": {
            "request_bytes": len(json.dumps({"method": "tools/call", "params": CALL})),
            "p50_ms": {k: run.r(v) for k, v in p.items()},
            "added_p50_ms_on_over_off": run.r(p["on"] - p["off"], 4),
            "added_ms_paired_median": run.r(paired_added(call_lat), 4),
            "budget_ms": 0.1,
            "gateway_cpu_us_per_call": {
                k: run.r(call_cpu[k] / len(call_lat[k]) * 1e6, 1) for k in ("off", "on")
            },
        },
        "tools_list_2000": {
            "p50_ms": {k: run.r(v) for k, v in lp.items()},
            "ratio_on_off": run.r(lp["on"] / lp["off"]),
            "budget_ratio": 1.3,
        },
    }
    if not args.aa:
        (HERE / "guardrails.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    c, t = res["call_1kb"], res["tools_list_2000"]
    cp, tp = c["p50_ms"], t["p50_ms"]
    print(f"1 KB tools/call p50 ms: direct {cp['direct']}  off {cp['off']}  on {cp['on']}")
    print(
        f"  guardrails add {c['added_p50_ms_on_over_off']} ms p50 (budget 0.1); "
        f"median of per-round differences {c['added_ms_paired_median']} ms"
    )
    cpu = c["gateway_cpu_us_per_call"]
    print(f"  gateway CPU per call: off {cpu['off']} us, on {cpu['on']} us")
    print(f"tools/list 2,000 p50 ms: direct {tp['direct']}  off {tp['off']}  on {tp['on']}")
    print(f"  on/off {t['ratio_on_off']}x (budget 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
