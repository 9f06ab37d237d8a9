"""Audit events and logs written for the audit tests (test_verify, test_log, test_read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lockgate.audit.log import AuditLog


def tool_event(i: int) -> dict[str, Any]:
    """The `i`-th tool.call, as the gateway hands it to the log (before seq, ts and hash)."""
    return {
        "event": "tool.call",
        "route": "linear",
        "upstream": "linear",
        "user": "alice@example.com",
        "client": "claude-code",
        "session": None,
        "method": "tools/call",
        "name": f"search_{i}",
        "outcome": "success",
        "status": 200,
        "latency_ms": {"total": 1.5 + i, "upstream": 1.0},
        "args": {"query": f"q{i}", "é": "ünïcode"},
    }


def write_log(path: Path, n: int) -> None:
    with AuditLog(path) as log:
        for i in range(n):
            log.append(tool_event(i))


def log_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)
