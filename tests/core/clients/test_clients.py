"""lockgate.clients.registry: entries, paths, the JSONC scanner and the text-preserving merge.

The property tests check the merge against an independent oracle written here (strip
comments and trailing commas, then json.loads), not against the scanner under test.
"""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockgate.clients import install, jsonc, merge
from lockgate.clients import registry as core
from lockgate.errors import LockgateError

URL = "http://127.0.0.1:8787/mcp/notes"
NAME = "lockgate-notes"


# ------------------------------------------------------------------------------------------
# An independent oracle


def _string_end(text: str, i: int) -> int:
    """Just past the JSON string that starts at `text[i]`."""
    j = i + 1
    while text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    return j + 1


def oracle(text: str) -> tuple[Any, list[str]]:
    """The value of a JSONC text and its comments, by a separate, simple route."""
    out: list[str] = []
    comments: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = _string_end(text, i)
            out.append(text[i:j])
            i = j
        elif text.startswith("//", i):
            j = i
            while j < n and text[j] not in "\r\n":
                j += 1
            comments.append(text[i:j])
            i = j
        elif text.startswith("/*", i):
            j = text.index("*/", i + 2) + 2
            comments.append(text[i:j])
            out.append(" ")
            i = j
        else:
            out.append(c)
            i += 1
    stripped = "".join(out)
    kept: list[str] = []
    i, n = 0, len(stripped)
    while i < n:
        c = stripped[i]
        if c == '"':
            j = _string_end(stripped, i)
            kept.append(stripped[i:j])
            i = j
            continue
        if c == ",":
            rest = stripped[i + 1 :].lstrip(" \t\r\n")
            if rest[:1] in ("}", "]"):
                i += 1
                continue
        kept.append(c)
        i += 1
    return json.loads("".join(kept)), comments


# ------------------------------------------------------------------------------------------
# Random JSONC documents: random values rendered with random whitespace, comments and commas

keys = st.text(alphabet=st.sampled_from('ab/*"\\ é:,{}'), max_size=6)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.sampled_from('x /*"\\\n\t}é'), max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
line_comments = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"),
    max_size=8,
).map(lambda t: "//" + t)
block_comments = (
    st.text(alphabet=st.sampled_from("ab */\n{},\"'"), max_size=8)
    .filter(lambda t: "*/" not in t and not t.endswith("*"))
    .map(lambda t: "/*" + t + "*/")
)


class Renderer:
    def __init__(self, data: st.DataObject, unit: str, newline: str) -> None:
        self.data, self.unit, self.nl = data, unit, newline

    def gap(self, depth: int) -> str:
        parts: list[str] = []
        for kind in self.data.draw(
            st.lists(st.sampled_from(["", " ", "nl", "line", "block"]), max_size=3)
        ):
            if kind == "nl":
                parts.append(self.nl + self.unit * depth)
            elif kind == "line":
                parts.append(self.data.draw(line_comments) + self.nl + self.unit * depth)
            elif kind == "block":
                parts.append(self.data.draw(block_comments))
            else:
                parts.append(kind)
        return "".join(parts)

    def value(self, v: Any, depth: int) -> str:
        if isinstance(v, dict):
            return self.seq("{", "}", [(json.dumps(k), x) for k, x in v.items()], depth)
        if isinstance(v, list):
            return self.seq("[", "]", [(None, x) for x in v], depth)
        return json.dumps(v)

    def seq(self, open_: str, close: str, items: list[tuple[str | None, Any]], depth: int) -> str:
        out = [open_]
        for i, (key, v) in enumerate(items):
            out.append(self.gap(depth + 1))
            if key is not None:
                out.append(key + self.gap(depth + 1) + ":" + self.gap(depth + 1))
            out.append(self.value(v, depth + 1))
            out.append(self.gap(depth + 1))
            if i < len(items) - 1 or self.data.draw(st.booleans()):
                out.append(",")
        out.append(self.gap(depth))
        out.append(close)
        return "".join(out)


@st.composite
def documents(draw: st.DrawFn, container: str = "servers") -> tuple[str, dict[str, Any]]:
    """A JSONC text and its value: a top-level object, maybe with a servers object."""
    base = draw(st.dictionaries(keys.filter(lambda k: k != container), values, max_size=3))
    if draw(st.booleans()):
        servers = draw(st.dictionaries(keys.filter(lambda k: k != NAME), values, max_size=3))
        items = list(base.items())
        at = draw(st.integers(0, len(items)))
        items.insert(at, (container, servers))
        base = dict(items)
    unit = draw(st.sampled_from(["  ", "    ", "\t", ""]))
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    r = Renderer(draw(st.data()), unit, nl)
    text = r.gap(0) + r.value(base, 0) + r.gap(0) + draw(st.sampled_from(["", nl]))
    return text, base


def _expected(base: dict[str, Any], container: str, entry: dict[str, Any]) -> dict[str, Any]:
    want: dict[str, Any] = json.loads(json.dumps(base))
    box = want.setdefault(container, {})
    box[NAME] = entry
    return want


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_merge_adds_exactly_the_entry_and_keeps_every_comment(doc: tuple[str, Any]) -> None:
    text, base = doc
    value, comments = oracle(text)
    assert value == base  # the generator and the oracle agree
    assert jsonc.loads(text) == base  # the scanner agrees with the oracle
    assert jsonc.comment_texts(text) == comments
    entry = {"type": "http", "url": URL}

    merged = merge.merge_entry(text, "servers", NAME, entry, same=lambda e: False)

    assert merged.status == "added"
    after, after_comments = oracle(merged.text)
    assert after == _expected(base, "servers", entry)
    assert after_comments == comments  # byte for byte, in order
    again = merge.merge_entry(merged.text, "servers", NAME, entry, same=lambda e: False)
    assert again.status == "unchanged" and again.text == merged.text


@settings(max_examples=150, deadline=None)
@given(documents(container="mcpServers"))
def test_force_replaces_only_that_entry(doc: tuple[str, Any]) -> None:
    text, base = doc
    old = {"command": "npx", "args": ["-y", "mcp-remote", "http://elsewhere/mcp"]}
    first = merge.merge_entry(text, "mcpServers", NAME, old, same=lambda e: False).text
    new = {"url": URL}
    with pytest.raises(merge.EntryConflict):
        merge.merge_entry(first, "mcpServers", NAME, new, same=lambda e: False)
    forced = merge.merge_entry(first, "mcpServers", NAME, new, same=lambda e: False, force=True)
    assert forced.status == "replaced"
    value, comments = oracle(forced.text)
    assert value == _expected(base, "mcpServers", new)
    assert comments == oracle(text)[1]


@given(st.text(alphabet=st.sampled_from('{}[]",:/* \n1a\\tn'), max_size=30))
def test_scanner_never_crashes_and_agrees_with_the_oracle(text: str) -> None:
    try:
        got = jsonc.loads(text)
    except jsonc.JsoncError as e:
        assert e.line >= 1 and e.column >= 1
        return
    try:
        want, _ = oracle(text)
    except (ValueError, IndexError):
        return  # the oracle is stricter about some inputs; the scanner's answer stands
    if text.strip(" \n"):
        assert got == want


# ------------------------------------------------------------------------------------------
# Examples: layout of the inserted text


def merged(text: str, container: str) -> str:
    """`text` with the URL entry for NAME added to `container` (nothing there is the same)."""
    return merge.merge_entry(text, container, NAME, {"url": URL}, same=lambda e: False).text


LAYOUTS = {  # the file as found -> the file with the entry: its indentation and style kept
    "tab-indented": (
        '{\n\t"servers": {\n\t\t"a": {"type": "stdio"}\n\t}\n}\n',
        '{\n\t"servers": {\n\t\t"a": {"type": "stdio"},\n'
        f'\t\t"{NAME}": {{\n\t\t\t"url": "{URL}"\n\t\t}}\n\t}}\n}}\n',
    ),
    "trailing-comma-and-line-comment": (
        '{\n  "servers": {\n    "a": 1, // note\n  },\n}\n',
        '{\n  "servers": {\n    "a": 1, // note\n'
        f'    "{NAME}": {{\n      "url": "{URL}"\n    }},\n  }},\n}}\n',
    ),
}


@pytest.mark.parametrize(("text", "want"), LAYOUTS.values(), ids=LAYOUTS.keys())
def test_inserted_entry_keeps_the_files_indentation_and_style(text: str, want: str) -> None:
    assert merged(text, "servers") == want


def test_crlf_files_stay_crlf() -> None:
    text = '{\r\n  "mcpServers": {}\r\n}\r\n'
    out = merged(text, "mcpServers")
    assert "\n" not in out.replace("\r\n", "")


def test_empty_and_comment_only_files_get_a_document() -> None:
    out = merged("", "servers")
    assert json.loads(out) == {"servers": {NAME: {"url": URL}}}
    out = merged("// mine\n", "servers")
    assert out.startswith("// mine\n") and jsonc.loads(out) == {"servers": {NAME: {"url": URL}}}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[1, 2]", "top level is not an object"),
        ('{"servers": []}', '"servers" is not an object'),
        ('{"servers": {', "expected a quoted property name"),
        ('{"a": 1 "b": 2}', "expected ',' or '}'"),
        ('{"a": /* open', "unterminated /* comment"),
    ],
)
def test_malformed_or_unexpected_files_are_refused(text: str, where: str) -> None:
    with pytest.raises(jsonc.JsoncError, match=re.escape(where)):
        merge.merge_entry(text, "servers", NAME, {"url": URL}, same=lambda e: False)


def test_error_position_is_line_and_column() -> None:
    with pytest.raises(jsonc.JsoncError) as info:
        jsonc.loads('{\n  "a": 1\n  "b": 2\n}')
    assert (info.value.line, info.value.column) == (3, 3)


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


# ------------------------------------------------------------------------------------------
# Files: plan, backup, atomic write, mode, symlinks


def test_install_creates_the_file_and_folder_private(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "mcp.json"
    plan = install.plan_install(core.get_client("cursor"), path, [(NAME, URL)])
    assert install.apply_install(plan) is None
    assert json.loads(path.read_text()) == {"mcpServers": {NAME: {"url": URL}}}
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_install_backs_up_keeps_mode_and_is_idempotent(tmp_path: Path) -> None:
    tmp_path = tmp_path / "cfg"
    tmp_path.mkdir()
    path = tmp_path / "mcp.json"
    original = '{\n  "mcpServers": {\n    "time": {"command": "uvx"}\n  }\n}\n'
    path.write_text(original)
    path.chmod(0o640)
    client = core.get_client("cursor")
    now = datetime(2026, 11, 27, 9, 30, 0, tzinfo=UTC)
    backup = install.apply_install(install.plan_install(client, path, [(NAME, URL)]), now)
    assert backup == tmp_path / "mcp.json.lockgate-backup-20261127T093000Z"
    assert backup.read_text() == original
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    second = install.plan_install(client, path, [(NAME, URL)])
    assert not second.changed and second.results == ((NAME, "unchanged"),)
    assert install.apply_install(second, now) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([backup.name, "mcp.json"])


def test_backup_names_never_collide(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    first = install.backup_path(path, now)
    first.write_text("x")
    assert install.backup_path(path, now) == tmp_path / f"{first.name}-1"


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_symlinked_config_is_written_through_the_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "mcp.json"
    real.parent.mkdir()
    real.write_text('{"mcpServers": {}}')
    link = tmp_path / "mcp.json"
    link.symlink_to(real)
    install.apply_install(install.plan_install(core.get_client("cursor"), link, [(NAME, URL)]))
    assert link.is_symlink()
    assert json.loads(real.read_text())["mcpServers"][NAME] == {"url": URL}


def test_a_file_changed_after_planning_is_left_alone(tmp_path: Path) -> None:
    tmp_path = tmp_path / "cfg"
    tmp_path.mkdir()
    path = tmp_path / "claude.json"
    path.write_text('{"numStartups": 1}')
    plan = install.plan_install(core.get_client("claude-code"), path, [(NAME, URL)])
    path.write_text('{"numStartups": 2}')  # the client rewrote it meanwhile
    with pytest.raises(LockgateError, match="changed while"):
        install.apply_install(plan)
    assert path.read_text() == '{"numStartups": 2}'
    assert [p.name for p in tmp_path.iterdir()] == ["claude.json"]


def test_conflict_names_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"servers": {NAME: {"type": "http", "url": "https://other/"}}}))
    with pytest.raises(merge.EntryConflict) as info:
        install.plan_install(core.get_client("vscode"), path, [(NAME, URL)])
    assert str(path) in str(info.value) and "--force" in str(info.value)


def test_same_url_in_another_shape_counts_as_installed(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {NAME: {"url": URL, "type": "http"}}}))
    plan = install.plan_install(core.get_client("cursor"), path, [(NAME, URL)])
    assert not plan.changed and plan.results == ((NAME, "unchanged"),)


def test_invalid_json_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{\n  "mcpServers": {\n    "a": 1,,\n  }\n}\n')
    with pytest.raises(LockgateError, match=r"not valid JSON .*line 3"):
        install.plan_install(core.get_client("cursor"), path, [(NAME, URL)])


@pytest.mark.parametrize("text", ["", "\n", "// nothing yet\n", "\ufeff{}"])
def test_empty_comment_only_and_bom_files_are_merged(tmp_path: Path, text: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(text, encoding="utf-8")
    plan = install.plan_install(core.get_client("vscode"), path, [(NAME, URL)])
    install.apply_install(plan)
    after = path.read_text(encoding="utf-8")
    assert jsonc.loads(after) == {"servers": {NAME: {"type": "http", "url": URL}}}
    assert after.startswith(text.rstrip("{}"))
