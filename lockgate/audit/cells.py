"""An audit event as the views show it: table cells and the detail view, safe on a terminal.

Why it exists: `watch`, `audit tail` and `audit query` put upstream-controlled names (tools,
routes, users) on a terminal; `clean` keeps control characters off it, and the detail view
orders an event's fields the way a reviewer reads them. Pure text: the views add colour.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from lockgate.audit.events import latency_text, time_text
from lockgate.mcp.sessions import is_session_hash, session_hash

__all__ = ["Detail", "RowCells", "Section", "cells", "clean", "detail"]

# C0/C1 control characters (ESC included) from upstream-controlled names must not reach a
# terminal: a tool named "\x1b]..." could rewrite what the reviewer sees.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
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
)
_DETAIL_SECTIONS = ("args", "findings", "error", "result")  # what a reviewer reads first
_DETAIL_TAIL = ("prev", "hash", "mac")
_SECTION_LIMIT = 4000


def clean(value: object, *, multiline: bool = False) -> str:
    """`value` as text with control characters replaced, safe to put on a terminal."""
    pattern = _CONTROL if multiline else _CONTROL_LINE
    return pattern.sub("?", value if isinstance(value, str) else str(value))


class RowCells(NamedTuple):
    """One table row's text, cleaned; the view adds colour by `outcome`."""

    time: str
    user: str
    client: str
    route: str
    method: str
    name: str
    outcome: str
    latency: str


def cells(event: Mapping[str, Any]) -> RowCells:
    """The table cells of one event: time (UTC), user, client, route, method, name, ..."""
    time_cell = time_text(event)

    def get(key: str) -> str:
        value = event.get(key)
        return "-" if value is None or value == "" else clean(value)

    name = event.get("name")
    if name is None:
        name = event.get("path")
    return RowCells(
        time=clean(time_cell) or "-",
        user=get("user"),
        client=get("client"),
        route=get("route"),
        method=get("method"),
        name="-" if name is None else clean(name),
        outcome=get("outcome"),
        latency=latency_text(event),
    )


class Section(NamedTuple):
    """A JSON part of an event (args, findings, error, result), indented and on one line."""

    title: str
    pretty: str
    compact: str


class Detail(NamedTuple):
    """The detail view of one event: labelled fields, then JSON sections (args, result...)."""

    fields: list[tuple[str, str]]
    sections: list[Section]


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
    sections = [
        Section(k, _json(event[k], 2), _json(event[k], None))
        for k in _DETAIL_SECTIONS
        if event.get(k) is not None
    ]
    return Detail(fields, sections)
