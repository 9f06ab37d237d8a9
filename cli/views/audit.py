"""rich views of the audit log (`audit tail`, `query`, `stats`, `verify`): a compact table for
terminals, plain lines for pipes; outcomes coloured by the one map, `OUTCOME_STYLE`, and the
guardrail cell (`lockgate.audit.cells.guardrail`) by `GUARDRAIL_STYLE`. The guardrail column
comes last: in a plain line it is left out when empty, so the fields before it stay where
`awk` finds them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from lockgate.audit.cells import clean, guardrail
from lockgate.audit.events import latency_text, time_text
from lockgate.audit.verify import VerifyResult
from lockgate.cli.views import guardrail_style, outcome_style

# (header, event key, width): fixed widths so rows printed one by one (--follow) line up.
Columns = tuple[tuple[str, str, int], ...]
_WHAT_AND_HOW: Columns = (
    ("route", "route", 14),
    ("method", "method", 16),
    ("name", "name", 24),
    ("outcome", "outcome", 16),
    ("status", "status", 6),
    ("latency", "latency_ms", 10),
    ("guardrail", "guardrail", 28),
)
_COLUMNS: Columns = (("time", "ts", 12), ("event", "event", 16), *_WHAT_AND_HOW)
# `lockgate audit query` adds the user: a query is often "what did this person do".
QUERY_COLUMNS: Columns = (("time", "ts", 12), ("user", "user", 14), *_WHAT_AND_HOW)


def _clean(value: object) -> str:
    return clean(value)


def _time(event: Mapping[str, Any]) -> str:
    return _clean(time_text(event)) or "-"


def _cell(event: Mapping[str, Any], key: str) -> str:
    if key == "ts":
        return _time(event)
    if key == "latency_ms":
        return latency_text(event)
    if key == "guardrail":
        return guardrail(event).text or "-"
    value = event.get(key)
    return "-" if value is None else _clean(value)


_GUARD_MIN = 9  # "guardrail": narrower, and the column is left out


def _fitted(columns: Columns, width: int | None) -> Columns:
    """`columns` within `width` cells: the guardrail column (last) takes the room the fixed
    ones leave, up to its cap, and is left out when less than its header is left. The same
    width gives the same columns, so rows printed one by one (--follow) still line up."""
    if width is None:
        return columns
    *fixed, (header, key, cap) = columns
    room = width - sum(w for _, _, w in fixed) - 2 * len(fixed)  # 2: the gap between columns
    if room < _GUARD_MIN:
        return tuple(fixed)
    return (*fixed, (header, key, min(cap, room)))


def _table(
    events: Iterable[Mapping[str, Any]],
    columns: Columns,
    *,
    show_header: bool = True,
    width: int | None = None,
) -> Table:
    """Events in fixed-width `columns` (fitted to `width`), the outcome and the guardrail
    cell in their styles."""
    columns = _fitted(columns, width)
    table = Table(box=None, show_header=show_header, pad_edge=False, header_style="bold")
    for header, key, width in columns:
        table.add_column(
            header,
            width=width,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if key in ("status", "latency_ms") else "left",
        )
    keys = [key for _, key, _ in columns]
    outcome_col = keys.index("outcome")
    guard_col = keys.index("guardrail") if "guardrail" in keys else None
    for event in events:
        row = [Text(_cell(event, key)) for key in keys]
        row[outcome_col].stylize(outcome_style(event.get("outcome", "")))
        if guard_col is not None:
            guard = guardrail(event)
            row[guard_col].stylize(guardrail_style(guard.level) if guard.text else "dim")
        table.add_row(*row)
    return table


def _line(event: Mapping[str, Any], columns: Columns) -> str:
    """One plain line for pipes: full ts, then the other columns, '-' when absent; the
    guardrail cell (last) only when there is one."""
    ts = _clean(event.get("ts", "-"))
    cells = [ts, *(_cell(event, key) for _, key, _ in columns[1:] if key != "guardrail")]
    guard = guardrail(event).text
    return " ".join([*cells, guard] if guard else cells)


def events_table(
    events: Iterable[Mapping[str, Any]], *, show_header: bool = True, width: int | None = None
) -> Table:
    """A compact table: time (UTC), event, route, method, name, outcome, status, latency,
    and the guardrail cell where `width` leaves room for it."""
    return _table(events, _COLUMNS, show_header=show_header, width=width)


def event_line(event: Mapping[str, Any]) -> str:
    """One plain line per event for pipes: full ts, then the table's columns, '-' when absent."""
    return _line(event, _COLUMNS)


def print_line(con: Console, event: Mapping[str, Any]) -> None:
    """One event as its plain line (`event_line`), as piped output prints it."""
    con.print(Text(event_line(event)), soft_wrap=True)


def print_events(con: Console, events: list[dict[str, Any]], *, header: bool = True) -> None:
    """A table on a terminal, plain lines otherwise (piped output stays greppable)."""
    if not events:
        return
    if con.is_terminal:
        con.print(events_table(events, show_header=header, width=con.width))
        return
    for event in events:
        print_line(con, event)


def verify_text(result: VerifyResult) -> Text:
    """The one-line verdict of `lockgate audit verify`."""
    if result.ok:
        text = f"audit log OK: {result.lines} events, chain intact"
        if result.torn:
            shown = ", ".join(map(str, result.torn[:5])) + (", ..." if len(result.torn) > 5 else "")
            text += (
                f"; {len(result.torn)} torn line(s) skipped (line {shown}: a write cut short "
                "by a crash or a full disk, holding no event of the chain)"
            )
        return Text(text, style="green")
    if result.first_bad_line is None:
        return Text(f"audit log NOT PROVEN: {_clean(result.reason)}", style="bold red")
    return Text(
        f"audit log BROKEN at line {result.first_bad_line}: {_clean(result.reason)}",
        style="bold red",
    )


# ---------------------------------------------------------------------------- query and stats


def query_table(events: Iterable[Mapping[str, Any]], width: int | None = None) -> Table:
    """The table of `lockgate audit query`: the tail table with the user instead of the event."""
    return _table(events, QUERY_COLUMNS, width=width)


def query_line(event: Mapping[str, Any]) -> str:
    """One plain line per event for pipes: full ts, then the query table's columns."""
    return _line(event, QUERY_COLUMNS)


def print_query(con: Console, events: list[Mapping[str, Any]]) -> None:
    """A table on a terminal, plain lines otherwise; says so when nothing matched."""
    if not events:
        con.print("no matching events", style="dim")
        return
    if con.is_terminal:
        con.print(query_table(events, con.width))
        return
    for event in events:
        con.print(Text(query_line(event)), soft_wrap=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def stats_table(groups: Iterable[Any], by: str) -> Table:
    """`lockgate audit stats`: one row per tool, route or user, busiest first.

    `groups` are `lockgate.audit.query.GroupStats`; an error rate above zero is red.
    """
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column(by, no_wrap=True, overflow="ellipsis", max_width=32)
    for header in ("calls", "ok", "denied", "errors", "error rate", "p50", "p95"):
        table.add_column(header, justify="right", no_wrap=True)
    for g in groups:
        rate = Text(f"{g.error_rate:.1%}", style="red" if g.errors else "")
        table.add_row(
            Text(_clean(g.key)),
            str(g.count),
            str(g.success),
            str(g.denied),
            str(g.errors),
            rate,
            _ms(g.p50),
            _ms(g.p95),
        )
    return table


@contextmanager
def reading_progress(err: Console, name: str, size: int) -> Iterator[Callable[[int], None]]:
    """A transient bar on stderr while `size` bytes of the log called `name` are read."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    with Progress(
        TextColumn("reading {task.description}"),
        BarColumn(),
        DownloadColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(name, total=size)
        yield lambda done: progress.update(task, completed=done)
