"""`lockgate doctor`: check this machine and the active profile, one line and one fix per check."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from lockgate.cli._options import ProfileOption
from lockgate.cli.views import console
from lockgate.ops import doctor as core
from lockgate.ops.checks import DEFAULT_TIMEOUT, CheckResult

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


def doctor(
    profile: ProfileOption = None,
    listen: Annotated[
        str | None,
        typer.Option("--listen", help="Check this host:port instead of the profile's listen."),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, help="Seconds to wait for each network check."),
    ] = DEFAULT_TIMEOUT,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON instead of lines.")
    ] = False,
) -> None:
    """Check Python, mitmproxy, the keyring, the profile, the listen port, the identity
    provider, the gateway's signing key and the provider's client secret (kinds dev and
    oidc), and every upstream with its credential (for the user `lockgate login` signed
    in, under kind oidc); one line per check and a fix for each failure.

    Checks run concurrently. Exit code 0 when all pass, 1 otherwise.

    Example: lockgate doctor --profile profiles/demo.toml
    """
    checks = core.plan(profile, timeout=timeout, listen=listen)
    if as_json:
        results = asyncio.run(core.run_checks(checks))
        typer.echo(core.report_json(results))
    else:
        out = console()
        results = run_with_display(out, checks)
        for result in results:
            out.print(result_text(result), soft_wrap=True)
        out.print(summary_text(results))
    if not all(r.passed for r in results):
        raise typer.Exit(1)
