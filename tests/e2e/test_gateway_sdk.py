"""The demo upstream through the gateway, driven by the official SDK client and by raw HTTP.

Why it exists: `test_upstreams_direct.py` pins down what each transport shape of the demo
upstream does with no gateway; this file runs the same scenarios through `lockgate up` (one
route per shape, no filters) and expects the same answers. On top of that it checks what only a
gateway can break: progress still streams (not buffered), the server-to-client requests of
sampling and elicitation find their way back, `Mcp-Session-Id`, DELETE, GET streams and
status codes pass unchanged, and each call leaves a verifiable audit event.

The four upstreams and the one gateway in front of them are shared by the whole module, so
the file stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from lockgate.audit.verify import VerifyResult, verify
from lockgate.mcp.sessions import session_hash
from tests.support.demo_mcp import (
    DEMO_TOOLS,
    SHAPES,
    DemoExercises,
    Shape,
    full_client,
)
from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.mcp_http import messages_of, open_session, rpc, session_headers
from tests.support.process import wait_until
from tests.support.upstreams import sdk_upstream

STATEFUL_ONLY = "a stateless upstream issues no Mcp-Session-Id"


@dataclass(frozen=True)
class Setup(Shape):
    """One shape of the demo upstream (`url`: the gateway route in front of it)."""

    upstream_url: str
    gw: GatewayProcess
    route: str


def shape_name(json_response: bool, stateless: bool) -> str:
    return f"{'json' if json_response else 'sse'}-{'stateless' if stateless else 'stateful'}"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, dict[str, str]]]:
    """Every shape of the demo upstream, each behind its own route of one gateway.

    One gateway for the module: `lockgate up` takes seconds to start on a busy machine.
    """
    with ExitStack() as stack:
        urls = {
            shape_name(j, s): stack.enter_context(sdk_upstream(json_response=j, stateless=s))
            for j in (False, True)
            for s in (False, True)
        }
        profile = profile_text(upstreams=urls, routes={name: name for name in urls})
        gw = stack.enter_context(running_gateway(profile, tmp_path_factory.mktemp("gateway")))
        yield gw, urls


@pytest.fixture(scope="module", params=SHAPES)
def setup(request: pytest.FixtureRequest, stack: tuple[GatewayProcess, dict[str, str]]) -> Setup:
    json_response, stateless = request.param
    gw, urls = stack
    name = shape_name(json_response, stateless)
    return Setup(gw.route_url(name), json_response, stateless, urls[name], gw, name)


# --- the SDK client through the gateway ---------------------------------------------------


class TestThroughTheGateway(DemoExercises):
    """Every exercise through the gateway route in front of each shape."""

    note_title = "via gateway"
    progress_delay_ms = 80

    @pytest.fixture
    def shape(self, setup: Setup) -> Shape:
        return setup

    def after_sampling(self, shape: Shape, mode: str) -> None:
        if mode != "legacy":
            return
        assert isinstance(shape, Setup)
        # The server's request rode the POST's stream out; the client's answer came back in.
        events = shape.gw.wait_for_events(
            lambda evs: any(
                e.get("direction") == "client" and e.get("method") == "response" for e in evs
            )
        )
        methods = {(e.get("direction"), e.get("method")) for e in events}
        assert ("server", "sampling/createMessage") in methods
        assert ("client", "response") in methods


# --- sessions, DELETE and GET over raw HTTP -------------------------------------------------


def test_session_id_is_the_upstreams(setup: Setup) -> None:
    with httpx.Client(timeout=10) as client:
        sid = open_session(client, setup.url)
        if setup.stateless:
            assert sid is None, "the gateway invented a session the upstream never issued"
            return
        assert sid
        # The id works directly on the upstream: the upstream issued it, the gateway kept it.
        direct = client.post(
            setup.upstream_url, json=rpc("tools/list", rid=2), headers=session_headers(sid)
        )
        assert direct.status_code == 200
        assert {t["name"] for t in messages_of(direct)[0]["result"]["tools"]} == DEMO_TOOLS
        # A session the upstream opened directly, behind the gateway's back, is unknown to
        # the gateway: it vouches only for sessions it saw opened (issue 9, item 2).
        direct_sid = open_session(client, setup.upstream_url)
        via = client.post(
            setup.url, json=rpc("tools/list", rid=3), headers=session_headers(direct_sid)
        )
        assert via.status_code == 404, via.text
        assert "start a new session" in via.json()["error"]["message"]


def test_delete_passes_through_and_the_dead_session_gets_the_upstreams_404(setup: Setup) -> None:
    with httpx.Client(timeout=10) as client:
        if setup.stateless:
            # Nothing to delete; a session id the gateway never saw opened is unknown to it,
            # and the upstream is not asked (issue 9, item 2).
            headers = session_headers("not-a-session")
            direct = client.delete(setup.upstream_url, headers=headers)
            via = client.delete(setup.url, headers=headers)
            assert direct.status_code >= 400
            assert via.status_code == 404
            assert "start a new session" in via.json()["error"]["message"]
            return
        sid = open_session(client, setup.url)
        assert sid
        headers = session_headers(sid)
        assert client.post(setup.url, json=rpc("tools/list", rid=2), headers=headers).is_success

        deleted = client.delete(setup.url, headers=headers)
        assert deleted.status_code == 200, deleted.text

        via = client.post(setup.url, json=rpc("tools/list", rid=3), headers=headers)
        direct = client.post(setup.upstream_url, json=rpc("tools/list", rid=3), headers=headers)
        assert direct.status_code == 404  # the upstream really dropped it: DELETE reached it
        # The gateway forgot the session with the DELETE: its own 404, a JSON-RPC error.
        assert via.status_code == 404
        assert via.headers.get("content-type") == direct.headers.get("content-type")
        assert "start a new session" in via.json()["error"]["message"]

    # The audit names the session by its short hash, never by the id itself.
    hashed = session_hash(sid)
    events = setup.gw.wait_for_events(
        lambda evs: any(e.get("method") == "DELETE" and e.get("session") == hashed for e in evs)
    )
    [delete_event] = [
        e for e in events if e.get("method") == "DELETE" and e.get("session") == hashed
    ]
    assert delete_event["status"] == 200
    assert delete_event["outcome"] == "success"


def _get_stream(client: httpx.Client, url: str, sid: str | None) -> tuple[int, str, bytes]:
    """Open a GET stream and close it once the headers are in: (status, content-type, body)."""
    headers = session_headers(sid) | {"Accept": "text/event-stream"}
    with client.stream("GET", url, headers=headers) as resp:
        ctype = resp.headers.get("content-type", "")
        body = b"" if ctype.startswith("text/event-stream") else resp.read()
        return resp.status_code, ctype, body


def test_get_stream_opens_like_it_does_directly(setup: Setup) -> None:
    with httpx.Client(timeout=httpx.Timeout(10, read=5)) as client:
        # One GET stream per session: the gateway and the direct probe each get their own.
        via_sid = open_session(client, setup.url)
        direct_sid = open_session(client, setup.upstream_url)
        t0 = time.monotonic()
        via = _get_stream(client, setup.url, via_sid)
        opened_in = time.monotonic() - t0
        direct = _get_stream(client, setup.upstream_url, direct_sid)

    assert via == direct
    if not setup.stateless:
        assert via[0] == 200
        assert via[1].startswith("text/event-stream")
        # The headers came while the stream stays open: not held back until it ends.
        assert opened_in < 3


# --- audit ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_tool_call_is_audited_with_latency_and_the_log_verifies(setup: Setup) -> None:
    marker = f"audit-{time.monotonic_ns()}"
    async with full_client(setup.url, "legacy") as client:
        result = await client.call_tool("search_notes", {"query": marker})
        assert not result.is_error

    def mine(e: dict[str, Any]) -> bool:
        return e.get("event") == "tool.call" and (e.get("args") or {}).get("query") == marker

    [event] = setup.gw.matching_events(mine)
    assert event["name"] == "search_notes"
    assert event["method"] == "tools/call"
    assert event["route"] == setup.route and event["upstream"] == setup.route
    assert event["outcome"] == "success"
    assert event["status"] == 200
    latency = event["latency_ms"]
    assert isinstance(latency, dict)
    assert latency["total"] > 0
    assert 0 <= latency["upstream"] <= latency["total"]
    if not setup.stateless:
        assert event["session"]

    # The gateway may be appending a line for another exchange while we read: a torn last
    # line is retried, anything else is a broken chain.
    def settled() -> VerifyResult | None:
        checked = verify(setup.gw.audit_path)
        torn = (checked.reason or "").startswith("truncated last line")
        return None if torn and not checked.ok else checked

    checked = wait_until(settled, "a whole last line in the audit log", timeout=1.0)
    assert checked.ok, checked
    assert checked.lines >= event["seq"]
