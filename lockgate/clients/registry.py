"""The MCP client applications lockgate knows: where each keeps its servers, and the entry for
a route.

Entries carry only the route URL: clients sign in through the gateway's OAuth, so no token
or secret is ever written to a client's config. Editing the file is `install`'s (on top of
`merge` and `jsonc`).
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lockgate.errors import LockgateError


@dataclass(frozen=True)
class ClientApp:
    """One MCP client: its config file, the object servers live in, and its entry shape."""

    id: str
    name: str
    container: str  # the top-level key that maps server names to entries
    native_http: bool  # False: the config file has no remote entry, a stdio bridge is used
    note: str

    def entry(self, url: str) -> dict[str, Any]:
        """The server entry for a route URL (the URL only: never a token)."""
        if self.id == "cursor":
            return {"url": url}
        if self.id == "claude-desktop":
            return {"command": "npx", "args": bridge_args(url)}
        return {"type": "http", "url": url}

    def target(self, entry: object) -> str | None:
        """The URL an existing entry points at, to tell 'already installed' from a conflict."""
        if not isinstance(entry, dict):
            return None
        url = entry.get("url")
        if isinstance(url, str):
            return url
        args = entry.get("args")
        if isinstance(args, list):
            for arg in args:
                if isinstance(arg, str) and re.match(r"^https?://", arg):
                    return arg
        return None


CLIENTS: dict[str, ClientApp] = {
    c.id: c
    for c in (
        ClientApp(
            "claude-code",
            "Claude Code",
            "mcpServers",
            True,
            "the entry has user scope, so every project sees it; /mcp in a Claude Code "
            "session shows the connection (and signs in when the profile uses sign-in)",
        ),
        ClientApp(
            "claude-desktop",
            "Claude Desktop",
            "mcpServers",
            False,
            "claude_desktop_config.json has no entry for remote servers, so this runs the "
            "mcp-remote stdio bridge (needs Node.js); a paid plan can instead add the URL "
            "under Settings > Connectors > Add custom connector",
        ),
        ClientApp(
            "cursor",
            "Cursor",
            "mcpServers",
            True,
            "the entry goes in the global ~/.cursor/mcp.json, so every project sees it",
        ),
        ClientApp(
            "vscode",
            "VS Code",
            "servers",
            True,
            "the entry goes in the user mcp.json, so every workspace sees it",
        ),
    )
}

ALIASES = {
    "claude": "claude-code",
    "claudecode": "claude-code",
    "claude-desktop": "claude-desktop",
    "claudedesktop": "claude-desktop",
    "desktop": "claude-desktop",
    "code": "vscode",
    "vs-code": "vscode",
    "visual-studio-code": "vscode",
}


def get_client(name: str) -> ClientApp:
    """A client by id or alias; a LockgateError listing the known ones otherwise."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = ALIASES.get(key, ALIASES.get(key.replace("-", ""), key))
    client = CLIENTS.get(key)
    if client is None:
        raise LockgateError(
            f"Unknown client {name!r}",
            f"use one of {', '.join(CLIENTS)} (see `lockgate clients list`)",
        )
    return client


def entry_name(route: str) -> str:
    """The server name a route gets in every client."""
    return f"lockgate-{route}"


def bridge_args(url: str) -> list[str]:
    """npx arguments of the mcp-remote stdio bridge; it refuses plain http beyond localhost."""
    args = ["-y", "mcp-remote", url]
    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1"):
        args.append("--allow-http")
    return args


def claude_add_command(name: str, url: str) -> list[str]:
    """Claude Code's own command for the same user-scope entry that `install` writes."""
    return ["claude", "mcp", "add", "--transport", "http", "--scope", "user", name, url]


def check_route_url(url: str) -> None:
    """Refuse URLs that would put a credential into a client's config file."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LockgateError(f"{url!r} is not an http(s) route URL", "check gateway.public_url")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise LockgateError(
            "The route URL carries a user name, password, query or fragment, which must not "
            "be written to a client's config",
            "remove it from gateway.public_url: clients sign in through the gateway's OAuth",
        )


def config_path(
    client: ClientApp,
    *,
    system: str | None = None,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """The client's user-level config file on this (or the given) operating system."""
    system = system or platform.system()
    home = home or Path.home()
    env = os.environ if env is None else env
    if system == "Windows":
        appdata = Path(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
    elif system == "Darwin":
        appdata = home / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_CONFIG_HOME")
        appdata = Path(xdg) if xdg else home / ".config"
    if client.id == "claude-code":
        return home / ".claude.json"
    if client.id == "cursor":
        return home / ".cursor" / "mcp.json"
    if client.id == "vscode":
        return appdata / "Code" / "User" / "mcp.json"
    return appdata / "Claude" / "claude_desktop_config.json"


@dataclass(frozen=True)
class Snippet:
    """What `clients show` prints for one route."""

    client: ClientApp
    route: str
    name: str
    url: str
    entry: dict[str, Any]
    command: list[str] | None

    @property
    def document(self) -> str:
        """The JSON to merge into the config file, as the file's top level."""
        return json.dumps({self.client.container: {self.name: self.entry}}, indent=2)


def snippet(client: ClientApp, route: str, url: str, name: str | None = None) -> Snippet:
    check_route_url(url)
    name = name or entry_name(route)
    command = claude_add_command(name, url) if client.id == "claude-code" else None
    return Snippet(client, route, name, url, client.entry(url), command)
