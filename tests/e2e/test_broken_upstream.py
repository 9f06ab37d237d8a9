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

import httpx
import pytest

from tests.support.broken import Broken, broken_upstream
from tests.support.gateway import GatewayProcess, profile_text, running_gateway

MODES = ("ok", "s500", "s502", "s503", "s429", "html", "octets", "wrong_id", "huge", "huge_chunked")
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
    with broken_upstream() as up:
        profile = profile_text(
            upstreams={m: up.url(m) for m in MODES},
            routes={m: m for m in MODES},
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
