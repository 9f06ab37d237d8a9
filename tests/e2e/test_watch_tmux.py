"""`lockgate watch` in a real terminal: tmux runs it on a log this test writes with AuditLog.

Each test starts its own tmux server (a private socket, a fixed 140x40 window), runs the
installed `lockgate` entry point (what `uv run lockgate` runs) in a shell there, and reads the
screen with capture-pane, polling until a deadline: rows arriving, a filter typed with keys,
the detail view, rotation followed, and the terminal given back on q, Ctrl-C and SIGTERM.
The piped mode (plain lines) runs without tmux.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lockgate.audit.log import AuditLog
from tests.support import require

WIDTH, HEIGHT = 140, 40
ROW = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}  ")


def lockgate_command() -> list[str]:
    script = Path(sys.executable).parent / "lockgate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lockgate.cli"]


def event(i: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event": "tool.call",
        "route": "linear",
        "upstream": "linear",
        "user": "alice@example.com",
        "client": "claude-code",
        "method": "tools/call",
        "name": f"search_{i}",
        "outcome": "success",
        "status": 200,
        "latency_ms": {"total": 10.0 + i, "upstream": 8.0},
        "args": {"query": f"q{i}", "api_token": "sk-live-should-never-show"},
        "result": {"content": [{"type": "text", "text": f"answer {i}"}]},
    }
    base.update(fields)
    return base


class Tmux:
    """One private tmux server with one window running a shell command."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"lockgate-test-{uuid.uuid4().hex[:10]}"
        self.tmp = tmp

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert result.returncode == 0, f"tmux {args}: {result.stderr}"
        return result.stdout

    def start(self, args: list[str]) -> None:
        """Run `lockgate ARGS` in a shell that reports its exit and terminal modes after."""
        cmd = shlex.join([*lockgate_command(), *args])
        # The server inherits this process's environment (LOCKGATE_HOME from conftest);
        # colours on, so the outcome colours can be checked on the real terminal.
        # `trap : INT`: Ctrl-C reaches lockgate, and the shell lives on to report.
        script = (
            "trap : INT; "
            f"env -u NO_COLOR -u COLUMNS -u LINES {cmd}; "
            'echo "watch exited $?"; stty -a | tr " " "\\n" | grep -x -- "-\\?icanon"; '
            "sleep 600"
        )
        self.tmux(
            "new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), "-s", "w", "sh", "-c", script
        )

    def screen(self, colours: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if colours else []), "-t", "w")

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", "w", *(["-l"] if literal else []), *keys)

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 45.0) -> str:
        """Poll the screen until `check` holds; fail with the last screen at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if check(text):
                return text
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; screen:\n{text}")
            time.sleep(0.1)

    def wait_text(self, needle: str, timeout: float = 45.0) -> str:
        return self.wait_for(lambda s: needle in s, repr(needle), timeout)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    require(shutil.which("tmux") is not None, "tmux is not installed (apt-get install tmux)")
    t = Tmux(tmp_path)
    try:
        yield t
    finally:
        t.kill()


def rows(screen: str) -> list[str]:
    """The table rows on screen (they start with a time of day)."""
    return [line for line in screen.splitlines() if ROW.match(line)]


def read_lines(proc: subprocess.Popen[bytes], n: int, timeout: float = 20.0) -> list[str]:
    """`n` lines of the process's stdout, failing at the deadline instead of hanging."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""
    while buf.count(b"\n") < n:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            pytest.fail(f"timed out reading {n} lines; got {buf!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            pytest.fail(f"the process ended after {buf!r}")
        buf += chunk
    lines = buf.decode().splitlines()
    assert len(lines) == n, lines
    return lines


def test_rows_arrive_as_they_are_written(tmux: Tmux, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as writer:
        for i in range(5):
            writer.append(event(i))
        tmux.start(["watch", "--file", str(log)])
        screen = tmux.wait_text("search_4 ")
        assert "events 5" in screen
        assert "following" in screen
        for i in range(5, 8):
            writer.append(event(i, outcome="denied" if i == 6 else "success"))
        screen = tmux.wait_text("search_7 ")
    assert "events 8" in screen and "denied 1" in screen
    shown = rows(screen)
    assert [r.split()[5] for r in shown] == [f"search_{i}" for i in range(8)]
    denied = next(r for r in shown if "search_6" in r)
    assert "alice@example.com" in denied and "claude-code" in denied and "linear" in denied
    assert denied.split()[6] == "denied" and denied.endswith("16.0 ms")
    # The outcome is coloured on the real terminal too (yellow: SGR 33).
    coloured = tmux.screen(colours=True)
    assert "\x1b[33mdenied" in coloured


def test_a_filter_typed_with_keys_and_the_outcome_key(tmux: Tmux, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as writer:
        for i in range(12):
            writer.append(
                event(
                    i,
                    route="github" if i % 2 else "linear",
                    outcome="denied" if i % 3 == 0 else "success",
                )
            )
        tmux.start(["watch", "--file", str(log)])
        tmux.wait_text("search_11 ")
        tmux.keys("/")
        tmux.keys("route:lin* outcome:denied", literal=True)
        tmux.keys("Enter")
        screen = tmux.wait_text("showing 2 of 12")
        assert "filter  route:lin* outcome:denied" in screen
        assert [r.split()[5] for r in rows(screen)] == ["search_0", "search_6"]
        # New matching events join the filtered table as they arrive; others do not.
        writer.append(event(12, outcome="denied"))
        writer.append(event(13, route="github", outcome="denied"))
        screen = tmux.wait_text("search_12 ")
    assert "showing 3 of 14" in screen and "search_13" not in screen
    tmux.keys("c")
    screen = tmux.wait_for(
        lambda s: (
            not any(line.startswith("filter ") for line in s.splitlines()) and "search_1 " in s
        ),
        "the filter cleared",
    )
    assert len(rows(screen)) == 14
    tmux.keys("o")  # first step of the outcome cycle: every failure
    screen = tmux.wait_text("filter  outcome:!success")
    assert {r.split()[6] for r in rows(screen)} == {"denied"}


def test_the_detail_view_shows_one_event_with_its_mac(tmux: Tmux, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as writer:
        records = [writer.append(event(i)) for i in range(6)]
    tmux.start(["watch", "--file", str(log)])
    tmux.wait_text("search_5 ")
    tmux.keys("k")
    tmux.keys("k")  # the second newest: search_4
    screen = tmux.wait_text("paused · 1 newer")
    tmux.keys("Enter")
    screen = tmux.wait_text("── args")
    target = records[4]
    assert f"mac         {target['mac']}" in screen
    assert f"prev        {records[3]['mac']}" in screen
    assert "seq         5" in screen
    assert '"api_token": "[redacted]"' in screen
    assert "sk-live-should-never-show" not in screen
    assert '"text": "answer 4"' in screen
    tmux.keys("Escape")
    screen = tmux.wait_for(lambda s: "── args" not in s and "search_5 " in s, "the table again")
    assert "paused · 1 newer" in screen  # back on the row it came from


def test_rotation_is_followed(tmux: Tmux, tmp_path: Path) -> None:
    log = log_of(tmp_path, 3)
    tmux.start(["watch", "--file", str(log)])
    tmux.wait_text("search_2 ")
    log.rename(tmp_path / "audit.jsonl.1")
    with AuditLog(log) as writer:  # a new file at the same path: its chain starts at seq 1
        for i in range(100, 104):
            writer.append(event(i, route="after-rotation"))
    screen = tmux.wait_text("search_103 ")
    assert "events 7" in screen
    assert "after-rotation" in screen
    assert "search_2 " in screen  # the rows of the old file stay


def test_all_counts_the_whole_log_and_flags_filter_the_rows(tmux: Tmux, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as writer:
        for i in range(300):
            writer.append(event(i, outcome="denied" if i % 6 == 0 else "success"))
    tmux.start(["watch", "--file", str(log), "--all", "--route", "lin*", "--outcome", "denied"])
    screen = tmux.wait_text("events 300")
    assert "denied 50" in screen  # counts cover every event, not only the filtered rows
    assert "filter  route:lin* outcome:denied   showing 50 of 300" in screen
    shown = rows(screen)
    assert shown and all(r.split()[6] == "denied" for r in shown)
    assert shown[-1].split()[5] == "search_294"


def log_of(tmp_path: Path, n: int) -> Path:
    """An audit log in `tmp_path` with events 0 to n-1."""
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as writer:
        for i in range(n):
            writer.append(event(i))
    return log


def watch_one_event(tmux: Tmux, tmp_path: Path) -> None:
    """`lockgate watch` in the pane on a log of one event, once that event is on screen."""
    tmux.start(["watch", "--file", str(log_of(tmp_path, 1))])
    tmux.wait_text("search_0 ")


def terminal_given_back(
    tmux: Tmux, exited: str, what: str = "the exit status and the terminal modes"
) -> str:
    """Wait for the pane's note `exited` and its terminal modes; assert canonical mode is
    back (watch left raw mode behind it) and return the screen."""
    screen = tmux.wait_for(
        lambda s: exited in s and {"icanon", "-icanon"} & set(s.split()) != set(), what
    )
    assert "icanon" in screen.split() and "-icanon" not in screen.split()
    return screen


def test_q_quits_and_gives_the_terminal_back(tmux: Tmux, tmp_path: Path) -> None:
    watch_one_event(tmux, tmp_path)
    tmux.keys("q")
    screen = terminal_given_back(tmux, "watch exited 0")
    assert "search_0" not in screen  # the alternate screen is gone


def test_ctrl_c_quits_and_gives_the_terminal_back(tmux: Tmux, tmp_path: Path) -> None:
    watch_one_event(tmux, tmp_path)
    tmux.keys("C-c")
    terminal_given_back(tmux, "watch exited")


def test_sigterm_quits_and_gives_the_terminal_back(tmux: Tmux, tmp_path: Path) -> None:
    watch_one_event(tmux, tmp_path)
    shell = int(tmux.tmux("display", "-p", "-t", "w", "#{pane_pid}").strip())
    children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
    assert len(children) == 1, children
    os.kill(int(children[0]), signal.SIGTERM)
    screen = terminal_given_back(tmux, "watch exited")
    assert "watch exited 0" in screen
    assert "search_0" not in screen  # the alternate screen is gone


def test_the_log_may_appear_later(tmux: Tmux, tmp_path: Path) -> None:
    log = tmp_path / "later.jsonl"
    tmux.start(["watch", "--file", str(log)])
    tmux.wait_text("waiting for the log to appear")
    with AuditLog(log) as writer:
        writer.append(event(0))
    tmux.wait_text("search_0 ")


def test_piped_output_is_plain_filtered_lines(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as writer:
        for i in range(4):
            writer.append(event(i, outcome="denied" if i % 2 else "success"))
        proc = subprocess.Popen(
            [*lockgate_command(), "watch", "--file", str(log), "--outcome", "denied"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            first = read_lines(proc, 2)
            writer.append(event(4, outcome="denied"))
            writer.append(event(5))
            writer.append(event(6, outcome="denied"))
            later = read_lines(proc, 2)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    names = [line.split()[4] for line in first + later]
    assert names == ["search_1", "search_3", "search_4", "search_6"]
    assert all(line.split()[5] == "denied" for line in first + later)
    assert "\x1b" not in "".join(first + later)


GATEWAY_SCRIPT = """
import sys
from pathlib import Path

from lockgate.cli import views
from lockgate.cli.serving import serve
from lockgate.cli.views.watch_app import GatewayView

out = views.console()
view = GatewayView(out)
view.run(
    lambda: serve(
        Path(sys.argv[1]), listen="127.0.0.1:0", on_started=view.started, on_event=view.push
    )
)
print("gateway stopped")
"""


def test_the_gateway_view_shows_live_calls_and_q_stops_the_gateway(
    tmux: Tmux, tmp_path: Path
) -> None:
    """What `lockgate up` shows in a terminal: GatewayView fed by a real gateway's events."""
    import anyio
    from mcp import Client

    from tests.support.gateway import profile_text
    from tests.support.upstreams import sdk_upstream

    script = tmp_path / "up_view.py"
    script.write_text(GATEWAY_SCRIPT, encoding="utf-8")
    with sdk_upstream() as upstream:
        profile = tmp_path / "profile.toml"
        profile.write_text(profile_text({"notes": upstream}, {"notes": "notes"}))
        cmd = shlex.join([sys.executable, str(script), str(profile)])
        tmux.tmux(
            "new-session",
            "-d",
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            "-s",
            "w",
            "sh",
            "-c",
            f"trap : INT; env -u NO_COLOR -u COLUMNS -u LINES {cmd}; "
            'stty -a | tr " " "\\n" | grep -x -- "-\\?icanon"; sleep 600',
        )
        screen = tmux.wait_text("routes: notes http://127.0.0.1:")
        url = re.search(r"notes (http://127\.0\.0\.1:\d+/mcp/notes)", screen)
        assert url is not None, screen

        async def call() -> None:
            async with Client(url.group(1), mode="legacy", read_timeout_seconds=10) as client:
                await client.call_tool("list_notes", {})

        anyio.run(call)
        # The call's started event may be drawn before its completion: wait for the latter.
        screen = tmux.wait_for(
            lambda s: any("list_notes" in r and "success" in r.split() for r in rows(s)),
            "the call's completed row",
        )
        row = next(r for r in rows(screen) if "list_notes" in r and "success" in r.split())
        # ... route, method, name, outcome, guardrail, latency ("1.2 ms"); the guardrail cell
        # says the gateway pinned the upstream's tools (it listed them itself for this call).
        parts = row.split()
        at = parts.index("tools/call") - 1
        assert parts[at : at + 4] == ["notes", "tools/call", "list_notes", "success"]
        assert "pin" in parts[at + 4 :]
        assert "calls 1" in screen
        tmux.keys("q")
        terminal_given_back(tmux, "gateway stopped", "the gateway to stop and the terminal modes")
