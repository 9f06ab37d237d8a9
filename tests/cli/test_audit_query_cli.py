"""`lockgate audit query` and `lockgate audit stats` on logs written by the real audit writer.

Why it exists: these are the commands a reviewer pipes into a spreadsheet or a ticket. The
tests run the real typer commands (CliRunner, and the installed entry point for exit codes
and error lines) on hash-chained logs from lockgate.audit.log.AuditLog.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from lockgate.audit.log import AuditLog, AuditLogDamaged, AuditLogMissing
from lockgate.audit.query import stats as compute_stats
from lockgate.cli.audit import QueryError, app
from lockgate.cli.views import audit as audit_views
from lockgate.paths import audit_log_path
from tests.cli.real_cli import run_lockgate

runner = CliRunner()


def _ts(minutes_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _call(minutes_ago: float, user: str, route: str, name: str, outcome: str, ms: float) -> dict:
    return {
        "ts": _ts(minutes_ago),
        "event": "tool.call",
        "user": user,
        "client": "claude-code",
        "route": route,
        "upstream": route,
        "method": "tools/call",
        "name": name,
        "outcome": outcome,
        "status": 200,
        "latency_ms": {"total": ms, "upstream": ms - 1},
        "args": {"query": "x", "api_token": "tok-never-shown"},
    }


EVENTS: list[dict[str, Any]] = [
    _call(120, "alice", "linear", "search_issues", "success", 10.0),
    _call(90, "bob", "linear", "delete_issue", "denied", 2.0),
    {"ts": _ts(60), "event": "auth.token_refused", "user": "mallory", "outcome": "denied"},
    _call(30, "alice", "notes", "add_note", "error", 40.0),
    _call(10, "alice", "linear", "search_issues", "success", 20.0),
    _call(5, "bob", "notes", "search_notes", "upstream_error", 30.0),
    _call(1, "alice", "linear", "search_issues", "success", 30.0),
]


def _log(path: Path, events: list[dict[str, Any]] = EVENTS) -> Path:
    with AuditLog(path) as log:
        for event in events:
            log.append(event)
    return path


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return _log(tmp_path / "audit.jsonl")


def _query(log: Path, *args: str) -> str:
    result = runner.invoke(app, ["query", "--file", str(log), *args])
    assert result.exit_code == 0, result.output
    return result.output


def _names(output: str) -> list[str]:
    return [line.split()[4] for line in output.splitlines()]


def test_query_without_filters_prints_every_event_as_a_plain_line(log: Path) -> None:
    lines = _query(log).splitlines()
    assert len(lines) == len(EVENTS)
    assert lines[0].endswith("alice linear tools/call search_issues success 200 10.0 ms")
    assert " mallory - - - denied - -" in lines[2]
    assert "tok-never-shown" not in "".join(lines)


def test_query_time_range(log: Path) -> None:
    assert _names(_query(log, "--since", "15m")) == [
        "search_issues",
        "search_notes",
        "search_issues",
    ]
    assert _names(_query(log, "--since", "100m", "--until", "20m")) == [
        "delete_issue",
        "-",
        "add_note",
    ]
    since = (datetime.now(UTC) - timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _names(_query(log, "--since", since)) == ["search_notes", "search_issues"]


def test_query_filters_combine(log: Path) -> None:
    assert _names(_query(log, "--user", "alice", "--route", "linear")) == ["search_issues"] * 3
    assert _names(_query(log, "--outcome", "error", "--outcome", "upstream_error")) == [
        "add_note",
        "search_notes",
    ]
    assert _names(_query(log, "--name", "search_*", "--user", "bob")) == ["search_notes"]
    assert _query(log, "--event", "auth.*").split()[1] == "mallory"
    assert _query(log, "--user", "nobody").strip() == "no matching events"


def test_query_limit_keeps_the_most_recent(log: Path) -> None:
    assert _names(_query(log, "--user", "alice", "--limit", "2")) == ["search_issues"] * 2
    lines = _query(log, "--limit", "2").splitlines()
    assert "search_notes" in lines[0] and lines[1].endswith("30.0 ms")


def test_query_jsonl_prints_the_stored_lines_unchanged(log: Path) -> None:
    out = _query(log, "--format", "jsonl", "--route", "notes")
    stored = [line for line in log.read_text().splitlines() if '"route":"notes"' in line]
    assert out.splitlines() == stored
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [4, 6]
    assert "tok-never-shown" not in out  # redacted by the writer, and stays redacted


def test_query_csv(log: Path) -> None:
    out = _query(log, "--format", "csv", "--user", "bob")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == ["delete_issue", "search_notes"]
    assert rows[1]["outcome"] == "upstream_error" and rows[1]["latency_ms"] == "30"
    assert rows[0]["client"] == "claude-code" and rows[0]["seq"] == "2"


def test_query_table_on_a_terminal(log: Path) -> None:
    con = Console(record=True, width=140, force_terminal=True, no_color=True)
    events = json.loads("[" + ",".join(log.read_text().splitlines()) + "]")
    audit_views.print_query(con, events[:2])
    text = con.export_text()
    assert text.splitlines()[0].split() == [
        "time",
        "user",
        "route",
        "method",
        "name",
        "outcome",
        "status",
        "latency",
        "guardrail",
    ]
    assert "alice" in text and "delete_issue" in text and "2.0 ms" in text


def test_query_skips_a_write_in_progress(log: Path) -> None:
    with log.open("ab") as f:
        f.write(b'{"event":"tool.call","name":"half')
    assert len(_query(log).splitlines()) == len(EVENTS)


def test_query_on_a_damaged_log_is_a_clear_error(log: Path) -> None:
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join([*lines[:2], b"garbage\n", *lines[2:]]))
    result = runner.invoke(app, ["query", "--file", str(log)])
    assert isinstance(result.exception, AuditLogDamaged)
    assert "line 3: not JSON" in str(result.exception)
    assert "lockgate audit verify" in str(result.exception)


def test_query_missing_log(tmp_path: Path) -> None:
    result = runner.invoke(app, ["query", "--file", str(tmp_path / "nope.jsonl")])
    assert isinstance(result.exception, AuditLogMissing)


def test_query_uses_the_default_log() -> None:
    _log(audit_log_path(), EVENTS[:2])
    result = runner.invoke(app, ["query"])
    assert result.exit_code == 0
    assert _names(result.output) == ["search_issues", "delete_issue"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "Cannot read --since 'yesterday' as a time"),
        (["--until", "2026-13-40"], "Cannot read --until '2026-13-40' as a time"),
        (["--since", "1h", "--until", "2h"], "--since is not before --until"),
    ],
)
def test_bad_times_are_one_sentence_with_the_fix(log: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["query", "--file", str(log), *args])
    assert isinstance(result.exception, QueryError)
    assert str(result.exception).startswith(message)
    assert result.exception.exit_code == 2


def test_bad_time_through_the_real_command(log: Path) -> None:
    proc = run_lockgate("audit", "query", "--file", str(log), "--since", "yesterday")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "lockgate: Cannot read --since 'yesterday' as a time: write it like --since 15m, "
        "--since 2h, --since 1d or --since 2026-11-27T06:00Z"
    ]


# ---------------------------------------------------------------------------- stats


def test_stats_by_tool_table(log: Path) -> None:
    result = runner.invoke(app, ["stats", "--file", str(log)])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert rows[0] == ["tool", "calls", "ok", "denied", "errors", "error", "rate", "p50", "p95"]
    assert rows[1] == ["search_issues", "3", "3", "0", "0", "0.0%", "20.0", "ms", "30.0", "ms"]
    assert ["add_note", "1", "0", "0", "1", "100.0%", "40.0", "ms", "40.0", "ms"] in rows
    assert all("mallory" not in r for r in rows)  # not a tool call


def test_stats_by_user_json(log: Path) -> None:
    result = runner.invoke(app, ["stats", "--file", str(log), "--by", "user", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["by"] == "user"
    groups = {g["key"]: g for g in doc["groups"]}
    assert set(groups) == {"alice", "bob"}  # the auth event has no latency: not a request
    alice = groups["alice"]
    assert (alice["count"], alice["success"], alice["errors"]) == (4, 3, 1)
    assert alice["error_rate"] == 0.25
    assert (alice["p50_ms"], alice["p95_ms"]) == (20.0, 40.0)
    assert groups["bob"]["denied"] == 1 and groups["bob"]["errors"] == 1


def test_stats_by_route_with_filters(log: Path) -> None:
    result = runner.invoke(
        app, ["stats", "--file", str(log), "--by", "route", "--since", "40m", "--format", "json"]
    )
    groups = {g["key"]: g["count"] for g in json.loads(result.output)["groups"]}
    assert groups == {"notes": 2, "linear": 2}


def test_stats_nothing_matched(log: Path) -> None:
    result = runner.invoke(app, ["stats", "--file", str(log), "--user", "nobody"])
    assert result.exit_code == 0
    assert result.output.strip() == "no matching events"


def test_stats_table_is_pinned_with_colour() -> None:
    events = [_call(1, "a", "r", "t", "error", 4.0), _call(1, "a", "r", "t", "success", 2.0)]
    con = Console(
        record=True, width=100, force_terminal=True, color_system="standard", no_color=False
    )
    con.print(audit_views.stats_table(compute_stats(events, "tool"), "tool"))
    assert con.export_text(styles=False, clear=False).splitlines() == [
        "tool  calls  ok  denied  errors  error rate     p50     p95",
        "t         2   1       0       1       50.0%  2.0 ms  4.0 ms",
    ]
    assert "\x1b[31m     50.0%\x1b[0m" in con.export_text(styles=True)  # non-zero: red


@pytest.mark.parametrize("command", [["query", "--help"], ["stats", "--help"]])
def test_help_shows_an_example(command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 0
    assert "Example: lockgate audit" in result.output


def test_reading_shows_progress_on_a_terminal(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lockgate.cli.audit as audit_cli

    monkeypatch.setattr(audit_cli, "_PROGRESS_MIN_BYTES", 0)  # every log counts as large
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats stderr as a terminal
    result = runner.invoke(app, ["stats", "--file", str(log), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "reading audit.jsonl" in result.stderr
    assert json.loads(result.stdout)["groups"][0]["key"] == "search_issues"


# ---------------------------------------------------------------------------- one filter

AGREE_EVENTS: list[dict[str, Any]] = [
    *EVENTS,
    _call(3, "carol", "linear-admin", "search_issues", "blocked", 5.0),
    _call(2.5, "Alice", "Linear", "add_note", "connect_required", 1.0),
    {"ts": _ts(2), "event": "gateway.request", "path": "/oauth/token", "outcome": "error"},
]


@pytest.mark.parametrize(
    "options",
    [
        ["--route", "linear"],  # the whole value: not linear-admin (but Linear: case is ignored)
        ["--route", "lin*"],
        ["--route", "!linear"],
        ["--user", "alice"],
        ["--outcome", "denied"],
        ["--outcome", "!success"],  # every failure (watch's `o` key steps to it first)
        ["--outcome", "*error"],  # the errors group: error and upstream_error
        ["--name", "search_*"],
        ["--name", "/oauth/*"],  # a gateway request's name is its path, in both
        ["--user", "alice", "--route", "notes", "--outcome", "!success"],
    ],
)
def test_watch_and_query_keep_the_same_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str]
) -> None:
    """Issue 10: `lockgate watch` and `lockgate audit query` share one EventFilter, so the
    same options keep the same events (they used to differ: watch matched any part of the
    value, ignoring case; query a case-sensitive glob)."""
    import typer

    from lockgate.audit import read as audit_read
    from lockgate.cli.watch import watch

    log = _log(tmp_path / "audit.jsonl", AGREE_EVENTS)
    queried = [
        json.loads(line)["seq"] for line in _query(log, *options, "--format", "jsonl").splitlines()
    ]
    monkeypatch.setattr(audit_read, "follow", lambda *a, **k: iter(()))  # no live tail
    watch_app = typer.Typer()
    watch_app.command()(watch)
    result = runner.invoke(watch_app, ["--file", str(log), *options])
    assert result.exit_code == 0, result.output
    by_ts = {e["ts"]: i + 1 for i, e in enumerate(AGREE_EVENTS)}
    watched = [by_ts[line.split(" ", 1)[0]] for line in result.output.splitlines()]
    assert watched == queried
    assert 0 < len(queried) < len(AGREE_EVENTS)  # each case keeps some events, not all


def test_watch_denied_count_is_the_stats_denied_column(tmp_path: Path) -> None:
    """One DENIED group: watch's header count and `audit stats`' column agree."""
    from lockgate.audit.watch import WatchModel

    model = WatchModel()
    model.ingest_many([dict(e) for e in AGREE_EVENTS if "latency_ms" in e])
    groups = compute_stats(AGREE_EVENTS, "route")
    assert model.counts.denied == sum(g.denied for g in groups) == 3
    assert model.counts.errors == sum(g.errors for g in groups)


# ---------------------------------------------------------------------------- guardrails

MASKED = {
    "kind": "redaction",
    "rule": "GITHUB_TOKEN",
    "path": "params.arguments.token",
    "count": 1,
    "action": "mask",
    "direction": "up",
}
HIDDEN = {
    "kind": "finding",
    "rule": "HIDDEN_INSTRUCTIONS",
    "severity": "high",
    "target": "tool:send_email",
    "path": "description",
    "action": "hide",
}


LIMIT = {"kind": "limit", "rule": "RATE_LIMIT", "scope": "user_tool", "action": "block"}


def _guarded_events() -> list[dict[str, Any]]:
    """A masked token, a hidden poisoned tool, a blocked card, a rate limit and a rug pull,
    as the gateway and `lockgate tools` write them."""
    from lockgate.guardrails.pinning import Change, Decided

    old, new = "a" * 64, "b" * 64
    masked = {**_call(9, "alice", "linear", "create_issue", "success", 8.0), "findings": [MASKED]}
    listed = {
        **_call(8, "alice", "linear", "tools/list", "success", 3.0),
        "event": "capability.list",
        "method": "tools/list",
        "name": None,
        "args": None,
        "findings": [HIDDEN, {**HIDDEN, "target": "tool:other"}],
    }
    card = {**MASKED, "rule": "CARD", "action": "block", "path": "params.arguments.note"}
    return [
        *EVENTS[:2],
        masked,
        listed,
        {**_call(7, "alice", "linear", "add_note", "blocked", 1.0), "findings": [card]},
        {**_call(6, "alice", "linear", "search_issues", "blocked", 1.0), "findings": [LIMIT]},
        {
            "ts": _ts(5),
            **Change("create_issue", "changed", new, old, ("description",)).event("linear"),
        },
        {
            "ts": _ts(4),
            **Decided("approved", "linear", "create_issue", "changed", new, old, "bob").event(),
        },
    ]


@pytest.fixture
def guarded(tmp_path: Path) -> Path:
    return _log(tmp_path / "audit.jsonl", _guarded_events())


def _seqs(log: Path, *args: str) -> list[int]:
    out = _query(log, *args, "--format", "jsonl")
    return [json.loads(line)["seq"] for line in out.splitlines()]


def test_query_by_rule_finds_every_event_with_that_finding(guarded: Path) -> None:
    assert _seqs(guarded, "--rule", "HIDDEN_INSTRUCTIONS") == [4]
    assert _seqs(guarded, "--rule", "github_token") == [3]  # case is ignored
    assert _seqs(guarded, "--rule", "GITHUB_TOKEN", "--rule", "CARD") == [3, 5]  # either
    assert _seqs(guarded, "--rule", "RATE_*") == [6]  # the limit is a finding of its event
    assert _seqs(guarded, "--rule", "*") == [3, 4, 5, 6]
    assert _seqs(guarded, "--rule", "!*") == [1, 2, 7, 8]  # no findings at all
    assert _seqs(guarded, "--rule", "*", "--outcome", "blocked") == [5, 6]
    assert _query(guarded, "--rule", "PIN_CHANGED").strip() == "no matching events"
    assert _seqs(guarded, "--event", "pin.*") == [7, 8]  # pin store changes are events


def test_query_by_kind(guarded: Path) -> None:
    assert _seqs(guarded, "--kind", "redaction") == [3, 5]
    assert _seqs(guarded, "--kind", "finding") == [4]
    assert _seqs(guarded, "--kind", "limit", "--kind", "pin") == [6]
    assert _seqs(guarded, "--kind", "!redaction", "--rule", "*") == [4, 6]


def test_query_plain_lines_end_with_the_guardrail_cell(guarded: Path) -> None:
    lines = _query(guarded).splitlines()
    assert lines[0].endswith("alice linear tools/call search_issues success 200 10.0 ms")
    assert lines[2].endswith("create_issue success 200 8.0 ms masked 1")
    assert lines[3].endswith(" HIDDEN_INSTRUCTIONS x2")
    assert lines[4].endswith("add_note blocked 200 1.0 ms blocked 1")  # outcome ... cell
    assert lines[5].endswith("search_issues blocked 200 1.0 ms rate limited")
    assert lines[6].endswith(" pin changed") and lines[7].endswith(" pin approved")
    assert "params.arguments" not in "\n".join(lines)  # paths stay in the log, off the cell


def test_query_table_colours_the_guardrail_cell_by_its_worst_action(guarded: Path) -> None:
    con = Console(
        record=True, width=180, force_terminal=True, color_system="standard", no_color=False
    )
    events = [json.loads(line) for line in guarded.read_text().splitlines()]
    audit_views.print_query(con, events)
    plain = con.export_text(styles=False, clear=False).splitlines()
    header = plain[0]
    assert header.split()[-1] == "guardrail"
    row = next(line for line in plain if "create_issue" in line and "masked" in line)
    assert row.index("masked 1") == header.index("guardrail")
    styled = con.export_text(styles=True)
    assert "\x1b[33mmasked 1" in styled  # mask: yellow
    assert "\x1b[31mHIDDEN_INSTRUCTIONS x2" in styled  # hide: red
    assert "\x1b[31mrate limited" in styled and "\x1b[31mpin changed" in styled
    assert "\x1b[2mpin approved" in styled  # recorded only: dim


@pytest.mark.parametrize(("width", "shown"), [(140, True), (127, False), (100, False)])
def test_query_table_fits_the_terminal_and_drops_the_guardrail_column_first(
    guarded: Path, width: int, shown: bool
) -> None:
    con = Console(record=True, width=width, force_terminal=True, no_color=True)
    events = [json.loads(line) for line in guarded.read_text().splitlines()]
    audit_views.print_query(con, events)
    lines = con.export_text().splitlines()
    assert ("guardrail" in lines[0]) is shown
    assert all(len(line.rstrip()) <= width for line in lines)
    if width >= 127:  # the other columns are never cut to make room for it
        assert lines[0].split()[:8] == [
            "time", "user", "route", "method", "name", "outcome", "status", "latency",
        ]  # fmt: skip
        assert any(line[:12].count(":") == 2 for line in lines[1:])  # times are whole


def test_stats_take_the_rule_filter_too(guarded: Path) -> None:
    result = runner.invoke(
        app, ["stats", "--file", str(guarded), "--rule", "GITHUB_TOKEN", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    groups = {g["key"]: g["count"] for g in json.loads(result.output)["groups"]}
    assert groups == {"create_issue": 1}


def test_query_help_names_the_rule_option() -> None:
    result = runner.invoke(app, ["query", "--help"], env={"COLUMNS": "200"})
    assert "--rule" in result.output and "--kind" in result.output
    assert "HIDDEN_INSTRUCTIONS" in result.output


@pytest.mark.parametrize(
    "options",
    [["--rule", "HIDDEN_INSTRUCTIONS"], ["--rule", "*"], ["--rule", "!GITHUB_*"]],
)
def test_watch_and_query_keep_the_same_events_by_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str]
) -> None:
    import typer

    from lockgate.audit import read as audit_read
    from lockgate.cli.watch import watch

    events = _guarded_events()
    log = _log(tmp_path / "audit.jsonl", events)
    queried = _seqs(log, *options)
    monkeypatch.setattr(audit_read, "follow", lambda *a, **k: iter(()))  # no live tail
    watch_app = typer.Typer()
    watch_app.command()(watch)
    result = runner.invoke(watch_app, ["--file", str(log), *options])
    assert result.exit_code == 0, result.output
    by_ts = {e["ts"]: i + 1 for i, e in enumerate(events)}
    watched = [by_ts[line.split(" ", 1)[0]] for line in result.output.splitlines()]
    assert watched == queried and 0 < len(queried) < 8


def test_query_csv_has_the_guardrail_cell_and_the_rules(guarded: Path) -> None:
    out = _query(guarded, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0])[-2:] == ["guardrail", "rules"]
    assert (rows[0]["guardrail"], rows[0]["rules"]) == ("", "")
    assert (rows[2]["guardrail"], rows[2]["rules"]) == ("masked 1", "GITHUB_TOKEN")
    assert rows[3]["rules"] == "HIDDEN_INSTRUCTIONS"  # once, however many tools had it
    assert rows[4]["rules"] == "CARD" and rows[5]["rules"] == "RATE_LIMIT"
    assert rows[6]["guardrail"] == "pin changed" and rows[6]["rules"] == ""
    assert "params.arguments" not in out
