"""`lockgate audit`: read and verify the hash-chained audit log."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from lockgate.audit import filter as audit_filter
from lockgate.audit import log as audit
from lockgate.audit import query as audit_query
from lockgate.audit import read as audit_read
from lockgate.audit import verify as audit_verify
from lockgate.cli.views import audit as audit_views
from lockgate.cli.views import console
from lockgate.paths import audit_log_path

app = typer.Typer(
    help="Read, query and verify the audit log.\n\nExample: lockgate audit tail -f",
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
        past = audit_read.last_events(path, lines, end=size) if size else []
        _emit(past, as_json=as_json, header=True)
        if not follow:
            return
        for event in audit_read.follow(path, offset=size):
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
        result = audit_verify.verify(path)
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as e:
        raise _unreadable(path, e) from None
    console().print(audit_views.verify_text(result), soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- query, stats


class QueryFormat(enum.StrEnum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"


class StatsFormat(enum.StrEnum):
    table = "table"
    json = "json"


class StatsBy(enum.StrEnum):
    tool = "tool"
    route = "route"
    user = "user"


class QueryError(audit.AuditLogError):
    """A query option that cannot be understood (exit code 2, like a usage error)."""

    exit_code = 2


def _multi(metavar: str, help_text: str) -> Any:
    return typer.Option(
        metavar=metavar, help=help_text + " A glob; repeat the option to match any of several."
    )


SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="TIME",
        help="Only events at or after this time: 15m, 2h, 1d (ago) or ISO 8601 (UTC).",
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until", metavar="TIME", help="Only events before this time: 15m, 2h, 1d or ISO 8601."
    ),
]
UserOption = Annotated[list[str] | None, _multi("USER", "Only events of this user.")]
RouteOption = Annotated[list[str] | None, _multi("ROUTE", "Only events on this route.")]
NameOption = Annotated[list[str] | None, _multi("NAME", "Only this tool, prompt or resource name.")]
OutcomeOption = Annotated[
    list[str] | None,
    _multi(
        "OUTCOME",
        "Only this outcome (success, denied, error, upstream_error, connect_required, blocked).",
    ),
]
EventOption = Annotated[
    list[str] | None, _multi("EVENT", "Only this event type (tool.call, auth.*, ...).")
]
RuleOption = Annotated[
    list[str] | None,
    _multi(
        "RULE",
        "Only events with a guardrail finding of this rule (HIDDEN_INSTRUCTIONS, GITHUB_TOKEN,"
        " PIN_CHANGED, RATE_LIMIT, ...); '!RULE' keeps those without it.",
    ),
]
KindOption = Annotated[
    list[str] | None,
    _multi(
        "KIND",
        "Only events with a guardrail finding of this kind (redaction, finding, pin, limit).",
    ),
]


def _time_option(option: str, value: str | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    try:
        return audit_query.parse_time(value, now)
    except ValueError:
        raise QueryError(
            f"Cannot read {option} {value!r} as a time.",
            f"write it like {option} 15m, {option} 2h, {option} 1d or {option} 2026-11-27T06:00Z",
        ) from None


def _filter(
    since: str | None,
    until: str | None,
    user: list[str] | None,
    route: list[str] | None,
    name: list[str] | None,
    outcome: list[str] | None,
    event: list[str] | None,
    rule: list[str] | None = None,
    kind: list[str] | None = None,
) -> audit_filter.EventFilter:
    now = datetime.now(UTC)
    flt = audit_filter.EventFilter(
        since=_time_option("--since", since, now),
        until=_time_option("--until", until, now),
        users=tuple(user or ()),
        routes=tuple(route or ()),
        names=tuple(name or ()),
        outcomes=tuple(outcome or ()),
        events=tuple(event or ()),
        rules=tuple(rule or ()),
        kinds=tuple(kind or ()),
    )
    if flt.since is not None and flt.until is not None and flt.since >= flt.until:
        raise QueryError(
            "--since is not before --until, so no event can match.",
            "swap them, or widen the time range",
        )
    return flt


# Files smaller than this are read before a progress bar could even draw.
_PROGRESS_MIN_BYTES = 4 * 1024 * 1024


@contextmanager
def _reading(path: Path) -> Iterator[Callable[[int], None] | None]:
    """A transient progress bar on stderr while a large log is read (terminals only)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as e:
        raise _unreadable(path, e) from None
    err = console(stderr=True)
    if size < _PROGRESS_MIN_BYTES or not err.is_terminal:
        yield None
        return
    with audit_views.reading_progress(err, path.name, size) as update:
        yield update


def _events(path: Path, progress: Callable[[int], None] | None) -> Iterator[dict[str, Any]]:
    try:
        yield from audit_query.iter_log(path, progress)
    except ValueError as e:
        raise _damaged(e) from None
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as e:
        raise _unreadable(path, e) from None


@app.command()
def query(
    since: SinceOption = None,
    until: UntilOption = None,
    user: UserOption = None,
    route: RouteOption = None,
    name: NameOption = None,
    outcome: OutcomeOption = None,
    event: EventOption = None,
    rule: RuleOption = None,
    kind: KindOption = None,
    fmt: Annotated[
        QueryFormat,
        typer.Option("--format", help="table (plain lines when piped), jsonl or csv."),
    ] = QueryFormat.table,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=0, help="Show only the most recent N matching events."),
    ] = None,
    file: FileOption = None,
) -> None:
    """Find events by time range, user, route, name, outcome, event type or guardrail rule.

    Filters combine with AND; a filter given twice matches either value.
    Times are UTC; 15m, 2h, 1d mean that long ago.
    --rule and --kind look into each event's guardrail findings (what was redacted, found,
    pinned or rate limited); the table's guardrail column sums them up, and csv ends
    with that cell and the findings' rule ids.
    jsonl prints the stored lines unchanged.

    Example: lockgate audit query --since 2h --route linear --outcome denied --format csv

    Example: lockgate audit query --rule HIDDEN_INSTRUCTIONS --rule 'PIN_*'
    """
    flt = _filter(since, until, user, route, name, outcome, event, rule, kind)
    path = file or audit_log_path()
    with _reading(path) as progress:
        matched = audit_query.select(_events(path, progress), flt, limit)
    if fmt is QueryFormat.jsonl:
        out = sys.stdout
        for ev in matched:
            out.write(json.dumps(ev, ensure_ascii=False, separators=(",", ":")) + "\n")
        out.flush()
    elif fmt is QueryFormat.csv:
        sys.stdout.write(audit_query.csv_header())
        for ev in matched:
            sys.stdout.write(audit_query.csv_row(ev))
        sys.stdout.flush()
    else:
        audit_views.print_query(console(), matched)


@app.command()
def stats(
    by: Annotated[
        StatsBy, typer.Option("--by", help="Group by tool (tool calls), route or user.")
    ] = StatsBy.tool,
    since: SinceOption = None,
    until: UntilOption = None,
    user: UserOption = None,
    route: RouteOption = None,
    name: NameOption = None,
    outcome: OutcomeOption = None,
    event: EventOption = None,
    rule: RuleOption = None,
    kind: KindOption = None,
    fmt: Annotated[
        StatsFormat, typer.Option("--format", help="table or json.")
    ] = StatsFormat.table,
    file: FileOption = None,
) -> None:
    """Counts, error rate and p50/p95 latency per tool, route or user.

    By tool counts tool calls; by route or user, every request the gateway answered.
    Errors: the error and upstream_error outcomes.
    Denied: denied, blocked and connect_required.
    Percentiles are exact (nearest rank) over latency_ms.total.

    Example: lockgate audit stats --by route --since 1d
    """
    flt = _filter(since, until, user, route, name, outcome, event, rule, kind)
    path = file or audit_log_path()
    with _reading(path) as progress:
        groups = audit_query.stats(_events(path, progress), by.value, flt)
    if fmt is StatsFormat.json:
        doc = {"by": by.value, "groups": [g.as_dict() for g in groups]}
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    out = console()
    if not groups:
        out.print("no matching events", style="dim")
        return
    out.print(audit_views.stats_table(groups, by.value))
