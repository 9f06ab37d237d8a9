"""Ill-formed JSON-RPC, directly and through lockgate: what reaches the upstream, what leaks.

    uv run python bench/bad_requests.py          # the table
    uv run python bench/bad_requests.py --list   # also each case and what happened

Issue 12 §2 measured on the main of its day: of a few hundred bad requests about 140 reached
the upstream (the official `mcp` SDK server), and in 15 the upstream's internal validation
text came back to the client verbatim. This program re-does that measurement: it builds a few
hundred ill-formed requests (a body that is not JSON, a broken envelope, params of the wrong
shape or type, `tools/call` arguments that break the tool's `inputSchema`, batches where the
revision has none, bad `_meta`), sends each on an initialized session to the demo notes server
(the SDK, JSON mode) directly and through `lockgate up`, and counts per path:

- reached: the upstream received the POST (bench/upstream.py `--count`, read before and after);
- leaked: the answer holds the upstream's internals (pydantic's text, a traceback, a frame);
- not JSON-RPC: the answer is not a JSON-RPC error (for the request's id when it had one).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402  (bench/run.py: processes and the raw client)

LEAKS = re.compile(
    r"validation error|pydantic|errors\.pydantic\.dev|Input should be|Field required|"
    r"Traceback|File \"|line \d+, in |site-packages",
    re.IGNORECASE,
)
LATER = "2025-11-25"  # a revision without batches


def _rpc(method: Any, params: Any = None, rid: Any = 1, **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    msg.update(extra)
    return msg


def cases() -> Iterator[tuple[str, bytes, Any]]:
    """(name, body, the id the client can expect back: None when it has none)."""
    for rid in (7, "s-7"):
        # Not JSON at all, or not one JSON text.
        for name, body in [
            ("truncated", b'{"jsonrpc":"2.0","id":1,"method":"tools/list"'),
            ("trailing", b'{"jsonrpc":"2.0","id":1,"method":"tools/list"} x'),
            ("nan", b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":NaN}}'),
            ("bad utf-8", b'{"jsonrpc":"2.0","id":1,"method":"tools/list","x":"\xff"}'),
            ("empty", b""),
            ("nested", b"[" * 5000 + b"]" * 5000),
            ("duplicate keys", b'{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/list"}'),
        ]:
            yield f"not json: {name}", body, None
        # A broken envelope.
        for name, msg in [
            ("no jsonrpc", {"id": rid, "method": "tools/list"}),
            ("jsonrpc 1.0", {"jsonrpc": "1.0", "id": rid, "method": "tools/list"}),
            ("jsonrpc number", {"jsonrpc": 2.0, "id": rid, "method": "tools/list"}),
            ("method number", _rpc(5, rid=rid)),
            ("method null", _rpc(None, rid=rid)),
            ("method empty", _rpc("", rid=rid)),
            ("id object", _rpc("tools/list", rid={"a": 1})),
            ("id list", _rpc("tools/list", rid=[1])),
            ("id float", _rpc("tools/list", rid=1.5)),
            ("id bool", _rpc("tools/list", rid=True)),
            ("id null", _rpc("tools/list", rid=None)),
            ("result and method", _rpc("tools/list", rid=rid, result={})),
            ("a number", 42),
            ("a string", "tools/list"),
            ("empty object", {}),
        ]:
            expect = rid if isinstance(msg, dict) and msg.get("id") == rid else None
            yield f"envelope: {name}", json.dumps(msg).encode(), expect
        # Params of the wrong shape for each method that takes some.
        methods = [
            "tools/call",
            "tools/list",
            "resources/read",
            "prompts/get",
            "resources/list",
            "prompts/list",
            "completion/complete",
            "ping",
        ]
        for method in methods:
            for name, params in [("array", [1, 2]), ("string", "x"), ("number", 3), ("true", True)]:
                yield (
                    f"params {name}: {method}",
                    json.dumps(_rpc(method, params, rid)).encode(),
                    rid,
                )
        # Known params of the wrong type.
        typed = [
            ("tools/call", {"name": 5, "arguments": {}}),
            ("tools/call", {"name": None}),
            ("tools/call", {"arguments": {"id": "1"}}),
            ("tools/call", {"name": ["get_note"], "arguments": {}}),
            ("tools/call", {"name": "get_note", "arguments": "id=1"}),
            ("tools/call", {"name": "get_note", "arguments": [1]}),
            ("tools/call", {"name": "get_note", "arguments": 7}),
            ("tools/call", {"name": "get_note", "arguments": {}, "_meta": "x"}),
            ("tools/call", {"name": "get_note", "arguments": {}, "_meta": [1]}),
            ("resources/read", {"uri": 5}),
            ("resources/read", {}),
            ("resources/read", {"uri": None}),
            ("resources/read", {"uri": ["notes://index"]}),
            ("prompts/get", {"name": 3}),
            ("prompts/get", {}),
            ("prompts/get", {"name": "note_prompt", "arguments": "topic"}),
            ("prompts/get", {"name": "note_prompt", "arguments": {"topic": 5}}),
            ("completion/complete", {"ref": "x", "argument": {}}),
            ("completion/complete", {"ref": {"type": "ref/prompt"}, "argument": 5}),
            ("resources/list", {"cursor": 5}),
            ("tools/list", {"cursor": {"a": 1}}),
            ("prompts/list", {"cursor": []}),
            ("logging/setLevel", {"level": 5}),
            ("resources/subscribe", {"uri": 9}),
        ]
        for method, params in typed:
            yield (
                f"types: {method} {json.dumps(params)[:40]}",
                json.dumps(_rpc(method, params, rid)).encode(),
                rid,
            )
        # tools/call arguments against the listed inputSchema.
        schema_cases = [
            ("get_note", {}),
            ("get_note", {"id": 1}),
            ("get_note", {"id": None}),
            ("get_note", {"id": ["1"]}),
            ("get_note", {"id": {"x": 1}}),
            ("add_note", {"title": "t"}),
            ("add_note", {"title": 1, "body": "b"}),
            ("add_note", {"title": "t", "body": False}),
            ("add_note", {}),
            ("search_notes", {"query": 5}),
            ("search_notes", {}),
            ("slow_count", {"n": "ten"}),
            ("slow_count", {"n": -1}),
            ("slow_count", {"n": 10**6}),
            ("slow_count", {"n": 1.5}),
            ("slow_count", {"n": 1, "delay_ms": "x"}),
            ("slow_count", {}),
            ("delete_note", {"id": 3}),
            ("delete_note", {}),
        ]
        for tool, arguments in schema_cases:
            yield (
                f"arguments: {tool} {json.dumps(arguments)}",
                json.dumps(
                    _rpc("tools/call", {"name": tool, "arguments": arguments}, rid)
                ).encode(),
                rid,
            )
    # Batches (the session speaks a revision without them) and bad members.
    for name, batch in [
        ("two lists", [_rpc("tools/list", rid=1), _rpc("prompts/list", rid=2)]),
        ("one", [_rpc("tools/list", rid=3)]),
        ("empty", []),
        ("with initialize", [_rpc("initialize", {}, rid=4)]),
        ("bad member", [_rpc("tools/list", rid=5), 7]),
        ("array params", [_rpc("tools/call", [1], rid=6)]),
    ]:
        yield f"batch: {name}", json.dumps(batch).encode(), None


def judge(status: int, body: bytes, expect: Any) -> tuple[bool, bool]:
    """(leaked, not a JSON-RPC error for the expected id)."""
    text = body.decode("utf-8", "replace")
    leaked = LEAKS.search(text) is not None
    try:
        obj = json.loads(text)
    except ValueError:
        if "data:" in text:  # an SSE answer: its first message
            lines = [ln[5:].strip() for ln in text.splitlines() if ln.startswith("data:")]
            try:
                obj = json.loads(lines[0]) if lines else None
            except ValueError:
                obj = None
        else:
            obj = None
    members = obj if isinstance(obj, list) else [obj]
    is_error = bool(members) and all(
        isinstance(m, dict) and isinstance(m.get("error"), dict) for m in members
    )
    if is_error and expect is not None and not isinstance(obj, list):
        is_error = obj.get("id") == expect
    return leaked, not is_error


def count(up_base: str) -> int:
    with urllib.request.urlopen(f"{up_base}/count", timeout=10) as resp:
        return int(resp.read())


def measure(url: str, up_base: str, listing: bool) -> dict[str, int]:
    sess = run.Session(url).initialize()
    sess.rpc("tools/list", {})  # the gateway checks arguments against the schema it listed
    totals = {"cases": 0, "reached": 0, "leaked": 0, "not_jsonrpc": 0}
    for name, body, expect in cases():
        before = count(up_base)
        resp = sess._send(body)
        data = resp.read()
        reached = count(up_base) > before
        leaked, not_rpc = judge(resp.status, data, expect)
        totals["cases"] += 1
        totals["reached"] += reached
        totals["leaked"] += leaked
        totals["not_jsonrpc"] += not_rpc
        if listing:
            flags = "".join(f for f, on in (("R", reached), ("L", leaked), ("X", not_rpc)) if on)
            print(f"  {flags:3} {resp.status} {name}")
    sess.close()
    return totals


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--list", action="store_true", help="print each case: R reached, L leaked")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lockgate-bench-bad-"))
    try:
        port = run.free_port()
        up = run.spawn(
            "upstream",
            [
                sys.executable,
                str(HERE / "upstream.py"),
                "notes-json",
                "--port",
                str(port),
                "--count",
            ],
            pattern=r"listening on (http://\S+)",
        )
        up_url = run.wait_url(up)
        up_base = up_url.removesuffix("/mcp")
        profile = run.lockgate_profile({"notes": up_url}, {"notes": ("notes", "")})
        lg = run.start_lockgate("lockgate", profile, work / "lockgate")
        paths = {"direct": up_url, "lockgate": f"{run.wait_url(lg)}/mcp/notes"}
        results = {}
        for name, url in paths.items():
            if args.list:
                print(name)
            results[name] = measure(url, up_base, args.list)
        n = results["direct"]["cases"]
        print(f"{n} ill-formed requests per path (demo notes server, mcp SDK, JSON mode)")
        print(f"{'path':10} {'reached upstream':>17} {'internals leaked':>17} {'not JSON-RPC':>13}")
        for name, t in results.items():
            print(f"{name:10} {t['reached']:>17} {t['leaked']:>17} {t['not_jsonrpc']:>13}")
        print(json.dumps(results))
        return 0
    finally:
        for p in run.RUNNING:
            p.stop()


if __name__ == "__main__":
    raise SystemExit(main())
