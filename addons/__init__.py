"""lockgate's mitmproxy addons, one concern each. Their order is written once, here."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

# First: mitmproxy's addons package without its default set (flask, ldap3: ~12 MB of RSS).
from lockgate.addons import _lean_mitmproxy  # noqa: F401  # isort: skip
from mitmproxy import hooks  # isort: skip

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

# Every module that defines mitmproxy's hooks, so that `hooks.all_hooks` names them all (after
# _lean_mitmproxy: these import mitmproxy.command, whose pyparsing it defers).
HOOK_MODULES = ("mitmproxy.addonmanager", "mitmproxy.proxy.layers", "mitmproxy.proxy.server_hooks")


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
    """The pipeline as one mitmproxy addon that calls the others itself, in order.

    mitmproxy dispatches every event to every top-level addon (a coroutine and a safecall
    context each, whether or not it has the hook), and inside one it walks the `addons` tree
    on every event: a `hasattr` and a `getattr` per child, a generator per level, the hook's
    arguments rebuilt from its dataclass fields per child called (~1,200 Python calls per
    `tools/call` in all). Here the walk is done once, at start: each hook any addon has gets
    one method on this object calling exactly those addons' hooks in mitmproxy's order
    (depth first, a parent before its children), awaiting the async ones. The children are
    `children`, not `addons`, so mitmproxy does not walk them again; nothing else of
    mitmproxy's needs them (none has a command or is looked up by name). An exception stops
    the event's remaining hooks as it did nested (none raises: every hook is `guarded`).
    """

    def __init__(self, config: Config | None = None) -> None:
        self.children = pipeline(config)
        for module in HOOK_MODULES:
            importlib.import_module(module)
        self.hooked: dict[str, tuple[Any, ...]] = {}  # hook -> the addons it calls, in order
        for name in sorted(hooks.all_hooks):
            owners = [a for a in _depth_first(self.children) if callable(getattr(a, name, None))]
            if owners:
                self.hooked[name] = tuple(owners)
                setattr(self, name, _dispatcher(name, [getattr(a, name) for a in owners]))


def _depth_first(chain: list[Any]) -> Iterator[Any]:
    """mitmproxy's own order (`addonmanager.traverse`): each addon, then its `addons`."""
    for a in chain:
        yield a
        yield from _depth_first(getattr(a, "addons", []))


def _dispatcher(name: str, bound: list[Callable[..., Any]]) -> Callable[..., Any]:
    """One callable for hook `name` running every `bound` hook in order, async if one is."""
    if any(inspect.iscoroutinefunction(fn) for fn in bound):
        calls = tuple(bound)

        async def dispatch_async(*args: Any) -> None:
            for fn in calls:
                res = fn(*args)
                if res is not None and inspect.isawaitable(res):
                    await res

        dispatch_async.__name__ = name
        return dispatch_async
    if len(bound) == 1:
        return bound[0]
    calls = tuple(bound)

    def dispatch(*args: Any) -> None:
        for fn in calls:
            fn(*args)

    dispatch.__name__ = name
    return dispatch
