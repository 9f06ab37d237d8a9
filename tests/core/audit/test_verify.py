"""lockgate.audit.verify: the hash chain verifies, and each kind of damage is named at its line."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import re
import shutil
import sys
from collections.abc import Callable
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


def test_a_cut_checkpointed_last_line_is_a_cut_tail(log_path: Path) -> None:
    """A line the checkpoint covers was whole once: cutting it is not a crash's doing."""
    write_log(log_path, 5)
    data = log_path.read_bytes()
    log_path.write_bytes(data[:-20])
    result = verify(log_path)
    assert not result.ok and result.torn == (5,)
    assert result.reason is not None and "tail cut" in result.reason


def _torn_log(tmp_path: Path, cut: Callable[[bytes], int]) -> tuple[Path, Path]:
    """Five events, then a sixth whose write a crash cut at `cut(line)` bytes, before its
    checkpoint was written (the writer writes the line, then the checkpoint)."""
    path, checkpoints = tmp_path / "audit.jsonl", tmp_path / "cp"
    with AuditLog(path, checkpoints=checkpoints) as log:
        for i in range(5):
            log.append(tool_event(i))
    before, saved = path.read_bytes(), tmp_path / "cp-at-5"
    shutil.copytree(checkpoints, saved)
    with AuditLog(path, checkpoints=checkpoints) as log:
        log.append(tool_event(5))
    line = path.read_bytes()[len(before) :]
    path.write_bytes(before + line[: cut(line)])
    shutil.rmtree(checkpoints)
    saved.rename(checkpoints)
    return path, checkpoints


CUTS = [
    pytest.param(lambda line: 1, id="first-byte"),
    pytest.param(lambda line: 7, id="in-a-key"),
    pytest.param(lambda line: line.index(b"\xc3") + 1, id="mid-utf8-char"),
    pytest.param(lambda line: len(line) // 2, id="half"),
    pytest.param(lambda line: len(line) - 3, id="in-the-mac"),
    pytest.param(lambda line: len(line) - 1, id="all-but-the-newline"),
]


@pytest.mark.parametrize("cut", CUTS)
def test_a_torn_last_line_is_reported_and_skipped(
    tmp_path: Path, cut: Callable[[bytes], int]
) -> None:
    path, checkpoints = _torn_log(tmp_path, cut)
    result = verify(path, checkpoints=checkpoints)
    whole = path.read_bytes().endswith(b'"}')  # only the newline missing: the event is whole
    assert result.ok, result.reason
    assert (result.lines, result.torn) == ((6, ()) if whole else (5, (6,)))


@pytest.mark.parametrize("cut", CUTS)
def test_a_gateway_resumed_after_a_torn_line_chains_past_it(
    tmp_path: Path, cut: Callable[[bytes], int]
) -> None:
    path, checkpoints = _torn_log(tmp_path, cut)
    with AuditLog(path, checkpoints=checkpoints) as log:
        log.append(tool_event(7))
        log.append(tool_event(8))
    result = verify(path, checkpoints=checkpoints)
    assert result.ok, result.reason
    whole = result.torn == ()
    assert result.lines == (8 if whole else 7)
    assert result.torn == (() if whole else (6,))


def test_tampering_still_fails_next_to_a_torn_line(tmp_path: Path) -> None:
    """Skipping torn lines hides nothing: the line after one must chain to the line before."""
    path, checkpoints = _torn_log(tmp_path, lambda line: len(line) // 2)
    with AuditLog(path, checkpoints=checkpoints) as log:
        for i in range(7, 10):
            log.append(tool_event(i))
    good = log_lines(path)  # seq 1-5, torn, seq 6-8
    assert verify(path, checkpoints=checkpoints).ok

    def verdict(lines: list[bytes]) -> tuple[int | None, str]:
        path.write_bytes(b"".join(lines))
        result = verify(path, checkpoints=checkpoints)
        assert not result.ok
        return result.first_bad_line, result.reason or ""

    edited = [*good]
    edited[2] = edited[2].replace(b'"outcome":"success"', b'"outcome":"denied"')
    line, why = verdict(edited)
    assert line == 3 and "mac mismatch" in why
    # An event cut down to a torn-looking start: the next line no longer chains.
    hidden = [*good]
    hidden[3] = hidden[3][:40] + b"\n"
    line, why = verdict(hidden)
    assert line == 5 and "seq gap" in why
    # A middle line re-chained without the key (a fresh sha256 "mac"): mac mismatch.
    record = json.loads(good[7])
    record["outcome"] = "denied"
    record.pop("mac")
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    forged = canonical[:-1] + f',"mac":"{hashlib.sha256(canonical.encode()).hexdigest()}"}}\n'
    rechained = [*good]
    rechained[7] = forged.encode()
    line, why = verdict(rechained)
    assert line == 8 and "mac mismatch" in why
    # The torn line removed and an event deleted in its place: a seq gap.
    deleted = [*good[:5], *good[7:]]
    line, why = verdict(deleted)
    assert line == 6 and "seq gap" in why


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
