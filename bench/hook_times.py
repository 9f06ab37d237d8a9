"""Where the pipeline's time goes, per addon and per hook, without a profiler's distortion.

    uv run python bench/hook_times.py [--calls 3000] [--workload call|list|list-filtered]

Runs lockgate's `Gateway` in this process (upstream in its own process), wraps every hook of
every pipeline addon, mitmproxy's lifecycle dispatch and a few core functions with timers,
drives sequential requests and prints CPU microseconds per request (thread CPU time of the
event loop thread, so client-thread activity and preemption by other processes don't count).

- "dispatch + all hooks" is what mitmproxy's AddonManager spends on the lifecycle events of
  one request: our hooks, the four mitmproxy core addons, and the dispatch itself;
- each `Addon.hook` row is the hook alone (its `guarded` wrapper included);
- the indented rows are parts of those hooks.
Nothing under addons/ or lockgate/ is modified: the wrappers are installed at run time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import inspect
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench
from mitmproxy import addonmanager

import lockgate.addons as addons_pkg
import lockgate.audit.events as audit_events
import lockgate.audit.log as audit_core
import lockgate.guardrails.stage as stage_core
import lockgate.mcp.jsonrpc as jsonrpc
from lockgate.addons.master import Gateway
from lockgate.guardrails.stage import Stage
from lockgate.mcp.arguments import ArgumentSchemas

# The same HMAC chain as with the keyring's key; the bench runs without a keyring.
os.environ.setdefault(audit_core.KEY_SOURCE_ENV, "memory")

HOOKS = ("requestheaders", "request", "responseheaders", "response", "error")
TOTALS: dict[str, int] = defaultdict(int)
COUNTS: dict[str, int] = defaultdict(int)
ENABLED = threading.Event()
LOOP_THREAD: list[int] = []


def timed(name: str, func: Any) -> Any:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not ENABLED.is_set() or threading.get_ident() not in LOOP_THREAD:
            return func(*args, **kwargs)
        t0 = time.thread_time_ns()
        try:
            return func(*args, **kwargs)
        finally:
            TOTALS[name] += time.thread_time_ns() - t0
            COUNTS[name] += 1

    return wrapper


def timed_async(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Async hooks: thread time from call to return; they await only on a keyring read
    or a token refresh, which this workload does not hit."""

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not ENABLED.is_set():
            return await func(*args, **kwargs)
        t0 = time.thread_time_ns()
        try:
            return await func(*args, **kwargs)
        finally:
            TOTALS[name] += time.thread_time_ns() - t0
            COUNTS[name] += 1

    return wrapper


def instrument() -> None:
    """Time every hook of every pipeline addon (and their children, e.g. OAuthServer's)."""
    original_pipeline = addons_pkg.pipeline

    def wrap(addon: Any) -> None:
        for hook in HOOKS:
            fn = getattr(addon, hook, None)
            if fn is None:
                continue
            name = f"{type(addon).__name__}.{hook}"
            wrapper = timed_async if inspect.iscoroutinefunction(fn) else timed
            setattr(addon, hook, wrapper(name, fn))
        for child in getattr(addon, "addons", ()):
            wrap(child)

    def pipeline(config: Any = None) -> list[Any]:
        built = original_pipeline(config)
        for addon in built:
            wrap(addon)
        return built

    addons_pkg.pipeline = pipeline  # what `Pipeline.__init__` calls

    original_lifecycle = addonmanager.AddonManager.handle_lifecycle

    async def handle_lifecycle(self: Any, event: Any) -> None:
        # Our hooks are synchronous, so nothing in here waits: thread time is its CPU.
        if not ENABLED.is_set():
            return await original_lifecycle(self, event)
        t0 = time.thread_time_ns()
        try:
            return await original_lifecycle(self, event)
        finally:
            TOTALS["dispatch + all hooks"] += time.thread_time_ns() - t0
            COUNTS["dispatch + all hooks"] += 1

    addonmanager.AddonManager.handle_lifecycle = handle_lifecycle  # type: ignore[method-assign]
    audit_core.AuditLog.append = timed("  AuditLog.append", audit_core.AuditLog.append)  # type: ignore[method-assign]
    audit_core.preview = timed("    preview() in append", audit_core.preview)
    audit_core._canonical = timed("    _canonical() in append", audit_core._canonical)
    os.write = timed("    os.write (audit line)", os.write)
    audit_events.preview = timed("  preview() in addon", audit_events.preview)
    jsonrpc.parse_body = timed("  jsonrpc.parse_body", jsonrpc.parse_body)
    Stage.redact_up = timed("  Stage.redact_up", Stage.redact_up)  # type: ignore[method-assign]
    Stage.down = timed("  Stage.down (per message)", Stage.down)  # type: ignore[method-assign]
    Stage.limit = timed("  Stage.limit", Stage.limit)  # type: ignore[method-assign]
    Stage.unlisted_tool = timed("  Stage.unlisted_tool", Stage.unlisted_tool)  # type: ignore[method-assign]
    Stage.check_calls = timed("  Stage.check_calls", Stage.check_calls)  # type: ignore[method-assign]
    stage_core.Redactor.server_message = timed(  # type: ignore[method-assign]
        "    Redactor.server_message", stage_core.Redactor.server_message
    )
    stage_core.scan_result = timed("    scan_result", stage_core.scan_result)
    Stage._list = timed("    Stage._list", Stage._list)  # type: ignore[method-assign]
    Stage._replay = timed("      Stage._replay (memo hit)", Stage._replay)  # type: ignore[method-assign]
    stage_core._serialized = timed("      _serialized() in _list", stage_core._serialized)
    jsonrpc.loads = timed("  jsonrpc.loads", jsonrpc.loads)
    jsonrpc.encode = timed("  jsonrpc.encode", jsonrpc.encode)
    ArgumentSchemas.remember = timed("  ArgumentSchemas.remember", ArgumentSchemas.remember)  # type: ignore[method-assign]

    gc_start: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if not ENABLED.is_set() or threading.get_ident() not in LOOP_THREAD:
            return
        if phase == "start":
            gc_start[:] = [time.thread_time_ns()]
        elif gc_start:
            TOTALS[f"(gc, gen {info['generation']}, anywhere)"] += (
                time.thread_time_ns() - gc_start[0]
            )
            COUNTS[f"(gc, gen {info['generation']}, anywhere)"] += 1

    gc.callbacks.append(on_gc)


async def run_lean(up_url: str, work: Path, box: dict[str, Any]) -> None:
    """bench/lean_master.py's master, in this loop; `box["gw"].shutdown()` stops it."""
    from urllib.parse import urlsplit

    import lean_master

    port = bench.free_port()
    parts = urlsplit(up_url)
    master = lean_master.build(
        f"{parts.scheme}://{parts.netloc}", port, confdir=str(work / "mitmproxy")
    )
    box["gw"] = master
    task = asyncio.ensure_future(master.run())
    await asyncio.sleep(0.5)
    box["url"] = f"http://127.0.0.1:{port}"
    await task


TEXT_1K = (
    "Quarterly planning notes: the team reviewed the roadmap, agreed on the release train and "
    "moved the search rewrite to the next cycle; action items are tracked in the usual board. " * 6
)[:1000]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument(
        "--workload", choices=["call", "call-1k", "list", "list-filtered"], default="call"
    )
    ap.add_argument(
        "--no-guardrails", action="store_true", help="the route with [guardrails] enabled = false"
    )
    ap.add_argument(
        "--no-audit-write",
        action="store_true",
        help="experiment: AuditLog.append returns at once (measures what writing costs)",
    )
    ap.add_argument(
        "--lean", action="store_true", help="time bench/lean_master.py's master instead (baseline)"
    )
    args = ap.parse_args()
    if args.no_audit_write:
        audit_core.AuditLog.append = lambda self, event: dict(event)  # type: ignore[method-assign]
    instrument()
    work = Path(tempfile.mkdtemp(prefix="lockgate-hooks-"))
    kind = "notes-json" if args.workload == "call" else "many-json"
    what_guard = " (guardrails off)" if args.no_guardrails else ""
    extra = 'tools.deny = ["tool_1*"]' if args.workload == "list-filtered" else ""
    up = bench.start_upstream(kind, bench.free_port())
    try:
        up_url = bench.wait_url(up)
        profile = work / "profile.toml"
        text = bench.lockgate_profile({"u": up_url}, {"r": ("u", extra)})
        if args.no_guardrails:
            text += "\n[guardrails]\nenabled = false\n"
        profile.write_text(text)
        box: dict[str, Any] = {}

        def serve() -> None:
            async def main() -> None:
                LOOP_THREAD.append(threading.get_ident())
                if args.lean:
                    await run_lean(up_url, work, box)
                    return
                gw = Gateway(profile, listen="127.0.0.1:0", audit_log=work / "audit.jsonl")
                box["gw"] = gw
                await gw.run(lambda g: box.setdefault("url", g.base_url))

            asyncio.run(main())

        threading.Thread(target=serve, daemon=True).start()
        deadline = time.monotonic() + 60
        while "url" not in box:
            if time.monotonic() > deadline:
                raise RuntimeError("the in-process gateway did not start")
            time.sleep(0.05)
        sess = bench.Session(box["url"] + ("/mcp" if args.lean else "/mcp/r")).initialize()
        method, params = {
            "call": ("tools/call", bench.CALL_PARAMS),
            # a 1 KB call: 1 KB of text up, echoed back down (bench/guardrails.py's)
            "call-1k": ("tools/call", {"name": "tool_0001", "arguments": {"text": TEXT_1K}}),
        }.get(args.workload, ("tools/list", {}))
        for _ in range(min(300, args.calls)):
            sess.rpc(method, params)
        ENABLED.set()
        for _ in range(args.calls):
            sess.rpc(method, params)
        ENABLED.clear()
        sess.close()
        box["gw"].shutdown()
        time.sleep(0.5)
    finally:
        up.stop()
    n = args.calls
    what = "lean master" if args.lean else "lockgate"
    what += " (no audit write)" if args.no_audit_write else ""
    what += what_guard
    print(f"{what}, {args.workload}: CPU us per request over {n} sequential requests (thread time)")
    for name, total in sorted(TOTALS.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<36} {total / n / 1000:8.1f} us   ({COUNTS[name] / n:.1f} calls/request)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
