"""The audit vocabulary: what an event is called, its outcomes, and how its fields read.

Why it exists: the gateway writes events, `watch`, `audit query` and `audit stats` read them;
one place says what the fields mean so the views agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["latency_text", "time_text"]


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
