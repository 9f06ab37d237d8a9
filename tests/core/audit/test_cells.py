"""lockgate.audit.cells: the guardrail cell of a row and the findings rows of the detail view.

The cell sums up an event's findings (worst action first, stable whatever their order) and
never shows a path or a target, which are where a secret could hide; its level is what the
views colour.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.audit.cells import ACTION_LEVEL, cells, clean, detail, finding_rows, guardrail
from lockgate.audit.redact import bound_findings
from tests.support.doubles import audit_event as ev


def redaction(rule: str, action: str, count: int = 1, direction: str = "up") -> dict[str, Any]:
    return {
        "kind": "redaction",
        "rule": rule,
        "path": "params.arguments.body",
        "count": count,
        "action": action,
        "direction": direction,
    }


def finding(rule: str, action: str, severity: str = "high", target: str = "tool:x") -> dict:
    return {
        "kind": "finding",
        "rule": rule,
        "severity": severity,
        "target": target,
        "path": "description",
        "action": action,
    }


PIN_CHANGED = {
    "kind": "pin",
    "rule": "PIN_CHANGED",
    "target": "tool:create_issue",
    "action": "hide",
}
LIMIT = {"kind": "limit", "rule": "RATE_LIMIT", "scope": "user_tool", "action": "block"}


def test_redactions_are_counted_per_action_and_findings_named_by_rule() -> None:
    cell = guardrail(
        ev(
            findings=[
                redaction("GITHUB_TOKEN", "mask"),
                redaction("AWS_ACCESS_KEY", "mask", direction="down"),
                finding("HIDDEN_INSTRUCTIONS", "warn"),
            ]
        )
    )
    assert cell.text == "masked 2 · HIDDEN_INSTRUCTIONS"  # masking (changed) outranks a warning
    assert cell.level == "changed"


def test_counts_sum_and_repeated_rules_say_how_often() -> None:
    cell = guardrail(
        ev(
            findings=[
                redaction("EMAIL", "log", count=3),
                redaction("PHONE", "log", count=2),
                finding("HIDDEN_INSTRUCTIONS", "warn", target="tool:a"),
                finding("HIDDEN_INSTRUCTIONS", "warn", target="tool:b"),
            ]
        )
    )
    assert cell.text == "logged 5 · HIDDEN_INSTRUCTIONS x2"
    assert cell.level == "noted"


def test_the_worst_action_comes_first_and_sets_the_level() -> None:
    cell = guardrail(
        ev(
            findings=[
                finding("EXCESSIVE_LENGTH", "warn", severity="low"),
                redaction("EMAIL", "log"),
                redaction("CARD", "block"),
                finding("HIDDEN_INSTRUCTIONS", "hide"),
                PIN_CHANGED,
                LIMIT,
                redaction("GITHUB_TOKEN", "mask"),
            ]
        )
    )
    assert cell.text.split(" · ") == [
        "blocked 1",  # stopped: redactions, limits, pins, then findings
        "rate limited",
        "pin changed",
        "HIDDEN_INSTRUCTIONS",
        "masked 1",  # changed
        "logged 1",  # noted: redactions before findings
        "EXCESSIVE_LENGTH",
    ]
    assert cell.level == "stopped"


def test_findings_of_one_level_are_ordered_by_severity_then_name() -> None:
    cell = guardrail(
        ev(
            findings=[
                finding("ZZZ_LOW", "warn", severity="low"),
                finding("ANSI_ESCAPE", "warn", severity="medium"),
                finding("SENSITIVE_FILE_ACCESS", "warn", severity="high"),
                finding("HIDDEN_INSTRUCTIONS", "warn", severity="high"),
            ]
        )
    )
    assert cell.text == "HIDDEN_INSTRUCTIONS · SENSITIVE_FILE_ACCESS · ANSI_ESCAPE · ZZZ_LOW"


@pytest.mark.parametrize(
    ("action", "level"),
    [
        ("block", "stopped"),
        ("hide", "stopped"),
        ("withhold", "stopped"),
        ("mask", "changed"),
        ("sanitize", "changed"),
        ("log", "noted"),
        ("warn", "noted"),
        ("something-new", None),
    ],
)
def test_each_action_has_its_level(action: str, level: str | None) -> None:
    assert ACTION_LEVEL.get(action) == level
    assert guardrail(ev(findings=[finding("X", action)])).level == level


def test_standalone_pin_events_have_a_cell_of_their_own() -> None:
    """Pin store changes are events of their own (no findings list), as `lockgate tools` and
    the gateway write them; a refused call is its call's event with the findings."""
    from lockgate.guardrails.pinning import Change, Decided

    old, new = "a" * 64, "b" * 64
    assert guardrail(Change("create_issue", "changed", new, old).event("linear")) == (
        "pin changed",
        "stopped",
    )
    approved = Decided("approved", "linear", "create_issue", "changed", new, old, "alice")
    assert guardrail(approved.event()) == ("pin approved", "noted")
    assert guardrail(Change("x", "new", new).event("linear")).text == "pin new"
    blocked = ev(outcome="blocked", findings=[redaction("CARD", "block")])
    assert guardrail(blocked).level == "stopped"


def test_no_findings_no_cell_and_the_row_shows_a_dash() -> None:
    assert guardrail(ev()) == ("", None)
    assert guardrail(ev(findings=[])) == ("", None)
    assert cells(ev()).guardrail == "-" and cells(ev()).guardrail_level is None
    row = cells(ev(findings=[redaction("EMAIL", "mask")]))
    assert (row.guardrail, row.guardrail_level) == ("masked 1", "changed")


def test_items_left_out_by_the_log_are_counted_last() -> None:
    many = [redaction("EMAIL", "log")] * 300
    cell = guardrail(ev(findings=bound_findings(many)))
    assert cell.text == "logged 256 · +44 more"


def test_odd_and_hostile_findings_never_break_the_cell() -> None:
    for odd in ("text", 7, None, [None, 3, "x"], {"kind": "pii"}, [{"rule": "\x1b[2J"}]):
        cell = guardrail(ev(findings=odd))
        assert "\x1b" not in cell.text
    assert guardrail(ev(findings=[{"kind": "pii", "detail": "email"}])).text == "pii"
    assert guardrail(ev(findings={"kind": "redaction", "action": "mask"})).text == "masked 1"
    long_rule = guardrail(ev(findings=[finding("CUSTOM_" + "X" * 200, "warn")])).text
    assert len(long_rule) == 40 and long_rule.endswith("…")
    # A count that is not a count is one item.
    assert guardrail(ev(findings=[{**redaction("EMAIL", "mask"), "count": True}])).text == (
        "masked 1"
    )


SECRET = "ghp_" + "Zq9" * 12


@given(
    st.lists(
        st.one_of(
            st.builds(
                redaction, st.sampled_from(["EMAIL", "CARD"]), st.sampled_from(["mask", "log"])
            ),
            st.builds(
                finding,
                st.sampled_from(["HIDDEN_INSTRUCTIONS", "ANSI_ESCAPE", "SCHEMA_POISONING"]),
                st.sampled_from(["warn", "hide", "sanitize", "withhold"]),
                st.sampled_from(["high", "medium", "low"]),
            ),
            st.just(PIN_CHANGED),
            st.just(LIMIT),
        ),
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_the_cell_is_the_same_whatever_the_order_and_never_shows_paths_or_targets(
    items: list[dict[str, Any]], rnd: Any
) -> None:
    hostile = [{**item, "path": f"args.{SECRET}", "target": f"tool:{SECRET}"} for item in items]
    shuffled = hostile[:]
    rnd.shuffle(shuffled)
    cell = guardrail(ev(findings=hostile))
    assert cell == guardrail(ev(findings=shuffled))
    assert "Zq9" not in cell.text and "args." not in cell.text
    assert bool(cell.text) is bool(items)
    levels = {ACTION_LEVEL.get(i["action"]) for i in items}
    worst = next((lv for lv in ("stopped", "changed", "noted") if lv in levels), None)
    assert cell.level == worst


def test_finding_rows_list_every_column_in_log_order_cleaned() -> None:
    rows = finding_rows(
        [
            redaction("GITHUB_TOKEN", "mask", count=2),
            finding("HIDDEN_INSTRUCTIONS", "hide", target="tool:evil\x1b]0;x\x07"),
            LIMIT,
        ]
    )
    assert [r.rule for r in rows] == ["GITHUB_TOKEN", "HIDDEN_INSTRUCTIONS", "RATE_LIMIT"]
    first, second, third = rows
    assert (first.kind, first.path, first.hits, first.action, first.direction) == (
        "redaction", "params.arguments.body", "2", "mask", "up",
    )  # fmt: skip
    assert first.level == "changed" and first.severity == first.target == ""
    assert second.severity == "high" and second.level == "stopped"
    assert "\x1b" not in second.target and second.target.startswith("tool:evil?")
    assert third.extra == "scope=user_tool" and third.level == "stopped"


def test_the_detail_of_a_logged_event_has_its_findings_as_rows() -> None:
    record = json.loads(json.dumps(ev(findings=bound_findings([finding("X", "warn")]))))
    d = detail(record)
    assert [r.rule for r in d.findings] == ["X"]
    assert "findings" not in [s.title for s in d.sections]


@pytest.mark.parametrize(
    "hidden",
    ["\u202e", "\u202d", "\u2066", "\u2069", "\u200b", "\u2060", "\ufeff", "\U000e0041", "\u061c"],
)
def test_clean_shows_characters_that_reorder_or_hide_text(hidden: str) -> None:
    """A tool named "send_email\u202egnp.exe" must not read as another name in `watch`."""
    assert clean(f"send_email{hidden}x") == "send_email?x"
    assert clean(f"line\n{hidden}", multiline=True) == "line\n?"
    row = cells(ev(name=f"send_email{hidden}x"))
    assert row.name == "send_email?x"


def test_clean_keeps_joiners_emoji_and_scripts() -> None:
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # with a ZWNJ
    for text in ("👩\u200d💻", persian, "Привет", "日本語"):
        assert clean(text) == text


def test_a_malformed_event_name_is_no_guardrail_event() -> None:
    assert guardrail({"event": ["pin.changed"]}) == ("", None)
    assert guardrail({"event": ["x"], "findings": [LIMIT]}) == ("rate limited", "stopped")
