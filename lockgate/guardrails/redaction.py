"""Redaction of whole MCP messages: which parts of a message carry user data, and the walk.

Why it exists: the detectors work on one string; a message is a JSON tree in which only some
strings are data. The JSON-RPC envelope, ids, method names and every object key are never
touched, and a list result (tool definitions) is not data. What a client sends up (tool and
prompt arguments, completion arguments, its answers to sampling and elicitation) and what
comes down (results, resource contents, prompt messages, sampling and elicitation requests,
log notifications) are walked value by value, each string through the route's detectors, and
each found span gets its type's action for that direction: `log` records it, `mask` replaces
it with `[REDACTED:TYPE]`, `block` refuses the whole message. A walk that changes nothing
returns the same objects, so an unchanged message is re-encoded by no one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lockgate.guardrails.detectors import Action, Detectors

Direction = Literal["up", "down"]

# Client requests whose params are the user's data, and where in the params it sits.
_UP_PARAMS: dict[str, tuple[str, ...]] = {
    "tools/call": ("arguments",),
    "prompts/get": ("arguments",),
    "completion/complete": ("argument", "context"),
    "notifications/cancelled": ("reason",),
}
# Upstream results that are not data: definitions and protocol state.
_NOT_DATA_RESULTS = frozenset(
    {
        "initialize",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "server/discover",
        "ping",
    }
)
# Upstream requests and notifications whose params carry data.
_DOWN_PARAMS = frozenset(
    {
        "sampling/createMessage",
        "elicitation/create",
        "notifications/message",
        "notifications/progress",
    }
)


@dataclass(slots=True)
class Redactions:
    """What a walk found: counts per (type, path, action), and the first blocked type."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    blocked: str | None = None
    # Long strings already walked in this message, with what was found in them: a tool's
    # result often carries its text twice (`content` and `structuredContent`).
    seen: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=dict)

    def add(self, type_: str, path: str, action: str) -> None:
        key = (type_, path, action)
        self.counts[key] = self.counts.get(key, 0) + 1
        if action == "block" and self.blocked is None:
            self.blocked = type_

    def findings(self, direction: Direction) -> list[dict[str, Any]]:
        """The audit's `findings` items: the type, where, how many, what was done; never
        the value nor any part of it."""
        return [
            {
                "kind": "redaction",
                "rule": type_,
                "path": path,
                "count": count,
                "action": action,
                "direction": direction,
            }
            for (type_, path, action), count in self.counts.items()
        ]

    def __bool__(self) -> bool:
        return bool(self.counts)


# Strings at least this long are remembered within one message walk.
_MEMO_MIN = 64


def _path(parts: list[str | int]) -> str:
    out: list[str] = []
    for p in parts:
        if isinstance(p, int):
            out.append(f"[{p}]")
        else:
            out.append(f".{p}" if out else p)
    return "".join(out)


class Redactor:
    """One route's detectors and per-type actions for one direction."""

    __slots__ = ("actions", "active", "detectors")

    def __init__(self, detectors: Detectors, actions: Mapping[str, Action]) -> None:
        self.detectors = detectors
        self.actions = actions
        self.active = any(a != "off" for a in actions.values())

    def text(self, s: str, parts: list[str | int], found: Redactions) -> str:
        known = found.seen.get(s) if len(s) >= _MEMO_MIN else None
        if known is not None:
            out, hits = known
        else:
            out, hits = self._text(s)
            if len(s) >= _MEMO_MIN:
                found.seen[s] = (out, hits)
        if hits:
            path = _path(parts)
            for type_, action in hits:
                found.add(type_, path, action)
        return out

    def _text(self, s: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        spans = self.detectors.find(s)
        if not spans:
            return s, ()
        hits: list[tuple[str, str]] = []
        masking = False
        for span in spans:
            action = self.actions.get(span.type, "off")
            if action == "off":
                continue
            hits.append((span.type, action))
            masking = masking or action == "mask"
        if not masking:
            return s, tuple(hits)
        # The engine's own redact re-checks what masking exposed; run it on the masking actions.
        return self.detectors.redact(s, self.actions), tuple(hits)

    def value(self, v: Any, parts: list[str | int], found: Redactions) -> Any:
        if isinstance(v, str):
            return self.text(v, parts, found) if len(v) >= 4 else v
        if isinstance(v, dict):
            out: dict[str, Any] | None = None
            for k, item in v.items():
                parts.append(k)
                new = self.value(item, parts, found)
                parts.pop()
                if new is not item:
                    if out is None:
                        out = dict(v)
                    out[k] = new
            return v if out is None else out
        if isinstance(v, list):
            changed: list[Any] | None = None
            for i, item in enumerate(v):
                parts.append(i)
                new = self.value(item, parts, found)
                parts.pop()
                if new is not item:
                    if changed is None:
                        changed = list(v)
                    changed[i] = new
            return v if changed is None else changed
        return v

    def client_message(self, obj: dict[str, Any], found: Redactions) -> dict[str, Any]:
        """A message the client sends up: its request's data, or its answer to the server."""
        if not self.active:
            return obj
        method = obj.get("method")
        if isinstance(method, str):
            keys = _UP_PARAMS.get(method)
            params = obj.get("params")
            if keys is None or not isinstance(params, dict):
                return obj
            new_params = params
            for key in keys:
                if key in params:
                    new = self.value(params[key], ["params", key], found)
                    if new is not params[key]:
                        new_params = {**new_params, key: new}
            return obj if new_params is params else {**obj, "params": new_params}
        return self._answer(obj, found)

    def _answer(self, obj: dict[str, Any], found: Redactions) -> dict[str, Any]:
        """A response's result or error (the error's message and data reach a model too)."""
        for key in ("result", "error"):
            if key in obj:
                new = self.value(obj[key], [key], found)
                return obj if new is obj[key] else {**obj, key: new}
        return obj

    def server_message(
        self, obj: dict[str, Any], answers: str | None, found: Redactions
    ) -> dict[str, Any]:
        """A message from the upstream; `answers` is the method of the request it answers."""
        if not self.active:
            return obj
        method = obj.get("method")
        if isinstance(method, str):
            params = obj.get("params")
            if method not in _DOWN_PARAMS or not isinstance(params, dict):
                return obj
            new = self.value(params, ["params"], found)
            return obj if new is params else {**obj, "params": new}
        if "error" in obj:
            return self._answer(obj, found)
        if "result" in obj and answers not in _NOT_DATA_RESULTS:
            result = obj["result"]
            if answers is None and isinstance(result, dict) and "protocolVersion" in result:
                return obj  # an initialize result replayed on a GET stream: no data
            new = self.value(result, ["result"], found)
            return obj if new is result else {**obj, "result": new}
        return obj
