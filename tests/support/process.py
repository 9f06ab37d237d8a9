"""Child processes for tests: a free port, a line to wait for, a condition to wait on, a group
to stop.

Why it exists: the gateway, Chromium, the Node servers and the CLI runs all start a process
in its own session, wait until it prints where it listens (or opens a port), and stop its
whole process group at the end. These helpers do each step once, and every wait ends on an
event or a condition with a deadline, never on a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until[T](
    check: Callable[[], T | None],
    what: str,
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    ignore: tuple[type[BaseException], ...] = (),
    alive: subprocess.Popen[Any] | None = None,
) -> T:
    """The first truthy value of `check()`, polled every `interval` until `timeout`.

    Raises TimeoutError naming `what` at the deadline, or at once when the process `alive`
    exits first; exceptions of the `ignore` types count as "not yet".
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(*ignore):
            if value := check():
                return value
        if alive is not None and alive.poll() is not None:
            raise TimeoutError(f"{what}: the process exited (code {alive.returncode})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(interval)


@dataclass
class LineWatch:
    """A thread reading a child's output line by line, watching for a regular expression.

    `lines` keeps everything read; `wait()` returns the first match's group 1 once it shows,
    or None when the stream ends or `timeout` passes first.
    """

    pattern: re.Pattern[str]
    lines: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)

    def pump(self, stream: Iterable[str]) -> None:
        for line in stream:
            self.lines.append(line)
            m = self.pattern.search(line)
            if m and not self.found:
                self.found.append(m.group(1))
                self.event.set()
        self.event.set()

    def wait(self, timeout: float) -> str | None:
        return self.found[0] if self.event.wait(timeout) and self.found else None


def watch_lines(stream: IO[str] | None, pattern: str) -> LineWatch:
    """Start reading `stream` (a child's text stdout or stderr) in a daemon thread."""
    assert stream is not None
    watch = LineWatch(re.compile(pattern))
    threading.Thread(target=watch.pump, args=(stream,), daemon=True).start()
    return watch


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float) -> bool:
    """True once 127.0.0.1:port accepts a connection; False if `proc` exits or time runs out."""

    def accepts() -> bool:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True

    try:
        return wait_until(accepts, f"port {port}", timeout=timeout, ignore=(OSError,), alive=proc)
    except TimeoutError:
        return False


def terminate_group(
    proc: subprocess.Popen[Any], timeout: float = 5.0, sig: int = signal.SIGTERM
) -> None:
    """`sig` (SIGTERM) to the child's process group, SIGKILL if it lingers, then reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    else:
        # The leader is gone; anything it left in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
