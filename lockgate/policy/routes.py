"""Routes: from a profile to what the pipeline needs per request, computed once."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from lockgate.policy.view import Policy
from lockgate.profile.model import Profile, RouteSection, UpstreamSection

MCP_PREFIX = "/mcp/"


@dataclass(frozen=True, slots=True)
class Target:
    """Where an upstream lives, split the way a proxied request needs it."""

    name: str
    scheme: str
    host: str
    port: int
    path: str
    query: str
    host_header: str
    config: UpstreamSection

    @property
    def url(self) -> str:
        return self.config.url


@dataclass(frozen=True, slots=True)
class UpstreamLimits:
    """What an upstream may take, its own setting else the gateway's (resolved once)."""

    connect: float  # seconds to open the connection (then 504)
    first_byte: float  # seconds until its answer starts (then 504)
    idle: float  # seconds an event stream may go without progress while a request is open
    answer: float  # seconds an event stream may take in all to answer its requests
    max_answer_bytes: int  # a whole answer, or one event of a stream (then 502)


def limits_of(profile: Profile, upstream: UpstreamSection) -> UpstreamLimits:
    gw = profile.gateway

    def own(value: float | None, default: float) -> float:
        return value if value is not None else default

    return UpstreamLimits(
        connect=own(upstream.connect_timeout, gw.upstream_connect_timeout),
        first_byte=own(upstream.timeout, gw.upstream_timeout),
        idle=own(upstream.idle_timeout, gw.upstream_idle_timeout),
        answer=own(upstream.answer_timeout, gw.upstream_answer_timeout),
        max_answer_bytes=gw.max_response_bytes,
    )


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    upstream: Target
    policy: Policy
    config: RouteSection
    passthrough: bool
    limits: UpstreamLimits
    # What grants, approvals and tokens are bound to: the same route name pointing at
    # another upstream (a switched profile) is another route.
    identity: str = field(default="")

    def __post_init__(self) -> None:
        if not self.identity:
            object.__setattr__(
                self, "identity", route_identity(self.upstream.name, self.upstream.url)
            )


def route_identity(upstream_name: str, upstream_url: str) -> str:
    """SHA-256 over the upstream's name and URL, hex: stable across restarts and machines."""
    canonical = json.dumps([upstream_name, upstream_url], separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def target_of(name: str, upstream: UpstreamSection) -> Target:
    parts = urlsplit(upstream.url)
    scheme = parts.scheme
    host = parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    host_text = f"[{host}]" if ":" in host else host
    host_header = host_text if default_port else f"{host_text}:{port}"
    return Target(
        name=name,
        scheme=scheme,
        host=host,
        port=port,
        path=parts.path or "/",
        query=parts.query,
        host_header=host_header,
        config=upstream,
    )


def build_routes(profile: Profile) -> dict[str, Route]:
    targets = {name: target_of(name, up) for name, up in profile.upstreams.items()}
    routes: dict[str, Route] = {}
    for name, section in profile.routes.items():
        policy = section.policy()
        routes[name] = Route(
            name=name,
            upstream=targets[section.upstream],
            policy=policy,
            config=section,
            passthrough=policy.is_passthrough,
            limits=limits_of(profile, profile.upstreams[section.upstream]),
        )
    return routes


def route_name_of(path: str) -> str | None:
    """`/mcp/<route>` (optionally with a trailing slash or query) to `<route>`; else None."""
    path = path.split("?", 1)[0]
    if not path.startswith(MCP_PREFIX):
        return None
    name = path[len(MCP_PREFIX) :].rstrip("/")
    if not name or "/" in name:
        return None
    return name
