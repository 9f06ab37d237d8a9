"""A small JSONC scanner: JSON with // and /* */ comments and trailing commas (VS Code's).

It records where each value, member, comma and comment is, so that `merge` can insert text
at those offsets instead of re-serialising: a user's comments and layout stay byte for byte.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal


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
            i = self.after_item(node, value.end, "}")

    def arr(self, start: int, depth: int) -> Node:
        node = Node("array", start, start)
        i = self.skip(start + 1)
        while True:
            if i < len(self.text) and self.text[i] == "]":
                node.end = i + 1
                return node
            item = self.value(i, depth + 1)
            node.items.append(item)
            i = self.after_item(node, item.end, "]")

    def after_item(self, node: Node, end: int, close: str) -> int:
        """Where the next member or item (or `close`) starts, past the comma after the one
        ending at `end`; a comma right before `close` is the node's trailing comma."""
        i = self.skip(end)
        if i < len(self.text) and self.text[i] == ",":
            comma = i
            i = self.skip(i + 1)
            if i < len(self.text) and self.text[i] == close:
                node.trailing_comma = comma
        elif i >= len(self.text) or self.text[i] != close:
            raise self.fail(f"expected ',' or '{close}'", i)
        return i


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
