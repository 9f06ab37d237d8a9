"""The audit log core: hash chain, resume, verify, previews, follow."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockgate.audit.log import ZERO_HASH, AuditLog, AuditLogBusy, pending_path, record
from lockgate.audit.read import follow, last_events, read_events
from lockgate.audit.redact import REDACTED, preview
from lockgate.audit.verify import verify


def _event(i: int) -> dict[str, Any]:
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


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "audit.jsonl"


def _write(path: Path, n: int) -> None:
    with AuditLog(path) as log:
        for i in range(n):
            log.append(_event(i))


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_chain_of_100_events_verifies(log_path: Path) -> None:
    _write(log_path, 100)
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
        record = log.append(_event(1))
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
    _write(log_path, 100)
    lines = _lines(log_path)
    lines[49] = lines[49].replace(b'"outcome":"success"', b'"outcome":"denied"')
    log_path.write_bytes(b"".join(lines))
    result = verify(log_path)
    assert not result.ok
    assert result.first_bad_line == 50
    assert result.lines == 49
    assert result.reason is not None and "mac mismatch" in result.reason


def test_recomputed_hash_still_breaks_the_chain(log_path: Path) -> None:
    _write(log_path, 10)
    lines = _lines(log_path)
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
    _write(log_path, 3)
    lines = _lines(log_path)
    lines[1] = (json.dumps(json.loads(lines[1]), indent=None) + "\n").encode()
    log_path.write_bytes(b"".join(lines))
    result = verify(log_path)
    assert result.first_bad_line == 2
    assert result.reason is not None and "canonical" in result.reason


def test_deleted_line_is_a_seq_gap_at_the_line_after(log_path: Path) -> None:
    _write(log_path, 100)
    lines = _lines(log_path)
    del lines[29]  # seq 30
    log_path.write_bytes(b"".join(lines))
    result = verify(log_path)
    assert not result.ok
    assert result.first_bad_line == 30  # the line after the gap (seq 31) now sits at line 30
    assert result.reason is not None
    assert "seq gap" in result.reason and "expected seq 30, found 31" in result.reason


def test_truncated_last_line_is_reported(log_path: Path) -> None:
    _write(log_path, 5)
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
    _write(log_path, 3)
    lines = _lines(log_path)
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


def test_resume_after_reopen_continues_seq_and_prev(log_path: Path) -> None:
    _write(log_path, 3)
    last = list(read_events(log_path))[-1]
    with AuditLog(log_path) as log:
        assert log.seq == 3 and log.last_hash == last["mac"]
        record = log.append(_event(3))
    assert record["seq"] == 4
    assert record["prev"] == last["mac"]
    assert verify(log_path).ok


def test_resume_reads_only_the_tail_of_a_large_file(log_path: Path) -> None:
    _write(log_path, 1)
    big = {"event": "tool.call", "result": "x" * 300}
    with AuditLog(log_path, preview_limit=400) as log:
        for _ in range(2000):  # ~0.8 MB, more than one read block
            log.append(big)
    with AuditLog(log_path) as log:
        assert log.seq == 2001
    assert verify(log_path).ok
    assert [e["seq"] for e in last_events(log_path, 3)] == [1999, 2000, 2001]


def test_resume_after_a_truncated_tail_starts_a_fresh_line(log_path: Path) -> None:
    _write(log_path, 3)
    with open(log_path, "ab") as f:
        f.write(b'{"event":"tool.c')  # a crash mid-write
    with AuditLog(log_path) as log:
        record = log.append(_event(9))
    assert record["seq"] == 4  # resumed from the last line that parses
    lines = _lines(log_path)
    assert lines[3] == b'{"event":"tool.c\n'
    assert json.loads(lines[4])["seq"] == 4
    result = verify(log_path)
    assert result.first_bad_line == 4 and result.reason is not None
    assert "not JSON" in result.reason


def test_concurrent_appends_keep_the_chain(log_path: Path) -> None:
    with AuditLog(log_path) as log:

        def worker(k: int) -> None:
            for i in range(250):
                log.append({**_event(i), "client": f"thread-{k}"})

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    result = verify(log_path)
    assert result.ok and result.lines == 1000


@pytest.mark.skipif(sys.platform == "win32", reason="the writer lock is POSIX flock")
def test_second_writer_is_refused(log_path: Path) -> None:
    with AuditLog(log_path), pytest.raises(AuditLogBusy, match="Another process"):
        AuditLog(log_path)


def test_reserved_keys_and_closed_log(log_path: Path) -> None:
    log = AuditLog(log_path)
    with pytest.raises(ValueError, match="reserved"):
        log.append({"event": "x", "seq": 7})
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.append({"event": "x"})


def test_secret_like_keys_are_redacted_in_previews(log_path: Path) -> None:
    args = {
        "query": "ok",
        "access_token": "quux-access",
        "Authorization": "Bearer quux-auth",
        "nested": [{"client_secret": "quux-s", "password": "quux-pw", "Cookie": "a=quux"}],
        "code_verifier": "quux-v",
        "X-Api-Key": "quux-k",
        "note": "use Bearer abcdefghijklmnopqrstuvwxyz123456 here",
        "jwt_like": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
    }
    out = preview(args)
    assert out == {
        "query": "ok",
        "access_token": REDACTED,
        "Authorization": REDACTED,
        "nested": [{"client_secret": REDACTED, "password": REDACTED, "Cookie": REDACTED}],
        "code_verifier": REDACTED,
        "X-Api-Key": REDACTED,
        "note": f"use {REDACTED} here",
        "jwt_like": REDACTED,
    }
    with AuditLog(log_path) as log:
        log.append({"event": "tool.call", "args": args, "result": {"refresh_token": "quux-r"}})
        log.append({"event": "auth.token", "token": "quux-raw", "user": "alice"})
    text = log_path.read_text()
    # Secrets carry "quux", which no hex hash can contain.
    assert "quux" not in text and "abcdefghijklmnop" not in text
    assert '"token":"[redacted]"' in text
    assert verify(log_path).ok


def test_preview_bounds_size_and_is_json_able() -> None:
    huge = {
        "text": "x" * 100_000,
        "items": list(range(100_000)),
        "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}},
        "blob": b"\x00" * 10,
        "big": 10**100,
        "nan": float("nan"),
        "obj": object(),
        "tuple": (1, 2),
    }
    out = preview(huge, limit=100)
    encoded = json.dumps(out, allow_nan=False)
    assert len(encoded) < 4000
    assert isinstance(out, dict)
    assert out["text"].startswith("x" * 100) and out["text"].endswith("…(+99900 chars)")
    assert out["items"][-1].startswith("… +")
    assert "object of 1 keys" in json.dumps(out["deep"])
    assert out["blob"] == "<10 bytes>" and out["big"].startswith("<int of")
    assert out["nan"] == "nan" and out["obj"] == "<object>" and out["tuple"] == [1, 2]
    assert preview("short") == "short" and preview(None) is None and preview(3) == 3


def test_lone_surrogates_are_scrubbed(log_path: Path) -> None:
    with AuditLog(log_path) as log:
        log.append({"event": "tool.call", "name": "bad\ud800name"})
    assert verify(log_path).ok


def _collect(events: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for event in events:
        out.append(event)
        if len(out) == n:
            break
    return out


def _deadline(seconds: float) -> Any:
    end = time.monotonic() + seconds
    return lambda: time.monotonic() > end


def test_follow_sees_appends_from_another_thread(log_path: Path) -> None:
    _write(log_path, 2)  # existing lines are not replayed: follow starts at the end
    ready = threading.Event()

    def writer() -> None:
        ready.wait(5)
        with AuditLog(log_path) as log:
            for i in range(5):
                log.append(_event(100 + i))
                time.sleep(0.01)

    thread = threading.Thread(target=writer)
    thread.start()
    # A generator starts when first advanced: pin its starting point before the writer runs.
    events = follow(log_path, poll=0.01, stop=_deadline(10), offset=log_path.stat().st_size)
    ready.set()
    got = _collect(events, 5)
    thread.join()
    assert [e["seq"] for e in got] == [3, 4, 5, 6, 7]


def test_follow_yields_only_complete_lines(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.touch()
    events = follow(log_path, poll=0.01, stop=_deadline(5), offset=0)
    line = json.dumps({"event": "x", "seq": 1}).encode() + b"\n"

    def writer() -> None:
        with open(log_path, "ab", buffering=0) as f:
            for i in range(0, len(line), 3):
                f.write(line[i : i + 3])
                time.sleep(0.002)

    thread = threading.Thread(target=writer)
    thread.start()
    got = _collect(events, 1)
    thread.join()
    assert got == [{"event": "x", "seq": 1}]


def test_follow_survives_rotation(log_path: Path) -> None:
    events = follow(log_path, poll=0.01, stop=_deadline(10))  # the file does not exist yet

    def writer() -> None:
        time.sleep(0.05)
        with AuditLog(log_path) as log:
            log.append({"event": "gateway.start", "name": "first"})
            log.append({"event": "tool.call", "name": "old-1"})
        time.sleep(0.1)
        os.replace(log_path, log_path.with_suffix(".1"))
        with AuditLog(log_path) as log:
            log.append({"event": "tool.call", "name": "new-1"})
            log.append({"event": "tool.call", "name": "new-2"})

    thread = threading.Thread(target=writer)
    thread.start()
    got = _collect(events, 4)
    thread.join()
    assert [e["name"] for e in got] == ["first", "old-1", "new-1", "new-2"]
    assert [e["seq"] for e in got] == [1, 2, 1, 2]


def test_follow_handles_truncation(log_path: Path) -> None:
    _write(log_path, 3)
    events = follow(log_path, poll=0.01, stop=_deadline(10))

    def writer() -> None:
        time.sleep(0.05)
        log_path.write_bytes(b"")
        time.sleep(0.1)
        with AuditLog(log_path) as log:
            log.append({"event": "after"})

    thread = threading.Thread(target=writer)
    thread.start()
    got = _collect(events, 1)
    thread.join()
    assert got[0]["event"] == "after" and got[0]["seq"] == 1


def test_follow_stop_ends_iteration(log_path: Path) -> None:
    started = time.monotonic()
    assert list(follow(log_path, poll=0.01, stop=_deadline(0.1))) == []
    assert time.monotonic() - started < 2


@pytest.mark.skipif(sys.platform == "win32", reason="the single-writer lock is POSIX flock")
def test_events_queued_while_the_log_is_held_are_chained_when_it_is_next_opened(
    log_path: Path,
) -> None:
    with AuditLog(log_path) as gateway:
        gateway.append({"event": "tool.call", "name": "a"})
        assert record(log_path, {"event": "auth.login", "user": "alice"}) == "pending"
        assert pending_path(log_path).stat().st_mode & 0o077 == 0
        gateway.append({"event": "tool.call", "name": "b"})
    assert [e["event"] for e in read_events(log_path)] == ["tool.call", "tool.call"]
    with AuditLog(log_path):  # the next gateway start
        pass
    events = list(read_events(log_path))
    assert [(e["seq"], e["event"]) for e in events][-1] == (3, "auth.login")
    assert not pending_path(log_path).exists()
    assert verify(log_path).ok
    assert record(log_path, {"event": "auth.logout", "user": "alice"}) == "written"
    assert verify(log_path).ok
