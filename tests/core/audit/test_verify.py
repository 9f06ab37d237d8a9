"""lockgate.audit.verify: the hash chain verifies, and each kind of damage is named at its line."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import re
import sys
from pathlib import Path

import pytest

from lockgate.audit.log import ZERO_HASH, AuditLog
from lockgate.audit.read import read_events
from lockgate.audit.verify import verify
from lockgate.guardrails.pinning import Change, Decided
from tests.core.audit.logs import log_lines, tool_event, write_log


def test_chain_of_100_events_verifies(log_path: Path) -> None:
    write_log(log_path, 100)
    assert verify(log_path).ok
    assert verify(log_path).lines == 100
    records = list(read_events(log_path))
    assert [r["seq"] for r in records] == list(range(1, 101))
    assert records[0]["prev"] == ZERO_HASH
    for before, after in itertools.pairwise(records):
        assert after["prev"] == before["mac"]
    assert "session" not in records[0]  # None values are omitted


def test_line_format_and_hash_are_canonical(log_path: Path) -> None:
    with AuditLog(log_path) as log:
        record = log.append(tool_event(1))
    line = log_path.read_bytes()
    assert line.endswith(b'"}\n') and line.count(b"\n") == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])
    body = dict(record)
    digest = body.pop("mac")
    assert body["v"] == 2
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    key = bytes.fromhex(os.environ["LOCKGATE_AUDIT_KEY_SOURCE"].removeprefix("test:"))
    mac = hmac.new(key, bytes.fromhex(body["prev"]) + canonical.encode(), hashlib.sha256)
    assert mac.hexdigest() == digest
    assert line == canonical[:-1].encode() + f',"mac":"{digest}"}}\n'.encode()
    assert "ünïcode".encode() in line  # ensure_ascii=False
    if sys.platform != "win32":
        assert log_path.stat().st_mode & 0o777 == 0o600


def test_edited_field_is_reported_at_its_line(log_path: Path) -> None:
    write_log(log_path, 100)
    lines = log_lines(log_path)
    lines[49] = lines[49].replace(b'"outcome":"success"', b'"outcome":"denied"')
    log_path.write_bytes(b"".join(lines))
    result = verify(log_path)
    assert not result.ok
    assert result.first_bad_line == 50
    assert result.lines == 49
    assert result.reason is not None and "mac mismatch" in result.reason


def test_recomputed_hash_still_breaks_the_chain(log_path: Path) -> None:
    write_log(log_path, 10)
    lines = log_lines(log_path)
    record = json.loads(lines[4])
    record.pop("mac")
    record["outcome"] = "denied"
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    lines[4] = canonical[:-1].encode() + f',"hash":"{digest}"}}\n'.encode()
    log_path.write_bytes(b"".join(lines))
    result = verify(log_path)
    assert result.first_bad_line == 5  # keyed: a recomputed sha256 is no mac
    assert result.reason is not None and "no mac" in result.reason


def test_reformatted_line_is_reported(log_path: Path) -> None:
    write_log(log_path, 3)
    lines = log_lines(log_path)
    lines[1] = (json.dumps(json.loads(lines[1]), indent=None) + "\n").encode()
    log_path.write_bytes(b"".join(lines))
    result = verify(log_path)
    assert result.first_bad_line == 2
    assert result.reason is not None and "canonical" in result.reason


def test_deleted_line_is_a_seq_gap_at_the_line_after(log_path: Path) -> None:
    write_log(log_path, 100)
    lines = log_lines(log_path)
    del lines[29]  # seq 30
    log_path.write_bytes(b"".join(lines))
    result = verify(log_path)
    assert not result.ok
    assert result.first_bad_line == 30  # the line after the gap (seq 31) now sits at line 30
    assert result.reason is not None
    assert "seq gap" in result.reason and "expected seq 30, found 31" in result.reason


def test_truncated_last_line_is_reported(log_path: Path) -> None:
    write_log(log_path, 5)
    data = log_path.read_bytes()
    log_path.write_bytes(data[:-20])
    result = verify(log_path)
    assert result.first_bad_line == 5
    assert result.reason is not None and "truncated" in result.reason


@pytest.mark.parametrize(
    ("garbage", "reason", "readable"),
    [
        (b"not json\n", "not JSON", False),
        (b"[1,2]\n", "not a JSON object", False),
        (b"\n", "empty line", False),
        (b"{}\n", "no mac", True),
    ],
)
def test_garbage_line_is_reported(
    log_path: Path, garbage: bytes, reason: str, readable: bool
) -> None:
    write_log(log_path, 3)
    lines = log_lines(log_path)
    lines.insert(1, garbage)
    log_path.write_bytes(b"".join(lines))
    result = verify(log_path)
    assert result.first_bad_line == 2
    assert result.reason is not None and reason in result.reason
    if readable:  # a JSON object: read_events yields it, only verify objects
        assert len(list(read_events(log_path))) == 4
    else:
        with pytest.raises(ValueError, match="line 2"):
            list(read_events(log_path))


def test_empty_file_verifies(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.touch()
    assert verify(log_path).ok and verify(log_path).lines == 0


def test_guardrail_and_pin_events_verify_and_editing_a_finding_breaks_the_chain(
    log_path: Path,
) -> None:
    base = {"route": "linear", "upstream": "linear", "user": "alice@example.com"}
    masked = {
        "kind": "redaction",
        "rule": "GITHUB_TOKEN",
        "path": "params.arguments.token",
        "count": 1,
        "action": "mask",
        "direction": "up",
    }
    blocked = {**masked, "rule": "CARD", "action": "block"}
    limit = {"kind": "limit", "rule": "RATE_LIMIT", "scope": "user_tool", "action": "block"}
    old, new = hashlib.sha256(b"v1").hexdigest(), hashlib.sha256(b"v2").hexdigest()
    with AuditLog(log_path) as log:
        log.append({**tool_event(1), "findings": [masked]})
        log.append({**base, **tool_event(2), "outcome": "blocked", "findings": [blocked]})
        log.append({**base, **tool_event(3), "outcome": "blocked", "findings": [limit]})
        log.append(Change("create_issue", "changed", new, old).event("linear"))
        log.append(
            Decided("approved", "linear", "create_issue", "changed", new, old, "alice").event()
        )
        # A pin field that is not a digest is treated as the secret its name suggests.
        log.append({"event": "pin.new", "name": "x", "new_pin": "1234"})
    assert verify(log_path) == verify(log_path) and verify(log_path).ok
    records = list(read_events(log_path))
    assert records[0]["findings"] == [masked]
    assert [r["outcome"] for r in records[1:5]] == ["blocked", "blocked", "blocked", "success"]
    assert records[2]["findings"] == [limit]
    # digests are kept
    assert (records[3]["old_sha256"], records[3]["new_sha256"]) == (old, new)
    assert (records[4]["old_sha256"], records[4]["new_sha256"]) == (old, new)
    assert records[5]["new_pin"] == "[redacted]"
    lines = log_lines(log_path)
    lines[0] = lines[0].replace(b'"action":"mask"', b'"action":"log"')
    log_path.write_bytes(b"".join(lines))
    bad = verify(log_path)
    assert not bad.ok and bad.first_bad_line == 1
