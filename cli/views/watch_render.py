"""What `lockgate watch` draws: the header, the table (as segments, the visible rows only)
and the detail view of one event, as rich renderables.

Why it exists: the Textual app (`watch_app`) and the tests (on a recording console) draw the
same lines; the model (`lockgate.audit.watch`) decides what shows, this turns it into text
and colour (outcomes in `OUTCOME_STYLE`, the one colour map).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from lockgate.audit.cells import FindingRow, Section, cells, clean, detail
from lockgate.audit.watch import WatchModel
from lockgate.cli.views import GUARDRAIL_STYLE, OUTCOME_STYLE, guardrail_style, outcome_style

__all__ = ["ViewInfo", "detail_view", "events_table", "header_lines", "table_lines"]


@dataclass
class ViewInfo:
    """What the header says besides the model: the source, and a status line."""

    source: str
    status: str = ""
    path: Path | None = None  # the log followed: "waiting" while it does not exist
    banner: list[str] = field(default_factory=list)


def _n(value: int) -> str:
    return f"{value:,}"


def header_lines(model: WatchModel, info: ViewInfo, now: float) -> list[Text]:
    """The header: title and state, counts, per-route rates, and the filter while one is set."""
    title = Text()
    title.append("lockgate watch", style="bold")
    if model.selected is not None:
        i = model.selected_index()
        newer = len(model.shown) - 1 - i if i is not None else 0
        title.append(f"  paused · {_n(newer)} newer (End follows)", style="bold yellow")
    else:
        title.append("  following", style="green")
    if info.status:
        title.append(f"  {clean(info.status)}", style="bold red")
    title.append(f"  {clean(info.source)}", style="dim")  # last: a long path is cut, not these
    c = model.counts
    counts = Text()
    for label, value, style in (
        ("events", c.events, "bold"),
        ("calls", c.calls, "bold"),
        ("denied", c.denied, "bold yellow" if c.denied else "dim"),
        ("errors", c.errors, "bold red" if c.errors else "dim"),
        ("findings", c.findings, "bold magenta" if c.findings else "dim"),
    ):
        if counts:
            counts.append("   ")
        counts.append(f"{label} ")
        counts.append(_n(value), style=style)
    rates = Text("rates/s ", style="dim")
    per_route = model.rate_lines(now)
    if not per_route:
        rates.append(" none in the last minute", style="dim")
    for route, rate in per_route[:8]:
        rates.append(f"  {clean(route)} ")
        rates.append(f"{rate:.2f}", style="bold cyan")
    lines = [title, counts, rates]
    if model.filter or model.typing is not None:
        filt = Text("filter  ", style="dim")
        filt.append(model.filter.query() or "(none)", style="bold cyan")
        filt.append(f"   showing {_n(len(model.shown))} of {_n(len(model.rows))}", style="dim")
        lines.append(filt)
    for line in lines:  # one screen line each, whatever the width
        line.no_wrap = True
        line.overflow = "ellipsis"
    # The banner (how to connect a client) folds instead: a command cut short is no use.
    return [Text(clean(line), style="dim", overflow="fold") for line in info.banner] + lines


# (header, RowCells field, max width, the narrowest terminal that still shows it)
_COLUMNS: tuple[tuple[str, str, int, int], ...] = (
    ("time", "time", 12, 0),
    ("user", "user", 24, 90),
    ("client", "client", 16, 110),
    ("route", "route", 14, 0),
    ("method", "method", 16, 0),
    ("name", "name", 0, 0),  # 0: the rest of the line
    ("outcome", "outcome", 16, 0),
    ("guardrail", "guardrail", 30, 100),
    ("latency", "latency", 10, 0),
)
# Widths that do not change with the rows on screen, so columns do not jump as they scroll.
_MIN_WIDTH = {"time": 12, "method": 10, "outcome": 16, "guardrail": 9, "latency": 9}
_GAP = "  "
_NAME_MIN = 12


def _fit(value: str, width: int, right: bool = False) -> str:
    """`value` in exactly `width` cells: padded, or cut with an ellipsis."""
    if width <= 0:
        return ""
    if cell_len(value) > width:
        return set_cell_size(value, width - 1) + "…"
    return value.rjust(width) if right else set_cell_size(value, width)


_PLAIN, _BOLD, _DIM, _REVERSE = Style(), Style(bold=True), Style(dim=True), Style(reverse=True)
_OUTCOME: dict[str, Style] = {name: Style.parse(style) for name, style in OUTCOME_STYLE.items()}
_GUARD: dict[str, Style] = {name: Style.parse(style) for name, style in GUARDRAIL_STYLE.items()}


def table_lines(model: WatchModel, height: int, width: int = 120) -> list[list[Segment]]:
    """The scrolling table as segments, one list per screen line: column headers, then the
    newest rows that fit, or the rows around the selection.

    Laid out by hand from the visible window only (the ring may hold thousands of rows): a rich
    Table, or a Textual DataTable holding every row, costs far more per frame. Columns are as
    wide as their visible content up to a cap; the name takes the rest; narrow terminals drop
    client, then the guardrail cell, then user. Lines are cut at `width`, never wrapped.
    """
    rows, selected = model.window(height)
    row_cells = [cells(row.event)._asdict() for row in rows]
    columns = [c for c in _COLUMNS if width >= c[3]]
    widths: dict[str, int] = {}
    for header, key, cap, _ in columns:
        if cap:
            content = max((cell_len(c[key]) for c in row_cells), default=0)
            widths[key] = min(max(content, len(header), _MIN_WIDTH.get(key, 0)), cap)
    rest = width - sum(widths.values()) - len(_GAP) * (len(columns) - 1)
    widths["name"] = max(rest, _NAME_MIN)
    overflow = sum(widths.values()) + len(_GAP) * (len(columns) - 1) - width
    for key in ("method", "route", "user", "client", "guardrail", "outcome"):  # too narrow
        if overflow <= 0:
            break
        if key in widths:
            cut = min(overflow, max(widths[key] - 6, 0))
            widths[key] -= cut
            overflow -= cut

    def line(values: dict[str, Any], head: bool = False, chosen: bool = False) -> list[Segment]:
        base = _REVERSE if chosen else _PLAIN
        segments: list[Segment] = []
        for i, (_, key, _, _) in enumerate(columns):
            if i:
                segments.append(Segment(_GAP, base))
            cell = _fit(values[key], widths[key], right=key == "latency")
            if head:
                style = _BOLD
            elif key == "outcome":
                style = _OUTCOME.get(values[key], _PLAIN)
            elif key == "guardrail":
                style = _GUARD.get(values["guardrail_level"] or "", _DIM)
            elif key == "time":
                style = _DIM
            else:
                style = _PLAIN
            segments.append(Segment(cell, base + style if chosen else style))
        if sum(widths.values()) + len(_GAP) * (len(columns) - 1) > width:
            segments = Segment.adjust_line_length(segments, width, pad=False)
        return segments

    lines = [line({key: header for header, key, _, _ in columns}, head=True)]
    for i, values in enumerate(row_cells):
        lines.append(line(values, chosen=i == selected))
    return lines


class _Lines:
    """Segment lines as a rich renderable (for a console, or a recording one in tests)."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        newline = Segment.line()
        for line in self.lines:
            yield from line
            yield newline


def events_table(model: WatchModel, height: int, width: int = 120) -> RenderableType:
    """`table_lines` as a renderable."""
    return _Lines(table_lines(model, height, width))


def _fields(fields: list[tuple[str, str]], width: int) -> list[Text]:
    """Label/value pairs, two to a line when both fit in half the width, else one."""
    label_w = max((len(label) for label, _ in fields), default=0) + 2
    half = width // 2
    out: list[Text] = []
    pending: Text | None = None
    for label, value in fields:
        text = Text(label.ljust(label_w), style="dim")
        body = Text(value)
        if label == "outcome":
            body.stylize(outcome_style(value))
        text.append_text(body)
        if len(text) >= half - 2:  # a long value: a line of its own
            if pending is not None:
                out.append(pending)
                pending = None
            out.append(text)
        elif pending is None:
            pending = text
        else:
            pending.pad_right(half - len(pending))
            pending.append_text(text)
            out.append(pending)
            pending = None
    if pending is not None:
        out.append(pending)
    for line in out:
        line.no_wrap = True
        line.overflow = "ellipsis"
    return out


# The findings' columns in the detail view: (header, FindingRow field, max width).
_FINDING_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("kind", "kind", 10),
    ("rule", "rule", 28),
    ("severity", "severity", 8),
    ("target", "target", 32),
    ("path", "path", 40),
    ("count", "hits", 6),
    ("action", "action", 9),
    ("direction", "direction", 9),
    ("", "extra", 40),
)


def _finding_lines(rows: list[FindingRow]) -> list[Text]:
    """The findings as aligned rows under a dim header; columns no finding has are left out;
    the action in its guardrail colour."""
    values = [row._asdict() for row in rows]
    columns = [c for c in _FINDING_COLUMNS if any(v[c[1]] for v in values)]
    widths = {
        key: min(max(len(header), *(cell_len(v[key]) for v in values)), cap)
        for header, key, cap in columns
    }
    head = Text("  ", style="dim")
    for i, (header, key, _) in enumerate(columns):
        head.append(("  " if i else "") + _fit(header, widths[key]))
    out = [head]
    for v in values:
        line = Text("  ")
        for i, (_, key, _) in enumerate(columns):
            if i:
                line.append("  ")
            style = guardrail_style(v["level"]) if key == "action" else ""
            line.append(_fit(v[key], widths[key], right=key == "hits"), style=style)
        out.append(line)
    for line in out:
        line.rstrip()
        line.no_wrap = True
        line.overflow = "ellipsis"
    return out


def _section_lines(section: Section, width: int) -> list[Text]:
    return [
        Text(line[i : i + width])
        for line in section.pretty.splitlines()
        for i in range(0, max(len(line), 1), max(width, 1))
    ]


def detail_view(model: WatchModel, height: int, width: int) -> RenderableType:
    """One event in full: its fields (seq and hash included), then args, findings (one row
    each: kind, rule, severity, target, path, count, action, direction), error, result."""
    row = model.detail_row
    assert row is not None
    d = detail(row.event)
    fields = _fields(d.fields, width)
    parts: list[RenderableType] = list(fields)
    # (title, the value on the title line if it fits, else the lines under it)
    blocks: list[tuple[str, str | None, list[Text]]] = []
    findings = (f"findings ({len(d.findings)})", None, _finding_lines(d.findings))
    placed = not d.findings
    for section in d.sections:  # the findings go after the args, before error and result
        if not placed and section.title != "args":
            blocks.append(findings)
            placed = True
        blocks.append((section.title, section.compact, []))
    if not placed:
        blocks.append(findings)
    sections = {s.title: s for s in d.sections}
    budget = max(height - len(fields), 4 * len(blocks))
    for k, (name, compact, rows) in enumerate(blocks):
        room = max(budget // (len(blocks) - k), 2)  # a fair share, title line included
        title = Text(f"── {name} ", style="bold")
        if compact is not None and len(title) + len(compact) <= width:  # small: one line
            title.append(compact, style="")
            parts.append(title)
            budget -= 1
            continue
        lines = rows if compact is None else _section_lines(sections[name], width)
        shown = lines if len(lines) <= room - 1 else lines[: max(room - 2, 1)]
        parts.append(title)
        text = Text("\n", no_wrap=True, overflow="ellipsis").join(shown)
        if len(lines) > len(shown):
            what = "findings" if compact is None else "lines"
            text.append(f"\n… {len(lines) - len(shown)} more {what}", style="dim")
        parts.append(text)
        budget -= len(shown) + 1 + (len(lines) > len(shown))
    return Group(*parts)
