"""`lockgate audit`: read and verify the hash-chained audit log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lockgate import audit
from lockgate.cli import audit_views
from lockgate.cli.views import console
from lockgate.paths import audit_log_path

app = typer.Typer(
    help="Read and verify the audit log.\n\nExample: lockgate audit tail -f",
    no_args_is_help=True,
)

FileOption = Annotated[
    Path | None,
    typer.Option(
        "--file",
        dir_okay=False,
        help="Audit log to read (default: the gateway's, or $LOCKGATE_AUDIT_LOG).",
    ),
]


def _missing(path: Path) -> audit.AuditLogMissing:
    return audit.AuditLogMissing(
        f"There is no audit log at {path}.",
        "start the gateway (lockgate up) to create it, or pass --file PATH",
    )


def _unreadable(path: Path, e: OSError) -> audit.AuditLogError:
    return audit.AuditLogError(
        f"Cannot read the audit log {path} ({e.strerror or e}).",
        "check the path and its permissions",
    )


def _damaged(e: ValueError) -> audit.AuditLogDamaged:
    return audit.AuditLogDamaged(f"Damaged audit log: {e}.", "run `lockgate audit verify`")


def _emit(events: list[dict[str, Any]], *, as_json: bool, header: bool) -> None:
    if as_json:
        for event in events:
            typer.echo(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
    else:
        audit_views.print_events(console(), events, header=header)


@app.command()
def tail(
    lines: Annotated[
        int, typer.Option("-n", "--lines", min=0, help="How many past events to show.")
    ] = 20,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new events (Ctrl-C stops).")
    ] = False,
    file: FileOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the raw JSON lines instead of a table.")
    ] = False,
) -> None:
    """Show the last events of the audit log, and follow new ones with -f.

    A table on a terminal, one plain line per event when piped.

    Example: lockgate audit tail -n 50 --follow
    """
    path = file or audit_log_path()
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if not follow:
            raise _missing(path) from None
        typer.echo(f"waiting for {path} to appear...", err=True)
        size = 0
    except OSError as e:
        raise _unreadable(path, e) from None
    try:
        past = audit.last_events(path, lines, end=size) if size else []
        _emit(past, as_json=as_json, header=True)
        if not follow:
            return
        for event in audit.follow(path, offset=size):
            _emit([event], as_json=as_json, header=False)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except ValueError as e:
        raise _damaged(e) from None
    except OSError as e:
        raise _unreadable(path, e) from None


@app.command()
def verify(file: FileOption = None) -> None:
    """Prove the audit log was not edited: check every line's hash, seq and chain link.

    Exits 0 when the chain is intact, 1 with the first bad line otherwise.

    Example: lockgate audit verify --file ./audit.jsonl
    """
    path = file or audit_log_path()
    try:
        result = audit.verify(path)
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as e:
        raise _unreadable(path, e) from None
    console().print(audit_views.verify_text(result), soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)
