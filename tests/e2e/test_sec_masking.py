"""Secrets stay out of the audit log and `watch` (issue 9, items 10 and 11).

Why it exists: tool arguments named `pat` and results holding an AWS key id were written to
the audit log (which `watch` shows) as they were. Here a real client calls a real demo
upstream through a real gateway: the argument `pat` and the `AKIA…` key id in the result
land masked. And a tool call whose client disconnects mid-call still has its
`tool.call.started` event, so its completion (or the lack of one) can be told.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.mcp_http import messages_of, open_session, rpc, session_headers
from tests.support.upstreams import sdk_upstream

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB_PAT = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with sdk_upstream(json_response=True) as notes:
        profile = profile_text(upstreams={"notes": notes}, routes={"notes": "notes"})
        with running_gateway(profile, tmp_path_factory.mktemp("masking")) as gw:
            yield gw


def test_secret_arguments_and_credential_results_land_masked(gw: GatewayProcess) -> None:
    url = gw.route_url("notes")
    with httpx.Client(timeout=10) as http:
        sid = open_session(http, url)
        arguments = {"title": "keys", "body": f"aws {AWS_KEY} here", "pat": GITHUB_PAT}
        call = rpc("tools/call", {"name": "add_note", "arguments": arguments}, rid="mask-1")
        resp = http.post(url, json=call, headers=session_headers(sid))
        [reply] = messages_of(resp)
    assert AWS_KEY in json.dumps(reply)  # the client gets its answer unchanged

    [event] = gw.matching_events(
        lambda e: e.get("event") == "tool.call" and e.get("id") == "mask-1"
    )
    assert event["args"]["pat"] == "[redacted]"
    assert event["args"]["body"] == "aws [redacted] here"
    text = gw.audit_path.read_text(encoding="utf-8")
    assert AWS_KEY not in text
    assert GITHUB_PAT not in text


def test_a_call_whose_client_disconnects_still_has_its_started_event(gw: GatewayProcess) -> None:
    url = gw.route_url("notes")
    with httpx.Client(timeout=10) as http:
        sid = open_session(http, url)
    arguments = {"n": 40, "delay_ms": 100}
    call = rpc("tools/call", {"name": "slow_count", "arguments": arguments}, rid="cut-1")
    with (
        pytest.raises(httpx.TimeoutException),
        httpx.Client(timeout=httpx.Timeout(10, read=0.5)) as http,
    ):
        http.post(url, json=call, headers=session_headers(sid))  # gives up mid-call

    def started(e: dict[str, Any]) -> bool:
        return e.get("event") == "tool.call.started" and e.get("id") == "cut-1"

    [event] = gw.matching_events(started)
    assert event["route"] == "notes"
    assert event["name"] == "slow_count"
    assert event["method"] == "tools/call"
    assert event["user"]
    assert event["outcome"] == "started"
