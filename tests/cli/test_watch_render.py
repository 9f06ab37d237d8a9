"""The watch view: its renderables on rich's recording console, and the Textual app driven
by its `run_test()` pilot (keys pressed, then the model, the widgets and the screen checked).

Assertions look at specific lines, cells and styles (a cell's text and its style), not at
whole-screen snapshots, so a spacing change elsewhere does not break them.
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console, Group
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.pilot import Pilot

from lockgate.audit.filter import EventFilter
from lockgate.audit.log import AuditLog
from lockgate.audit.watch import WatchModel
from lockgate.cli.views.watch_app import (
    DETAIL_HINTS,
    HINTS,
    KEYMAP,
    DetailPane,
    EventsPane,
    GatewayView,
    QueryInput,
    Stats,
    WatchApp,
    _Inbox,
)
from lockgate.cli.views.watch_render import ViewInfo, detail_view, events_table, header_lines
from lockgate.errors import LockgateError
from tests.support.doubles import T0, audit_event, ts

OUTCOMES = ["success", "denied", "error", "upstream_error", "connect_required", "blocked"]
# Findings as the gateway writes them (notes/g11_contract.md, "Audit").
MASKED = {
    "kind": "redaction",
    "rule": "GITHUB_TOKEN",
    "path": "params.arguments.token",
    "count": 2,
    "action": "mask",
    "direction": "up",
}
LOGGED = {
    "kind": "redaction",
    "rule": "EMAIL",
    "path": "result.content[0].text",
    "count": 1,
    "action": "log",
    "direction": "down",
}
HIDDEN = {
    "kind": "finding",
    "rule": "HIDDEN_INSTRUCTIONS",
    "severity": "high",
    "target": "tool:send_email",
    "path": "description",
    "action": "hide",
}
WARNED = {
    "kind": "finding",
    "rule": "HIDDEN_INSTRUCTIONS",
    "severity": "high",
    "target": "tool:search",
    "path": "inputSchema.properties.q.description",
    "action": "warn",
}
WITHHELD = {"kind": "finding", "rule": "RESULT_INJECTION", "severity": "high", "action": "withhold"}
PIN_CHANGED = {
    "kind": "pin",
    "rule": "PIN_CHANGED",
    "target": "tool:create_issue",
    "action": "hide",
}
LIMITED = {"kind": "limit", "rule": "RATE_LIMIT", "scope": "user_tool", "action": "block"}


def ev(i: int, **fields: Any) -> dict[str, Any]:
    """One event a second, chained as a log writes them."""
    base: dict[str, Any] = {"status": 200, "prev": "0" * 64, "hash": f"{i:064x}"}
    return audit_event(i, step=1.0, **{**base, **fields})


def model_with(outcomes: list[str], **kwargs: Any) -> WatchModel:
    m = WatchModel(**kwargs)
    for i, outcome in enumerate(outcomes):
        m.ingest(ev(i, outcome=outcome), live=False)
    return m


# ---------------------------------------------------------------------------- renderables


def make_console(width: int, color: bool) -> Console:
    """What views.console() builds, with the colour setting pinned, writing to a buffer."""
    return Console(
        file=io.StringIO(),
        width=width,
        height=30,
        force_terminal=True,
        color_system="truecolor",  # no_color=True strips colours, keeps bold and reverse
        no_color=not color,
        highlight=False,
    )


def screen_of(model: WatchModel, width: int, rows: int = 20) -> Group:
    """The header over the table, as the app stacks its panes."""
    info = ViewInfo(source="/logs/audit.jsonl")
    return Group(*header_lines(model, info, T0 + 10), events_table(model, rows, width))


def lines(con: Console, model: WatchModel, rows: int = 20) -> list[list[Segment]]:
    return con.render_lines(screen_of(model, con.width, rows), con.options, pad=False)


def text_of(line: list[Segment]) -> str:
    return "".join(s.text for s in line).rstrip()


def line_with(rendered: list[list[Segment]], needle: str) -> list[Segment]:
    for line in rendered:
        if needle in text_of(line):
            return line
    raise AssertionError(f"no line contains {needle!r}: {[text_of(x) for x in rendered]}")


def segment(line: list[Segment], text: str) -> Segment:
    for s in line:
        if s.text.strip() == text:
            return s
    raise AssertionError(f"no segment {text!r} in {[s.text for s in line]}")


@pytest.mark.parametrize("color", [False, True])
def test_rows_show_every_column_aligned_under_its_header(color: bool) -> None:
    con = make_console(140, color)
    rendered = lines(con, model_with(OUTCOMES))
    header = text_of(line_with(rendered, "outcome"))
    row = text_of(line_with(rendered, "search_1 "))
    for cell in ("08:00:01.000", "alice@example.com", "claude-code", "linear", "tools/call"):
        assert cell in row
    assert row.endswith("12.3 ms")
    assert row.index("denied") == header.index("outcome")
    assert row.index("search_1") == header.index("name")
    assert row.index("alice@") == header.index("user")


def test_outcomes_are_colour_coded() -> None:
    con = make_console(140, color=True)
    rendered = lines(con, model_with(OUTCOMES))
    colours = {
        outcome: segment(line_with(rendered, f"search_{i} "), outcome).style
        for i, outcome in enumerate(OUTCOMES)
    }
    names = {o: s.color.name if s and s.color else None for o, s in colours.items()}
    assert names == {
        "success": "green",
        "denied": "yellow",
        "blocked": "yellow",
        "error": "red",
        "upstream_error": "red",
        "connect_required": "magenta",
    }


def ansi(con: Console, model: WatchModel) -> list[str]:
    """What the terminal receives (colour removed by the console when it is off)."""
    con.print(screen_of(model, con.width))
    assert isinstance(con.file, io.StringIO)
    return con.file.getvalue().splitlines()


def test_without_colour_nothing_is_coloured_but_the_selection_still_shows() -> None:
    con = make_console(140, color=False)
    m = model_with(OUTCOMES)
    m.key("k")
    m.key("k")  # select search_4
    out = ansi(con, m)
    assert not any(re.search(r"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;)", line) for line in out)
    selected = next(line for line in out if "search_4 " in line)
    other = next(line for line in out if "search_3 " in line)
    assert "\x1b[7m" in selected  # reverse video: visible without colour
    assert "\x1b[7m" not in other
    assert any("paused · 1 newer (End follows)" in line for line in out)


def test_with_colour_the_terminal_gets_the_outcome_colours() -> None:
    out = ansi(make_console(140, color=True), model_with(OUTCOMES))
    denied = next(line for line in out if "search_1 " in line)
    assert re.search(r"\x1b\[33mdenied", denied)


def test_header_counts_and_rates() -> None:
    con = make_console(140, color=True)
    m = model_with(["success", "denied", "error", "error"])
    m.ingest(ev(9, route="github", findings=[{"kind": "pii"}]), live=False)
    rendered = lines(con, m)
    counts = line_with(rendered, "events ")
    assert text_of(counts) == "events 5   calls 5   denied 1   errors 2   findings 1"
    assert segment(counts, "2").style.color.name == "red"
    assert segment(counts, "2").style.bold
    assert segment(counts, "1").style.color.name == "yellow"  # denied comes first
    rates = text_of(line_with(rendered, "rates/s"))
    assert "linear 0.07" in rates and "github 0.02" in rates  # 4/60 and 1/60 per second
    title = text_of(line_with(rendered, "lockgate watch"))
    assert "/logs/audit.jsonl" in title and "following" in title


def test_a_long_banner_line_folds_and_the_header_lines_do_not() -> None:
    con = make_console(60, color=False)
    command = "lockgate clients install cursor --route notes --base-url http://127.0.0.1:8787"
    info = ViewInfo(source="gateway http://127.0.0.1:8787  routes: " + "x" * 80, banner=[command])
    m = model_with(["success"])
    rendered = con.render_lines(Group(*header_lines(m, info, T0)), con.options, pad=False)
    texts = [text_of(x) for x in rendered]
    assert " ".join(texts[:2]) == command  # wrapped at a space: all of it is on screen
    assert texts[2].startswith("lockgate watch  following  gateway") and texts[2].endswith("…")
    assert len(texts) == 2 + 3


def test_zero_counts_are_dim() -> None:
    con = make_console(140, color=True)
    counts = line_with(lines(con, model_with(["success"])), "events ")
    assert segment(counts, "0").style.dim


def test_filter_line_shows_only_when_filtering() -> None:
    con = make_console(140, color=False)
    m = model_with(OUTCOMES)
    assert not any(text_of(x).startswith("filter ") for x in lines(con, m))
    m.set_filter(EventFilter(outcomes=("!success",), routes=("lin*",)))
    rendered = lines(con, m)
    assert text_of(line_with(rendered, "filter  ")) == (
        "filter  route:lin* outcome:!success   showing 5 of 6"
    )
    assert not any("search_0 " in text_of(x) for x in rendered)


def test_the_table_draws_only_the_rows_asked_for() -> None:
    con = make_console(140, color=False)
    m = model_with(["success"] * 1000)
    rendered = con.render_lines(events_table(m, 18, 140), con.options, pad=False)
    assert len(rendered) == 19  # the column headers and 18 rows, not 1000
    assert "search_999 " in text_of(rendered[-1])
    assert "search_982 " in text_of(rendered[1])


def test_narrow_terminal_truncates_instead_of_wrapping() -> None:
    con = make_console(80, color=False)
    m = model_with(OUTCOMES)
    m.ingest(ev(6, name="a_very_long_tool_name_that_does_not_fit_anywhere_at_all"), live=False)
    texts = [text_of(x) for x in lines(con, m)]
    assert all(len(t) <= 80 for t in texts)
    rows = [t for t in texts if t.startswith("08:00:")]
    assert len(rows) == 7  # one line per event, none wrapped
    assert "…" in rows[-1]


def guarded_model() -> WatchModel:
    """Calls with no findings, a masked token, a hidden poisoned tool, a logged email..."""
    m = WatchModel()
    for i, findings in enumerate(
        [None, [MASKED], [HIDDEN], [LOGGED], [WARNED, MASKED], [PIN_CHANGED], [LIMITED]]
    ):
        m.ingest(ev(i, findings=findings), live=False)
    return m


def test_the_guardrail_column_sums_up_findings_in_the_colour_of_the_worst_action() -> None:
    con = make_console(140, color=True)
    rendered = lines(con, guarded_model())
    header = text_of(line_with(rendered, "outcome"))
    expected = {
        0: ("-", "dim"),
        1: ("masked 2", "yellow"),
        2: ("HIDDEN_INSTRUCTIONS", "red"),
        3: ("logged 1", "dim"),
        4: ("masked 2 · HIDDEN_INSTRUCTIONS", "yellow"),
        5: ("pin changed", "red"),
        6: ("rate limited", "red"),
    }
    for i, (cell, colour) in expected.items():
        line = line_with(rendered, f"search_{i} ")
        assert text_of(line)[header.index("guardrail") :].startswith(cell + " "), cell
        style = segment(line, cell).style
        assert style is not None
        if colour == "dim":
            assert style.dim and style.color is None
        else:
            assert style.color is not None and style.color.name == colour
    assert header.index("guardrail") > header.index("outcome")
    assert text_of(line_with(rendered, "search_0 ")).endswith("12.3 ms")  # latency stays last


def test_the_guardrail_column_gives_way_on_narrow_terminals() -> None:
    wide = [text_of(x) for x in lines(make_console(100, color=False), guarded_model())]
    narrow = [text_of(x) for x in lines(make_console(99, color=False), guarded_model())]
    assert any("guardrail" in t and "outcome" in t for t in wide)
    assert not any("guardrail" in t for t in narrow)
    assert not any("HIDDEN" in t for t in narrow)
    assert all(len(t) <= 100 for t in wide)


def detail_lines(con: Console, m: WatchModel, height: int) -> list[list[Segment]]:
    return con.render_lines(detail_view(m, height, con.width), con.options, pad=False)


def test_detail_view_shows_seq_hash_args_and_result() -> None:
    con = make_console(120, color=True)
    m = WatchModel()
    m.ingest(
        ev(
            1,
            outcome="blocked",
            args={"query": "hello", "api_key": "[redacted]"},
            result={"content": [{"type": "text", "text": "evil\x1b]0;title\x07"}]},
            findings=[WITHHELD],
        ),
        live=False,
    )
    m.key("enter")
    rendered = detail_lines(con, m, 25)
    texts = [text_of(x) for x in rendered]
    assert text_of(line_with(rendered, "seq ")).split()[-2:] == ["seq", "2"]
    assert text_of(line_with(rendered, "hash ")).split() == ["hash", f"{1:064x}"]
    # Small sections fit on their title line; findings come after the args, before the result.
    args = texts.index('── args {"query": "hello", "api_key": "[redacted]"}')
    findings = texts.index("── findings (1)")
    assert args < findings < next(i for i, t in enumerate(texts) if t.startswith("── result"))
    assert texts[findings + 2].split() == ["finding", "RESULT_INJECTION", "high", "withhold"]
    assert not any("\x1b" in s.text or "\x07" in s.text for line in rendered for s in line)
    outcome = line_with(rendered, "outcome ")
    assert segment(outcome, "blocked").style.color.name == "yellow"


def test_detail_view_lists_each_finding_with_its_columns_and_action_colour() -> None:
    con = make_console(140, color=True)
    m = WatchModel()
    m.ingest(ev(1, findings=[MASKED, HIDDEN, LIMITED]), live=False)
    m.key("enter")
    rendered = detail_lines(con, m, 30)
    texts = [text_of(x) for x in rendered]
    at = texts.index("── findings (3)")
    assert texts[at + 1].split() == [
        "kind", "rule", "severity", "target", "path", "count", "action", "direction",
    ]  # fmt: skip
    header = texts[at + 1]
    masked, hidden, limited = texts[at + 2 : at + 5]
    assert masked.split() == [
        "redaction", "GITHUB_TOKEN", "params.arguments.token", "2", "mask", "up",
    ]  # fmt: skip
    assert hidden.split() == [
        "finding", "HIDDEN_INSTRUCTIONS", "high", "tool:send_email", "description", "hide",
    ]  # fmt: skip
    assert limited.split() == ["limit", "RATE_LIMIT", "block", "scope=user_tool"]
    for row, cell in ((masked, "mask"), (hidden, "hide"), (limited, "block")):
        assert row[header.index("action") :].startswith(cell)
    assert row_colour(rendered[at + 2], "mask") == "yellow"
    assert row_colour(rendered[at + 3], "hide") == "red"
    assert row_colour(rendered[at + 4], "block") == "red"
    assert hidden.index("tool:send_email") == header.index("target")
    assert masked.index("2") + 1 == header.index("count") + len("count")  # counts right-aligned


def row_colour(line: list[Segment], text: str) -> str | None:
    style = segment(line, text).style
    return style.color.name if style is not None and style.color is not None else None


def test_detail_view_cuts_many_findings_to_the_pane_and_says_so() -> None:
    con = make_console(100, color=False)
    m = WatchModel()
    many = [{**WARNED, "target": f"tool:t{i}"} for i in range(80)]
    m.ingest(ev(1, args={"q": "x"}, findings=many, result={"content": []}), live=False)
    m.key("enter")
    texts = [text_of(x) for x in detail_lines(con, m, 30)]
    assert len(texts) <= 30 and all(len(t) <= 100 for t in texts)
    assert "── findings (80)" in texts
    more = [t for t in texts if t.startswith("… ") and t.endswith(" more findings")]
    assert more, texts
    assert any(t.startswith("── result") for t in texts)  # the result still gets its share


def test_hostile_names_cannot_reach_the_terminal() -> None:
    con = make_console(140, color=True)
    m = WatchModel()
    m.ingest(ev(0, name="x\x1b[2J\x9b31m", user="u\r\nfake row", route="r\x07"), live=False)
    for line in lines(con, m):
        for s in line:
            if s.control is None:
                assert not any(ch in s.text for ch in "\x1b\x07\r\n\x9b"), s


def test_detail_view_cuts_a_long_result_to_the_pane_and_says_so() -> None:
    con = make_console(100, color=False)
    m = WatchModel()
    result = {"content": [{"type": "text", "text": f"line {i}"} for i in range(60)]}
    m.ingest(ev(1, args={"q": "x" * 300}, result=result), live=False)
    m.key("enter")
    texts = [text_of(x) for x in detail_lines(con, m, 25)]
    assert len(texts) <= 25
    assert all(len(t) <= 100 for t in texts)
    assert texts[texts.index("── args") + 1].startswith("{")  # too wide for one line: indented
    more = [t for t in texts if t.startswith("… ") and t.endswith(" more lines")]
    assert more, texts


# ---------------------------------------------------------------------------- the Textual app


@pytest.fixture
def colour(monkeypatch: pytest.MonkeyPatch) -> None:
    """Colours on (conftest sets NO_COLOR, which Textual honours)."""
    monkeypatch.delenv("NO_COLOR", raising=False)


def screen_lines(app: WatchApp) -> list[str]:
    """The screen as text, one string per terminal line (from Textual's compositor)."""
    return [strip.text.rstrip() for strip in app.screen._compositor.render_strips()]


def row_at(app: WatchApp, needle: str) -> tuple[int, str]:
    for y, line in enumerate(screen_lines(app)):
        if needle in line:
            return y, line
    raise AssertionError(f"no line contains {needle!r}: {screen_lines(app)}")


def style_of(app: WatchApp, needle: str, cell: str) -> Style:
    """The style on screen of `cell` in the line that contains `needle`."""
    y, line = row_at(app, needle)
    return app.screen.get_style_at(line.index(cell), y)


async def until(pilot: Pilot[None], check: Callable[[], bool], what: str) -> None:
    """Let the app run (its timers and threads) until `check` holds; a bounded number of turns."""
    for _ in range(400):
        if check():
            return
        await pilot.pause(0.025)
    raise AssertionError(f"never happened: {what}; screen: {screen_lines(pilot.app)}")  # type: ignore[arg-type]


def app_with(model: WatchModel, inbox: _Inbox | None = None, **kwargs: Any) -> WatchApp:
    return WatchApp(model, ViewInfo(source="/logs/audit.jsonl"), inbox, **kwargs)


@pytest.mark.anyio
async def test_app_shows_header_table_and_hints(colour: None) -> None:
    app = app_with(model_with(OUTCOMES))
    async with app.run_test(size=(140, 24)) as pilot:
        await pilot.pause()
        lines_ = screen_lines(app)
        assert lines_[0].startswith("lockgate watch  following  /logs/audit.jsonl")
        # denied counts the DENIED group (denied, blocked, connect_required), as `audit stats`.
        assert lines_[1] == "events 6   calls 6   denied 3   errors 2   findings 0"
        assert lines_[-1] == HINTS
        header = row_at(app, "outcome")[1]
        _, row = row_at(app, "search_1 ")
        assert row.index("denied") == header.index("outcome")
        assert row.endswith("12.3 ms")
        # Colours as the outcome says, in the terminal's own palette (ANSI yellow, red...).
        assert style_of(app, "search_1 ", "denied").color.name == "yellow"
        assert style_of(app, "search_2 ", "error").color.name == "red"
        assert style_of(app, "search_0 ", "success").color.name == "green"
        assert style_of(app, "search_4 ", "connect_required").color.name == "magenta"
        assert style_of(app, "search_1 ", "08:00:01").dim
        assert style_of(app, "events 6", "3").bold  # denied 3
        assert style_of(app, "events 6", "3").color.name == "yellow"
        # The SVG export carries the same cells.
        svg = app.export_screenshot()
        assert "connect_required" in svg and "findings" in svg


@pytest.mark.anyio
async def test_no_color_keeps_the_selection_visible() -> None:
    app = app_with(model_with(OUTCOMES))  # conftest's NO_COLOR=1
    async with app.run_test(size=(140, 24)) as pilot:
        await pilot.press("k", "k")
        assert style_of(app, "search_4 ", "search_4").reverse
        assert not style_of(app, "search_3 ", "search_3").reverse
        denied = style_of(app, "search_1 ", "denied")
        assert denied.color is None or denied.color.name == "default"
        assert "paused · 1 newer (End follows)" in screen_lines(app)[0]


@pytest.mark.anyio
async def test_selection_keys_move_page_and_follow() -> None:
    m = model_with(["success"] * 100)
    app = app_with(m)
    async with app.run_test(size=(120, 24)) as pilot:
        rows_high = app.query_one(EventsPane).rows_high
        assert rows_high == 24 - 3 - 1 - 1  # header 3, column headers 1, hints 1
        await pilot.press("up")
        assert m.selected == 100  # starts at the newest
        await pilot.press("k", "k", "j")
        assert m.selected == 99
        await pilot.press("down")
        assert m.selected == 100
        await pilot.press("pageup")
        assert m.selected == 100 - (rows_high - 1)
        assert style_of(app, f"search_{m.selected - 1} ", "search").reverse
        await pilot.press("pagedown")
        assert m.selected == 100
        await pilot.press("home")
        assert m.selected == 1
        assert row_at(app, "search_0 ")[0] == 4  # the first row under the column headers
        assert "paused · 99 newer" in screen_lines(app)[0]
        await pilot.press("end")
        assert m.selected is None
        assert "following" in screen_lines(app)[0]
        assert "search_99 " in screen_lines(app)[-2]
        await pilot.press("g")
        assert m.selected == 1
        await pilot.press("G")
        assert m.selected is None


@pytest.mark.anyio
async def test_slash_opens_a_prompt_that_filters_as_you_type() -> None:
    m = model_with(OUTCOMES)
    app = app_with(m)
    async with app.run_test(size=(140, 24)) as pilot:
        await pilot.press("slash")
        query = app.query_one(QueryInput)
        assert app.focused is query and m.typing == ""
        await pilot.press(*"den")
        assert m.filter == EventFilter(text="den")
        assert [r.event["name"] for r in m.shown] == ["search_1"]
        assert "filter  den   showing 1 of 6" in screen_lines(app)
        assert screen_lines(app)[-1].startswith("/ den")
        assert screen_lines(app)[-1].endswith(
            "Enter keep · Esc cancel · route: user: outcome: name: rule: kind: words"
        )
        await pilot.press("escape")  # cancel: the filter before the prompt comes back
        assert m.typing is None and m.filter == EventFilter() and len(m.shown) == 6
        assert app.focused is None and screen_lines(app)[-1] == HINTS
        await pilot.press("slash", *"o:!success q", "enter")  # q is typed, not quit
        assert app.is_running
        assert m.filter == EventFilter(outcomes=("!success",), text="q")
        await pilot.press("slash")
        assert query.value == "outcome:!success q "  # the prompt starts from the filter
        await pilot.press("backspace", "backspace", "backspace", "enter")
        assert m.filter == EventFilter(outcomes=("!success",))
        assert "filter  outcome:!success   showing 5 of 6" in screen_lines(app)
        await pilot.press("c")
        assert m.filter == EventFilter()
        assert not any(line.startswith("filter ") for line in screen_lines(app))


@pytest.mark.anyio
async def test_keys_typed_before_the_prompt_has_focus_are_not_lost() -> None:
    """A terminal delivers `/route:lin` in one read: the keys after `/` reach the app before
    Textual moves the focus to the prompt, and must still be typed, not taken as r/o/u/c."""
    m = model_with(OUTCOMES)
    m.ingest(ev(6, route="github", outcome="denied"), live=False)
    app = app_with(m)
    async with app.run_test(size=(140, 24)) as pilot:
        burst = [("slash", "/"), *((c, c) for c in "route:lin*"), ("space", " ")]
        burst += [(c, c) for c in "o:deniedx"] + [("backspace", None), ("enter", "\r")]
        for key, char in burst:  # all queued at once, as one read from the terminal delivers
            app.post_message(events.Key(key, char))
        await pilot.pause()
        await pilot.pause()
        assert m.typing is None
        assert m.filter == EventFilter(routes=("lin*",), outcomes=("denied",))
        assert [r.event["name"] for r in m.shown] == ["search_1"]
        assert "filter  route:lin* outcome:denied   showing 1 of 7" in screen_lines(app)
        assert screen_lines(app)[-1] == HINTS


@pytest.mark.anyio
async def test_route_user_outcome_keys_cycle() -> None:
    m = WatchModel()
    m.ingest(ev(0, route="linear", user="bob", outcome="denied"), live=False)
    m.ingest(ev(1, route="github", user="alice"), live=False)
    app = app_with(m)
    async with app.run_test(size=(140, 24)) as pilot:
        await pilot.press("r")
        assert m.filter.routes == ("github",)
        assert "filter  route:github   showing 1 of 2" in screen_lines(app)
        await pilot.press("u", "u")
        assert m.filter.users == ("bob",)
        await pilot.press("c", "o")
        assert m.filter == EventFilter(outcomes=("!success",))
        assert [r.event["name"] for r in m.shown] == ["search_0"]


@pytest.mark.anyio
async def test_enter_opens_the_detail_pane_esc_and_q_go_back_q_quits() -> None:
    m = model_with(OUTCOMES)
    app = app_with(m)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("k", "k", "enter")  # the first k selects the newest, search_5
        assert m.detail_row is not None and m.detail_row.event["name"] == "search_4"
        assert app.query_one(DetailPane).display and not app.query_one(EventsPane).display
        assert row_at(app, "hash ")[1].split() == ["hash", f"{4:064x}"]
        assert screen_lines(app)[-1] == DETAIL_HINTS
        await pilot.press("k")  # previous event, still in the detail pane
        assert m.detail_row.event["name"] == "search_3"
        await pilot.press("escape")
        assert m.detail_row is None and app.query_one(EventsPane).display
        assert m.selected == 4  # back on the row it came from (search_3)
        await pilot.press("enter", "q")  # q leaves the detail pane first
        assert app.is_running and m.detail_row is None
        await pilot.press("q")
        await pilot.pause()
        assert m.quit
    assert not app.is_running


@pytest.mark.anyio
async def test_app_shows_the_guardrail_column_filters_by_rule_and_details_findings(
    colour: None,
) -> None:
    m = guarded_model()
    app = app_with(m)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        header = row_at(app, "outcome")[1]
        _, row = row_at(app, "search_2 ")
        assert row.index("HIDDEN_INSTRUCTIONS") == header.index("guardrail")
        assert style_of(app, "search_2 ", "HIDDEN_INSTRUCTIONS").color.name == "red"
        assert style_of(app, "search_1 ", "masked 2").color.name == "yellow"
        assert "findings 7" in screen_lines(app)[1]  # one per finding item
        await pilot.press("slash", *"rule:hidden_*", "enter")
        assert m.filter == EventFilter(rules=("hidden_*",))
        assert [r.event["name"] for r in m.shown] == ["search_2", "search_4"]
        assert "filter  rule:hidden_*   showing 2 of 7" in screen_lines(app)
        await pilot.press("slash", *" kind:redaction", "enter")
        assert [r.event["name"] for r in m.shown] == ["search_4"]
        await pilot.press("k", "enter")
        assert m.detail_row is not None and m.detail_row.event["name"] == "search_4"
        assert "── findings (2)" in screen_lines(app)
        _, warned = row_at(app, "inputSchema.properties.q.description")
        assert warned.split()[:3] == ["finding", "HIDDEN_INSTRUCTIONS", "high"]
        assert style_of(app, "GITHUB_TOKEN", "mask").color.name == "yellow"
        await pilot.press("escape", "c")
        assert len(m.shown) == 7


@pytest.mark.anyio
async def test_ctrl_c_quits_even_while_typing() -> None:
    app = app_with(model_with(OUTCOMES))
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.press("slash", "x", "ctrl+c")
        await pilot.pause()
    assert not app.is_running


@pytest.mark.anyio
async def test_events_from_the_inbox_show_on_the_next_frame() -> None:
    m = WatchModel(live_since=0.0)
    inbox = _Inbox()
    stats = Stats()
    app = app_with(m, inbox, fps=20, stats=stats)
    async with app.run_test(size=(140, 24)) as pilot:
        now = time.time()
        for i in range(30):
            inbox.put(ev(i, ts=ts(now), outcome="denied" if i == 29 else "success"))
        await until(pilot, lambda: "search_29 " in "\n".join(screen_lines(app)), "row 29")
        assert "events 30" in screen_lines(app)[1]
        assert style_of(app, "search_29 ", "denied").color.name == "default"  # NO_COLOR
        await until(pilot, lambda: stats.lag.count == 30, "the lag of every event")
        assert stats.frames >= 1
        assert stats.frames < 30  # a frame per tick, not one per event
        summary = stats.summary(m)
        assert summary["events"] == 30 and summary["lag_events"] == 30


@pytest.mark.anyio
async def test_the_app_follows_a_log_file_across_rotation(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    m = WatchModel()
    app = WatchApp(m, ViewInfo(source=str(log), path=log), follow=(log, 0), fps=20)
    async with app.run_test(size=(140, 30)) as pilot:
        await until(pilot, lambda: "waiting for the log to appear" in screen_lines(app)[0], "wait")
        with AuditLog(log) as writer:
            for i in range(3):
                writer.append({"event": "tool.call", "route": "linear", "name": f"before_{i}"})
        await until(pilot, lambda: m.counts.events == 3, "the first file")
        log.rename(tmp_path / "audit.jsonl.1")
        with AuditLog(log) as writer:
            writer.append({"event": "tool.call", "route": "after", "name": "after_0"})
        await until(pilot, lambda: "after_0 " in "\n".join(screen_lines(app)), "the new file")
        assert "before_2 " in "\n".join(screen_lines(app))
        assert "events 4" in screen_lines(app)[1]
    assert app._reader is not None and not app._reader.is_alive()  # stopped at exit


@pytest.mark.anyio
async def test_gateway_view_shows_pushed_events_and_ends_with_the_gateway() -> None:
    view = GatewayView(banner=["connect: claude mcp add …"])
    app = view.app()
    async with app.run_test(size=(140, 24)) as pilot:
        pusher = threading.Thread(target=lambda: [view.push(ev(i)) for i in range(5)])
        pusher.start()  # the gateway's listener calls push() from its own thread
        await until(pilot, lambda: "search_4 " in "\n".join(screen_lines(app)), "pushed rows")
        assert screen_lines(app)[0] == "connect: claude mcp add …"
        assert "gateway starting…" in screen_lines(app)[1]
        assert app.is_running
        view._done.set()  # what the gateway thread does when serve() returns
        await until(pilot, lambda: not app.is_running, "the view to end with the gateway")
        pusher.join()


def test_gateway_view_raises_what_the_gateway_raised_after_the_view() -> None:
    view = GatewayView()

    def serve() -> None:
        raise LockgateError("Port 8787 is in use.", "pass --listen 127.0.0.1:0")

    with pytest.raises(LockgateError, match="Port 8787 is in use"):
        view.run(serve, headless=True)


def test_every_key_the_model_knows_has_a_binding() -> None:
    """The keys of the hand-rolled view, now bound by Textual: none lost in the port."""
    model_keys = set(KEYMAP.values())
    assert {"up", "down", "pgup", "pgdn", "home", "end", "enter", "esc", "/"} <= model_keys
    assert {"j", "k", "g", "G", "f", "q", "r", "u", "o", "c", "backspace"} <= model_keys
    assert "ctrl+c" in {b.key for b in WatchApp.BINDINGS if hasattr(b, "key")}
    assert Text(HINTS).plain.startswith("↑↓/jk select")
