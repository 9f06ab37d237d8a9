"""An audit event as the views show it: table cells and the detail view, safe on a terminal.

Why it exists: `watch`, `audit tail` and `audit query` put upstream-controlled names (tools,
routes, users) on a terminal; `clean` keeps control characters off it, and the detail view
orders an event's fields the way a reviewer reads them. Pure text: the views add colour.

The guardrail cell sums up an event's `findings` (and the standalone `guardrail.*`/`pin.*`
events) in a few words, worst first: "masked 2 · HIDDEN_INSTRUCTIONS", "pin changed",
"rate limited". It is built from kinds, rule ids, actions and counts only, never from a
path or a target, so it cannot show any part of a secret; its `level` (what the worst
action did to the message: stopped, changed or noted) is what the views colour.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, NamedTuple

from lockgate.audit.events import latency_text, time_text
from lockgate.audit.redact import TRUNCATED
from lockgate.mcp.sessions import is_session_hash, session_hash

__all__ = [
    "ACTION_LEVEL",
    "Detail",
    "FindingRow",
    "Guardrail",
    "Level",
    "RowCells",
    "Section",
    "cells",
    "clean",
    "detail",
    "finding_rows",
    "guardrail",
]

# C0/C1 control characters (ESC included) from upstream-controlled names must not reach a
# terminal: a tool named "\x1b]..." could rewrite what the reviewer sees. Nor may the
# characters that reorder or hide text (bidi overrides and isolates, zero-width spaces and
# the word joiner, the BOM, Unicode tag characters): "send_email\u202e" or a name with
# hidden tag letters would read as something else. ZWJ and ZWNJ stay (emoji, scripts).
_HIDDEN = "\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff\U000e0000-\U000e007f"
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_HIDDEN}]")
_CONTROL_LINE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_HIDDEN}]")
# Fields every detail view lists first, in this order; the rest follow sorted.
_DETAIL_ORDER = (
    "ts",
    "seq",
    "event",
    "route",
    "upstream",
    "user",
    "client",
    "session",
    "direction",
    "method",
    "name",
    "path",
    "id",
    "outcome",
    "status",
    "reason",
    "latency_ms",
    "count",
    "progress",
    "progress_events",
)
_DETAIL_SECTIONS = ("args", "findings", "error", "result")  # what a reviewer reads first
_DETAIL_TAIL = ("prev", "hash", "mac")
_SECTION_LIMIT = 4000


def clean(value: object, *, multiline: bool = False) -> str:
    """`value` as text with control characters replaced, safe to put on a terminal."""
    pattern = _CONTROL if multiline else _CONTROL_LINE
    return pattern.sub("?", value if isinstance(value, str) else str(value))


# ---------------------------------------------------------------------------- guardrails

# What an action did to the message, worst first: it did not go through (or not all of it),
# it went through changed, or it went through as it was and was only recorded.
Level = Literal["stopped", "changed", "noted"]
ACTION_LEVEL: Final[Mapping[str, Level]] = {
    "block": "stopped",
    "hide": "stopped",
    "withhold": "stopped",
    "mask": "changed",
    "sanitize": "changed",
    "log": "noted",
    "warn": "noted",
}
_RANK: Final[Mapping[Level | None, int]] = {"stopped": 3, "changed": 2, "noted": 1, None: 0}
_LEVELS: Final[Mapping[int, Level]] = {3: "stopped", 2: "changed", 1: "noted"}
_VERB: Final[Mapping[str, str]] = {
    "block": "blocked",
    "mask": "masked",
    "log": "logged",
    "hide": "hidden",
    "withhold": "withheld",
    "sanitize": "sanitized",
    "warn": "warned",
}
_SEVERITY: Final[Mapping[str, int]] = {"high": 0, "medium": 1, "low": 2}
# Segments of one rank in this order: what left or entered, then limits, pins, findings.
_KIND_ORDER: Final[Mapping[str, int]] = {"redaction": 0, "limit": 1, "pin": 2, "finding": 3}
_RULE_CELL = 40  # a rule id in the cell: ours are short; a profile's custom name may not be
# Standalone events without findings: what the cell says, and how bad it is.
_EVENT_CELL: Final[Mapping[str, tuple[str, Level]]] = {
    "pin.new": ("pin new", "noted"),
    "pin.changed": ("pin changed", "stopped"),
    "pin.approved": ("pin approved", "noted"),
    "pin.rejected": ("pin rejected", "noted"),
}
_SEP = " · "
_MORE = 9  # the kind order of the items left out: always last


class Guardrail(NamedTuple):
    """The guardrail cell of an event: its text ("" for none) and its worst action's level."""

    text: str
    level: Level | None


_NONE = Guardrail("", None)


def _items(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = event.get("findings")
    if isinstance(found, Mapping):
        return [found]
    if not isinstance(found, (list, tuple)):
        return []
    return [item for item in found if isinstance(item, Mapping)]


def _word(value: object, limit: int = _RULE_CELL) -> str:
    text = clean(value).strip()
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _count(item: Mapping[str, Any]) -> int:
    n = item.get("count")
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else 1


def guardrail(event: Mapping[str, Any]) -> Guardrail:
    """The guardrail cell: redactions counted per action ("masked 2"), a limit hit ("rate
    limited"), pins ("pin changed"), finding rule ids ("HIDDEN_INSTRUCTIONS x3" when three
    items share it), then any other item by its rule or kind; worst action first, then in
    that order, then by severity and name: the same findings always read the same."""
    name = event.get("event")
    if "findings" not in event and not (isinstance(name, str) and name in _EVENT_CELL):
        return _NONE  # most events: every row of every frame asks
    # (kind order, text) -> [rank, severity, n]; n sums counts for redactions (and the
    # items left out), and counts items for the rest.
    seen: dict[tuple[int, str], list[int]] = {}

    def add(order: int, text: str, rank: int, severity: int = 3, n: int = 1) -> None:
        entry = seen.get((order, text))
        if entry is None:
            seen[(order, text)] = [rank, severity, n]
        else:
            entry[0], entry[1], entry[2] = (
                max(entry[0], rank),
                min(entry[1], severity),
                entry[2] + n,
            )

    for item in _items(event):
        kind, rule, action = item.get("kind"), item.get("rule"), item.get("action")
        action_text = action if isinstance(action, str) else ""
        rank = _RANK[ACTION_LEVEL.get(action_text)]
        if kind == "redaction":
            verb = _VERB.get(action_text) or _word(action_text or "found", 16)
            add(0, verb, rank, n=_count(item))
        elif kind == "limit":
            add(1, "rate limited", _RANK["stopped"])
        elif kind == "pin" and isinstance(rule, str) and rule[:4].upper() == "PIN_":
            add(2, f"pin {_word(rule[4:].lower().replace('_', ' '))}", rank)
        elif kind == TRUNCATED:
            add(_MORE, "more", 0, n=_count(item))
        elif rule or kind:
            severity = _SEVERITY.get(str(item.get("severity")), 3)
            add(_KIND_ORDER.get(str(kind), 4), _word(rule or kind), rank, severity)
    fallback = _EVENT_CELL.get(name) if isinstance(name, str) else None
    if fallback is not None and (str(name).startswith("pin.") or not seen):
        add(-1, fallback[0], _RANK[fallback[1]])
    if not seen:
        return _NONE
    ordered = sorted(seen.items(), key=lambda kv: (-kv[1][0], kv[0][0], kv[1][1], kv[0][1]))
    parts = []
    for (order, text), (_, _, n) in ordered:
        if order == _MORE:
            parts.append(f"+{n} more")
        elif order == 0:
            parts.append(f"{text} {n}")
        else:
            parts.append(text if n == 1 else f"{text} x{n}")
    worst = max(entry[0] for entry in seen.values())
    return Guardrail(_SEP.join(parts), _LEVELS.get(worst))


class FindingRow(NamedTuple):
    """One finding as the detail view lists it, cleaned; "" where the item has no value
    (`hits` is the item's `count`: a NamedTuple's own `count` is a method)."""

    kind: str
    rule: str
    severity: str
    target: str
    path: str
    hits: str
    action: str
    direction: str
    extra: str  # other keys, `key=value` (a limit's scope)
    level: Level | None


_ROW_KEYS = ("kind", "rule", "severity", "target", "path", "count", "action", "direction")


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return "" if value is None else clean(value)


def finding_rows(findings: Iterable[Mapping[str, Any]]) -> list[FindingRow]:
    """The findings in the order the log keeps them, one row each."""
    rows = []
    for item in findings:
        text = functools.partial(_text, item)
        action = item.get("action")
        rows.append(
            FindingRow(
                kind=text("kind"),
                rule=text("rule"),
                severity=text("severity"),
                target=text("target"),
                path=text("path"),
                hits=text("count"),
                action=text("action"),
                direction=text("direction"),
                extra="  ".join(
                    f"{clean(k)}={clean(v)}"
                    for k, v in sorted(item.items(), key=lambda kv: str(kv[0]))
                    if k not in _ROW_KEYS and v is not None
                ),
                level=ACTION_LEVEL.get(action) if isinstance(action, str) else None,
            )
        )
    return rows


# ---------------------------------------------------------------------------- rows


class RowCells(NamedTuple):
    """One table row's text, cleaned; the view adds colour by `outcome` (and the guardrail
    cell by `guardrail_level`)."""

    time: str
    user: str
    client: str
    route: str
    method: str
    name: str
    outcome: str
    guardrail: str
    latency: str
    guardrail_level: Level | None


def cells(event: Mapping[str, Any]) -> RowCells:
    """The table cells of one event: time (UTC), user, client, route, method, name, ..."""
    time_cell = time_text(event)

    def get(key: str) -> str:
        value = event.get(key)
        return "-" if value is None or value == "" else clean(value)

    name = event.get("name")
    if name is None:
        name = event.get("path")
    guard = guardrail(event)
    return RowCells(
        time=clean(time_cell) or "-",
        user=get("user"),
        client=get("client"),
        route=get("route"),
        method=get("method"),
        name="-" if name is None else clean(name),
        outcome=get("outcome"),
        guardrail=guard.text or "-",
        latency=latency_text(event),
        guardrail_level=guard.level,
    )


class Section(NamedTuple):
    """A JSON part of an event (args, findings, error, result), indented and on one line."""

    title: str
    pretty: str
    compact: str


class Detail(NamedTuple):
    """The detail view of one event: labelled fields, then JSON sections (args, result...);
    its findings as rows (and no JSON section for them) when they are a list of items."""

    fields: list[tuple[str, str]]
    sections: list[Section]
    findings: list[FindingRow] = []


def _json(value: object, indent: int | None) -> str:
    try:
        text = json.dumps(
            value,
            indent=indent,
            ensure_ascii=False,
            default=str,
            separators=None if indent else (", ", ": "),
        )
    except ValueError:
        text = str(value)
    if len(text) > _SECTION_LIMIT:
        text = f"{text[:_SECTION_LIMIT]}\n… (+{len(text) - _SECTION_LIMIT} chars)"
    return clean(text, multiline=indent is not None)


def _scalar(key: str, value: object) -> str:
    if key == "session" and not is_session_hash(value):
        # Logs written before sessions were hashed hold the id itself: show only its hash.
        return session_hash(str(value))
    if key == "latency_ms" and isinstance(value, Mapping):
        return "  ".join(f"{k} {v:.1f} ms" for k, v in value.items() if isinstance(v, (int, float)))
    if isinstance(value, (dict, list)):
        return clean(json.dumps(value, ensure_ascii=False, default=str))
    return clean(value)


def detail(event: Mapping[str, Any]) -> Detail:
    """Every field of the event (as the log holds it: args and result are already redacted)."""
    seen = set(_DETAIL_ORDER) | set(_DETAIL_SECTIONS) | set(_DETAIL_TAIL)
    keys = [k for k in _DETAIL_ORDER if k in event]
    keys += sorted(k for k in event if k not in seen)
    keys += [k for k in _DETAIL_TAIL if k in event]
    fields = [(clean(k), _scalar(k, event[k])) for k in keys]
    found = event.get("findings")
    rows: list[FindingRow] = []
    if isinstance(found, list) and found and all(isinstance(f, Mapping) for f in found):
        rows = finding_rows(found)
    sections = [
        Section(k, _json(event[k], 2), _json(event[k], None))
        for k in _DETAIL_SECTIONS
        if event.get(k) is not None and not (k == "findings" and rows)
    ]
    return Detail(fields, sections, rows)
