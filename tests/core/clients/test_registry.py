"""lockgate.clients.registry: the clients, their entries, config paths and snippets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockgate.clients import registry as core
from lockgate.errors import LockgateError

URL = "http://127.0.0.1:8787/mcp/notes"
NAME = "lockgate-notes"


# ------------------------------------------------------------------------------------------
# Clients, entries and paths


def test_entries_carry_only_the_url() -> None:
    assert core.get_client("claude-code").entry(URL) == {"type": "http", "url": URL}
    assert core.get_client("cursor").entry(URL) == {"url": URL}
    assert core.get_client("vscode").entry(URL) == {"type": "http", "url": URL}
    assert core.get_client("claude-desktop").entry(URL) == {
        "command": "npx",
        "args": ["-y", "mcp-remote", URL],
    }


def test_bridge_allows_plain_http_only_beyond_localhost_when_asked() -> None:
    assert core.bridge_args("http://gw.lan:8787/mcp/x")[-1] == "--allow-http"
    assert "--allow-http" not in core.bridge_args("https://gw.example.com/mcp/x")
    assert "--allow-http" not in core.bridge_args("http://localhost:8787/mcp/x")


@pytest.mark.parametrize(
    "url",
    ["http://user:pw@127.0.0.1:8787/mcp/x", "http://127.0.0.1/mcp/x?token=abc", "ftp://h/mcp"],
)
def test_urls_that_could_carry_a_secret_are_refused(url: str) -> None:
    with pytest.raises(LockgateError):
        core.snippet(core.get_client("cursor"), "x", url)


def test_aliases_and_unknown_clients() -> None:
    assert core.get_client("Claude").id == "claude-code"
    assert core.get_client("VS Code").id == "vscode"
    assert core.get_client("claude_desktop").id == "claude-desktop"
    with pytest.raises(LockgateError, match="claude-code, claude-desktop, cursor, vscode"):
        core.get_client("zed")


def test_target_reads_urls_and_bridge_args() -> None:
    desktop = core.get_client("claude-desktop")
    assert desktop.target(desktop.entry(URL)) == URL
    assert core.get_client("vscode").target({"type": "http", "url": URL}) == URL
    assert core.get_client("vscode").target("nonsense") is None


@pytest.mark.parametrize(
    ("client", "system", "env", "want"),
    [
        ("claude-code", "Linux", {}, "H/.claude.json"),
        ("claude-code", "Windows", {"APPDATA": "A"}, "H/.claude.json"),
        ("cursor", "Darwin", {}, "H/.cursor/mcp.json"),
        ("vscode", "Linux", {}, "H/.config/Code/User/mcp.json"),
        ("vscode", "Linux", {"XDG_CONFIG_HOME": "X"}, "X/Code/User/mcp.json"),
        ("vscode", "Darwin", {}, "H/Library/Application Support/Code/User/mcp.json"),
        ("vscode", "Windows", {"APPDATA": "A"}, "A/Code/User/mcp.json"),
        ("vscode", "Windows", {}, "H/AppData/Roaming/Code/User/mcp.json"),
        (
            "claude-desktop",
            "Darwin",
            {},
            "H/Library/Application Support/Claude/claude_desktop_config.json",
        ),
        ("claude-desktop", "Windows", {"APPDATA": "A"}, "A/Claude/claude_desktop_config.json"),
        ("claude-desktop", "Linux", {}, "H/.config/Claude/claude_desktop_config.json"),
    ],
)
def test_config_paths_per_os(client: str, system: str, env: dict[str, str], want: str) -> None:
    path = core.config_path(core.get_client(client), system=system, home=Path("H"), env=env)
    assert path == Path(want)


def test_snippet_has_the_claude_command_and_the_document() -> None:
    snip = core.snippet(core.get_client("claude-code"), "notes", URL)
    assert snip.command == [
        "claude", "mcp", "add", "--transport", "http", "--scope", "user", NAME, URL,
    ]  # fmt: skip
    assert json.loads(snip.document) == {"mcpServers": {NAME: {"type": "http", "url": URL}}}
