"""Several routes to several upstreams, http and https, on one gateway port.

The https upstream has a certificate from a CA made for this test: with `upstream_ca` the
gateway verifies it; without, the client gets a 502 JSON error, never a forwarded request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509

from lockgate.cli.demo.server import build_app
from tests.support.gateway import profile_text, running_gateway
from tests.support.mcp_http import initialize_request
from tests.support.process import wait_until
from tests.support.tls import issue_certs
from tests.support.upstreams import sdk_upstream

INIT = initialize_request("2025-06-18", client="test", client_version="1")
HEADERS = {"accept": "application/json, text/event-stream"}


def _make_certs(tmp: Path) -> tuple[Path, Path, Path]:
    certs = issue_certs(tmp, x509.IPAddress(ipaddress.ip_address("127.0.0.1")), "127.0.0.1")
    return certs.ca, certs.cert, certs.key


@pytest.fixture(scope="module")
def https_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    ca, cert, key = _make_certs(tmp)
    config = uvicorn.Config(
        build_app(json_response=True),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the https upstream to start", timeout=10, interval=0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}/mcp", ca
    server.should_exit = True
    thread.join(10)


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
