"""How `lockgate doctor` shows its checks: one line (and a fix) per check, a live view with a
spinner per running check on a terminal, and the summary line."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from lockgate.ops import doctor as core
from lockgate.ops.checks import CheckResult

MARK = {"ok": "✓", "fail": "✗", "warn": "!"}
STYLE = {"ok": "green", "fail": "red", "warn": "yellow"}


def result_text(result: CheckResult) -> Text:
    """One check as one line: mark, name, detail; the fix on the next line when it failed."""
    text = Text()
    text.append(MARK[result.status], style=STYLE[result.status])
    text.append(f" {result.name}: ", style="bold")
    text.append(result.detail)
    if result.fix and result.status != "ok":
        text.append("\n    fix: ", style=STYLE[result.status])
        text.append(result.fix)
    return text


def summary_text(results: Sequence[CheckResult]) -> Text:
    failed = sum(1 for r in results if r.status == "fail")
    warned = sum(1 for r in results if r.status == "warn")
    if failed:
        return Text(
            f"{failed} of {len(results)} checks failed; fix them and run lockgate doctor again.",
            style="bold red",
        )
    extra = f" ({warned} with a note)" if warned else ""
    return Text(f"All {len(results)} checks passed{extra}.", style="bold green")


def _progress(checks: Sequence[core.Check], done: dict[int, CheckResult]) -> Table:
    """The live view: finished checks with their mark, running ones with a spinner."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column()
    for i, check in enumerate(checks):
        if i in done:
            grid.add_row(result_text(done[i]))
        else:
            grid.add_row(Spinner("dots", text=Text(f"{check.name}...", style="dim")))
    return grid


def run_with_display(out: Console, checks: Sequence[core.Check]) -> list[CheckResult]:
    """Run the checks concurrently; on a terminal, show each as it finishes."""
    if not out.is_terminal:
        return asyncio.run(core.run_checks(checks))
    done: dict[int, CheckResult] = {}
    with Live(_progress(checks, done), console=out, refresh_per_second=12, transient=True) as live:

        def finished(index: int, result: CheckResult) -> None:
            done[index] = result
            live.update(_progress(checks, done))

        results = asyncio.run(core.run_checks(checks, finished))
    return results
