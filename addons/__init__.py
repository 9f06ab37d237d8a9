"""lockgate's mitmproxy addons, one concern each. Their order is written once, here."""

from __future__ import annotations

from typing import Any

from lockgate.addons.audit import Audit
from lockgate.addons.capabilities import Capabilities
from lockgate.addons.client_auth import ClientAuth
from lockgate.addons.config import Config
from lockgate.addons.credentials import Credentials
from lockgate.addons.guard import Guard
from lockgate.addons.guardrails import Guardrails
from lockgate.addons.router import Router
from lockgate.addons.upstream import Upstream


def pipeline(config: Config | None = None) -> list[Any]:
    """The addons in DESIGN order; `config` first, since every other one reads it."""
    config = config or Config()
    return [
        config,
        Guard(config),
        Router(config),
        ClientAuth(config),
        Capabilities(),
        Guardrails(),
        Credentials(config),
        Upstream(config),
        Audit(),
    ]
