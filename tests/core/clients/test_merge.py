"""lockgate.clients.merge and .jsonc: the JSONC scanner and the text-preserving merge.

The property tests check the merge against an independent oracle written here (strip
comments and trailing commas, then json.loads), not against the scanner under test.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockgate.clients import jsonc, merge

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
