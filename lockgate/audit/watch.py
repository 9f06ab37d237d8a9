"""The model behind `lockgate watch`: events in, filtered rows, counts, rates and selection out.

Pure and terminal-free, so the view (cli/views/watch_app.py) only draws what this decides
(what one event's cells and detail say is `lockgate.audit.cells`), and tests
drive it key by key. Costs are per event (O(1) ingest) and per frame (the visible rows), never
per event per frame, so the view keeps up with a busy log: the ring of rows is bounded, the
counts cover every event ingested.
"""

from __future__ import annotations

import bisect
import contextlib
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lockgate.audit.events import (
    DENIED,
    ERRORS,
    OUTCOMES,
    TOOL_CALL,
    TOOL_CALL_STARTED,
    event_time,
)
from lockgate.audit.filter import EventFilter, parse_query

__all__ = ["CALL_METHODS", "OUTCOME_CYCLE", "Counts", "LagStats", "Row", "WatchModel"]

# What `o` steps through: no filter, every failure at once, then each outcome a call ends with.
OUTCOME_CYCLE: tuple[str, ...] = ("", "!success", *(o for o in OUTCOMES if o != "started"))
CALL_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
RATE_WINDOW = 60  # seconds: rates are events/s over the last minute


def _findings(event: Mapping[str, Any]) -> int:
    found = event.get("findings")
    if isinstance(found, (list, tuple)):
        return len(found)
    return 1 if found else 0


# ---------------------------------------------------------------------------- counters


@dataclass
class Counts:
    """Totals over every event ingested (not only the rows still in the ring)."""

    events: int = 0
    calls: int = 0
    denied: int = 0
    errors: int = 0
    findings: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, event: Mapping[str, Any]) -> None:
        self.events += 1
        outcome = event.get("outcome")
        if isinstance(outcome, str):
            self.outcomes[outcome] += 1
            if outcome in DENIED:
                self.denied += 1
            elif outcome in ERRORS:
                self.errors += 1
        if event.get("method") in CALL_METHODS:
            self.calls += 1
        self.findings += _findings(event)


class _Rates:
    """Per-route events per second over the last minute, from the events' own timestamps."""

    def __init__(self) -> None:
        self._buckets: dict[str, dict[int, int]] = {}

    def add(self, route: str, when: float) -> None:
        buckets = self._buckets.setdefault(route, {})
        second = int(when)
        buckets[second] = buckets.get(second, 0) + 1
        if len(buckets) > 4 * RATE_WINDOW:
            newest = max(buckets)
            for old in [s for s in buckets if s <= newest - RATE_WINDOW]:
                del buckets[old]

    def per_route(self, now: float) -> list[tuple[str, float]]:
        """(route, events/s) for routes with events in the last minute, busiest first."""
        out = []
        lo, hi = now - RATE_WINDOW, now
        for route, buckets in self._buckets.items():
            count = sum(n for s, n in buckets.items() if lo < s <= hi)
            if count:
                out.append((route, count / RATE_WINDOW))
        out.sort(key=lambda item: (-item[1], item[0]))
        return out


class LagStats:
    """How late events reached the screen: count, max and p95, in bounded memory (1 ms bins)."""

    _BINS = 60_000  # one minute of 1 ms bins; later lands in the last one

    def __init__(self) -> None:
        self.count = 0
        self.max = 0.0
        self._hist = [0] * (self._BINS + 1)

    def add(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.count += 1
        self.max = max(self.max, seconds)
        self._hist[min(int(seconds * 1000), self._BINS)] += 1

    def quantile(self, q: float) -> float:
        """The q-quantile in seconds (upper edge of its 1 ms bin); 0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, int(q * self.count + 0.999999))
        seen = 0
        for ms, n in enumerate(self._hist):
            seen += n
            if seen >= rank:
                return min((ms + 1) / 1000, self.max)
        return self.max


# ---------------------------------------------------------------------------- the model


def _call_key(event: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What ties a tool call's completion to its `tool.call.started` event."""
    if event.get("event") not in (TOOL_CALL_STARTED, TOOL_CALL) or event.get("id") is None:
        return None
    return (event.get("route"), event.get("session"), event.get("user"), repr(event.get("id")))


@dataclass(slots=True)
class Row:
    """One ingested event; `n` numbers events in arrival order (seq restarts on rotation)."""

    n: int
    event: dict[str, Any]


class WatchModel:
    """Everything the live view shows, driven by `ingest` and `key`."""

    def __init__(
        self, filt: EventFilter | None = None, *, ring: int = 5000, live_since: float = 0.0
    ) -> None:
        self.filter = filt or EventFilter()
        self.live_since = live_since  # lag is measured for events written after this
        self.ring = max(ring, 1)
        self.rows: deque[Row] = deque(maxlen=self.ring)
        self.shown: list[Row] = []
        self.counts = Counts()
        self.rates = _Rates()
        self.routes: set[str] = set()
        self.users: set[str] = set()
        self.selected: int | None = None  # row n; None: follow the newest
        self.detail_row: Row | None = None
        self.typing: str | None = None  # the `/` prompt's text while typing
        self.quit = False
        self._before_typing = self.filter
        self._top: int | None = None
        self._follow_after_detail = False
        self._n = 0
        self._unshown: list[float] = []
        self._running: dict[tuple[Any, ...], Row] = {}  # started calls not yet completed

    # --- events ---------------------------------------------------------------------

    def ingest(self, event: dict[str, Any], *, live: bool = True) -> None:
        """Take one event: count it, rate it, keep it in the ring, show it if it matches.

        A tool call is one row: its `tool.call.started` event shows (outcome "started")
        until the completion takes its place; a call that never completed stays "started".
        """
        key = _call_key(event)
        if key is not None and event.get("event") != TOOL_CALL_STARTED:
            running = self._running.pop(key, None)
            if running is not None:
                self._complete(running, event, live)
                return
        self._n += 1
        row = Row(self._n, event)
        self.rows.append(row)
        if key is not None:  # a started call: counted when it completes
            self._running[key] = row
            if len(self._running) > self.ring:
                del self._running[next(iter(self._running))]
            if self.filter.matches(event):
                self._show(row)
            return
        self._account(event, live)
        if self.filter.matches(event):
            self._show(row)

    def _complete(self, row: Row, event: dict[str, Any], live: bool) -> None:
        was_shown = self.filter.matches(row.event)
        row.event = event
        self._account(event, live)
        shown = self.filter.matches(event)
        if shown and not was_shown:
            bisect.insort(self.shown, row, key=lambda r: r.n)
        elif was_shown and not shown:
            with contextlib.suppress(ValueError):
                self.shown.remove(row)

    def _show(self, row: Row) -> None:
        self.shown.append(row)
        if len(self.shown) > 2 * self.ring:
            del self.shown[: len(self.shown) - self.ring]

    def _account(self, event: dict[str, Any], live: bool) -> None:
        self.counts.add(event)
        route = event.get("route")
        when = event_time(event)
        if isinstance(route, str):
            self.routes.add(route)
            if when is not None:
                self.rates.add(route, when)
        user = event.get("user")
        if isinstance(user, str):
            self.users.add(user)
        if live and when is not None and when >= self.live_since:
            self._unshown.append(when)

    def ingest_many(self, events: Iterable[dict[str, Any]], *, live: bool = True) -> int:
        n = 0
        for event in events:
            self.ingest(event, live=live)
            n += 1
        return n

    def drawn(self, now: float) -> list[float]:
        """Call when a frame showing every ingested event is on screen: their lags (s)."""
        lags = [now - t for t in self._unshown]
        self._unshown.clear()
        return lags

    def set_filter(self, filt: EventFilter) -> None:
        """Show the ring's rows that match; keep the selection when it still shows."""
        self.filter = filt
        self.shown = [row for row in self.rows if filt.matches(row.event)]
        if self.selected is not None and self._index(self.selected) is None:
            self.selected = None
        self._top = None

    def rate_lines(self, now: float) -> list[tuple[str, float]]:
        return self.rates.per_route(now)

    # --- selection and scrolling ----------------------------------------------------

    def _index(self, n: int) -> int | None:
        i = bisect.bisect_left(self.shown, n, key=lambda row: row.n)
        return i if i < len(self.shown) and self.shown[i].n == n else None

    def selected_index(self) -> int | None:
        if self.selected is None:
            return None
        i = self._index(self.selected)
        if i is None:  # trimmed out of the ring: hold on to the oldest row still shown
            if not self.shown:
                self.selected = None
                return None
            self.selected = self.shown[0].n
            i = 0
        return i

    def move(self, delta: int) -> None:
        """Select `delta` rows down (negative: up); from follow mode, start at the newest."""
        if not self.shown:
            return
        i = self.selected_index()
        i = len(self.shown) - 1 if i is None else i + delta
        i = min(max(i, 0), len(self.shown) - 1)
        self.selected = self.shown[i].n

    def follow(self) -> None:
        self.selected = None
        self._top = None

    def window(self, height: int) -> tuple[list[Row], int | None]:
        """The rows to draw in `height` lines, and which of them is selected."""
        height = max(height, 1)
        total = len(self.shown)
        i = self.selected_index()
        if i is None:
            self._top = None
            return self.shown[max(0, total - height) :], None
        if self._top is not None:
            top = bisect.bisect_left(self.shown, self._top, key=lambda row: row.n)
        else:  # leaving follow mode: start from the window it showed
            top = max(0, total - height)
        if i < top:
            top = i
        elif i >= top + height:
            top = i - height + 1
        top = max(0, min(top, total - height))  # no blank lines while older rows exist
        self._top = self.shown[top].n if top < total else None
        return self.shown[top : top + height], i - top

    # --- keys -----------------------------------------------------------------------

    def key(self, key: str, *, page: int = 10) -> None:
        """One key press: a printable character, or up, down, pgup, pgdn, home, end, enter,
        esc, backspace, tab."""
        if self.typing is not None:
            self._type(key)
        elif self.detail_row is not None:
            self._detail_key(key)
        else:
            self._list_key(key, page)

    def _type(self, key: str) -> None:
        assert self.typing is not None
        if key == "enter":
            self.typing = None
            return
        if key == "esc":
            self.typing = None
            self.set_filter(self._before_typing)
            return
        if key == "backspace":
            self.typing = self.typing[:-1]
        elif len(key) == 1 and key.isprintable():
            self.typing += key
        else:
            return
        self.set_filter(parse_query(self.typing))  # live: the table narrows as you type

    def edit_query(self, text: str) -> None:
        """The `/` prompt's whole text after an edit (a text input edits it, not only keys)."""
        if self.typing is None or text == self.typing:
            return
        self.typing = text
        self.set_filter(parse_query(text))  # live: the table narrows as you type

    def _detail_key(self, key: str) -> None:
        if key in ("esc", "q", "enter", "backspace"):
            self.detail_row = None
            if self._follow_after_detail:
                self.follow()
        elif key in ("up", "k", "down", "j"):
            self.move(-1 if key in ("up", "k") else 1)
            i = self.selected_index()
            if i is not None:
                self.detail_row = self.shown[i]

    def _list_key(self, key: str, page: int) -> None:
        if key == "q":
            self.quit = True
        elif key in ("up", "k"):
            self.move(-1)
        elif key in ("down", "j"):
            self.move(1)
        elif key == "pgup":
            self.move(-page)
        elif key == "pgdn":
            self.move(page)
        elif key in ("home", "g"):
            if self.shown:
                self.selected = self.shown[0].n
        elif key in ("end", "G", "esc", "f"):
            self.follow()
        elif key == "enter":
            i = self.selected_index()
            self._follow_after_detail = i is None
            if i is None and self.shown:
                i = len(self.shown) - 1
            if i is not None:
                self.detail_row = self.shown[i]
                self.selected = self.detail_row.n
        elif key == "/":
            self._before_typing = self.filter
            query = self.filter.query()
            self.typing = f"{query} " if query else ""
        elif key == "c":
            self.set_filter(EventFilter())
        elif key == "r":
            self.set_filter(replace(self.filter, routes=_next(self.filter.routes, self.routes)))
        elif key == "u":
            self.set_filter(replace(self.filter, users=_next(self.filter.users, self.users)))
        elif key == "o":
            outcomes = _next(self.filter.outcomes, OUTCOME_CYCLE, ordered=True)
            self.set_filter(replace(self.filter, outcomes=outcomes))


def _next(
    current: tuple[str, ...], choices: Iterable[str], *, ordered: bool = False
) -> tuple[str, ...]:
    """The one pattern after `current`'s (sorted unless `ordered`), then none (no filter),
    and around; several patterns step to the first choice."""
    rest = [c for c in dict.fromkeys(choices) if c]
    cycle = [""] + (rest if ordered else sorted(rest))
    now = current[0] if len(current) == 1 else "" if not current else None
    if now not in cycle:
        chosen = cycle[1] if len(cycle) > 1 else ""
    else:
        chosen = cycle[(cycle.index(now) + 1) % len(cycle)]
    return (chosen,) if chosen else ()
