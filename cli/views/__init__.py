"""rich lives here: one console factory that honours width and colour, and the views."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Final

from rich.console import Console as Console  # the type every view takes: commands name it here

from lockgate.audit.cells import Level
from lockgate.audit.events import Outcome
from lockgate.cli.lines import event_line as event_line
from lockgate.cli.lines import started_lines


def console(stderr: bool = False, width: int | None = None, color: bool | None = None) -> Console:
    """A console whose width and colour can be pinned (tests, NO_COLOR, pipes)."""
    env_width = os.environ.get("LOCKGATE_WIDTH")
    if width is None and env_width and env_width.isdigit():
        width = int(env_width)
    no_color = color is False or bool(os.environ.get("NO_COLOR"))
    return Console(stderr=stderr, width=width, no_color=no_color, highlight=False)


# The one outcome colour map: `watch`, `audit tail`/`query` and `lockgate up`'s lines.
OUTCOME_STYLE: Final[Mapping[Outcome, str]] = {
    "success": "green",
    "denied": "yellow",
    "blocked": "yellow",
    "connect_required": "magenta",
    "error": "red",
    "upstream_error": "red",
}
_STYLE_OF: Final[dict[str, str]] = {outcome: style for outcome, style in OUTCOME_STYLE.items()}


def outcome_style(outcome: object) -> str:
    """The style of an event's outcome ("" for none, or one it does not know)."""
    return _STYLE_OF.get(str(outcome), "")


# The guardrail cell, by its worst action: block/hide/withhold red, mask/sanitize yellow,
# log/warn dim (`lockgate.audit.cells.ACTION_LEVEL`).
GUARDRAIL_STYLE: Final[Mapping[Level, str]] = {
    "stopped": "red",
    "changed": "yellow",
    "noted": "dim",
}


def guardrail_style(level: object) -> str:
    """The style of a guardrail cell of this level ("" for none)."""
    return GUARDRAIL_STYLE.get(level, "") if isinstance(level, str) else ""  # type: ignore[call-overload]


def live_view_wanted(out: Console) -> bool:
    """Whether a live view makes sense: stdout and stdin are a terminal. Asked before Textual
    is imported (it costs ~20 MB of RSS), so a piped or `--quiet` gateway never loads it."""
    return out.is_terminal and sys.stdin.isatty()


def print_started(out: Console, base_url: str, routes: list[tuple[str, str]]) -> None:
    """The lines a user (and the tests) read first: where the gateway listens."""
    for line in started_lines(base_url, routes):
        out.print(line, soft_wrap=True, markup=False)
    out.file.flush()


def print_event(out: Console, rec: dict[str, object]) -> None:
    style = outcome_style(rec.get("outcome"))
    out.print(event_line(rec), style=style, soft_wrap=True, markup=False)
    out.file.flush()
