"""The audit vocabulary: event names and their builders, outcomes and their groups, and how
an event's fields read (its time, latency and time of day).

Why it exists: the gateway writes events (addons/audit.py translates a flow into the calls
below), `watch`, `audit query` and `audit stats` read them; one place says what an event is
called, which outcomes there are and which count as denied or as errors, so the writer and
every view agree. Pure: no mitmproxy, no terminal.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

from lockgate.audit.redact import preview
from lockgate.mcp.jsonrpc import Message
from lockgate.mcp.uris import normalised
from lockgate.policy.view import RESOURCE_METHODS

__all__ = [
    "CAPABILITY_LIST",
    "DENIED",
    "ERRORS",
    "GATEWAY_REQUEST",
    "MCP_MESSAGE",
    "MCP_REQUEST",
    "OUTCOMES",
    "PIN_EVENTS",
    "TOOL_CALL",
    "TOOL_CALL_STARTED",
    "Outcome",
    "PinKind",
    "audit_name",
    "client_message",
    "event_name",
    "event_time",
    "exchange",
    "http_outcome",
    "latency_text",
    "ms",
    "reply_outcome",
    "request",
    "server_message",
    "started",
    "time_text",
]

# ---------------------------------------------------------------------------- outcomes

Outcome = Literal[
    "success", "denied", "blocked", "error", "upstream_error", "connect_required", "started"
]
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)
# Grouped the way a reviewer reads them (the counts of `watch`, the columns of `audit stats`).
DENIED: Final[frozenset[Outcome]] = frozenset({"denied", "blocked", "connect_required"})
ERRORS: Final[frozenset[Outcome]] = frozenset({"error", "upstream_error"})

# ---------------------------------------------------------------------------- event names

TOOL_CALL: Final = "tool.call"
TOOL_CALL_STARTED: Final = "tool.call.started"
CAPABILITY_LIST: Final = "capability.list"
MCP_REQUEST: Final = "mcp.request"
MCP_MESSAGE: Final = "mcp.message"
GATEWAY_REQUEST: Final = "gateway.request"
# The pin store's events, as lockgate.guardrails.pinning writes them (Change, Decided).
PinKind = Literal["new", "changed", "approved", "rejected"]
PIN_EVENTS: Final[Mapping[PinKind, str]] = {k: f"pin.{k}" for k in get_args(PinKind)}

_ARGS_METHODS = frozenset({"tools/call", "prompts/get"})
_NAME_LIMIT = 512


def event_name(method: str | None) -> str:
    """The event a request's completion is recorded as."""
    if method == "tools/call":
        return TOOL_CALL
    if method is not None and method.endswith("/list"):
        return CAPABILITY_LIST
    return MCP_REQUEST


def audit_name(m: Message) -> str | None:
    """The item a message targets as the rules saw it: a resource URI in normal form (so
    one resource has one name in the audit, however a client spelled it)."""
    name = m.name
    if name is None or m.method not in RESOURCE_METHODS:
        return name
    normal = normalised(name)
    if normal is not None:
        return normal
    if len(name) <= _NAME_LIMIT:
        return name
    return f"{name[:_NAME_LIMIT]}…(+{len(name) - _NAME_LIMIT} chars)"


def ms(seconds: float) -> float:
    """A duration in milliseconds, as latencies are written."""
    return round(seconds * 1000, 2)


def http_outcome(status: int | None, *, upstream: bool = True) -> Outcome:
    """The outcome of an answered exchange from its HTTP status alone: success below 400;
    a 5xx is the upstream's fault when `upstream` (a JSON-RPC request it was sent)."""
    if status is not None and status < 400:
        return "success"
    if upstream and status and status >= 500:
        return "upstream_error"
    return "error"


def reply_outcome(reply: Mapping[str, Any]) -> Outcome:
    """A JSON-RPC reply's outcome: an error, or a tool result flagged `isError`, is "error"."""
    result = reply.get("result")
    if "error" in reply or (isinstance(result, dict) and result.get("isError") is True):
        return "error"
    return "success"


# ---------------------------------------------------------------------------- builders
# Each takes the exchange's common fields (route, upstream, user, client, session) as
# `base`; None values are dropped by the log.


def started(base: Mapping[str, Any], m: Message) -> dict[str, Any]:
    """A tool call about to go upstream: a call cut off by a killed gateway or a vanished
    client still shows, and its completion (same id and session), or none, tells how it ended."""
    return {
        **base,
        "event": TOOL_CALL_STARTED,
        "method": m.method,
        "name": audit_name(m),
        "id": m.id,
        "outcome": "started",
        "args": (m.params or {}).get("arguments"),
    }


def client_message(base: Mapping[str, Any], m: Message, outcome: Outcome) -> dict[str, Any]:
    """A notification, or the client's answer to a server request: no reply of its own."""
    return {
        **base,
        "event": MCP_MESSAGE,
        "direction": "client",
        "method": m.method or "response",
        "name": audit_name(m),
        "id": m.id,
        "outcome": outcome,
    }


def server_message(base: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
    """A message from the upstream that answers no request of this exchange."""
    method = obj.get("method")
    params = obj.get("params")
    rid = obj.get("id")
    return {
        **base,
        "event": MCP_MESSAGE,
        "direction": "server",
        "method": method if isinstance(method, str) else "response",
        "id": rid if isinstance(rid, (str, int)) else None,
        "outcome": "success",
        "progress": params.get("progress")
        if isinstance(params, dict) and method == "notifications/progress"
        else None,
    }


def exchange(
    base: Mapping[str, Any],
    *,
    routed: bool,
    method: str,
    path: str,
    outcome: Outcome,
    status: int | None,
    reason: str | None,
    total_ms: float,
) -> dict[str, Any]:
    """One event for an exchange without JSON-RPC requests (GET streams, DELETE, the
    gateway's own endpoints, refused bodies); the path only off a route."""
    return {
        **base,
        "event": MCP_REQUEST if routed else GATEWAY_REQUEST,
        "method": method,
        "path": None if routed else path.split("?", 1)[0],
        "outcome": outcome,
        "status": status,
        "reason": reason,
        "latency_ms": {"total": total_ms},
    }


def request(
    base: Mapping[str, Any],
    m: Message,
    *,
    outcome: Outcome,
    status: int | None,
    reason: str | None,
    total_ms: float,
    upstream_ms: float | None,
    reply: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A request's completion: its outcome, latency, arguments and (a preview of) the reply:
    the error, a list's length, or the result. The reason is kept for failures only."""
    args = (m.params or {}).get("arguments") if m.method in _ARGS_METHODS else None
    event: dict[str, Any] = {
        **base,
        "event": event_name(m.method),
        "method": m.method,
        "name": audit_name(m),
        "id": m.id,
        "outcome": outcome,
        "status": status,
        "reason": reason if outcome != "success" else None,
        "latency_ms": {"total": total_ms, "upstream": upstream_ms},
        "args": args,
    }
    if reply is not None:
        if "error" in reply:
            event["error"] = preview(reply["error"])
        elif m.method and m.method.endswith("/list") and isinstance(reply.get("result"), dict):
            result = reply["result"]
            event["count"] = next((len(v) for v in result.values() if isinstance(v, list)), None)
        else:
            event["result"] = reply.get("result")
    return event


# ---------------------------------------------------------------------------- reading fields


@functools.lru_cache(maxsize=4096)
def _second(prefix: str) -> int | None:
    try:
        return int(datetime.fromisoformat(prefix).replace(tzinfo=UTC).timestamp())
    except ValueError:
        return None


def event_time(event: Mapping[str, Any]) -> float | None:
    """The event's `ts` as a Unix time, or None when it has none or it does not parse.

    The log's own format (`2026-11-27T06:40:01.123Z`) is read fast (cached per second) and
    exactly: the same float as the `datetime.timestamp()` of that instant, so a time bound
    given as a datetime compares as it would have. Other ISO 8601 forms are read too; a time
    without an offset is UTC.
    """
    ts = event.get("ts")
    if not isinstance(ts, str) or not ts:
        return None
    if len(ts) >= 20 and ts.endswith("Z") and (len(ts) == 20 or ts[19:20] == "."):
        base: int | None = _second(ts[:19])  # the hot path: `watch` reads every event's time
        if base is not None:
            frac = ts[20:-1]
            if not frac:
                return float(base)
            if frac.isdigit():
                scale: int = 10 ** len(frac)
                return (base * scale + int(frac)) / scale
    try:
        parsed = datetime.fromisoformat(ts[:-1] + "+00:00" if ts.endswith("Z") else ts)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def latency_text(event: Mapping[str, Any]) -> str:
    """An event's total latency for a table cell ("12.3 ms"), or "-"."""
    latency = event.get("latency_ms")
    total = latency.get("total") if isinstance(latency, Mapping) else latency
    if isinstance(total, bool) or not isinstance(total, (int, float)):
        return "-"
    return f"{total:.1f} ms"


def time_text(event: Mapping[str, Any]) -> str:
    """An event's time of day (UTC, to the millisecond) for a table cell."""
    ts = str(event.get("ts", ""))
    return ts[11:23] if len(ts) >= 23 and ts[10:11] == "T" else ts
