"""addons/audit.py: one hash-chained event per request, with its outcome; never a secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from lockgate.addons._flow import state
from lockgate.addons.audit import Audit
from lockgate.addons.capabilities import Capabilities
from lockgate.addons.client_auth import ClientAuth
from lockgate.addons.config import Config
from lockgate.addons.router import Router
from lockgate.audit.events import event_name
from lockgate.audit.read import read_events
from lockgate.audit.verify import verify
from lockgate.mcp.sessions import session_hash
from tests.addons.conftest import NOTES_URL, Chain, mcp_flow, running
from tests.support.gateway import profile_text

PROFILE = profile_text(
    {"notes": NOTES_URL},
    {"notes": "notes", "curated": ["notes", 'tools.deny = ["delete_*"]']},
)
TOOLS = [{"name": n, "inputSchema": {}} for n in ("list_notes", "get_note", "delete_note")]


class Env(Chain):
    def __init__(self, addons: list[Any], audit: Audit, log: Path) -> None:
        super().__init__(addons)
        self.audit = audit
        self.log = log

    def events(self) -> list[dict[str, Any]]:
        # Completion events only (`tool.call.started`: tests/e2e/test_sec_masking.py).
        return [e for e in read_events(self.log) if e.get("event") != "tool.call.started"]

    def send(
        self,
        path: str,
        body: object = None,
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> http.HTTPFlow:
        """The request side, as mitmproxy runs it: requestheaders on all, then request on all."""
        headers = {"user-agent": "claude-code/2.0", **(headers or {})}
        return self.request(mcp_flow(path, b"" if body is None else body, method, headers))

    def reply(
        self,
        f: http.HTTPFlow,
        body: object,
        status: int = 200,
        content_type: str = "application/json",
    ) -> http.HTTPFlow:
        headers = {"content-type": content_type, "mcp-session-id": "sess-1"}
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.answer(f, http.Response.make(status, b"", headers), raw)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    cfg = Config()
    audit = Audit()
    addons = [Router(cfg), ClientAuth(cfg), Capabilities(), audit]
    log = tmp_path / "audit.jsonl"
    with running(tmp_path, PROFILE, cfg, *addons, lockgate_audit_log=str(log)):
        yield Env(addons, audit, log)


def rpc(method: str, rid: int | None = 1, **params: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if rid is not None:
        msg["id"] = rid
    if params:
        msg["params"] = params
    return msg


def result(rid: int, value: object) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": value}


@pytest.mark.parametrize(
    ("method", "event"),
    [
        ("tools/call", "tool.call"),
        ("tools/list", "capability.list"),
        ("resources/templates/list", "capability.list"),
        ("initialize", "mcp.request"),
        (None, "mcp.request"),
    ],
)
def test_event_name(method: str | None, event: str) -> None:
    assert event_name(method) == event


def test_a_tool_call_is_one_event_with_its_outcome(env: Env) -> None:
    call = rpc("tools/call", 7, name="get_note", arguments={"id": "1", "password": "hunter2"})
    f = env.send("/mcp/notes", call, headers={"mcp-session-id": "sess-1"})
    env.reply(f, result(7, {"content": [{"type": "text", "text": "note one"}]}))
    [ev] = env.events()
    assert ev["event"] == "tool.call"
    assert (ev["route"], ev["upstream"], ev["method"], ev["name"], ev["id"]) == (
        "notes",
        "notes",
        "tools/call",
        "get_note",
        7,
    )
    assert ev["outcome"] == "success" and ev["status"] == 200
    # The session by its short hash: the id itself would let a reader of the log present it.
    assert ev["user"] and ev["client"] == "claude-code/2.0"
    assert ev["session"] == session_hash("sess-1") and "sess-1" not in env.log.read_text()
    assert ev["args"] == {"id": "1", "password": "[redacted]"}
    assert "note one" in json.dumps(ev["result"])
    assert ev["latency_ms"]["total"] >= 0
    assert "hunter2" not in env.log.read_text()


def test_a_tool_error_result_is_an_error_outcome(env: Env) -> None:
    f = env.send("/mcp/notes", rpc("tools/call", 1, name="get_note"))
    env.reply(f, result(1, {"content": [], "isError": True}))
    assert [ev["outcome"] for ev in env.events()] == ["error"]


def test_a_json_rpc_error_is_recorded_with_its_error(env: Env) -> None:
    f = env.send("/mcp/notes", rpc("tools/call", 1, name="get_note"))
    env.reply(f, {"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "bad id"}})
    [ev] = env.events()
    assert ev["outcome"] == "error" and ev["error"]["code"] == -32602


def test_a_list_records_the_count_the_client_saw(env: Env) -> None:
    f = env.send("/mcp/curated", rpc("tools/list", 3))
    env.reply(f, result(3, {"tools": TOOLS}))
    [ev] = env.events()
    assert ev["event"] == "capability.list"
    assert ev["count"] == 2  # after the route's filter, not the upstream's 3


def test_a_batch_is_one_event_per_request(env: Env) -> None:
    f = env.send(
        "/mcp/notes",
        [
            rpc("tools/list", 1),
            rpc("tools/call", 2, name="get_note"),
            rpc("notifications/cancelled", None, requestId=9),
        ],
    )
    env.reply(f, [result(1, {"tools": TOOLS}), result(2, {"content": []})])
    events = env.events()
    assert [(e["event"], e.get("id")) for e in events] == [
        ("mcp.message", None),
        ("capability.list", 1),
        ("tool.call", 2),
    ]
    assert events[0]["direction"] == "client"
    assert events[0]["method"] == "notifications/cancelled"


def test_a_request_without_its_answer_is_still_recorded(env: Env) -> None:
    f = env.send("/mcp/notes", [rpc("tools/list", 1), rpc("ping", 2)])
    env.reply(f, [result(1, {"tools": []})])
    assert [(e["id"], e["outcome"]) for e in env.events()] == [(1, "success"), (2, "success")]


def test_a_hidden_call_is_recorded_as_denied(env: Env) -> None:
    f = env.send("/mcp/curated", rpc("tools/call", 5, name="delete_note", arguments={"id": 1}))
    assert f.response is not None and state(f).local
    [ev] = env.events()
    assert (ev["event"], ev["name"], ev["outcome"]) == ("tool.call", "delete_note", "denied")
    assert "not available" in ev["reason"]
    assert ev["args"] == {"id": 1}


def test_an_unknown_path_is_a_gateway_event(env: Env) -> None:
    env.send("/nope", method="GET")
    [ev] = env.events()
    assert ev["event"] == "gateway.request"
    assert (ev["method"], ev["path"], ev["status"], ev["outcome"]) == (
        "GET",
        "/nope",
        404,
        "denied",
    )
    assert "route" not in ev


def test_a_get_stream_is_one_exchange_event(env: Env) -> None:
    f = env.send("/mcp/notes", method="GET", headers={"accept": "text/event-stream"})
    note = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    env.reply(f, b"data: " + json.dumps(note).encode() + b"\n\n", content_type="text/event-stream")
    events = env.events()
    assert [(e["event"], e.get("direction"), e["method"]) for e in events] == [
        ("mcp.message", "server", "notifications/tools/list_changed"),
        ("mcp.request", None, "GET"),
    ]


def test_sse_progress_and_result_are_recorded_in_order(env: Env) -> None:
    f = env.send("/mcp/notes", rpc("tools/call", 4, name="get_note"))
    progress = rpc("notifications/progress", None, progressToken=1, progress=0.5)
    body = b"".join(
        b"data: " + json.dumps(m).encode() + b"\n\n" for m in (progress, result(4, {"content": []}))
    )
    env.reply(f, body, content_type="text/event-stream")
    events = env.events()
    assert [(e["event"], e.get("progress")) for e in events] == [
        ("mcp.message", 0.5),
        ("tool.call", None),
    ]
    assert events[1]["outcome"] == "success"


def test_progress_for_an_open_call_is_folded_into_its_completion(env: Env) -> None:
    """A long task's progress is counted on its tool.call event, not recorded one by one;
    progress for a token no open request carries is still recorded as it comes."""
    call = rpc("tools/call", 7, name="get_note", _meta={"progressToken": "t-7"})
    f = env.send("/mcp/notes", call)
    mine = [rpc("notifications/progress", None, progressToken="t-7", progress=p) for p in (1, 2, 3)]
    other = rpc("notifications/progress", None, progressToken="t-8", progress=9)
    body = b"".join(
        b"data: " + json.dumps(m).encode() + b"\n\n"
        for m in (*mine[:2], other, mine[2], result(7, {"content": []}))
    )
    env.reply(f, body, content_type="text/event-stream")
    events = [e for e in env.events() if e["event"] != "tool.call.started"]
    assert [(e["event"], e.get("progress"), e.get("progress_events")) for e in events] == [
        ("mcp.message", 9, None),
        ("tool.call", 3, 3),
    ]


def test_an_upstream_failure_is_recorded(env: Env) -> None:
    f = env.send("/mcp/notes", rpc("tools/call", 1, name="get_note"))
    f.error = tflow.terr("connection refused")  # type: ignore[attr-defined]
    env.hook("error", f)
    [ev] = env.events()
    assert (ev["outcome"], ev["status"]) == ("upstream_error", 502)


def test_the_log_is_a_valid_hash_chain(env: Env) -> None:
    for i in range(3):
        f = env.send("/mcp/notes", rpc("tools/call", i, name="get_note"))
        env.reply(f, result(i, {"content": []}))
    env.send("/healthz", method="GET")
    events = list(read_events(env.log))  # each call: its started event, then its completion
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6, 7]
    env.audit.done()
    outcome = verify(env.log)
    assert outcome.ok and outcome.lines == 7


def test_listeners_see_every_record_and_a_broken_one_is_ignored(env: Env) -> None:
    seen: list[dict[str, Any]] = []

    def broken(rec: dict[str, Any]) -> None:
        raise RuntimeError("view crashed")

    env.audit.listeners += [broken, seen.append]
    f = env.send("/mcp/notes", rpc("tools/call", 1, name="get_note"))
    env.reply(f, result(1, {"content": []}))
    assert f.response is not None and f.response.status_code == 200
    assert [r["seq"] for r in seen] == [1, 2]  # started, then the completion
    assert seen[-1]["mac"] == env.events()[0]["mac"]


def test_client_credentials_are_never_written(env: Env) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    f = env.send(
        "/mcp/notes",
        rpc("tools/call", 1, name="get_note", arguments={"note": f"Bearer {token}"}),
        headers={"authorization": f"Bearer {token}", "cookie": f"s={token}"},
    )
    env.reply(f, result(1, {"content": [{"type": "text", "text": token}]}))
    assert token not in env.log.read_text()


@pytest.mark.parametrize(
    "path",
    ["/connect/notes/callback?code=SECRET-CODE&state=xyz", "/nope?access_token=SECRET-CODE"],
)
def test_query_strings_of_unrouted_paths_are_never_written(env: Env, path: str) -> None:
    """DESIGN: tokens, codes and verifiers are never written, whatever the path."""
    env.send(path, method="GET")
    [ev] = env.events()
    assert ev["path"].startswith(path.split("?", 1)[0])
    assert "SECRET-CODE" not in env.log.read_text()
