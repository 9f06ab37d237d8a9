"""addons/session_binding.py in the pipeline (kind "none"): sessions learned from the upstream's
answer, bound to their route, forgotten on DELETE and on the upstream's 404, refused with 404
and a `session.refused` event that names the session by its hash only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from lockgate.addons.audit import Audit
from lockgate.addons.capabilities import Capabilities
from lockgate.addons.client_auth import ClientAuth
from lockgate.addons.config import Config
from lockgate.addons.router import Router
from lockgate.addons.session_binding import SessionBinding
from lockgate.mcp.sessions import Owner, session_hash
from tests.addons.conftest import running
from tests.addons.test_audit import PROFILE, Env, result, rpc

INIT = rpc("initialize", 1, protocolVersion="2025-11-25", capabilities={})


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Env, SessionBinding]]:
    cfg = Config()
    audit = Audit()
    binding = SessionBinding()
    addons = [Router(cfg), ClientAuth(cfg), binding, Capabilities(), audit]
    log = tmp_path / "audit.jsonl"
    with running(tmp_path, PROFILE, cfg, *addons, lockgate_audit_log=str(log)):
        yield Env(addons, audit, log), binding


def answer(env: Env, f: http.HTTPFlow, status: int = 200, sid: str | None = None) -> None:
    """The upstream's answer (JSON), with `sid` as its Mcp-Session-Id."""
    headers = {"content-type": "application/json"}
    if sid is not None:
        headers["mcp-session-id"] = sid
    body = b'{"jsonrpc": "2.0", "id": 1, "result": {}}'
    env.answer(f, http.Response.make(status, b"", headers), body)


def refused(f: http.HTTPFlow) -> bool:
    return f.response is not None and f.response.status_code == 404


def test_learned_from_initialize_and_bound_to_its_route(env: tuple[Env, SessionBinding]) -> None:
    e, binding = env
    answer(e, e.send("/mcp/notes", INIT), sid="sess-1")
    assert len(binding.table) == 1
    f = e.send("/mcp/notes", rpc("tools/list", 2), headers={"mcp-session-id": "sess-1"})
    assert f.response is None  # goes upstream
    e.reply(f, result(2, {"tools": []}))
    other = e.send("/mcp/curated", rpc("tools/list", 3), headers={"mcp-session-id": "sess-1"})
    assert refused(other)
    [event] = [ev for ev in e.events() if ev["event"] == "session.refused"]
    assert event["route"] == "curated" and event["reason"] == "other_route"
    assert event["session"] == session_hash("sess-1") and event["outcome"] == "denied"
    assert "sess-1" not in e.log.read_text()


def test_an_unknown_session_id_is_refused_and_none_is_fine(
    env: tuple[Env, SessionBinding],
) -> None:
    e, _ = env
    assert refused(e.send("/mcp/notes", rpc("ping", 1), headers={"mcp-session-id": "nope"}))
    assert e.send("/mcp/notes", rpc("ping", 2)).response is None
    reasons = [ev["reason"] for ev in e.events() if ev["event"] == "session.refused"]
    assert reasons == ["unknown"]


def test_delete_and_an_upstream_404_forget_the_session(env: tuple[Env, SessionBinding]) -> None:
    e, binding = env
    answer(e, e.send("/mcp/notes", INIT), sid="a")
    answer(e, e.send("/mcp/notes", INIT), sid="b")
    answer(e, e.send("/mcp/notes", INIT), sid="c")
    assert len(binding.table) == 3
    answer(e, e.send("/mcp/notes", method="DELETE", headers={"mcp-session-id": "a"}))
    answer(e, e.send("/mcp/notes", rpc("ping", 2), headers={"mcp-session-id": "b"}), status=404)
    # A DELETE the upstream does not allow (405) leaves the session alive.
    answer(e, e.send("/mcp/notes", method="DELETE", headers={"mcp-session-id": "c"}), status=405)
    assert len(binding.table) == 1
    assert refused(e.send("/mcp/notes", rpc("ping", 3), headers={"mcp-session-id": "a"}))
    assert refused(e.send("/mcp/notes", rpc("ping", 4), headers={"mcp-session-id": "b"}))
    assert e.send("/mcp/notes", rpc("ping", 5), headers={"mcp-session-id": "c"}).response is None


def test_several_session_headers_are_refused(env: tuple[Env, SessionBinding]) -> None:
    """Which of two Mcp-Session-Id headers the upstream reads is not the gateway's guess."""
    e, _ = env
    answer(e, e.send("/mcp/notes", INIT), sid="sess-1")
    f = tflow.tflow()
    f.request.method = "POST"
    f.request.path = "/mcp/notes"
    f.request.headers.add("mcp-session-id", "sess-1")
    f.request.headers.add("mcp-session-id", "other")
    f.request.content = b'{"jsonrpc": "2.0", "id": 9, "method": "ping"}'
    e.hook("requestheaders", f)
    assert refused(f)


def test_an_upstream_reusing_a_held_session_id_is_refused(env: tuple[Env, SessionBinding]) -> None:
    e, binding = env
    binding.table.bind("sess-1", Owner("someone", None, "curated"))
    f = e.send("/mcp/notes", INIT)
    f.response = http.Response.make(200, b"", {"mcp-session-id": "sess-1"})
    e.hook("responseheaders", f)
    assert f.response.status_code == 502
