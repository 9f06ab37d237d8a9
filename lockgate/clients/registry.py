"""MCP client set-up: where each client keeps its servers, the entry for a route, and a merge
that edits the config file's text so comments, order and formatting survive.

Entries carry only the route URL: clients sign in through the gateway's OAuth, so no token
or secret is ever written to a client's config.

The JSONC scanner is deliberately small: it records where each value, member, comma and
comment is, and the merge inserts text at those offsets. Nothing is re-serialised, so a
user's comments and trailing commas (VS Code allows both) stay byte for byte.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from lockgate.errors import LockgateError

# --------------------------------------------------------------------------------------------
# Clients


@dataclass(frozen=True)
class Client:
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


CLIENTS: dict[str, Client] = {
    c.id: c
    for c in (
        Client(
            "claude-code",
            "Claude Code",
            "mcpServers",
            True,
            "the entry has user scope, so every project sees it; /mcp in a Claude Code "
            "session shows the connection (and signs in when the profile uses sign-in)",
        ),
        Client(
            "claude-desktop",
            "Claude Desktop",
            "mcpServers",
            False,
            "claude_desktop_config.json has no entry for remote servers, so this runs the "
            "mcp-remote stdio bridge (needs Node.js); a paid plan can instead add the URL "
            "under Settings > Connectors > Add custom connector",
        ),
        Client(
            "cursor",
            "Cursor",
            "mcpServers",
            True,
            "the entry goes in the global ~/.cursor/mcp.json, so every project sees it",
        ),
        Client(
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


def get_client(name: str) -> Client:
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
    client: Client,
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

    client: Client
    route: str
    name: str
    url: str
    entry: dict[str, Any]
    command: list[str] | None

    @property
    def document(self) -> str:
        """The JSON to merge into the config file, as the file's top level."""
        return json.dumps({self.client.container: {self.name: self.entry}}, indent=2)


def snippet(client: Client, route: str, url: str, name: str | None = None) -> Snippet:
    check_route_url(url)
    name = name or entry_name(route)
    command = claude_add_command(name, url) if client.id == "claude-code" else None
    return Snippet(client, route, name, url, client.entry(url), command)


# --------------------------------------------------------------------------------------------
# JSONC scanner


class JsoncError(ValueError):
    """Text that is not JSON with comments; knows where, for a message that points at it."""

    def __init__(self, message: str, text: str, pos: int) -> None:
        self.line = text.count("\n", 0, pos) + 1
        self.column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        self.reason = message
        super().__init__(f"{message} at line {self.line}, column {self.column}")


@dataclass
class Node:
    """A value with its span; objects and arrays keep their members and commas."""

    kind: Literal["object", "array", "string", "number", "literal"]
    start: int
    end: int  # exclusive: one past '}' for an object
    value: Any = None  # scalars only
    members: list[Member] = field(default_factory=list)
    items: list[Node] = field(default_factory=list)
    trailing_comma: int | None = None  # offset of a comma after the last member or item


@dataclass
class Member:
    key: str
    key_start: int
    value: Node


_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LINE_COMMENT = re.compile(r"//[^\r\n]*")  # ends at a line break, as VS Code's scanner does
_LITERALS = {"true": True, "false": False, "null": None}
_DECODER = json.JSONDecoder(strict=False)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.comments: list[tuple[int, int]] = []

    def fail(self, message: str, pos: int) -> JsoncError:
        return JsoncError(message, self.text, pos)

    def skip(self, i: int) -> int:
        """Skip whitespace and comments; records each comment's span once."""
        text, n = self.text, len(self.text)
        while i < n:
            c = text[i]
            if c in " \t\r\n\ufeff":
                i += 1
            elif text.startswith("//", i):
                m = _LINE_COMMENT.match(text, i)
                j = m.end() if m else n
                self._note(i, j)
                i = j
            elif text.startswith("/*", i):
                j = text.find("*/", i + 2)
                if j < 0:
                    raise self.fail("unterminated /* comment", i)
                self._note(i, j + 2)
                i = j + 2
            else:
                break
        return i

    def _note(self, start: int, end: int) -> None:
        if not self.comments or self.comments[-1][0] < start:
            self.comments.append((start, end))

    def value(self, i: int, depth: int = 0) -> Node:
        if depth > 500:
            raise self.fail("nested too deeply", i)
        text = self.text
        if i >= len(text):
            raise self.fail("expected a value, found the end of the file", i)
        c = text[i]
        if c == "{":
            return self.obj(i, depth)
        if c == "[":
            return self.arr(i, depth)
        if c == '"':
            end = self.string_end(i)
            return Node("string", i, end, value=self.decode(i, end))
        m = _NUMBER.match(text, i)
        if m and m.end() > i:
            return Node("number", i, m.end(), value=json.loads(m.group()))
        for word, val in _LITERALS.items():
            if text.startswith(word, i):
                return Node("literal", i, i + len(word), value=val)
        raise self.fail(f"unexpected {c!r}", i)

    def string_end(self, i: int) -> int:
        text, n, j = self.text, len(self.text), i + 1
        while j < n:
            c = text[j]
            if c == "\\":
                j += 2
            elif c == '"':
                return j + 1
            elif c == "\n":
                break
            else:
                j += 1
        raise self.fail("unterminated string", i)

    def decode(self, start: int, end: int) -> str:
        try:
            out: str = _DECODER.decode(self.text[start:end])
        except ValueError as e:
            raise self.fail("invalid string escape", start) from e
        return out

    def obj(self, start: int, depth: int) -> Node:
        node = Node("object", start, start)
        i = self.skip(start + 1)
        while True:
            if i < len(self.text) and self.text[i] == "}":
                node.end = i + 1
                return node
            if i >= len(self.text) or self.text[i] != '"':
                raise self.fail("expected a quoted property name or '}'", i)
            key_end = self.string_end(i)
            key = self.decode(i, key_end)
            j = self.skip(key_end)
            if j >= len(self.text) or self.text[j] != ":":
                raise self.fail("expected ':' after the property name", j)
            value = self.value(self.skip(j + 1), depth + 1)
            node.members.append(Member(key, i, value))
            i = self.skip(value.end)
            if i < len(self.text) and self.text[i] == ",":
                comma = i
                i = self.skip(i + 1)
                if i < len(self.text) and self.text[i] == "}":
                    node.trailing_comma = comma
            elif i >= len(self.text) or self.text[i] != "}":
                raise self.fail("expected ',' or '}'", i)

    def arr(self, start: int, depth: int) -> Node:
        node = Node("array", start, start)
        i = self.skip(start + 1)
        while True:
            if i < len(self.text) and self.text[i] == "]":
                node.end = i + 1
                return node
            item = self.value(i, depth + 1)
            node.items.append(item)
            i = self.skip(item.end)
            if i < len(self.text) and self.text[i] == ",":
                comma = i
                i = self.skip(i + 1)
                if i < len(self.text) and self.text[i] == "]":
                    node.trailing_comma = comma
            elif i >= len(self.text) or self.text[i] != "]":
                raise self.fail("expected ',' or ']'", i)


@dataclass(frozen=True)
class Document:
    """A parsed JSONC text: its root (None when it holds only whitespace and comments)."""

    text: str
    root: Node | None
    comments: tuple[tuple[int, int], ...]


def parse_jsonc(text: str) -> Document:
    """Scan JSON with // and /* */ comments and trailing commas; JsoncError when malformed."""
    scanner = _Scanner(text)
    i = scanner.skip(0)
    root: Node | None = None
    if i < len(text):
        root = scanner.value(i)
        i = scanner.skip(root.end)
        if i < len(text):
            raise scanner.fail("unexpected text after the top-level value", i)
    return Document(text, root, tuple(scanner.comments))


def to_python(node: Node) -> Any:
    """The plain value of a node (later duplicate keys win, as in json.loads)."""
    if node.kind == "object":
        return {m.key: to_python(m.value) for m in node.members}
    if node.kind == "array":
        return [to_python(item) for item in node.items]
    return node.value


def loads(text: str) -> Any:
    """The value of a JSONC text; None when it holds no value."""
    doc = parse_jsonc(text)
    return None if doc.root is None else to_python(doc.root)


def comment_texts(text: str) -> list[str]:
    """Every comment, in order, byte for byte."""
    return [text[s:e] for s, e in parse_jsonc(text).comments]


# --------------------------------------------------------------------------------------------
# Text-preserving merge


class EntryConflict(LockgateError):
    """A server of the same name already points somewhere else."""


Status = Literal["added", "unchanged", "replaced"]


@dataclass(frozen=True)
class Merge:
    text: str
    status: Status
    existing: object = None  # the earlier entry's target when it was replaced


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _line_indent(text: str, pos: int) -> str:
    """The leading whitespace of the line that holds pos."""
    start = text.rfind("\n", 0, pos) + 1
    m = re.match(r"[ \t]*", text[start:pos])
    return m.group() if m else ""


def _own_line_indent(text: str, pos: int) -> str | None:
    """The indentation before pos when pos is the first thing on its line, else None."""
    start = text.rfind("\n", 0, pos) + 1
    before = text[start:pos]
    return before if before.strip(" \t\ufeff") == "" else None


def _indent_unit(doc: Document) -> str:
    """The document's indent step: from the first member placed on its own line, else 2 spaces."""
    root = doc.root
    if root is not None and root.kind == "object" and root.members:
        outer = _line_indent(doc.text, root.start)
        own = _own_line_indent(doc.text, root.members[0].key_start)
        if own is not None and own.startswith(outer) and len(own) > len(outer):
            return own[len(outer) :].lstrip("\ufeff")
    return "  "


def _render(value: Any, indent: str, unit: str, nl: str) -> str:
    text = json.dumps(value, indent=unit, ensure_ascii=False)
    return text.replace("\n", nl + indent)


def _insert_member(doc: Document, obj: Node, key: str, value: Any) -> str:
    """Text with `"key": value` added as obj's last member; nothing else moves."""
    text, nl, unit = doc.text, _newline(doc.text), _indent_unit(doc)
    close = obj.end - 1
    inner_comments = [(s, e) for s, e in doc.comments if obj.start < s and e <= close]
    if not obj.members:
        obj_indent = _line_indent(text, obj.start)
        child = obj_indent + unit
        member = f"{json.dumps(key, ensure_ascii=False)}: {_render(value, child, unit, nl)}"
        if not inner_comments:  # only whitespace inside: lay the object out afresh
            return text[: obj.start + 1] + nl + child + member + nl + obj_indent + text[close:]
        last = inner_comments[-1][1]
        tail = text[last:close]
        if "\n" not in tail:
            member += nl + obj_indent
        return text[:last] + nl + child + member + text[last:]
    last_member = obj.members[-1]
    after_value = last_member.value.end
    anchor = obj.trailing_comma + 1 if obj.trailing_comma is not None else after_value
    # After the last comment between the last member and '}', so the comment stays on its line.
    point = max([anchor] + [e for s, e in inner_comments if s >= after_value])
    own = _own_line_indent(text, last_member.key_start)
    after_line_comment = any(e == point and text.startswith("//", s) for s, e in inner_comments)
    comma_after = "," if obj.trailing_comma is not None else ""
    if own is not None or after_line_comment:
        child = own if own is not None else _line_indent(text, obj.start) + unit
        rendered = _render(value, child, unit, nl)
        insert = f"{nl}{child}{json.dumps(key, ensure_ascii=False)}: {rendered}{comma_after}"
    else:
        rendered = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        insert = f" {json.dumps(key, ensure_ascii=False)}: {rendered}{comma_after}"
        if obj.trailing_comma is None and point == after_value:
            return text[:after_value] + "," + insert + text[after_value:]
    out = text[:point] + insert + text[point:]
    if obj.trailing_comma is None:
        out = out[:after_value] + "," + out[after_value:]
    return out


def _replace_value(doc: Document, node: Node, value: Any) -> str:
    text, nl = doc.text, _newline(doc.text)
    own = _line_indent(text, node.start)
    if "\n" in text[node.start : node.end] or node.kind not in ("object", "array"):
        rendered = _render(value, own, _indent_unit(doc), nl)
    else:
        rendered = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text[: node.start] + rendered + text[node.end :]


def _last_member(obj: Node, key: str) -> Member | None:
    found = [m for m in obj.members if m.key == key]
    return found[-1] if found else None


def merge_entry(
    text: str,
    container: str,
    name: str,
    entry: dict[str, Any],
    *,
    same: Callable[[object], bool],
    force: bool = False,
) -> Merge:
    """Add `container.name = entry` to a JSONC text, editing only where the entry goes.

    `same` says whether an existing entry of that name already points where this one would
    (then nothing changes); otherwise EntryConflict, unless force replaces just that value.
    """
    doc = parse_jsonc(text)
    if doc.root is None:
        nl = _newline(text)
        body = _render({container: {name: entry}}, "", "  ", nl)
        sep = "" if not text or text.endswith("\n") else nl
        return Merge(text + sep + body + nl, "added")
    if doc.root.kind != "object":
        raise JsoncError("the top level is not an object", text, doc.root.start)
    box = _last_member(doc.root, container)
    if box is None:
        return Merge(_insert_member(doc, doc.root, container, {name: entry}), "added")
    if box.value.kind != "object":
        raise JsoncError(f'"{container}" is not an object', text, box.value.start)
    existing = _last_member(box.value, name)
    if existing is None:
        return Merge(_insert_member(doc, box.value, name, entry), "added")
    current = to_python(existing.value)
    if current == entry or same(current):
        return Merge(text, "unchanged")
    if not force:
        raise EntryConflict(
            f'An entry named "{name}" already exists and points elsewhere',
            "choose another name with --name, or pass --force to replace it",
        )
    return Merge(_replace_value(doc, existing.value, entry), "replaced", current)


# --------------------------------------------------------------------------------------------
# Installing into a file


@dataclass(frozen=True)
class Planned:
    """What install would do to one file: the text before and after, and each entry's fate."""

    path: Path
    before: str | None  # None: the file does not exist yet
    after: str
    results: tuple[tuple[str, Status], ...]

    @property
    def changed(self) -> bool:
        return self.before != self.after


def read_config(path: Path) -> str | None:
    """The file's text exactly (newlines kept), None when it does not exist."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError as e:
        raise LockgateError(f"{path} is a directory", "pass the config file with --config") from e
    except (OSError, UnicodeDecodeError) as e:
        raise LockgateError(
            f"Cannot read {path} ({type(e).__name__})", "check its permissions"
        ) from e


def _points_to(client: Client, url: str) -> Callable[[object], bool]:
    def same(entry: object) -> bool:
        return client.target(entry) == url

    return same


def plan_install(
    client: Client,
    path: Path,
    entries: list[tuple[str, str]],
    *,
    force: bool = False,
) -> Planned:
    """Merge (name, url) entries into the client's config text; writes nothing."""
    before = read_config(path)
    text = before or ""
    results: list[tuple[str, Status]] = []
    try:
        for name, url in entries:
            check_route_url(url)
            merged = merge_entry(
                text,
                client.container,
                name,
                client.entry(url),
                same=_points_to(client, url),
                force=force,
            )
            results.append((name, merged.status))
            text = merged.text
    except JsoncError as e:
        raise LockgateError(
            f"{path} is not valid JSON ({e})",
            "fix the file at that line, or pass --config to use another file",
        ) from e
    except EntryConflict as e:
        raise EntryConflict(f"{path}: {e.message}", e.fix) from e
    if before is not None:
        _self_check(
            client,
            before,
            text,
            [n for n, s in results if s != "unchanged"],
            {s for _, s in results},
        )
    return Planned(path, before, text, tuple(results))


def _comments_kept(before: list[str], after: list[str], *, exact: bool) -> bool:
    """Every comment survives; a forced replace may drop only those inside the old value."""
    if exact:
        return before == after
    rest = iter(before)
    return all(any(c == b for b in rest) for c in after)


def _self_check(
    client: Client, before: str, after: str, names: list[str], statuses: set[str]
) -> None:
    """Fail closed: the new text must parse to the old value plus the new entries only."""
    old, new = loads(before), loads(after)
    old = {} if old is None else old  # an empty (or comments-only) file
    if isinstance(old, dict) and isinstance(new, dict):
        old_box = old.get(client.container)
        new_box = new.get(client.container)
        rest_same = {k: v for k, v in old.items() if k != client.container} == {
            k: v for k, v in new.items() if k != client.container
        }
        old_servers = old_box if isinstance(old_box, dict) else {}
        if (
            rest_same
            and isinstance(new_box, dict)
            and {k: v for k, v in new_box.items() if k not in names}
            == {k: v for k, v in old_servers.items() if k not in names}
            and _comments_kept(
                comment_texts(before), comment_texts(after), exact="replaced" not in statuses
            )
        ):
            return
    raise LockgateError(
        "The merged config did not check out, so nothing was written",
        "report this with the file's layout (not its secrets); use `lockgate clients show` "
        "and edit the file by hand meanwhile",
    )


def backup_path(path: Path, now: datetime) -> Path:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.lockgate-backup-{stamp}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.lockgate-backup-{stamp}-{n}")
        n += 1
    return candidate


def apply_install(plan: Planned, now: datetime | None = None) -> Path | None:
    """Write the plan: backup first, then an atomic replace keeping the file's mode.

    Returns the backup's path (None when the file was created or nothing changed). A file
    that changed since it was read (the client rewrote it) is left alone.
    """
    if not plan.changed:
        return None
    real = plan.path.resolve() if plan.path.is_symlink() else plan.path
    if read_config(real) != plan.before:
        raise LockgateError(
            f"{plan.path} changed while lockgate was merging into it, so nothing was written",
            "run the command again (quit the client first if it keeps rewriting the file)",
        )
    backup: Path | None = None
    if plan.before is not None:
        mode = real.stat().st_mode & 0o7777
        backup = backup_path(real, now or datetime.now(UTC))
        shutil.copy2(real, backup)
    else:
        mode = 0o600
        real.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(plan.after)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup
