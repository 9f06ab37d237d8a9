"""Several routes to several upstreams, http and https, on one gateway port.

The https upstream has a certificate from a CA made for this test: with `upstream_ca` the
gateway verifies it; without, the client gets a 502 JSON error, never a forwarded request.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.gateway import profile_text, running_gateway
from tests.support.mcp_http import initialize_request
from tests.support.upstreams import sdk_upstream

INIT = initialize_request("2025-06-18", client="test", client_version="1")
HEADERS = {"accept": "application/json, text/event-stream"}


def _tools(url: str) -> tuple[int, dict[str, object]]:
    with httpx.Client(timeout=10, headers=HEADERS) as client:
        init = client.post(url, json=INIT)
        if init.status_code != 200:
            return init.status_code, init.json()
        sid = {"mcp-session-id": init.headers["mcp-session-id"]}
        client.post(
            url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=sid
        )
        listed = client.post(
            url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=sid
        )
        return listed.status_code, listed.json()


def test_http_and_https_upstreams_on_one_port(
    https_upstream: tuple[str, Path], tmp_path: Path
) -> None:
    https_url, ca = https_upstream
    with sdk_upstream(json_response=True) as http_url:
        profile = profile_text(
            {"plain": http_url, "secure": https_url}, {"plain": "plain", "secure": "secure"}
        ).replace("[identity]", f'[gateway]\nupstream_ca = "{ca}"\n\n[identity]')
        with running_gateway(profile, tmp_path) as gw:
            for route in ("plain", "secure"):
                status, body = _tools(gw.route_url(route))
                assert status == 200, body
                names = {t["name"] for t in body["result"]["tools"]}  # type: ignore[index]
                assert "list_notes" in names, (route, body)


def test_untrusted_https_upstream_is_a_json_502(
    https_upstream: tuple[str, Path], tmp_path: Path
) -> None:
    https_url, _ = https_upstream
    with running_gateway(profile_text({"secure": https_url}, {"secure": "secure"}), tmp_path) as gw:
        status, body = _tools(gw.route_url("secure"))
    assert status == 502, body
    error = body["error"]
    assert isinstance(error, dict) and "secure" in error["message"], body
    assert "certificate" in error["message"].lower(), body
