"""Broken upstreams over real HTTP (issue 12 §3): an answer the client could not read as
JSON-RPC becomes a JSON-RPC error for its request, naming the upstream.

One `lockgate up` puts one route in front of each mode of the misbehaving upstream
(tests/support/broken.py). Each test sends a `tools/list` with a distinctive id and checks the
status, that the answer is JSON with that id, that the message names the upstream, that the
upstream's body never shows, and that the upstream was asked once (no retries).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from lockgate.mcp.sse import SseParser
from tests.support.broken import Broken, broken_upstream, unconnectable
from tests.support.gateway import GatewayProcess, profile_text, running_gateway

MODES = (
    "ok",
    "s500",
    "s502",
    "s503",
    "s429",
    "html",
    "octets",
    "wrong_id",
    "huge",
    "huge_chunked",
    "dup_keys",
)
SSE_MODES = (
    "sse_ok",
    "sse_cut",
    "sse_cut_resumable",
    "sse_not_json",
    "sse_long_line",
    "sse_no_answer",
    "sse_batch",
    "sse_dup_keys",
    "sse_utf7",
)
# Each upstream's own limits (the gateway's defaults are 10, 60 and 60 seconds).
TIMED = {
    "slow_head": "timeout = 1.5",
    "sse_silent": "idle_timeout = 1",
    "sse_pings": "idle_timeout = 1",
    "sse_slow_progress": "idle_timeout = 1",
    "sse_progress_forever": "answer_timeout = 2",
    "json_trickle": "answer_timeout = 2",
}
MAX_RESPONSE = 1024 * 1024
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
RID = 4242


@dataclass
class Env:
    gw: GatewayProcess
    up: Broken
    client: httpx.Client

    def list_tools(self, mode: str) -> httpx.Response:
        body = json.dumps({"jsonrpc": "2.0", "id": RID, "method": "tools/list"})
        return self.client.post(self.gw.route_url(mode), content=body, headers=HEADERS)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with broken_upstream() as up, unconnectable() as nowhere:
        upstreams: dict[str, str | list[str]] = {m: up.url(m) for m in MODES + SSE_MODES}
        upstreams |= {m: [up.url(m), line] for m, line in TIMED.items()}
        upstreams["nowhere"] = [nowhere, "connect_timeout = 1"]
        profile = profile_text(
            upstreams=upstreams,
            routes={m: m for m in upstreams},
            extra=f"[gateway]\nmax_response_bytes = {MAX_RESPONSE}\n",
        )
        with (
            running_gateway(profile, tmp_path_factory.mktemp("broken")) as gw,
            httpx.Client(timeout=10) as client,
        ):
            yield Env(gw, up, client)


def error_of(resp: httpx.Response, mode: str) -> dict[str, object]:
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert body["id"] == RID, body
    err = body["error"]
    assert f"Upstream {mode!r}" in err["message"], err
    assert err["data"]["upstream"] == mode
    return err


def test_a_healthy_answer_passes(env: Env) -> None:
    resp = env.list_tools("ok")
    assert resp.status_code == 200 and resp.json() == {
        "jsonrpc": "2.0",
        "id": RID,
        "result": {"tools": []},
    }


@pytest.mark.parametrize(("mode", "status", "code"), [("s500", 502, 500), ("s502", 502, 502)])
def test_a_server_error_in_text_becomes_a_json_rpc_error(
    env: Env, mode: str, status: int, code: int
) -> None:
    before = len(env.up.seen)
    resp = env.list_tools(mode)
    assert resp.status_code == status
    err = error_of(resp, mode)
    assert f"answered {code}" in err["message"] and err["data"]["status"] == code
    assert "Internal Server Error" not in resp.text.split("answered")[0]
    assert "Bad Gateway" not in json.dumps(err["data"])
    assert len(env.up.seen) == before + 1  # asked once: no retry


@pytest.mark.parametrize(("mode", "status", "after"), [("s429", 429, "12"), ("s503", 503, "7")])
def test_retry_after_is_passed_on(env: Env, mode: str, status: int, after: str) -> None:
    resp = env.list_tools(mode)
    assert resp.status_code == status
    assert resp.headers["retry-after"] == after
    err = error_of(resp, mode)
    assert err["data"]["retryAfter"] == after
    assert "try again later" in err["message"]
    assert "slow down" not in resp.text and "busy" not in resp.text


@pytest.mark.parametrize(
    ("mode", "kind"), [("html", "text/html"), ("octets", "application/octet-stream")]
)
def test_an_answer_that_is_not_mcp_is_refused(env: Env, mode: str, kind: str) -> None:
    resp = env.list_tools(mode)
    assert resp.status_code == 502
    err = error_of(resp, mode)
    assert kind in err["message"] and "MCP endpoint" in err["message"]
    assert "Sign in" not in resp.text and "<form" not in resp.text


def _unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    assert len(set(keys)) == len(keys), f"duplicate keys reached the client: {keys}"
    return dict(pairs)


@pytest.mark.parametrize("mode", ["dup_keys", "sse_dup_keys"])
def test_an_answer_with_a_duplicate_key_goes_on_as_the_gateway_read_it(env: Env, mode: str) -> None:
    """A client that keeps the first of two "result" keys would have read the poisoned list
    the gateway never scanned: it gets the one reading the gateway checked, re-encoded."""
    resp = env.list_tools(mode)
    assert resp.status_code == 200
    if mode.startswith("sse"):
        events = [e for e in SseParser().feed(resp.content) if e.data]
        (data,) = [e.data for e in events]
    else:
        data = resp.text
    body = json.loads(data, object_pairs_hook=_unique)
    assert body == {"jsonrpc": "2.0", "id": RID, "result": {"tools": []}}
    assert "IMPORTANT" not in resp.text


def test_an_event_stream_labelled_with_another_charset_is_refused(env: Env) -> None:
    """The rewriter reads events as UTF-8; a client that decoded them as labelled would read
    other text than the gateway filtered. The spaced spelling passed the check before."""
    resp = env.list_tools("sse_utf7")
    assert resp.status_code == 502
    err = error_of(resp, "sse_utf7")
    assert "'utf-7', not UTF-8" in err["message"]


def test_the_gateway_serves_on_after_each_failure(env: Env) -> None:
    for mode in MODES[1:]:
        env.list_tools(mode)
    assert env.list_tools("ok").status_code == 200


def test_an_answer_for_another_id_becomes_an_error_for_the_clients_id(env: Env) -> None:
    resp = env.list_tools("wrong_id")
    assert resp.status_code == 502
    err = error_of(resp, "wrong_id")
    assert "'not-4242'" in err["message"] and "4242" in err["message"]


@pytest.mark.parametrize("mode", ["huge", "huge_chunked"])
def test_an_answer_over_max_response_bytes_is_cut_and_told(env: Env, mode: str) -> None:
    t0 = time.monotonic()
    resp = env.list_tools(mode)
    assert time.monotonic() - t0 < 5
    assert resp.status_code == 502
    assert len(resp.content) < 2000  # the 20 MiB never reach the client
    body = resp.json()
    assert f"Upstream {mode!r}" in body["error"]["message"]
    assert f"more than {MAX_RESPONSE} bytes" in body["error"]["message"]
    assert "max_response_bytes" in body["error"]["message"]


# --- timeouts: connect, first byte, an idle stream -------------------------------------------


def test_an_upstream_that_cannot_be_connected_to_is_a_504_after_its_connect_timeout(
    env: Env,
) -> None:
    t0 = time.monotonic()
    resp = env.list_tools("nowhere")
    assert time.monotonic() - t0 < 8  # its connect_timeout is 1 s; the default is 10
    assert resp.status_code == 504
    err = error_of(resp, "nowhere")
    assert "could not be connected to within 1 second;" in err["message"]
    assert "connect_timeout" in err["message"]


def test_a_batch_to_an_upstream_that_fails_gets_an_error_for_each_id(env: Env) -> None:
    """The exchange fails (here: no connection within 1 s): every request of the batch gets
    the failure for its own id, and a member the gateway refused keeps its own error."""
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": ["array"]},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
    ]
    resp = env.client.post(env.gw.route_url("nowhere"), content=json.dumps(batch), headers=HEADERS)
    assert resp.status_code == 504
    body = resp.json()
    assert [(m["id"], m["error"]["code"]) for m in body] == [(1, -32603), (2, -32602), (3, -32603)]
    assert "could not be connected to within 1 second" in body[0]["error"]["message"]


def test_an_upstream_slow_to_answer_is_a_504_after_its_timeout(env: Env) -> None:
    before = len(env.up.seen)
    t0 = time.monotonic()
    resp = env.list_tools("slow_head")
    assert 1.4 < time.monotonic() - t0 < 10
    assert resp.status_code == 504
    err = error_of(resp, "slow_head")
    assert "did not answer within 1.5 seconds" in err["message"]
    assert len(env.up.seen) == before + 1


# --- event streams ------------------------------------------------------------------------------


def stream_of(env: Env, mode: str) -> tuple[httpx.Response, list[dict[str, object]], float]:
    """The route's answer to one `tools/list`, its events' messages, and how long it took."""
    t0 = time.monotonic()
    resp = env.list_tools(mode)
    took = time.monotonic() - t0
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = SseParser().feed(resp.content)
    return resp, [json.loads(ev.data) for ev in events if ev.data], took


def the_error(messages: list[dict[str, object]], mode: str) -> str:
    """The one answer among the messages: an error for the client's id naming the upstream."""
    answers = [m for m in messages if "id" in m]
    assert len(answers) == 1 and answers[0]["id"] == RID, messages
    err = answers[0]["error"]
    assert isinstance(err, dict)
    assert err["message"].startswith(f"Upstream {mode!r} (127.0.0.1:"), err
    assert err["data"] == {"upstream": mode}
    return str(err["message"])


def test_a_healthy_stream_passes(env: Env) -> None:
    _, messages, _ = stream_of(env, "sse_ok")
    assert [m.get("method") for m in messages] == ["notifications/progress", None]
    assert messages[1] == {"jsonrpc": "2.0", "id": RID, "result": {"tools": []}}


def test_a_stream_cut_before_its_answer_ends_with_an_error_for_the_request(env: Env) -> None:
    _, messages, took = stream_of(env, "sse_cut")
    assert messages[0]["method"] == "notifications/progress"  # what came before still did
    assert "closed its event stream before answering; try again." in the_error(messages, "sse_cut")
    assert took < 5
    assert env.list_tools("ok").status_code == 200  # the client's connection is still good


def test_a_resumable_stream_that_is_cut_is_left_for_the_client_to_resume(env: Env) -> None:
    """Its events carry ids: the client resumes with Last-Event-ID, so no error is made up."""
    with pytest.raises(httpx.RemoteProtocolError):
        env.list_tools("sse_cut_resumable")


def test_a_silent_stream_ends_after_its_idle_timeout(env: Env) -> None:
    _, messages, took = stream_of(env, "sse_silent")
    message = the_error(messages, "sse_silent")
    assert "sent nothing on its event stream for 1 second while a request waited" in message
    assert "idle_timeout" in message
    assert 0.9 < took < 10  # the upstream itself would stay silent for 30 s


def test_a_stream_of_only_pings_ends_after_its_idle_timeout(env: Env) -> None:
    """Pings, keep-alives, log messages and another token's progress, forever: none is
    progress for the request, so the client gets the idle error instead of waiting forever."""
    _, messages, took = stream_of(env, "sse_pings")
    message = the_error([m for m in messages if m.get("method") != "ping"], "sse_pings")
    assert "sent nothing for the waiting request for 1 second" in message
    assert "pings, keep-alives" in message and "idle_timeout" in message
    assert any(m.get("method") == "ping" for m in messages)  # they were passed on meanwhile
    assert 0.9 < took < 10  # the upstream itself would go on for 30 s


def _list_with_progress(env: Env, mode: str, token: str) -> tuple[list[dict[str, Any]], float]:
    """A tools/list with a progressToken to broken `mode`: its stream's messages, and how long
    the answer took."""
    params = {"_meta": {"progressToken": token}}
    body = json.dumps({"jsonrpc": "2.0", "id": RID, "method": "tools/list", "params": params})
    t0 = time.monotonic()
    resp = env.client.post(env.gw.route_url(mode), content=body, headers=HEADERS)
    took = time.monotonic() - t0
    return [json.loads(ev.data) for ev in SseParser().feed(resp.content) if ev.data], took


def test_progress_for_the_request_keeps_a_stream_alive_past_its_idle_timeout(env: Env) -> None:
    messages, took = _list_with_progress(env, "sse_slow_progress", "tok-1")
    answers = [m for m in messages if m.get("id") == RID]
    assert answers == [{"jsonrpc": "2.0", "id": RID, "result": {"tools": []}}], messages
    assert took > 2  # longer than the 1 s idle_timeout: each progress event moved it on


def test_a_stream_that_reports_progress_forever_ends_at_its_answer_timeout(env: Env) -> None:
    messages, took = _list_with_progress(env, "sse_progress_forever", "tok-2")
    message = the_error(messages, "sse_progress_forever")
    assert "did not answer within 2 seconds on its event stream" in message
    assert "answer_timeout" in message
    assert sum(m.get("method") == "notifications/progress" for m in messages) >= 3
    assert 1.9 < took < 10  # the upstream itself would go on for 30 s


def test_a_json_answer_that_trickles_forever_ends_at_its_answer_timeout(env: Env) -> None:
    """Headers at once, then a byte a quarter second: no idle timer fires, the whole-answer
    deadline does, and the client gets an error for its id instead of the partial body."""
    t0 = time.monotonic()
    resp = env.list_tools("json_trickle")
    took = time.monotonic() - t0
    assert resp.status_code == 504, resp.text
    err = error_of(resp, "json_trickle")
    assert "did not finish its answer within 2 seconds" in err["message"]
    assert "answer_timeout" in err["message"] and '"pad"' not in resp.text
    assert 1.9 < took < 10  # the upstream itself would go on for 30 s
    assert env.list_tools("ok").status_code == 200


def test_an_event_that_is_not_json_ends_the_stream(env: Env) -> None:
    resp, messages, _ = stream_of(env, "sse_not_json")
    assert "sent an event that is not JSON" in the_error(messages, "sse_not_json")
    assert b"sign in" not in resp.content  # nor the upstream's answer after it


def test_an_event_over_the_limit_ends_the_stream_at_the_limit(env: Env) -> None:
    resp, messages, took = stream_of(env, "sse_long_line")
    assert f"sent an event larger than {MAX_RESPONSE} bytes" in the_error(messages, "sse_long_line")
    assert len(resp.content) < 2000 and took < 10  # the 20 MiB line is neither held nor sent


def test_a_stream_that_ends_without_answering_ends_with_an_error_for_the_request(
    env: Env,
) -> None:
    """Its only answer is for another id: the client still gets one for its own."""
    _, messages, _ = stream_of(env, "sse_no_answer")
    answers = [m for m in messages if m.get("id") == RID]
    assert len(answers) == 1
    assert "ended its event stream without answering; try again." in the_error(
        [m for m in messages if m.get("id") != f"not-{RID}"], "sse_no_answer"
    )


def test_a_batch_answered_on_a_stream_gets_the_refused_members_errors_first(env: Env) -> None:
    """On 2025-03-26 (no MCP-Protocol-Version: the transport's default) a refused member is
    answered alone: its error goes out as the stream's first event, the upstream's events
    for the others follow; every id is answered once."""
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": ["array"]},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
    ]
    before = len(env.up.seen)
    resp = env.client.post(
        env.gw.route_url("sse_batch"), content=json.dumps(batch), headers=HEADERS
    )
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event")
    messages = [json.loads(ev.data) for ev in SseParser().feed(resp.content) if ev.data]
    assert [m["id"] for m in messages] == [2, 3, 1]
    assert messages[0]["error"]["code"] == -32602
    assert [json.loads(s.body) for s in env.up.seen[before:]] == [[batch[0], batch[2]]]
