"""What tool pinning costs a `tools/list`: `PinStore.observe` on 2,000 realistic tools.

Prints milliseconds (best of N) for:
- pin_of alone: pure-Python rfc8785 vs the orjson fast path (cold cache), and the cached path;
- observe cold (an empty store: every tool pinned and written), warm (the same list parsed
  anew, as every tools/list is), one tool changed, and after another process approved
  something (a reload);
- for scale, what the gateway pays anyway: json.loads + json.dumps of the same list.

    uv run python bench/pinning.py          # 2,000 tools, best of 5
    uv run python bench/pinning.py -n 500 -r 9
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rfc8785

from lockgate.guardrails import pinning
from lockgate.guardrails.pinstore import PinStore


def tool(i: int) -> dict[str, Any]:
    """A realistic definition (~900 bytes): a title, a paragraph, five typed parameters."""
    props: dict[str, Any] = {
        f"param_{j}": {"type": "string", "description": f"The {j}th filter of the search."}
        for j in range(4)
    }
    props["limit"] = {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    return {
        "name": f"tool_{i:04d}",
        "title": f"Tool number {i}",
        "description": "Searches the project's issues by text, label and assignee; returns"
        " at most `limit` issues, newest first. Read-only. " * 2,
        "inputSchema": {"type": "object", "properties": props, "required": ["param_0"]},
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
        "_meta": {"generated": i},
    }


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="tools in the list")
    parser.add_argument("-r", type=int, default=5, help="repeats (best of)")
    args = parser.parse_args()
    n, repeat = args.n, args.r
    body = json.dumps([tool(i) for i in range(n)])
    fresh = lambda: json.loads(body)  # noqa: E731 - every tools/list is parsed anew
    tools = fresh()
    print(f"{n} tools, {len(body) / 1e6:.2f} MB, best of {repeat} (ms)")

    def jcs() -> None:
        for t in tools:
            hashlib.sha256(rfc8785.dumps({k: v for k, v in t.items() if k != "_meta"}))

    def fast_cold() -> None:
        pinning._cache.clear()
        for t in tools:
            pinning.pin_of(t)

    def fast_cached() -> None:
        for t in tools:
            pinning.pin_of(t)

    print(f"  pin_of, rfc8785 (pure Python)      {best(jcs, repeat):8.2f}")
    print(f"  pin_of, orjson fast path, cold     {best(fast_cold, repeat):8.2f}")
    print(f"  pin_of, cached (unchanged list)    {best(fast_cached, repeat):8.2f}")
    print(f"  json.loads + json.dumps (for scale) {best(lambda: json.dumps(fresh()), repeat):7.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        cold_times = []
        for k in range(repeat):
            pinning._cache.clear()
            with PinStore.open(Path(tmp) / f"cold{k}.db") as store:
                listed = fresh()
                start = time.perf_counter()
                store.observe("bench", listed)
                cold_times.append(time.perf_counter() - start)
        print(f"  observe cold (pin + write all)     {min(cold_times) * 1000:8.2f}")

        path = Path(tmp) / "warm.db"
        with PinStore.open(path) as store, PinStore.open(path) as other:
            store.observe("bench", fresh())

            def warm() -> None:
                store.observe("bench", fresh())

            def uncached() -> None:
                pinning._cache.clear()
                store.observe("bench", fresh())

            def one_changed() -> None:
                listed = fresh()
                listed[7]["description"] += f" {time.perf_counter()}"
                store.observe("bench", listed)

            parse = best(fresh, repeat)  # the parse is in the lambdas above: subtract it
            print(f"  observe warm (unchanged list)      {best(warm, repeat) - parse:8.2f}")
            print(f"  observe warm, pin cache cleared    {best(uncached, repeat) - parse:8.2f}")
            print(f"  observe, one tool changed          {best(one_changed, repeat) - parse:8.2f}")
            store.observe("bench", fresh())  # back to the pinned definitions
            other.approve("bench", None, by="bench")
            took = []
            for k in range(repeat):
                store.observe("bench", [*fresh(), tool(n + k)], mode="approve")  # held
                other.approve("bench", None, by="bench")  # another connection commits
                listed = [*fresh(), tool(n + k)]
                start = time.perf_counter()
                store.observe("bench", listed, mode="approve")
                took.append(time.perf_counter() - start)
            print(f"  observe after another process wrote {min(took) * 1000:7.2f}")

            def calls() -> None:
                for _ in range(1000):
                    store.refusal("bench", "tool_0001")

            print(f"  refusal, per call (µs)             {best(calls, 3):8.2f}")


if __name__ == "__main__":
    main()
