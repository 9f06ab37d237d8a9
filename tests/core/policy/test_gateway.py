"""lockgate/policy/gateway.py without mitmproxy: the gateway's hosts, origins and own paths.

Why it exists: Guard and Cors both ask `origin_allowed`, the router asks `is_own_path`; a
wrong answer lets a hostile page use the gateway, or hides an endpoint.
"""

from __future__ import annotations

from lockgate.policy.gateway import GatewayConfig, is_own_path
from lockgate.profile.model import parse_profile

INSPECTOR = "http://localhost:6274"
PROFILE = """
[gateway]
listen = "127.0.0.1:8787"
allowed_origins = ["https://ide.example.com/"]

[upstreams.notes]
url = "http://127.0.0.1:9001/mcp"

[routes.notes]
upstream = "notes"
"""


def test_origin_allowed_without_a_profile_is_false() -> None:
    assert not GatewayConfig().origin_allowed(INSPECTOR)


def test_listed_and_loopback_origins_are_allowed_for_a_loopback_gateway() -> None:
    config = GatewayConfig()
    config.use(parse_profile(PROFILE))
    assert config.origin_allowed("https://IDE.example.com")
    assert config.origin_allowed(INSPECTOR)
    assert not config.origin_allowed("https://evil.example.com")
    assert not config.origin_allowed("null")
    assert {"localhost", "127.0.0.1", "::1"} <= config.allowed_hosts


def test_urls_and_own_paths() -> None:
    config = GatewayConfig()
    config.use(parse_profile(PROFILE))
    assert config.route_url("notes") == "http://127.0.0.1:8787/mcp/notes"
    assert config.resource_metadata_url("notes") == (
        "http://127.0.0.1:8787/.well-known/oauth-protected-resource/mcp/notes"
    )
    assert is_own_path("/oauth/token") and is_own_path("/.well-known/oauth-authorization-server")
    assert not is_own_path("/mcp/notes")
