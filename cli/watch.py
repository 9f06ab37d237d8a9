"""`lockgate watch`: the live view of the audit log, in any terminal, on any copy of a log.

The model (lockgate/audit/watch.py) decides what shows; the Textual app that draws it is
cli/views/watch_app.py, imported only when a terminal will show it (so `lockgate --help`
never loads Textual). When stdout is not a terminal, matching events are printed as plain
lines instead, the ones `lockgate audit tail` prints.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from lockgate.audit import log as audit
from lockgate.audit import read as audit_read
from lockgate.audit.filter import EventFilter
from lockgate.audit.watch import WatchModel
from lockgate.cli import views
from lockgate.cli.views import audit as audit_views
from lockgate.paths import audit_log_path

__all__ = ["watch"]


def _backlog(path: Path, lines: int) -> tuple[list[dict[str, Any]], int]:
    """The last `lines` events and the offset to follow from (0: the file is not there yet)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return [], 0
    except OSError as e:
        raise audit.AuditLogError(
            f"Cannot read the audit log {path} ({e.strerror or e}).",
            "check the path and its permissions",
        ) from None
    try:
        return (audit_read.last_events(path, lines, end=size) if size and lines else []), size
    except ValueError as e:
        raise audit.AuditLogDamaged(
            f"Damaged audit log: {e}.", "run `lockgate audit verify`"
        ) from None


def _plain(path: Path, filt: EventFilter, past: list[dict[str, Any]], offset: int) -> None:
    """Piped output: matching events as the plain lines `lockgate audit tail` prints."""
    out = views.console()
    for event in past:
        if filt.matches(event):
            audit_views.print_line(out, event)
    out.file.flush()
    try:
        for event in audit_read.follow(path, poll=0.05, offset=offset):
            if filt.matches(event):
                audit_views.print_line(out, event)
                out.file.flush()
    except ValueError as e:
        raise audit.AuditLogDamaged(
            f"Damaged audit log: {e}.", "run `lockgate audit verify`"
        ) from None
    except BrokenPipeError:
        return


def watch(
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            dir_okay=False,
            help="Audit log to watch (default: the gateway's, or $LOCKGATE_AUDIT_LOG).",
        ),
    ] = None,
    route: Annotated[str, typer.Option("--route", help="Only this route (a glob: lin*).")] = "",
    user: Annotated[str, typer.Option("--user", help="Only this user (a glob).")] = "",
    outcome: Annotated[
        str,
        typer.Option("--outcome", help="Only this outcome, e.g. denied, '*error', '!success'."),
    ] = "",
    name: Annotated[
        str, typer.Option("--name", help="Only this tool/prompt/resource name (a glob).")
    ] = "",
    rule: Annotated[
        str,
        typer.Option(
            "--rule",
            help="Only events with a guardrail finding of this rule, e.g. HIDDEN_INSTRUCTIONS,"
            " 'PIN_*' (a glob).",
        ),
    ] = "",
    lines: Annotated[
        int, typer.Option("-n", "--lines", min=0, help="Past events to load at start.")
    ] = 200,
    whole: Annotated[
        bool,
        typer.Option("--all", help="Read the whole log first, so the counts cover all of it."),
    ] = False,
    ring: Annotated[
        int, typer.Option("--ring", min=100, help="Rows kept for scrolling back.")
    ] = 5000,
    fps: Annotated[
        float,
        typer.Option(
            "--fps",
            min=1.0,
            max=30.0,
            help="Redraws per second at most.",
        ),
    ] = 8.0,
    stats_file: Annotated[
        Path | None,
        typer.Option("--stats-file", dir_okay=False, help="On exit, write view stats (JSON)."),
    ] = None,
) -> None:
    """Watch the audit log live: every call with user, route, outcome and latency.

    Filters take a glob (lin*) matched against the whole value, as in `lockgate audit
    query`; '!' negates. While it runs: / type a filter (route:lin* outcome:!success
    rule:HIDDEN_* kind:redaction words; a word searches any part of every column), r route,
    u user, o outcome, c clear, ↑↓ or j/k select, Enter details (args, findings, result,
    hash), Esc back, End follow,
    q quit. Counts cover the events loaded (-n past ones, or the whole log with --all) and
    every one since. Piped, it prints one plain line per matching event.

    Example: lockgate watch --route linear --outcome '!success'
    """
    path = file or audit_log_path()
    filt = EventFilter(
        routes=(route,) if route else (),
        users=(user,) if user else (),
        outcomes=(outcome,) if outcome else (),
        names=(name,) if name else (),
        rules=(rule,) if rule else (),
    )
    past, offset = _backlog(path, 0 if whole else lines)
    if whole:
        offset = 0  # the reader takes it all, and the view shows it catching up
    out = views.console()
    if not out.is_terminal:
        try:
            _plain(path, filt, past, offset)
        except KeyboardInterrupt:
            raise typer.Exit(0) from None
        return
    model = WatchModel(filt, ring=ring, live_since=time.time())
    model.ingest_many(past, live=False)
    from lockgate.cli.views.watch_app import Stats, WatchApp  # Textual: for a terminal only
    from lockgate.cli.views.watch_render import ViewInfo

    stats = Stats()
    app = WatchApp(
        model,
        ViewInfo(source=str(path), path=path),
        fps=fps,
        stats=stats,
        follow=(path, offset),
        handle_signals=True,
    )
    try:
        app.run(mouse=False)  # no mouse capture: the terminal's own selection copies a hash
    finally:
        if stats_file is not None:
            stats_file.write_text(json.dumps(stats.summary(model)) + "\n", encoding="utf-8")
    if app.return_code:
        raise typer.Exit(app.return_code)
