"""The live view of `lockgate watch` (and of `lockgate up` in a terminal): a Textual app.

Why it exists: Textual reads the keys, owns the screen and gives the terminal back on exit.
Its widgets render only the visible window of the model (`watch_render`'s lines), on a timer
at the `--fps` cap: events come from a reader thread (following the log file, across
rotation) or from a gateway's listener through an inbox the timer drains in batches, so a
busy log costs one frame per tick, not one per event. `GatewayView` runs a gateway in a
thread beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console, Group, RenderableType
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Input, Static

from lockgate.audit import read as audit_read
from lockgate.audit.cells import clean
from lockgate.audit.filter import EventFilter
from lockgate.audit.watch import LagStats, WatchModel
from lockgate.cli import views
from lockgate.cli.views.watch_render import ViewInfo, detail_view, header_lines, table_lines

__all__ = [
    "DETAIL_HINTS",
    "HINTS",
    "KEYMAP",
    "DetailPane",
    "EventsPane",
    "GatewayView",
    "HeaderPane",
    "QueryInput",
    "Stats",
    "WatchApp",
]

HINTS = (
    "↑↓/jk select  Enter detail  / filter  r route  u user  o outcome  c clear  End follow  q quit"
)
DETAIL_HINTS = "↑↓/jk previous/next event  Esc/q back"
QUERY_HINTS = "Enter keep · Esc cancel · route: user: outcome: name: rule: kind: words"


class _Inbox:
    """Events handed from a reader thread (or the gateway's loop) to the app's frame timer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self.error: str = ""

    def put(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(event)

    def drain(self) -> list[dict[str, Any]]:
        with self._lock:
            events, self._events = self._events, []
        return events


@dataclass
class Stats:
    """What `--stats-file` records: events taken in, frames drawn, lag to the screen."""

    frames: int = 0
    lag: LagStats = field(default_factory=LagStats)

    def summary(self, model: WatchModel) -> dict[str, Any]:
        return {
            "events": model.counts.events,
            "frames": self.frames,
            "lag_events": self.lag.count,
            "lag_max_s": round(self.lag.max, 4),
            "lag_p50_s": round(self.lag.quantile(0.50), 4),
            "lag_p95_s": round(self.lag.quantile(0.95), 4),
            "cpu_s": round(time.process_time(), 3),
        }


class HeaderPane(Widget):
    """Title and state, counts, per-route rates, and the filter line while one is set."""

    DEFAULT_CSS = "HeaderPane { height: auto; }"

    def __init__(self, model: WatchModel, info: ViewInfo) -> None:
        super().__init__(id="header")
        self.model, self.info = model, info
        self._lines: list[Text] = []

    def update(self) -> None:
        """Recompute the lines now; reflow the screen only when their number changes."""
        lines = header_lines(self.model, self.info, time.time())
        resized = len(lines) != len(self._lines)
        self._lines = lines
        self.refresh(layout=resized)

    def render(self) -> RenderableType:
        if not self._lines:
            self._lines = header_lines(self.model, self.info, time.time())
        return Group(*self._lines)


class EventsPane(Widget):
    """The table: only the rows that fit are laid out, whatever the ring holds.

    Textual's line API: the lines are built once per frame (or resize) as segments, and
    each screen line is handed over as a strip, without a rich layout pass.
    """

    DEFAULT_CSS = "EventsPane { height: 1fr; }"

    def __init__(self, model: WatchModel) -> None:
        super().__init__(id="events")
        self.model = model
        self._lines: list[Strip] | None = None
        self._built_for = (0, 0)

    @property
    def rows_high(self) -> int:
        return max(self.size.height - 1, 1)  # the column headers take a line

    def update(self) -> None:
        """The model changed: rebuild the lines on the next paint."""
        self._lines = None
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        if self._lines is None or self._built_for != (width, height):
            pad = self.rich_style
            self._lines = [
                Strip(line).adjust_cell_length(width, pad)
                for line in table_lines(self.model, self.rows_high, width)
            ]
            self._built_for = (width, height)
        if y < len(self._lines):
            return self._lines[y]
        return Strip.blank(width, self.rich_style)


class DetailPane(Widget):
    """One event in full, cut to the pane's size."""

    DEFAULT_CSS = "DetailPane { height: 1fr; display: none; }"

    def __init__(self, model: WatchModel) -> None:
        super().__init__(id="detail")
        self.model = model

    def render(self) -> RenderableType:
        if self.model.detail_row is None:
            return Text("")
        return detail_view(self.model, self.size.height, self.size.width)


class QueryInput(Input):
    """The `/` prompt: Textual edits the text (cursor, paste); the model filters as it changes."""

    DEFAULT_CSS = """
    QueryInput { border: none; height: 1; padding: 0; width: 1fr; background: transparent; }
    QueryInput:focus { border: none; }
    """


# Textual's key names -> the model's (lockgate.audit.watch.WatchModel.key).
KEYMAP: dict[str, str] = {
    "up": "up",
    "k": "k",
    "down": "down",
    "j": "j",
    "pageup": "pgup",
    "pagedown": "pgdn",
    "home": "home",
    "g": "g",
    "end": "end",
    "G": "G",
    "f": "f",
    "escape": "esc",
    "enter": "enter",
    "backspace": "backspace",
    "slash": "/",
    "c": "c",
    "r": "r",
    "u": "u",
    "o": "o",
    "q": "q",
}


class WatchApp(App[None]):
    """The live view: header, table or detail pane, and a hint line or the `/` prompt.

    Keys go to the model (which knows whether the table, the detail pane or the prompt has
    them); a timer at the `fps` cap drains the inbox into the model and redraws, so a burst of
    events costs one frame. `follow` starts a reader thread on the log at mount and stops it
    at exit; `done` (a gateway that stopped) ends the app at the next tick.
    """

    CSS = """
    Screen { layout: vertical; overflow: hidden; }
    #hints { height: 1; color: $text-muted; }
    #prompt { height: 1; display: none; }
    #prompt-label { width: 2; text-style: bold; }
    #prompt-hints { width: auto; color: $text-muted; padding-left: 3; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "quit", show=False, priority=True),  # Input's ctrl+c copies
        *(Binding(k, f"press({v!r})", show=False) for k, v in KEYMAP.items()),
    ]
    ENABLE_COMMAND_PALETTE = False
    AUTO_FOCUS = None  # keys go to the app's bindings until `/` focuses the prompt

    def __init__(
        self,
        model: WatchModel,
        info: ViewInfo,
        inbox: _Inbox | None = None,
        *,
        fps: float = 8.0,
        stats: Stats | None = None,
        follow: tuple[Path, int | None] | None = None,
        done: Callable[[], bool] | None = None,
        handle_signals: bool = False,
    ) -> None:
        # The terminal's own palette and background; NO_COLOR then strips colours, not text.
        super().__init__(ansi_color=True)
        self.theme = "ansi-dark"
        self.model, self.info = model, info
        self.inbox = inbox or _Inbox()
        self.frame = 1.0 / min(max(fps, 0.5), 60.0)
        self.stats = stats or Stats()
        self._follow = follow
        self._done = done
        self._handle_signals = handle_signals
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._last_frame = 0.0
        self._awaiting_frame = False

    def compose(self) -> ComposeResult:
        yield HeaderPane(self.model, self.info)
        yield EventsPane(self.model)
        yield DetailPane(self.model)
        yield Static(Text(HINTS, no_wrap=True, overflow="ellipsis"), id="hints")
        with Horizontal(id="prompt"):
            yield Static("/ ", id="prompt-label")
            yield QueryInput(id="query", compact=True, select_on_focus=False)
            yield Static(QUERY_HINTS, id="prompt-hints")

    # --- life cycle -------------------------------------------------------------------

    def on_mount(self) -> None:
        if self._follow is not None:
            path, offset = self._follow
            self._reader = threading.Thread(
                target=_follow_into,
                args=(path, self.inbox, self._stop, offset, 0.05),
                name="lockgate-watch-reader",
                daemon=True,
            )
            self._reader.start()
        if self._handle_signals:  # SIGTERM (and a SIGINT from kill) end it like q
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self.exit)
        self._sync()
        self.set_interval(self.frame, self._tick)
        self._tick()

    def on_unmount(self) -> None:
        self._stop.set()
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
        if self._reader is not None:
            self._reader.join(timeout=1.0)

    def _tick(self) -> None:
        """One frame at most: take what arrived, and redraw if anything changed."""
        if self._done is not None and self._done():
            self.exit()
            return
        dirty = False
        batch = self.inbox.drain()
        if batch:
            self.model.ingest_many(batch)
            dirty = True
        status = self.inbox.error
        if not status and self.info.path is not None and not self.info.path.exists():
            status = "waiting for the log to appear"
        if status != self.info.status:
            self.info.status = status
            dirty = True
        if dirty or time.monotonic() - self._last_frame >= 1.0:  # rates move with the clock
            self._redraw()

    def _redraw(self) -> None:
        self._last_frame = time.monotonic()
        self.query_one(HeaderPane).update()
        if self.model.detail_row is not None:
            self.query_one(DetailPane).refresh()
        else:
            self.query_one(EventsPane).update()
        if not self._awaiting_frame:
            self._awaiting_frame = True
            self.call_after_refresh(self._frame_drawn)

    def _frame_drawn(self) -> None:
        """The screen now shows every event ingested so far: record their lag."""
        self._awaiting_frame = False
        self.stats.frames += 1
        for lag in self.model.drawn(time.time()):
            self.stats.lag.add(lag)

    # --- keys -------------------------------------------------------------------------

    def action_press(self, key: str) -> None:
        """A key for the model; then show what it changed."""
        self.model.key(key, page=max(self.query_one(EventsPane).rows_high - 1, 1))
        if self.model.quit:
            self.exit()
            return
        self._sync()

    def on_key(self, event: events.Key) -> None:
        """Keys typed right after `/`, before Textual has moved the focus to the prompt (it
        does so on a later turn): they belong to the prompt, not to the table's bindings."""
        if self.model.typing is None or self.query_one(QueryInput).has_focus:
            return
        if event.is_printable and event.character:
            key = event.character
        elif event.key == "backspace":
            key = "backspace"
        else:
            return  # Enter and Esc: the bindings give them to the model, which is typing
        event.prevent_default()  # runs before App's binding check: not a table key
        event.stop()
        self.model.key(key)
        query = self.query_one(QueryInput)
        query.value = self.model.typing or ""
        query.cursor_position = len(query.value)
        self._redraw()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.model.edit_query(event.value)
        self._redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.model.key("enter")
        self._sync()

    def _sync(self) -> None:
        """Panes and prompt as the model's mode says: table, detail, or typing a filter."""
        typing = self.model.typing is not None
        prompt = self.query_one("#prompt")
        query = self.query_one(QueryInput)
        if typing and not prompt.display:
            prompt.display = True
            self.query_one("#hints").display = False
            query.value = self.model.typing or ""
            query.cursor_position = len(query.value)
            query.focus()
        elif not typing and prompt.display:
            prompt.display = False
            self.query_one("#hints").display = True
            self.set_focus(None)
        in_detail = self.model.detail_row is not None
        self.query_one(EventsPane).display = not in_detail
        self.query_one(DetailPane).display = in_detail
        hints = DETAIL_HINTS if in_detail else HINTS
        self.query_one("#hints", Static).update(Text(hints, no_wrap=True, overflow="ellipsis"))
        self._redraw()


def _follow_into(
    path: Path, inbox: _Inbox, stop: threading.Event, offset: int | None, poll: float
) -> None:
    """The reader thread: follow the log (across rotation) into the inbox until `stop`."""
    while not stop.is_set():
        try:
            for event in audit_read.follow(path, poll=poll, stop=stop.is_set, offset=offset):
                inbox.put(event)
            return
        except ValueError as e:  # a damaged line: say so, and carry on from the file's end
            inbox.error = f"skipped a damaged line ({clean(e)[:120]})"
            offset = None
        except OSError as e:
            inbox.error = f"cannot read the log ({e.strerror or e})"
            stop.wait(1.0)
            offset = None


# ---------------------------------------------------------------------------- lockgate up


class GatewayView:
    """The watch view for a gateway running in this process (`lockgate up` in a terminal).

        view = GatewayView(out)
        view.run(lambda: serve(path, listen=listen, on_started=view.started, on_event=view.push))

    The view (a Textual app) owns the main thread and the terminal; the gateway runs in a
    thread of its own, so its event loop never waits on drawing. Events come from the gateway's
    audit listener (no file re-reading). `q` or Ctrl-C stops the gateway; a gateway that stops
    on its own (an error) ends the view, and its exception is raised here once the terminal is
    back.
    """

    def __init__(
        self,
        out: Console | None = None,
        *,
        filt: EventFilter | None = None,
        banner: list[str] | None = None,
        ring: int = 5000,
        fps: float = 8.0,
    ) -> None:
        self.out = out or views.console()
        self.model = WatchModel(filt, ring=ring)
        self.info = ViewInfo(source="gateway starting…", banner=list(banner or []))
        self.fps = fps
        self._inbox = _Inbox()
        self._lock = threading.Lock()
        self._shutdown: Callable[[], None] | None = None
        self._stopping = False
        self._done = threading.Event()
        self._error: BaseException | None = None

    @staticmethod
    def wanted(out: Console) -> bool:
        """Whether a live view makes sense: stdout and stdin are a terminal."""
        return views.live_view_wanted(out)

    def push(self, event: dict[str, Any]) -> None:
        """The gateway's `on_event`: thread-safe, returns at once."""
        self._inbox.put(event)

    def set_banner(self, lines: list[str]) -> None:
        """Lines shown above the header (e.g. how to connect a client); thread-safe."""
        self.info.banner = [clean(line) for line in lines]

    def started(self, gateway: Any) -> None:
        """The gateway's `on_started`: show where it listens; `q` will shut it down."""
        routes = "  ".join(f"{n} {gateway.route_url(n)}" for n in gateway.profile.routes)
        self.info.source = f"gateway {gateway.base_url}  routes: {routes}"
        loop = asyncio.get_running_loop()

        def shutdown() -> None:
            loop.call_soon_threadsafe(gateway.shutdown)

        with self._lock:
            self._shutdown = shutdown
            stopping = self._stopping
        if stopping:  # the view quit while the gateway was starting
            shutdown()

    def _stop_gateway(self) -> None:
        with self._lock:
            self._stopping = True
            shutdown = self._shutdown
        if shutdown is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                shutdown()

    def run(self, serve: Callable[[], None], *, headless: bool = False) -> None:
        """Run `serve` (the gateway, blocking) in a thread and the view here until either ends.

        Returns once the gateway has stopped and the terminal is restored; re-raises what the
        gateway raised (a LockgateError, or SystemExit from a busy port).
        """

        def gateway() -> None:
            try:
                serve()
            except BaseException as e:  # handed to the main thread, raised after the view
                self._error = e
            finally:
                self._done.set()

        thread = threading.Thread(target=gateway, name="lockgate-gateway", daemon=True)
        thread.start()
        try:
            self.app().run(mouse=False, headless=headless)
        finally:
            self._stop_gateway()
            while thread.is_alive():  # Ctrl-C again while it shuts down: stop waiting
                thread.join(timeout=0.2)
        if self._error is not None:
            raise self._error

    def app(self) -> WatchApp:
        """The Textual app of this view (tests drive it with `run_test()`)."""
        return WatchApp(
            self.model,
            self.info,
            self._inbox,
            fps=self.fps,
            done=self._done.is_set,
            handle_signals=True,
        )
