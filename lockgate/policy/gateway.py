"""The gateway's own rules, read once from the profile: routes, hosts, origins and URLs.

Why it exists: every addon reads the parsed profile and asks the same questions of it (is this
Host ours, may this Origin use us, what is a route's URL, is this path the gateway's own).
The Config addon holds one of these for the whole pipeline; the answers are pure, and live
here so no addon has to import another to get them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from lockgate.policy.routes import Route, build_routes
from lockgate.profile.model import Profile, is_loopback_host

# Paths the OAuth server answers when the profile signs users in.
OWN_PREFIXES = ("/.well-known/", "/oauth/")
PR_METADATA = "/.well-known/oauth-protected-resource"


def is_own_path(path: str) -> bool:
    """Paths the gateway's OAuth server answers when the profile signs users in."""
    return path.startswith(OWN_PREFIXES)


class GatewayConfig:
    """The parsed profile and what the pipeline derives from it; none of it parses it again."""

    def __init__(self) -> None:
        self.profile: Profile | None = None
        self.routes: dict[str, Route] = {}
        self.allowed_hosts: frozenset[str] = frozenset()
        self.allowed_origins: frozenset[str] = frozenset()
        self.base_url = ""

    def route_url(self, route: str) -> str:
        return f"{self.base_url}/mcp/{route}"

    def resource_metadata_url(self, route: str) -> str:
        """The route's RFC 9728 protected resource metadata URL."""
        return f"{self.base_url}{PR_METADATA}/mcp/{route}"

    def use(self, profile: Profile) -> None:
        self.profile = profile
        self.base_url = profile.base_url()
        self.routes = build_routes(profile)
        hosts = {profile.gateway.host}
        if is_loopback_host(profile.gateway.host) or profile.gateway.host in ("0.0.0.0", "::"):
            hosts |= {"localhost", "127.0.0.1", "::1"}
        if profile.gateway.public_url:
            hosts.add(urlsplit(profile.gateway.public_url).hostname or "")
        self.allowed_hosts = frozenset(h.lower() for h in hosts if h)
        self.allowed_origins = frozenset(
            o.rstrip("/").lower() for o in profile.gateway.allowed_origins
        )

    def origin_allowed(self, origin: str) -> bool:
        """Whether a browser page from `origin` may use this gateway (Guard's Origin rule).

        Listed in gateway.allowed_origins, the origin of gateway.public_url, or any loopback
        page when the gateway itself listens on loopback. Cors answers exactly these origins.
        """
        origin = origin.strip().rstrip("/").lower()
        if origin in self.allowed_origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        profile = self.profile
        if profile is None:
            return False
        if profile.gateway.public_url:
            pub = urlsplit(profile.gateway.public_url.lower())
            if (parts.scheme, parts.netloc) == (pub.scheme, pub.netloc):
                return True
        # A page served from this machine may use a gateway that listens on this machine.
        return is_loopback_host(parts.hostname) and is_loopback_host(profile.gateway.host)
