"""Issue 9 item 6: `audit verify` catches a cut tail, forged, edited-and-re-chained lines
and does not let events planted in the pending file backdate themselves."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from lockgate.audit.log import AuditLog, AuditLogDamaged, pending_path, record
from lockgate.audit.read import read_events
from lockgate.audit.verify import verify


def _event(i: int) -> dict[str, Any]:
    return {"event": "tool.call", "route": "notes", "user": "alice", "name": f"t{i}"}


def _write(path: Path, n: int) -> None:
    with AuditLog(path) as log:
        for i in range(n):
            log.append(_event(i))


def _rehash(obj: dict[str, Any]) -> bytes:
    """What an attacker without the key can do: recompute the (unkeyed) sha256 link."""
    obj = {k: v for k, v in obj.items() if k not in ("hash", "mac")}
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return canonical[:-1].encode() + f',"hash":"{digest}"}}\n'.encode()


def _link(obj: dict[str, Any]) -> str:
    return str(obj.get("mac") or obj.get("hash"))


def _write_legacy(path: Path, n: int) -> str:
    """A format-1 log (sha256 links, no key) of `n` events; returns its last hash."""
    prev = "0" * 64
    out = []
    for i in range(n):
        obj = {**_event(i), "seq": i + 1, "prev": prev, "ts": "2026-01-01T00:00:00.000Z"}
        line = _rehash(obj)
        prev = json.loads(line)["hash"]
        out.append(line)
    path.write_bytes(b"".join(out))
    return prev


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def test_cut_tail_is_reported(log_path: Path) -> None:
    _write(log_path, 10)
    lines = log_path.read_bytes().splitlines(keepends=True)
    log_path.write_bytes(b"".join(lines[:-2]))
    result = verify(log_path)
    assert not result.ok
    assert result.reason is not None and "cut" in result.reason


def test_cut_tail_of_a_copy_is_reported(log_path: Path, tmp_path: Path) -> None:
    """`head -n -1 audit.jsonl > x; lockgate audit verify --file x`."""
    _write(log_path, 5)
    copy = tmp_path / "x"
    copy.write_bytes(b"".join(log_path.read_bytes().splitlines(keepends=True)[:-1]))
    result = verify(copy)
    assert not result.ok and result.reason is not None and "cut" in result.reason


def test_appended_forged_line_with_recomputed_hash_is_reported(log_path: Path) -> None:
    _write(log_path, 5)
    last = json.loads(log_path.read_bytes().splitlines()[-1])
    forged = {**last, "seq": last["seq"] + 1, "prev": _link(last), "name": "wipe_all"}
    with open(log_path, "ab") as f:
        f.write(_rehash(forged))
    result = verify(log_path)
    assert not result.ok and result.first_bad_line == 6


def test_edited_line_with_the_rest_re_chained_is_reported(log_path: Path) -> None:
    _write(log_path, 8)
    records = [json.loads(x) for x in log_path.read_bytes().splitlines()]
    records[3]["outcome"] = "denied"
    out = []
    prev = _link(records[2])
    for obj in records[3:]:
        obj["prev"] = prev
        line = _rehash(obj)
        prev = json.loads(line)["hash"]
        out.append(line)
    head = log_path.read_bytes().splitlines(keepends=True)[:3]
    log_path.write_bytes(b"".join(head + out))
    result = verify(log_path)
    assert not result.ok and result.first_bad_line == 4


def test_a_whole_log_rewritten_without_the_key_is_not_ok(log_path: Path) -> None:
    _write(log_path, 4)
    records = [json.loads(x) for x in log_path.read_bytes().splitlines()]
    prev = "0" * 64
    out = []
    for obj in records:
        obj.pop("v", None)
        obj["prev"] = prev
        line = _rehash(obj)
        prev = json.loads(line)["hash"]
        out.append(line)
    log_path.write_bytes(b"".join(out))
    assert not verify(log_path).ok


@pytest.mark.skipif(sys.platform == "win32", reason="the single-writer lock is POSIX flock")
def test_planted_pending_events_cannot_backdate_themselves(log_path: Path) -> None:
    _write(log_path, 2)
    planted = {"event": "auth.login", "user": "mallory", "ts": "2020-01-01T00:00:00.000Z"}
    pending_path(log_path).write_text(json.dumps(planted) + "\n")
    with AuditLog(log_path):  # the next gateway start drains the pending file
        pass
    *_, drained = read_events(log_path)
    assert drained["user"] == "mallory"
    assert drained["via"] == "pending"
    assert drained["claimed_ts"] == "2020-01-01T00:00:00.000Z"
    assert drained["ts"] > "2026"  # the gateway's own clock at drain time
    assert verify(log_path).ok  # the chain is whole: the event is marked, not hidden


@pytest.mark.skipif(sys.platform == "win32", reason="the single-writer lock is POSIX flock")
def test_a_running_writer_chains_what_another_process_queued_without_a_restart(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lockgate tools approve` while the gateway runs: its pin.approved is queued (the
    gateway holds the log) and chained by the gateway's next event a second later."""
    clock = [1000.0]
    monkeypatch.setattr("lockgate.audit.log.time.monotonic", lambda: clock[0])
    with AuditLog(log_path) as log:
        log.append(_event(1))
        assert record(log_path, {"event": "pin.approved", "user": "alice"}) == "pending"
        log.append(_event(2))  # within the second: not yet
        assert [e["event"] for e in read_events(log_path)][-1] != "pin.approved"
        clock[0] += 1.5
        log.append(_event(3))
    events = list(read_events(log_path))
    assert [e["event"] for e in events][-1] == "pin.approved"
    assert events[-1]["via"] == "pending" and not pending_path(log_path).exists()
    assert verify(log_path).ok


def test_unkeyed_legacy_log_is_reported_not_crashing(log_path: Path) -> None:
    _write_legacy(log_path, 3)
    result = verify(log_path)
    assert not result.ok
    assert result.reason is not None and "unkeyed (legacy)" in result.reason


def test_a_writer_refuses_to_chain_on_after_a_cut_tail(log_path: Path) -> None:
    _write(log_path, 4)
    lines = log_path.read_bytes().splitlines(keepends=True)
    log_path.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(AuditLogDamaged, match="checkpoint says 4"):
        AuditLog(log_path)
    assert not verify(log_path).ok


def test_a_legacy_log_continued_by_a_keyed_writer_verifies(log_path: Path) -> None:
    prev = _write_legacy(log_path, 3)
    with AuditLog(log_path) as log:
        assert log.append(_event(3))["prev"] == prev
    assert verify(log_path).ok
    lines = log_path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"name":"t1"', b'"name":"tX"')  # edit a legacy line
    log_path.write_bytes(b"".join(lines))
    assert verify(log_path).first_bad_line == 2


def test_a_log_in_another_home_is_checked_against_the_checkpoint_beside_it(
    tmp_path: Path,
) -> None:
    """A gateway run with another LOCKGATE_HOME keeps log and checkpoints there: verify from
    this home finds them, and still catches the cut tail."""
    other = tmp_path / "other-home"
    log = other / "audit.jsonl"
    other.mkdir()
    with AuditLog(log, checkpoints=other / "audit-checkpoints") as writer:
        for i in range(4):
            writer.append(_event(i))
    assert verify(log).ok
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))
    result = verify(log)
    assert not result.ok and "tail cut" in (result.reason or "")
