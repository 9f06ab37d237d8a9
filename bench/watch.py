"""`lockgate watch` under load: 500 events/s for 20 s, followed live in a real terminal.

    uv run python bench/watch.py [--rate 500] [--seconds 20] [--fps 8]
    uv run python bench/watch.py --compare-datatable [--rate 500] [--seconds 10]

A writer thread appends real hash-chained events (lockgate.audit.log.AuditLog) at a steady rate
while the real `lockgate watch` process follows the file in a tmux window (private socket,
160x50). An observer polls the screen every 50 ms and reads the header's "events N":

- events shown: the header's count at the end, against the events written (drops = the gap);
- lag on screen: for each event, the time its count first showed minus the time it was
  written (so the observer's 50 ms polling is included: an upper bound);
- lag inside the view: `--stats-file` (event ts to the frame that drew it; no polling);
- CPU: the watch process's utime+stime over the run (/proc/PID/stat), as % of one core.

`--compare-datatable` measures, in process and headless (Textual's `run_test`), the CPU of the
watch app against a Textual DataTable holding the ring (5,000 rows, a row added per event), both
fed at the same rate: why the view renders only its visible window.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from lockgate.audit.log import AuditLog

EVENTS = re.compile(r"events ([\d,]+)")


def lockgate_command() -> list[str]:
    script = Path(sys.executable).parent / "lockgate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lockgate.cli"]


class Tmux:
    def __init__(self) -> None:
        self.socket = f"lockgate-bench-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode != 0:
            raise RuntimeError(f"tmux {args}: {out.stderr.strip()}")
        return out.stdout

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def event(i: int) -> dict[str, object]:
    return {
        "event": "tool.call",
        "route": ("linear", "github", "notes")[i % 3],
        "upstream": "up",
        "user": ("alice@example.com", "bob@example.com")[i % 2],
        "client": "claude-code",
        "session": "s-1",
        "method": "tools/call",
        "name": f"search_{i}",
        "outcome": "denied" if i % 17 == 0 else "success",
        "status": 200,
        "latency_ms": {"total": 12.5, "upstream": 10.1},
        "args": {"query": f"issue {i}", "limit": 20},
        "result": {"content": [{"type": "text", "text": "x" * 200}]},
    }


def compare_datatable(rate: int, seconds: float, fps: float) -> None:
    """Process CPU (feeder thread included) at `rate` events/s: WatchApp vs a DataTable."""
    import asyncio
    from datetime import UTC, datetime

    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    from lockgate.audit.cells import cells
    from lockgate.audit.watch import WatchModel
    from lockgate.cli.views.watch_app import WatchApp, _Inbox
    from lockgate.cli.views.watch_render import ViewInfo

    ring = 5000

    class TableApp(App[None]):
        def __init__(self, inbox: _Inbox) -> None:
            super().__init__(ansi_color=True)
            self.inbox = inbox
            self.keys: list[Any] = []

        def compose(self) -> ComposeResult:
            yield DataTable(cursor_type="row")

        def on_mount(self) -> None:
            self.query_one(DataTable).add_columns(*cells({})._fields)
            self.set_interval(1 / fps, self.tick)

        def tick(self) -> None:
            table = self.query_one(DataTable)
            for e in self.inbox.drain():
                self.keys.append(table.add_row(*cells(e)))
            while len(self.keys) > ring:
                table.remove_row(self.keys.pop(0))
            table.move_cursor(row=table.row_count - 1)  # follow the newest

    def feed(inbox: _Inbox, stop: threading.Event) -> None:
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            e = event(i)
            e["ts"] = datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
            inbox.put(e)
        stop.set()

    async def measure(app: App[None], inbox: _Inbox) -> float:
        stop = threading.Event()
        async with app.run_test(size=(160, 50)) as pilot:
            thread = threading.Thread(target=feed, args=(inbox, stop))
            thread.start()
            cpu0, wall0 = time.process_time(), time.monotonic()
            while not stop.is_set():
                await pilot.pause(0.1)
            await pilot.pause(0.5)
            cpu1, wall1 = time.process_time(), time.monotonic()
            thread.join()
        return round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1)

    inbox = _Inbox()
    watch_app = WatchApp(WatchModel(), ViewInfo(source="bench"), inbox, fps=fps)
    print(f"watch app (visible window)  cpu {asyncio.run(measure(watch_app, inbox))} %")
    inbox = _Inbox()
    print(f"DataTable of the ring       cpu {asyncio.run(measure(TableApp(inbox), inbox))} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=500, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=float, default=8.0)
    parser.add_argument("--compare-datatable", action="store_true")
    args = parser.parse_args()
    if args.compare_datatable:
        compare_datatable(args.rate, args.seconds, args.fps)
        return
    if shutil.which("tmux") is None:
        sys.exit("bench/watch.py needs tmux (apt-get install tmux)")
    total = int(args.rate * args.seconds)

    tmp = Path(tempfile.mkdtemp(prefix="lockgate-bench-watch-"))
    log, stats_file = tmp / "audit.jsonl", tmp / "stats.json"
    log.touch()
    tmux = Tmux()
    cmd = shlex.join(
        [
            *lockgate_command(),
            "watch",
            "--file",
            str(log),
            "--stats-file",
            str(stats_file),
            "--fps",
            str(args.fps),
            "-n",
            "0",
        ]
    )
    env = "env -u NO_COLOR -u COLUMNS -u LINES"
    tmux.run("new-session", "-d", "-x", "160", "-y", "50", "-s", "w", f"exec {env} {cmd}")
    try:
        pid = int(tmux.run("display", "-p", "-t", "w", "#{pane_pid}").strip())
        deadline = time.monotonic() + 60
        while "events 0" not in tmux.run("capture-pane", "-p", "-t", "w"):
            if time.monotonic() > deadline:
                sys.exit("lockgate watch did not start within 60 s")
            time.sleep(0.1)

        written_at = [0.0] * total
        seen_at = [0.0] * total
        done = threading.Event()

        def writer() -> None:
            with AuditLog(log) as audit:
                start = time.monotonic()
                for i in range(total):
                    due = start + i / args.rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    audit.append(event(i))
                    written_at[i] = time.monotonic()
            done.set()

        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        thread = threading.Thread(target=writer)
        thread.start()
        shown = 0
        finish_by = None
        while True:
            screen = tmux.run("capture-pane", "-p", "-t", "w")
            now = time.monotonic()
            m = EVENTS.search(screen)
            if m:
                count = min(int(m.group(1).replace(",", "")), total)
                for k in range(shown, count):
                    seen_at[k] = now
                shown = max(shown, count)
            if done.is_set():
                finish_by = finish_by or now + 10
                if shown >= total or now > finish_by:
                    break
            time.sleep(0.05)
        thread.join()
        cpu1, wall1 = cpu_seconds(pid), time.monotonic()
        last_row_visible = f"search_{total - 1} " in screen
        tmux.run("send-keys", "-t", "w", "q")
        deadline = time.monotonic() + 15
        while not stats_file.exists() or not stats_file.read_text().strip():
            if time.monotonic() > deadline:
                sys.exit("lockgate watch wrote no --stats-file after q")
            time.sleep(0.1)
        inside = json.loads(stats_file.read_text())
    finally:
        tmux.kill()

    lags = [seen_at[i] - written_at[i] for i in range(shown)]
    writer_span = max(written_at) - min(w for w in written_at if w) if total else 0.0
    result = {
        "events_written": total,
        "events_shown": shown,
        "dropped": total - shown,
        "newest_row_on_screen": last_row_visible,
        "write_rate_per_s": round(total / writer_span, 1) if writer_span else None,
        "screen_lag_max_s": round(max(lags, default=0.0), 3),
        "screen_lag_p95_s": round(percentile(lags, 0.95), 3),
        "screen_lag_p50_s": round(percentile(lags, 0.50), 3),
        "view_lag_max_s": inside["lag_max_s"],
        "view_lag_p95_s": inside["lag_p95_s"],
        "view_lag_p50_s": inside["lag_p50_s"],
        "view_events": inside["events"],
        "frames_per_s": round(inside["frames"] / (wall1 - wall0), 1),
        "watch_cpu_percent": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key.ljust(width)}  {value}")
    shutil.rmtree(tmp, ignore_errors=True)
    ok = result["dropped"] == 0 and result["screen_lag_max_s"] <= 1.0
    print("PASS" if ok else "FAIL", "(no drops, lag on screen at most 1 s)")


if __name__ == "__main__":
    main()
