"""rich lives here: one console factory that honours width and colour, and the views."""

from __future__ import annotations

import os

from rich.console import Console


def console(stderr: bool = False, width: int | None = None, color: bool | None = None) -> Console:
    """A console whose width and colour can be pinned (tests, NO_COLOR, pipes)."""
    env_width = os.environ.get("LOCKGATE_WIDTH")
    if width is None and env_width and env_width.isdigit():
        width = int(env_width)
    no_color = color is False or bool(os.environ.get("NO_COLOR"))
    return Console(stderr=stderr, width=width, no_color=no_color, highlight=False)
