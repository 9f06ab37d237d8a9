"""Issue 9, item 11: `connect` discovery follows loopback URLs only for a loopback upstream.

A remote upstream's 401 can name any `resource_metadata` URL; pointing it at
127.0.0.1 would make the gateway probe services on the user's own machine. Loopback
metadata is allowed only when the upstream itself runs on loopback (local development).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from lockgate.upstream._errors import UpstreamOAuthError
from lockgate.upstream.discovery import discover
from tests.support.doubles import Reply, Server


@pytest.fixture
def local() -> Iterator[Server]:
    server = Server()
    yield server
    server.close()


def _publish(server: Server, resource: str) -> str:
    issuer = server.url("")
    server.routes["/prm"] = Reply(
        body=json.dumps({"resource": resource, "authorization_servers": [issuer]}).encode()
    )
    server.routes["/.well-known/oauth-authorization-server"] = Reply(
        body=json.dumps(
            {
                "issuer": issuer,
                "authorization_endpoint": server.url("/authorize"),
                "token_endpoint": server.url("/token"),
                "code_challenge_methods_supported": ["S256"],
                "response_types_supported": ["code"],
            }
        ).encode()
    )
    return server.url("/prm")


@pytest.mark.anyio
async def test_remote_upstream_cannot_send_discovery_to_loopback(local: Server) -> None:
    upstream = "https://mcp.example.com/mcp"
    prm = _publish(local, upstream)
    with pytest.raises(UpstreamOAuthError, match="refused"):
        await discover(upstream, f'Bearer resource_metadata="{prm}"')
    assert local.requests == []


@pytest.mark.anyio
async def test_loopback_upstream_may_use_loopback_metadata(local: Server) -> None:
    upstream = local.url("/mcp")
    prm = _publish(local, upstream)
    found = await discover(upstream, f'Bearer resource_metadata="{prm}"')
    assert found.resource_metadata_url == prm
    assert [p for p, _ in local.requests][:1] == ["/prm"]
