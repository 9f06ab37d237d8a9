"""The profile's routes as a catalog, in the MCP Registry API's shape."""

from __future__ import annotations

from typing import Any

from lockgate.profile.model import Profile


def registry_servers(profile: Profile, base_url: str) -> dict[str, Any]:
    """`GET /registry/v0.1/servers`: one server entry per route, remote streamable HTTP."""
    servers = []
    for name, route in sorted(profile.routes.items()):
        servers.append(
            {
                "server": {
                    "name": f"lockgate/{name}",
                    "description": route.description or f"{name} via lockgate",
                    "version": "1.0.0",
                    "remotes": [
                        {"type": "streamable-http", "url": profile.route_url(name, base_url)}
                    ],
                },
                "_meta": {"io.lockgate/route": {"upstream": route.upstream}},
            }
        )
    return {"servers": servers, "metadata": {"count": len(servers)}}
