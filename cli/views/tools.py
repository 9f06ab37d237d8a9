"""How `lockgate tools` shows pins: tables on a terminal (plain lines when piped), and the
coloured unified diff of the approved and the listed definition (canonical JSON, sorted
keys, invisible characters escaped so a reviewer sees them)."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from lockgate.guardrails.pinning import diff_lines, visible
from lockgate.guardrails.pinstore import Decided, Pending, Pin

_REASON_STYLE = {
    "changed": "red",
    "spoofing": "red",
    "profile": "red",
    "pending": "yellow",
    "rejected": "magenta",
}
_REASON_TEXT = {
    "changed": "changed",
    "spoofing": "spoofing",
    "profile": "differs from the profile's pin",
    "pending": "new, waits for approval",
    "rejected": "rejected",
}


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _what(p: Pending) -> str:
    parts = [_REASON_TEXT[p.reason]]
    if p.fields:
        parts.append(", ".join(p.fields))
    if p.similar:
        parts.append(f"like {visible(p.similar)}")
    return "; ".join(parts)


def pending_line(p: Pending) -> str:
    """One plain line per held definition, for pipes."""
    return f"{p.upstream} {visible(p.name)} {p.pin[:12]} [{_what(p)}] seen {_when(p.seen_at)}"


def print_pending(out: Console, rows: Sequence[Pending]) -> None:
    if not rows:
        out.print("Nothing waits for approval.")
        return
    if not out.is_terminal:
        for p in rows:
            out.print(pending_line(p), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in ("upstream", "tool", "pin", "what", "seen"):
        table.add_column(header, overflow="fold")
    for p in rows:
        table.add_row(
            Text(p.upstream),
            Text(visible(p.name)),
            Text(p.pin[:12]),
            Text(_what(p), style=_REASON_STYLE[p.reason]),
            Text(_when(p.seen_at)),
        )
    out.print(table)
    first = rows[0]
    out.print(
        Text(
            f"Review with `lockgate tools diff {first.upstream}`, then "
            f"`lockgate tools approve {first.upstream} TOOL` (or --all) or `reject`."
        )
    )


def _odd_characters(name: str) -> list[str]:
    """The characters of a name that are not plain ASCII, named, for a spoofing review."""
    seen: dict[str, None] = {}
    for ch in name:
        if not ch.isascii() or not ch.isprintable():
            seen[ch] = None
    return [f"U+{ord(ch):04X} {unicodedata.name(ch, 'UNNAMED')}" for ch in seen]


def print_diff(out: Console, rows: Sequence[Pending]) -> None:
    """Per held definition: a header (what, pins, who rejected), then the unified diff of the
    approved definition and the listed one, removed lines red, added green."""
    if not rows:
        out.print("Nothing waits for approval.")
        return
    for index, p in enumerate(rows):
        if index:
            out.print()
        head = Text(f"{p.upstream} {visible(p.name)}", style="bold")
        head.append(f"  {_what(p)}", style=_REASON_STYLE[p.reason])
        out.print(head)
        old = p.old_pin[:12] if p.old_pin else "none"
        out.print(Text(f"pin {old} -> {p.pin[:12]}"))
        if p.decided_by:
            out.print(Text(f"rejected by {p.decided_by}", style="magenta"))
        if p.similar:
            out.print(Text(f"confusable with the pinned tool {visible(p.similar)}", style="red"))
            for line in _odd_characters(p.name):
                out.print(Text(f"  {line}", style="red"))
        if p.source == "profile" and p.old_definition is None:
            out.print(Text("The profile's pinned definition is not stored here; the listed:"))
        for line in diff_lines(p.old_definition, p.definition):
            style = ""
            if line.startswith(("---", "+++")):
                style = "bold"
            elif line.startswith("@@"):
                style = "cyan"
            elif line.startswith("+"):
                style = "green"
            elif line.startswith("-"):
                style = "red"
            out.print(Text(line, style=style), soft_wrap=True)


def print_pins(out: Console, rows: Sequence[Pin]) -> None:
    if not rows:
        out.print("No tool is pinned yet.")
        return
    if not out.is_terminal:
        for p in rows:
            by = f" by {p.by}" if p.by else ""
            line = f"{p.upstream} {visible(p.name)} {p.pin} {p.source}{by} {_when(p.at)}"
            out.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in ("upstream", "tool", "pin", "source", "by", "at"):
        table.add_column(header, overflow="fold")
    for p in rows:
        table.add_row(
            Text(p.upstream),
            Text(visible(p.name)),
            Text(p.pin),
            Text(p.source),
            Text(p.by or ""),
            Text(_when(p.at)),
        )
    out.print(table)


def print_decided(out: Console, done: Sequence[Decided], audit: str | None) -> None:
    """What approve/reject did, and where its audit events went."""
    if not done:
        out.print("Nothing to decide: no definition of that upstream waits for approval.")
        return
    for d in done:
        style = "green" if d.verb == "approved" else "magenta"
        line = Text(f"{d.verb} ", style=style)
        line.append(f"{d.upstream} {visible(d.name)} (pin {d.new_pin[:12]}, {d.kind}) by {d.by}")
        out.print(line)
    if audit == "pending":
        out.print(
            Text(
                "The audit events wait for the running gateway (it holds the audit log) and "
                "are written when it next opens the log."
            )
        )
