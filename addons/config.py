"""Declares the gateway's options and parses the profile once, for the whole pipeline."""

from __future__ import annotations

import logging
from pathlib import Path

from mitmproxy import ctx, exceptions

from lockgate.errors import LockgateError
from lockgate.policy.routes import Route, build_routes
from lockgate.profile.model import Profile, is_loopback_host, load_profile

logger = logging.getLogger("lockgate")


class Config:
    """Holds the parsed profile; the other addons read it, none of them parses it again."""

    def __init__(self) -> None:
        self.profile: Profile | None = None
        self.routes: dict[str, Route] = {}
        self.allowed_hosts: frozenset[str] = frozenset()
        self.allowed_origins: frozenset[str] = frozenset()
        self.base_url = ""

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("lockgate_profile", str, "", "Path of the lockgate profile (TOML).")
        loader.add_option(
            "lockgate_audit_log", str, "", "Path of the audit log (JSON lines, hash-chained)."
        )

    def configure(self, updated: set[str]) -> None:
        if "lockgate_profile" in updated and ctx.options.lockgate_profile:
            try:
                profile = load_profile(Path(ctx.options.lockgate_profile))
            except LockgateError as e:
                raise exceptions.OptionsError(str(e)) from e
            self.use(profile)

    def route_url(self, route: str) -> str:
        return f"{self.base_url}/mcp/{route}"

    def use(self, profile: Profile) -> None:
        self.profile = profile
        self.base_url = profile.base_url()
        self.routes = build_routes(profile)
        hosts = {profile.gateway.host}
        if is_loopback_host(profile.gateway.host) or profile.gateway.host in ("0.0.0.0", "::"):
            hosts |= {"localhost", "127.0.0.1", "::1"}
        if profile.gateway.public_url:
            from urllib.parse import urlsplit

            hosts.add(urlsplit(profile.gateway.public_url).hostname or "")
        self.allowed_hosts = frozenset(h.lower() for h in hosts if h)
        self.allowed_origins = frozenset(
            o.rstrip("/").lower() for o in profile.gateway.allowed_origins
        )
