"""`lockgate audit tail` and `lockgate audit verify`, driven through typer's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from lockgate.audit.log import AuditLog, AuditLogMissing
from lockgate.cli.audit import app
from lockgate.cli.views import audit as audit_views
from lockgate.paths import audit_log_path
from tests.cli.real_cli import run_lockgate

runner = CliRunner()


def _write(path: Path, n: int) -> None:
    with AuditLog(path) as log:
        for i in range(n):
            log.append(
                {
                    "event": "tool.call",
                    "route": "linear",
                    "method": "tools/call",
                    "name": f"search_{i}",
                    "outcome": "success",
                    "status": 200,
                    "latency_ms": {"total": 12.34, "upstream": 10.0},
                }
            )


def test_tail_prints_the_last_events_as_plain_lines() -> None:
    _write(audit_log_path(), 30)  # the default path (LOCKGATE_AUDIT_LOG from conftest)
    result = runner.invoke(app, ["tail", "-n", "5"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 5
    assert "search_25" in lines[0] and "search_29" in lines[-1]
    assert lines[-1].endswith("tool.call linear tools/call search_29 success 200 12.3 ms")


def test_tail_json_prints_the_stored_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 3)
    result = runner.invoke(app, ["tail", "--json", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.encode() == path.read_bytes()
    assert [json.loads(line)["seq"] for line in result.output.splitlines()] == [1, 2, 3]


def test_tail_on_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["tail", "--file", str(tmp_path / "nope.jsonl")])
    assert isinstance(result.exception, AuditLogMissing)
    assert "no audit log" in str(result.exception)


def test_verify_ok() -> None:
    _write(audit_log_path(), 10)
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 0
    assert result.output.strip() == "audit log OK: 10 events, chain intact"


def test_verify_edited_file_exits_1_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 10)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[6] = lines[6].replace(b'"status":200', b'"status":500')
    path.write_bytes(b"".join(lines))
    result = runner.invoke(app, ["verify", "--file", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("audit log BROKEN at line 7: mac mismatch")


def test_verify_missing_file_raises_a_lockgate_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["verify", "--file", str(tmp_path / "nope.jsonl")])
    assert isinstance(result.exception, AuditLogMissing)
    assert str(result.exception).startswith("There is no audit log at")


@pytest.mark.parametrize("command", [["--help"], ["tail", "--help"], ["verify", "--help"]])
def test_help_shows_an_example(command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 0
    assert "Example: lockgate audit" in result.output


def test_table_view_on_a_terminal() -> None:
    con = Console(record=True, width=140, force_terminal=True, no_color=True)
    event = {
        "ts": "2026-11-27T06:40:01.123Z",
        "event": "tool.call",
        "route": "linear",
        "method": "tools/call",
        "name": "evil\x1b]0;pwned\x07",
        "outcome": "denied",
        "status": 403,
        "latency_ms": {"total": 1.25},
    }
    audit_views.print_events(con, [event])
    text = con.export_text()
    assert "time" in text and "latency" in text
    assert "06:40:01.123" in text and "denied" in text and "1.2 ms" in text
    assert "\x1b" not in text and "evil?]0;pwned?" in text


def _delete_line_4(data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    del lines[3]  # seq 4 gone
    return b"".join(lines)


def _cut_the_last_line(data: bytes) -> bytes:
    return data[: len(data) - 20]  # the last line cut mid-way, after its checkpoint


def _add_a_torn_line(data: bytes) -> bytes:
    return data + data.splitlines(keepends=True)[-1][:30]  # a crash mid-write of seq 11


@pytest.mark.parametrize(
    ("damage", "report"),
    [
        (
            _delete_line_4,
            "audit log BROKEN at line 4: seq gap: expected seq 4, found 5 (1 line(s) deleted)",
        ),
        (
            _cut_the_last_line,
            "audit log BROKEN at line 11: tail cut: the checkpoint says 10 events were "
            "written, the file ends at seq 9 (1 line(s) cut off the end)",
        ),
        (
            _add_a_torn_line,
            "audit log OK: 10 events, chain intact; 1 torn line(s) skipped (line 11: a write "
            "cut short by a crash or a full disk, holding no event of the chain)",
        ),
    ],
    ids=["deleted-line-reports-the-gap", "cut-last-line", "torn-last-line"],
)
def test_verify_reports_the_damage(
    tmp_path: Path, damage: Callable[[bytes], bytes], report: str
) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 10)
    path.write_bytes(damage(path.read_bytes()))
    result = runner.invoke(app, ["verify", "--file", str(path)])
    assert result.exit_code == (0 if report.startswith("audit log OK") else 1)
    assert " ".join(result.output.split()) == report


def test_verify_exit_code_through_the_real_command(tmp_path: Path) -> None:
    """The installed entry point keeps exit code 1 (typer.Exit under standalone_mode=False)."""

    path = tmp_path / "a.jsonl"
    _write(path, 3)
    ok = run_lockgate("audit", "verify", "--file", str(path))
    assert ok.returncode == 0, ok.stderr
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[2])
    broken = run_lockgate("audit", "verify", "--file", str(path))
    assert broken.returncode == 1
    assert "BROKEN at line 2: seq gap" in broken.stdout
    assert "Traceback" not in broken.stderr


def test_tail_and_the_gateways_lines_end_with_the_guardrail_cell(tmp_path: Path) -> None:
    from lockgate.cli import views

    masked = {
        "kind": "redaction",
        "rule": "GITHUB_TOKEN",
        "path": "params.arguments.token",
        "count": 2,
        "action": "mask",
        "direction": "up",
    }
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        plain = log.append(
            {"event": "tool.call", "route": "linear", "name": "a", "outcome": "success"}
        )
        found = log.append(
            {
                "event": "tool.call",
                "route": "linear",
                "name": "b",
                "outcome": "success",
                "findings": [masked],
            }
        )
    result = runner.invoke(app, ["tail", "--file", str(path)])
    assert result.exit_code == 0, result.output
    first, second = result.output.splitlines()
    assert first.endswith(" a success - -")  # no cell: nothing after the latency
    assert second.endswith(" b success - - masked 2")
    assert views.event_line(found).endswith("b  success  masked 2")  # `lockgate up`'s lines
    assert views.event_line(plain).endswith("a  success")
    assert "params.arguments" not in result.output


@pytest.mark.parametrize(("width", "shown"), [(160, True), (135, False)])
def test_tail_table_shows_the_guardrail_column_where_it_fits(width: int, shown: bool) -> None:
    con = Console(record=True, width=width, force_terminal=True, no_color=True)
    event = {
        "ts": "2026-11-27T06:40:01.123Z",
        "event": "tool.call",
        "route": "linear",
        "name": "search",
        "outcome": "success",
        "findings": [{"kind": "finding", "rule": "HIDDEN_INSTRUCTIONS", "action": "warn"}],
    }
    audit_views.print_events(con, [event])
    text = con.export_text()
    assert ("HIDDEN_INSTRUCTIONS" in text) is shown and ("guardrail" in text) is shown
    assert "06:40:01.123" in text  # the time is never cut to make room
