"""lockgate.audit.log: the writer: resume, concurrent appends, one writer, queued events."""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
from pathlib import Path

import pytest

from lockgate.audit.log import AuditLog, AuditLogBusy, AuditWriteFailed, pending_path, record
from lockgate.audit.read import last_events, read_events
from lockgate.audit.verify import verify
from tests.core.audit.logs import log_lines, tool_event, write_log


def test_resume_after_reopen_continues_seq_and_prev(log_path: Path) -> None:
    write_log(log_path, 3)
    last = list(read_events(log_path))[-1]
    with AuditLog(log_path) as log:
        assert log.seq == 3 and log.last_hash == last["mac"]
        record = log.append(tool_event(3))
    assert record["seq"] == 4
    assert record["prev"] == last["mac"]
    assert verify(log_path).ok


def test_resume_reads_only_the_tail_of_a_large_file(log_path: Path) -> None:
    write_log(log_path, 1)
    big = {"event": "tool.call", "result": "x" * 300}
    with AuditLog(log_path, preview_limit=400) as log:
        for _ in range(2000):  # ~0.8 MB, more than one read block
            log.append(big)
    with AuditLog(log_path) as log:
        assert log.seq == 2001
    assert verify(log_path).ok
    assert [e["seq"] for e in last_events(log_path, 3)] == [1999, 2000, 2001]


def test_resume_after_a_truncated_tail_starts_a_fresh_line(log_path: Path) -> None:
    write_log(log_path, 3)
    with open(log_path, "ab") as f:
        f.write(b'{"event":"tool.c')  # a crash mid-write
    with AuditLog(log_path) as log:
        record = log.append(tool_event(9))
    assert record["seq"] == 4  # resumed from the last line that parses
    lines = log_lines(log_path)
    assert lines[3] == b'{"event":"tool.c\n'
    assert json.loads(lines[4])["seq"] == 4
    result = verify(log_path)  # the torn line is reported and skipped: the chain holds
    assert result.ok and result.lines == 4 and result.torn == (4,)


def test_a_partial_write_that_ended_a_line_adds_no_empty_line(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write cut short right after the newline it started with (the file size limit hit)
    leaves the file at a line's start: the next line needs no newline of its own."""
    write_log(log_path, 1)
    with open(log_path, "ab") as f:
        f.write(b'{"event":"tool.c')  # a torn tail: the next write starts with b"\n"
    real_write = os.write
    calls: list[bytes] = []

    def short_then_full(fd: int, data: bytes) -> int:  # what write(2) does at RLIMIT_FSIZE
        calls.append(bytes(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:1]))
        raise OSError(errno.EFBIG, "File too large")

    with AuditLog(log_path) as log:
        monkeypatch.setattr(os, "write", short_then_full)
        with pytest.raises(AuditWriteFailed, match="File too large"):
            log.append(tool_event(2))
        monkeypatch.setattr(os, "write", real_write)
        log.append(tool_event(3))
    assert calls[0].startswith(b"\n{") and b"\n\n" not in log_path.read_bytes()
    result = verify(log_path)
    assert result.ok and result.lines == 2 and result.torn == (2,)


def test_concurrent_appends_keep_the_chain(log_path: Path) -> None:
    with AuditLog(log_path) as log:

        def worker(k: int) -> None:
            for i in range(250):
                log.append({**tool_event(i), "client": f"thread-{k}"})

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


def test_lone_surrogates_are_scrubbed(log_path: Path) -> None:
    with AuditLog(log_path) as log:
        log.append({"event": "tool.call", "name": "bad\ud800name"})
    assert verify(log_path).ok


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


@pytest.mark.skipif(sys.platform == "win32", reason="the single-writer lock is POSIX flock")
def test_a_queued_event_is_chained_by_poll_with_no_event_after_it(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tools approve` queues its event while the gateway holds the log; with no traffic after
    it, the gateway's timer (`poll`) chains it: a drain waited for the next append before."""
    clock = [1000.0]
    monkeypatch.setattr("lockgate.audit.log.time.monotonic", lambda: clock[0])
    with AuditLog(log_path) as gateway:
        gateway.append({"event": "tool.call", "name": "a"})
        assert record(log_path, {"event": "pin.approved", "name": "t"}) == "pending"
        gateway.poll()  # within a second of the last look: not yet (one stat a second)
        assert [e["event"] for e in read_events(log_path)] == ["tool.call"]
        clock[0] += 1.5
        gateway.poll()
        assert [e["event"] for e in read_events(log_path)] == ["tool.call", "pin.approved"]
        assert not pending_path(log_path).exists()
    gateway.poll()  # closed: nothing to do, no error
    assert verify(log_path).ok


def test_after_a_failed_write_the_log_is_not_ready_until_it_records_the_gap(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests are refused before they go upstream while the log cannot record them; the
    first check that can write again records the gap as `audit.resumed`."""
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with AuditLog(log_path) as log:
        log.check_ready()
        log.append(tool_event(1))
        monkeypatch.setattr(os, "write", full)
        with pytest.raises(AuditWriteFailed):
            log.append(tool_event(2))
        raised = []
        for _ in range(3):  # a fresh exception each time (no frames piling up on one)
            with pytest.raises(AuditWriteFailed, match="No space left") as e:
                log.check_ready()
            raised.append(e.value)
        assert len({id(x) for x in raised}) == 3
        monkeypatch.setattr(os, "write", real_write)
        log.check_ready()
        log.check_ready()  # once: the gap is recorded, the log is ready
        log.append(tool_event(3))
    lines = [json.loads(x) for x in log_path.read_text().splitlines()]
    assert [x["event"] for x in lines] == ["tool.call", "audit.resumed", "tool.call"]
    assert "No space left on device" in lines[1]["reason"]
    assert verify(log_path).ok


def test_a_disk_nearly_full_is_not_ready(log_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with AuditLog(log_path) as log:
        real = os.statvfs(log_path.parent)

        class Nearly:
            f_frsize = real.f_frsize
            f_bavail = 1

        monkeypatch.setattr(os, "statvfs", lambda path: Nearly)
        with pytest.raises(AuditWriteFailed, match="bytes free"):
            log.check_ready()
        log.check_ready()  # looked up once a second, not on every request
