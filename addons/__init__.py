"""lockgate's mitmproxy addons, one concern each. Their order is written once, here."""

from __future__ import annotations

from typing import Any

# First: mitmproxy's addons package without its default set (flask, ldap3: ~12 MB of RSS).
from lockgate.addons import _lean_mitmproxy  # noqa: F401  # isort: skip
from lockgate.addons.arguments import Arguments
from lockgate.addons.audit import Audit
from lockgate.addons.capabilities import Capabilities
from lockgate.addons.client_auth import ClientAuth
from lockgate.addons.config import Config
from lockgate.addons.connect import Connect
from lockgate.addons.cors import Cors
from lockgate.addons.credentials import Credentials
from lockgate.addons.guard import Guard
from lockgate.addons.guardrails import Guardrails
from lockgate.addons.oauth import OAuthServer
from lockgate.addons.router import Router
from lockgate.addons.scrub import Scrub
from lockgate.addons.session_binding import SessionBinding
from lockgate.addons.upstream import Upstream
from lockgate.authserver.endpoints import AuthServer


def pipeline(config: Config | None = None) -> list[Any]:
    """The addons in DESIGN order; `config` first, since every other one reads it."""
    config = config or Config()
    # The authorization server's state, shared by the addons that need it (none imports
    # another): the OAuth endpoints, the resource server, and /connect's browser sessions.
    auth = AuthServer(config)
    credentials = Credentials(config)
    connect = Connect(config, auth.sessions)  # before oauth: it answers /connect/* first
    connect.service.listeners.append(credentials.connected)
    # The consent page shows the upstream's state and a Connect link.
    oauth = OAuthServer(config, auth, connect_link=connect.connect_link)
    return [
        config,
        Guard(config),
        Cors(config),
        Router(config),
        connect,
        oauth,
        ClientAuth(config, auth),
        SessionBinding(),  # after client_auth: it needs the user and client
        Capabilities(),
        Arguments(),
        Scrub(),
        Guardrails(config, credentials.headers_for),
        credentials,
        Upstream(config),
        Audit(),
    ]


class Pipeline:
    """The pipeline as one mitmproxy addon with the others as its children, in order.

    mitmproxy dispatches every event to every top-level addon (a coroutine and a safecall
    context each, whether or not it has the hook); as children of one parent the twelve cost
    one such call per event. bench/hook_times.py measured about 125 µs saved per request.
    """

    def __init__(self, config: Config | None = None) -> None:
        self.addons = pipeline(config)
