"""Declares the gateway's options and parses the profile once, for the whole pipeline."""

from __future__ import annotations

import logging
from pathlib import Path

from mitmproxy import ctx, exceptions

from lockgate.errors import LockgateError
from lockgate.policy.gateway import GatewayConfig
from lockgate.profile.model import load_profile

logger = logging.getLogger("lockgate")


class Config(GatewayConfig):
    """Holds the parsed profile; the other addons read it (as the core's `GatewayConfig`,
    which they are given), none of them parses it again."""

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
