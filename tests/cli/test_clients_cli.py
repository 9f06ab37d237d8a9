"""`lockgate clients`: the real command (a subprocess with a temporary HOME) on copies of
realistic config files from tests/fixtures/clients/."""

from __future__ import annotations

import difflib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from rich.console import Console

from lockgate.cli.clients import connect_help
from lockgate.cli.main import main
from lockgate.clients import jsonc
from lockgate.profile.model import demo_profile_path, load_profile
from tests.cli.real_cli import run_lockgate
from tests.support import require
from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.node import INSTALL_HINT, NODE_DIR, NODE_MODULES, node_bin, node_env
from tests.support.upstreams import sdk_upstream

FIXTURES = Path(__file__).parent.parent / "fixtures" / "clients"
NOTES = "http://127.0.0.1:8787/mcp/notes"
READONLY = "http://127.0.0.1:8787/mcp/notes-readonly"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Home:
    """A HOME of its own (the real one is never read or written) and a way to run the CLI."""

    path: Path
    env: dict[str, str]
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def run(self, *args: str) -> Result:
        """The `lockgate` entry point itself, in this process: its parsing and error handler."""
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "argv", ["lockgate", "clients", *args])
        code: int | str | None = 0
        try:
            main()
        except SystemExit as e:
            code = e.code
        out, err = self.capsys.readouterr()
        return Result(code if isinstance(code, int) else 1, out, err)

    def run_process(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The same in a subprocess, for what a user sees on a real stderr."""
        return run_lockgate("clients", *args, env=self.env, timeout=120)

    def place(self, fixture: str, rel: str) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / fixture, target)
        return target


@pytest.fixture
def home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Home:
    path = tmp_path / "home"
    path.mkdir()
    for name in ("XDG_CONFIG_HOME", "APPDATA"):
        monkeypatch.delenv(name, raising=False)
    settings = {
        "HOME": str(path),
        "USERPROFILE": str(path),
        "LOCKGATE_PROFILE": str(demo_profile_path()),
        "LOCKGATE_WIDTH": "200",
        "NO_COLOR": "1",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert Path.home() == path
    return Home(path, dict(os.environ), capsys, monkeypatch)


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".lockgate-backup-*"))


def only_additions(before: str, after: str) -> None:
    """Every original line is still there; a changed line only gained a comma."""
    old, new = before.splitlines(), after.splitlines()
    for op, i1, i2, j1, _ in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        assert op in ("equal", "insert", "replace"), (op, old[i1:i2])
        if op == "replace":
            assert i2 - i1 == 1 and new[j1].replace(",", "", 1) == old[i1], (old[i1], new[j1])


def test_claude_code_user_scope_in_a_real_claude_json(home: Home) -> None:
    path = home.place("claude.json", ".claude.json")
    before = path.read_text()

    first = home.run("install", "claude-code", "--route", "notes")

    assert first.returncode == 0, first.stderr
    assert "added" in first.stdout and "lockgate-notes" in first.stdout
    after = json.loads(path.read_text())
    want = json.loads(before)
    want["mcpServers"]["lockgate-notes"] = {"type": "http", "url": NOTES}
    assert after == want  # projects, their servers and every other key untouched
    only_additions(before, path.read_text())
    [backup] = backups(path)
    assert backup.read_text() == before
    assert f"Backup: {backup}" in first.stdout

    written = path.read_bytes()
    second = home.run("install", "claude-code", "--route", "notes")
    assert second.returncode == 0, second.stderr
    assert "already installed" in second.stdout and "Nothing to change" in second.stdout
    assert path.read_bytes() == written
    assert len(backups(path)) == 1


def test_cursor_with_stdio_servers_gets_every_route(home: Home) -> None:
    path = home.place("cursor-mcp.json", ".cursor/mcp.json")
    before = path.read_text()

    result = home.run("install", "cursor")

    assert result.returncode == 0, result.stderr
    servers = json.loads(path.read_text())["mcpServers"]
    assert servers["lockgate-notes"] == {"url": NOTES}
    assert servers["lockgate-notes-readonly"] == {"url": READONLY}
    assert servers["lockgate-lab"] == {"url": NOTES.replace("/mcp/notes", "/mcp/lab")}
    assert {k: v for k, v in servers.items() if not k.startswith("lockgate-")} == json.loads(
        before
    )["mcpServers"]
    only_additions(before, path.read_text())
    assert len(backups(path)) == 1
    again = home.run("install", "cursor")
    assert again.stdout.count("already installed") == 3  # notes, notes-readonly, lab


def test_vscode_jsonc_keeps_comments_trailing_commas_and_inputs(home: Home) -> None:
    path = home.place("vscode-mcp.json", ".config/Code/User/mcp.json")
    before = path.read_text()

    result = home.run("install", "vscode", "--route", "notes")

    assert result.returncode == 0, result.stderr
    after = path.read_text()
    assert jsonc.comment_texts(after) == jsonc.comment_texts(before)
    assert len(jsonc.comment_texts(before)) == 7
    only_additions(before, after)
    value, old = jsonc.loads(after), jsonc.loads(before)
    assert value["inputs"] == old["inputs"]
    assert value["servers"] == {**old["servers"], "lockgate-notes": {"type": "http", "url": NOTES}}
    # Inserted in the file's own style: tabs, trailing comma, after the last comment.
    assert (
        '\t\t// "disabled-server": { "type": "http", "url": "https://example.invalid/mcp" },\n'
        '\t\t"lockgate-notes": {\n'
        '\t\t\t"type": "http",\n'
        f'\t\t\t"url": "{NOTES}"\n'
        "\t\t},\n"
        "\t},\n"
        "}\n"
    ) in after
    assert home.run("install", "vscode", "--route", "notes").stdout.count("already installed") == 1
    assert path.read_text() == after


def test_claude_desktop_uses_the_bridge_and_says_so(home: Home) -> None:
    path = home.place("claude_desktop_config.json", ".config/Claude/claude_desktop_config.json")
    before = json.loads(path.read_text())

    result = home.run("install", "claude-desktop", "--route", "notes-readonly")

    assert result.returncode == 0, result.stderr
    after = json.loads(path.read_text())
    assert after["mcpServers"]["lockgate-notes-readonly"] == {
        "command": "npx",
        "args": ["-y", "mcp-remote", READONLY],
    }
    del after["mcpServers"]["lockgate-notes-readonly"]
    assert after == before
    assert "mcp-remote" in result.stdout and "Connectors" in result.stdout
    shown = home.run("show", "claude-desktop", "--route", "notes")
    assert "no entry for remote servers" in shown.stdout and '"mcp-remote"' in shown.stdout


def test_dry_run_writes_nothing_and_shows_the_diff(home: Home) -> None:
    path = home.place("vscode-mcp.json", ".config/Code/User/mcp.json")
    before = path.read_bytes()

    result = home.run("install", "vscode", "--dry-run")

    assert result.returncode == 0, result.stderr
    assert path.read_bytes() == before
    assert backups(path) == []
    assert f'+\t\t\t"url": "{READONLY}"' in result.stdout
    assert "would be added" in result.stdout and "nothing was written" in result.stdout
    missing = home.run("install", "cursor", "--dry-run")
    assert "+++ " in missing.stdout and not (home.path / ".cursor").exists()


def test_an_entry_pointing_elsewhere_is_refused_unless_forced(home: Home) -> None:
    path = home.place("cursor-mcp.json", ".cursor/mcp.json")
    elsewhere = home.run_process("install", "cursor", "--route", "notes", "--name", "linear")
    assert elsewhere.returncode == 1
    assert elsewhere.stdout == "" or "linear" in elsewhere.stdout
    assert elsewhere.stderr.count("\n") == 1 and "Traceback" not in elsewhere.stderr
    assert 'entry named "linear" already exists and points elsewhere' in elsewhere.stderr
    assert "--force" in elsewhere.stderr
    assert path.read_bytes() == (FIXTURES / "cursor-mcp.json").read_bytes()
    assert backups(path) == []

    forced = home.run("install", "cursor", "--route", "notes", "--name", "linear", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "replaced" in forced.stdout
    servers = json.loads(path.read_text())["mcpServers"]
    assert servers["linear"] == {"url": NOTES}
    assert servers["github"]["command"] == "docker"
    assert len(backups(path)) == 1


def test_missing_file_and_folder_are_created(home: Home) -> None:
    result = home.run("install", "cursor", "--route", "notes")
    assert result.returncode == 0, result.stderr
    path = home.path / ".cursor" / "mcp.json"
    assert json.loads(path.read_text()) == {"mcpServers": {"lockgate-notes": {"url": NOTES}}}
    assert "Created" in result.stdout and backups(path) == []


def test_config_option_points_at_another_file(home: Home, tmp_path: Path) -> None:
    path = tmp_path / "project" / ".vscode" / "mcp.json"
    result = home.run("install", "vscode", "--route", "notes", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert jsonc.loads(path.read_text()) == {
        "servers": {"lockgate-notes": {"type": "http", "url": NOTES}}
    }
    assert not (home.path / ".config").exists()


def test_invalid_config_is_one_line_with_the_place(home: Home) -> None:
    path = home.path / ".cursor" / "mcp.json"
    path.parent.mkdir()
    path.write_text('{\n  "mcpServers": {\n    "a": {"url": "x"}\n    "b": 1\n  }\n}\n')
    result = home.run_process("install", "cursor")
    assert result.returncode == 1
    assert "not valid JSON" in result.stderr and "line 4" in result.stderr
    assert result.stderr.count("\n") == 1


def test_show_prints_command_and_snippet_for_every_route(home: Home) -> None:
    result = home.run("show", "claude-code")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"claude mcp add --transport http --scope user lockgate-notes {NOTES}" in out
    assert f"claude mcp add --transport http --scope user lockgate-notes-readonly {READONLY}" in out
    assert f"merge into {home.path / '.claude.json'}" in out
    assert '"type": "http"' in out
    assert not (home.path / ".claude.json").exists()  # show writes nothing


def test_show_uses_the_profiles_public_url(home: Home, tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(
        '[gateway]\npublic_url = "https://mcp.example.com"\n'
        '[identity]\nkind = "oidc"\nissuer = "https://idp.example.com"\nclient_id = "x"\n'
        '[upstreams.u]\nurl = "https://up.example.com/mcp"\n'
        '[routes.linear]\nupstream = "u"\n'
    )
    result = home.run("show", "cursor", "--profile", str(profile))
    assert result.returncode == 0, result.stderr
    assert '"url": "https://mcp.example.com/mcp/linear"' in result.stdout


def test_unknown_route_and_client_are_clear_errors(home: Home) -> None:
    route = home.run("show", "cursor", "--route", "nope")
    assert route.returncode == 1
    assert "no route 'nope'" in route.stderr and "notes, notes-readonly" in route.stderr
    client = home.run("install", "zed")
    assert client.returncode == 1 and "claude-code, claude-desktop, cursor, vscode" in client.stderr


def test_list_names_each_client_and_its_file(home: Home) -> None:
    home.place("cursor-mcp.json", ".cursor/mcp.json")
    result = home.run("list")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert set(lines) >= {"claude-code", "claude-desktop", "cursor", "vscode"}
    assert str(home.path / ".cursor" / "mcp.json") in lines["cursor"]
    assert lines["cursor"].rstrip().endswith("yes") and lines["vscode"].rstrip().endswith("no")
    assert "mcp-remote bridge" in lines["claude-desktop"]


@pytest.mark.parametrize("command", ["list", "show", "install"])
def test_every_command_help_has_an_example(home: Home, command: str) -> None:
    result = home.run(command, "--help")
    assert result.returncode == 0
    assert "Example: lockgate clients " + command in result.stdout


def test_base_url_overrides_the_profiles_address(home: Home) -> None:
    result = home.run(
        "install", "cursor", "--route", "notes", "--base-url", "http://127.0.0.1:9999"
    )
    assert result.returncode == 0, result.stderr
    servers = json.loads((home.path / ".cursor" / "mcp.json").read_text())["mcpServers"]
    assert servers == {"lockgate-notes": {"url": "http://127.0.0.1:9999/mcp/notes"}}
    leaky = home.run("show", "cursor", "--base-url", "http://me:secret@127.0.0.1:9999")
    assert leaky.returncode == 1 and "user name, password" in leaky.stderr
    assert "secret" not in leaky.stdout + leaky.stderr


def test_connect_help_repeats_the_profile_and_address_it_needs() -> None:
    out = Console(record=True, width=200, no_color=True, file=io.StringIO())
    profile = load_profile(demo_profile_path())
    connect_help(
        out, profile, "notes", base="http://127.0.0.1:9999", profile_path=Path("/tmp/demo p.toml")
    )
    text = out.export_text()
    extra = "--profile '/tmp/demo p.toml' --base-url http://127.0.0.1:9999"
    for client in ("claude-code", "claude-desktop", "cursor", "vscode"):
        assert f"lockgate clients install {client} --route notes {extra}" in text
    assert (
        "claude mcp add --transport http --scope user lockgate-notes "
        "http://127.0.0.1:9999/mcp/notes" in text
    )
    plain = Console(record=True, width=200, no_color=True, file=io.StringIO())
    connect_help(plain, profile, "notes", base="http://127.0.0.1:8787")
    assert "--base-url" not in plain.export_text() and "--profile" not in plain.export_text()


# ------------------------------------------------------------------------------------------
# Real clients through a real gateway: what `install` writes is what they read and use.


def _claude_bin() -> Path | None:
    """Claude Code's native binary from tests/node (its platform package, or the copy its
    postinstall put in place of the wrapper's stub)."""
    scope = NODE_MODULES / "@anthropic-ai"
    stub = scope / "claude-code" / "bin" / "claude.exe"
    candidates = [*sorted(scope.glob("claude-code-*/claude")), stub]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK) and path.stat().st_size > 1_000_000:
            return path
    return None


@contextmanager
def notes_gateway(tmp_path: Path) -> Iterator[tuple[GatewayProcess, tuple[str, ...]]]:
    """A real gateway with route notes; yields it and the `install` arguments aimed at it."""
    with (
        sdk_upstream() as upstream,
        running_gateway(
            profile_text({"notes": upstream}, {"notes": "notes"}), tmp_path / "gw"
        ) as gw,
    ):
        profile = str(tmp_path / "gw" / "profile.toml")
        yield gw, ("--route", "notes", "--profile", profile, "--base-url", gw.base_url)


def _client_env(home: Home) -> dict[str, str]:
    """The environment a client sees: this HOME, no settings of a client running these tests."""
    env = {
        k: v
        for k, v in node_env().items()
        if not k.startswith(("CLAUDE", "ANTHROPIC", "MCP_", "XDG_CONFIG"))
    }
    return env | {
        "HOME": str(home.path),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "npm_config_update_notifier": "false",
    }


def test_real_claude_code_reads_the_entry_and_connects_through_the_gateway(
    home: Home, tmp_path: Path
) -> None:
    claude = _claude_bin()
    require(claude is not None, f"Claude Code is not in tests/node: {INSTALL_HINT}")
    assert claude is not None
    with notes_gateway(tmp_path) as (gw, args):
        home.place("claude.json", ".claude.json")
        installed = home.run("install", "claude-code", *args)
        assert installed.returncode == 0, installed.stderr

        got = subprocess.run(
            [str(claude), "mcp", "get", "lockgate-notes"],
            env=_client_env(home),
            cwd=home.path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

        out = got.stdout + got.stderr
        assert "Scope: User config" in out, out
        assert "Type: http" in out and f"URL: {gw.route_url('notes')}" in out, out
        assert "✔ Connected" in out, out
        events = gw.wait_for_events(
            lambda evs: any(e.get("method") == "tools/list" for e in evs), timeout=10
        )
        listed = [e for e in events if e.get("method") == "tools/list"]
        assert listed and str(listed[0].get("client", "")).startswith("claude-code/"), events
        # The client's own view of its file did not disturb the entry: a rerun changes nothing.
        again = home.run("install", "claude-code", *args)
        assert "already installed" in again.stdout, again.stdout + again.stderr


def test_claude_desktop_bridge_entry_runs_as_written_through_the_gateway(
    home: Home, tmp_path: Path
) -> None:
    require(
        node_bin() is not None and (NODE_MODULES / "mcp-remote" / "package.json").is_file(),
        f"mcp-remote or Node 22 is not in tests/node: {INSTALL_HINT}",
    )
    require(shutil.which("npx") is not None, "npx is not on PATH")
    with notes_gateway(tmp_path) as (gw, args):
        home.place("claude_desktop_config.json", ".config/Claude/claude_desktop_config.json")
        assert home.run("install", "claude-desktop", *args).returncode == 0
        config = home.path / ".config" / "Claude" / "claude_desktop_config.json"
        entry = json.loads(config.read_text())["mcpServers"]["lockgate-notes"]

        async def list_tools() -> set[str]:
            # The entry exactly as Claude Desktop runs it; npx finds mcp-remote in tests/node.
            params = StdioServerParameters(
                command=entry["command"],
                args=entry["args"],
                env=_client_env(home),
                cwd=str(NODE_DIR),
            )
            async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
                return {t.name for t in (await client.list_tools()).tools}

        tools = anyio.run(list_tools)

        assert {"list_notes", "add_note"} <= tools
        events = gw.wait_for_events(
            lambda evs: any(e.get("method") == "tools/list" for e in evs), timeout=10
        )
        assert any(e.get("method") == "tools/list" and e.get("route") == "notes" for e in events), (
            events
        )
