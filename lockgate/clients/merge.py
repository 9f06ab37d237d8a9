"""The text-preserving merge: add one server entry to a JSONC config, editing only where it goes.

Nothing is re-serialised; the entry is inserted at the offsets `jsonc` recorded, indented
like its neighbours, so comments, order and formatting survive.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from lockgate.clients.jsonc import Document, JsoncError, Member, Node, parse_jsonc, to_python
from lockgate.errors import LockgateError


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
