"""The guardrail stage's own CPU on a 1 KB `tools/call`, in this process: no network, no noise
from the other processes a through-the-gateway run shares two cores with.

    uv run python bench/guardrail_stage.py            # 20,000 calls per variant
    uv run python bench/guardrail_stage.py --calls 5000

What `addons/guardrails.py` runs for one call on a route with the default policy (secrets
masked, contact data logged, definitions scanned, tools pinned on first use), with the same
1 KB text as `bench/guardrails.py`: the rate limits, the pin check, the way up (redaction of
the arguments) and the way down (redaction and findings of the echoed result), each timed
apart, and the whole against the stage of a route with guardrails off. The route first
learns the tool from a `tools/list` answer, as it would from the upstream. This is the
budget's floor: the stage runs on the request's path, so through the gateway it adds at
least this much; `bench/guardrails.py` measures the rest (hook dispatch, the transform).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from guardrails import CALL  # noqa: E402  (the 1 KB call bench/guardrails.py sends)

TOOL = {
    "name": "tool_0001",
    "description": "Echo the text back (tool number 1).",
    "inputSchema": {
        "type": "object",
        "properties": {"text": {"title": "Text", "type": "string"}},
        "required": ["text"],
        "title": "echoArguments",
    },
    "outputSchema": {
        "type": "object",
        "properties": {"result": {"title": "Result", "type": "string"}},
        "required": ["result"],
        "title": "echoOutput",
    },
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("LOCKGATE_HOME", tempfile.mkdtemp(prefix="lockgate-stage-"))

    from lockgate.guardrails.findings import DefinitionScanner
    from lockgate.guardrails.pinstore import PinStore
    from lockgate.guardrails.policy import resolve
    from lockgate.guardrails.stage import Sink, Stage
    from lockgate.mcp.jsonrpc import parse_body

    policy = resolve(None)
    pins = PinStore.open(Path(os.environ["LOCKGATE_HOME"]) / "pins.sqlite")
    on = Stage("on", "many", policy, DefinitionScanner(), pins)
    on.down({"jsonrpc": "2.0", "id": 1, "result": {"tools": [TOOL]}}, "tools/list", Sink())
    assert on.unlisted_tool(parse_body(_call_bytes())) is None, "the tool was not learned"

    body = _call_bytes()
    text = CALL["arguments"]["text"]
    result = {
        "jsonrpc": "2.0",
        "id": 7,
        "result": {
            "content": [{"type": "text", "text": text}],
            "structuredContent": {"result": text},
            "isError": False,
        },
    }

    def parts(stage: Stage) -> dict[str, Callable[[], Any]]:
        msgs = parse_body(body)
        return {
            "limit": lambda: stage.limit(msgs, "alice", time.monotonic()),
            "pin check": lambda: (stage.unlisted_tool(msgs), stage.check_calls(msgs)),
            "up (arguments)": lambda: stage.redact_up(msgs),
            "down (result)": lambda: stage.down(result, "tools/call", Sink()),
        }

    def whole(stage: Stage) -> Callable[[], Any]:
        steps = list(parts(stage).values())

        def call() -> None:
            for step in steps:
                step()

        return call

    rows: dict[str, list[float]] = {}
    for _ in range(args.rounds):  # interleaved: the host's speed drifts alike for all
        for name, fn in {
            **{f"on: {k}": v for k, v in parts(on).items()},
            "on: all": whole(on),
        }.items():
            rows.setdefault(name, []).append(_per_call_us(fn, args.calls))
    width = max(len(k) for k in rows)
    print(
        "guardrail stage, CPU per 1 KB tools/call (process time, "
        f"median of {args.rounds} rounds of {args.calls})"
    )
    for name, values in rows.items():
        mid, low, high = statistics.median(values), min(values), max(values)
        print(f"  {name:<{width}}  {mid:7.1f} us   (rounds {low:.1f}-{high:.1f})")
    print(json.dumps({k: round(statistics.median(v), 2) for k, v in rows.items()}))
    pins.close()
    return 0


def _call_bytes() -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": CALL}).encode()


def _per_call_us(fn: Callable[[], Any], n: int) -> float:
    for _ in range(min(n, 500)):
        fn()
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n * 1e6


if __name__ == "__main__":
    raise SystemExit(main())
