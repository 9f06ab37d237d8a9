"""Queries and statistics over the audit log: time parsing, filters, exact percentiles.

Pure functions over event dicts as `lockgate.audit.log` writes them, so `lockgate audit query`
and `lockgate audit stats` are thin; which events they keep is `lockgate.audit.filter`, the
filter `lockgate watch` uses too. Times in
the log are UTC (`2026-11-27T06:40:01.123Z`); every time here is an aware UTC datetime.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from lockgate.audit.cells import clean, guardrail
from lockgate.audit.events import DENIED, ERRORS, TOOL_CALL
from lockgate.audit.filter import EventFilter, finding_values
from lockgate.audit.read import parse_line

__all__ = [
    "CSV_COLUMNS",
    "GroupStats",
    "StatsBy",
    "csv_header",
    "csv_row",
    "iter_log",
    "latency_total",
    "parse_time",
    "percentile",
    "select",
    "stats",
]

StatsBy = Literal["tool", "route", "user"]

_RELATIVE = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MAX_RELATIVE = timedelta(days=365 * 100)


def parse_time(text: str, now: datetime) -> datetime:
    """An aware UTC datetime from ISO 8601 or a relative form meaning "that long before now".

    Relative: a number and a unit (`ms`, `s`, `m`, `h`, `d`, `w`), optionally combined and
    prefixed by "-" or suffixed by " ago": `15m`, `2h`, `1d`, `1h30m`, `-90s`.
    ISO: `2026-11-27`, `2026-11-27T06:40`, `2026-11-27 06:40:01.5Z`, `...+02:00`; a time
    without an offset is UTC, like the log. `now` is the reference (must be aware).
    Raises ValueError saying what was expected.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("expected a time such as 15m, 2h, 1d or 2026-11-27T06:40Z, got ''")
    relative = raw.lower().removeprefix("-").removesuffix("ago").strip()
    pos, total = 0, 0.0
    for match in _RELATIVE.finditer(relative):
        if match.start() != pos:
            break
        total += float(match["n"]) * _UNITS[match["unit"]]
        pos = match.end()
    else:
        if pos and pos == len(relative):
            if not total <= _MAX_RELATIVE.total_seconds():
                raise ValueError(f"{text!r} reaches back more than 100 years")
            return now.astimezone(UTC) - timedelta(seconds=total)
    iso = raw[:-1] + "+00:00" if raw[-1:] in ("Z", "z") else raw
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"expected a time such as 15m, 2h, 1d or 2026-11-27T06:40Z, got {text!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def latency_total(event: Mapping[str, Any]) -> float | None:
    """`latency_ms.total` when it is a finite number, else None."""
    latency = event.get("latency_ms")
    total = latency.get("total") if isinstance(latency, Mapping) else None
    if isinstance(total, bool) or not isinstance(total, int | float):
        return None
    return float(total) if math.isfinite(total) else None


def select(
    events: Iterable[Mapping[str, Any]], flt: EventFilter, limit: int | None = None
) -> list[Mapping[str, Any]]:
    """The matching events in log order; with `limit`, only the last `limit` of them."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be 0 or more")
    kept: deque[Mapping[str, Any]] = deque(maxlen=limit)
    for event in events:
        if flt.matches(event):
            kept.append(event)
    return list(kept)


def iter_log(path: Path, progress: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
    """Every complete event of the log at `path`, in order.

    A last line without its newline is a write in progress (or a crash mid-write) and is
    skipped: `lockgate audit verify` is the tool that reports it. A complete line that is
    not a JSON object raises ValueError naming the line. `progress`, when given, is called
    with the number of bytes read so far.
    """
    done = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            done += len(raw)
            if progress is not None and lineno % 512 == 0:
                progress(done)
            if not raw.endswith(b"\n"):
                break
            yield parse_line(raw, f"{path} line {lineno}")
    if progress is not None:
        progress(done)


# ---------------------------------------------------------------------------- CSV

CSV_COLUMNS: tuple[str, ...] = (
    "ts",
    "seq",
    "event",
    "user",
    "client",
    "route",
    "upstream",
    "method",
    "name",
    "outcome",
    "status",
    "latency_ms",
    "upstream_ms",
    "reason",
    "guardrail",  # the cell `audit query` shows: "masked 2 · HIDDEN_INSTRUCTIONS"
    "rules",  # every finding's rule id, once each, space-separated, in log order
)

# Spreadsheets run cells starting with these as formulas (CSV injection): names come
# from upstreams and users, so such a cell gets a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_header() -> str:
    return _csv_line(CSV_COLUMNS)


def csv_row(event: Mapping[str, Any]) -> str:
    """One CSV line (with its newline) of the `CSV_COLUMNS` of an event."""
    latency = event.get("latency_ms")
    upstream = latency.get("upstream") if isinstance(latency, Mapping) else None
    cells: list[object] = []
    for column in CSV_COLUMNS:
        if column == "latency_ms":
            cells.append(latency_total(event))
        elif column == "upstream_ms":
            cells.append(upstream if isinstance(upstream, int | float) else None)
        elif column == "guardrail":
            cells.append(guardrail(event).text or None)
        elif column == "rules":
            rules = dict.fromkeys(clean(r) for r in finding_values(event, "rule"))
            cells.append(" ".join(rules) or None)
        else:
            value = event.get(column)
            cells.append(value if isinstance(value, str | int | float) else None)
    return _csv_line([_csv_cell(c) for c in cells])


def _csv_line(cells: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


# ---------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], p: float) -> float:
    """The exact `p`-th percentile (nearest rank): the smallest value such that at least
    p% of `values` are <= it. Always one of the values; ValueError when there are none."""
    if not values:
        raise ValueError("no values")
    if not 0 <= p <= 100:
        raise ValueError("p must be between 0 and 100")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class GroupStats:
    """Counts and latencies of one tool, route or user."""

    key: str
    count: int = 0
    success: int = 0
    denied: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def error_rate(self) -> float:
        """Errors (`error`, `upstream_error`) over all counted events."""
        return self.errors / self.count if self.count else 0.0

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies, 50) if self.latencies else None

    @property
    def p95(self) -> float | None:
        return percentile(self.latencies, 95) if self.latencies else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "count": self.count,
            "success": self.success,
            "denied": self.denied,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p50_ms": self.p50,
            "p95_ms": self.p95,
        }


NO_KEY = "-"


def _group_key(event: Mapping[str, Any], by: StatsBy) -> str | None:
    """The group of an event, or None when it does not count for this grouping.

    By tool: tool calls only, keyed by tool name. By route or user: every request the
    gateway answered (events that carry `latency_ms`), "-" when the field is absent.
    """
    if by == "tool":
        if event.get("event") != TOOL_CALL:
            return None
        name = event.get("name")
        return str(name) if name is not None else NO_KEY
    if "latency_ms" not in event:
        return None
    value = event.get(by)
    return str(value) if value is not None else NO_KEY


def stats(
    events: Iterable[Mapping[str, Any]], by: StatsBy, flt: EventFilter | None = None
) -> list[GroupStats]:
    """Per-group counts, error rate and exact p50/p95 of `latency_ms.total`, busiest first
    (ties by key)."""
    groups: dict[str, GroupStats] = {}
    for event in events:
        if flt is not None and not flt.matches(event):
            continue
        key = _group_key(event, by)
        if key is None:
            continue
        group = groups.get(key)
        if group is None:
            group = groups[key] = GroupStats(key)
        group.count += 1
        outcome = event.get("outcome")
        if outcome == "success":
            group.success += 1
        elif outcome in ERRORS:
            group.errors += 1
        elif outcome in DENIED:
            group.denied += 1
        total = latency_total(event)
        if total is not None:
            group.latencies.append(total)
    return sorted(groups.values(), key=lambda g: (-g.count, g.key))
