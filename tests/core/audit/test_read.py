"""lockgate.audit.read: following a log as it grows, rotates and is truncated."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lockgate.audit.log import AuditLog
from lockgate.audit.read import follow
from tests.core.audit.logs import tool_event, write_log


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
    write_log(log_path, 2)  # existing lines are not replayed: follow starts at the end
    ready = threading.Event()

    def writer() -> None:
        ready.wait(5)
        with AuditLog(log_path) as log:
            for i in range(5):
                log.append(tool_event(100 + i))
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


class Idle:
    """`follow`'s `stop` hook, which it calls each time it has nothing to read: a writer
    waits on it for the follower to have caught up, instead of sleeping and hoping."""

    def __init__(self, seconds: float) -> None:
        self._deadline = _deadline(seconds)
        self._count = 0
        self._changed = threading.Condition()

    def __call__(self) -> bool:
        with self._changed:
            self._count += 1
            self._changed.notify_all()
        return bool(self._deadline())

    def caught_up(self) -> None:
        """Two idle polls from now: at least one full read after everything written so far."""
        with self._changed:
            target = self._count + 2
            assert self._changed.wait_for(lambda: self._count >= target, timeout=10)


def test_follow_survives_rotation(log_path: Path) -> None:
    idle = Idle(10)
    events = follow(log_path, poll=0.01, stop=idle)  # the file does not exist yet

    def writer() -> None:
        idle.caught_up()  # waiting for the file
        with AuditLog(log_path) as log:
            log.append({"event": "gateway.start", "name": "first"})
            log.append({"event": "tool.call", "name": "old-1"})
        idle.caught_up()  # read both, at the end of the first file
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
    write_log(log_path, 3)
    idle = Idle(10)
    events = follow(log_path, poll=0.01, stop=idle)

    def writer() -> None:
        idle.caught_up()  # the follower sits at the end of the three events
        log_path.write_bytes(b"")
        idle.caught_up()  # and has seen the file shrink
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
