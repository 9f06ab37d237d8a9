"""lockgate.audit.filter: the one EventFilter of `watch` and `audit query`, and the `/` prompt.

Field patterns are whole-value globs ignoring case (`!` negates, repeats OR); search words
match any part of any column; `parse_query` and `query()` round-trip.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lockgate.audit.filter import (
    FIELDS,
    EventFilter,
    finding_values,
    matches_any,
    matches_field,
    matches_pattern,
    parse_query,
)
from tests.support.doubles import audit_event as ev

# --- patterns -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("", "anything", True),
        ("lin", "linear", True),
        ("LIN", "linear", True),
        ("ear", "linear", True),
        ("lin*", "linear", True),
        ("lin*", "xlinear", False),  # a glob matches the whole value
        ("*ear", "linear", True),
        ("l?near", "linear", True),
        ("error", "upstream_error", True),  # a search word matches any part
        ("!success", "denied", True),
        ("!success", "success", False),
        ("!lin*", "github", True),
        ("!", "x", True),
        ("gh", "linear", False),
    ],
)
def test_matches_pattern(pattern: str, value: str, expected: bool) -> None:
    assert matches_pattern(pattern, value) is expected


text = st.text(alphabet=string.ascii_letters + string.digits + "_-./*?", max_size=12)


@given(text, text)
def test_negation_is_the_complement(pattern: str, value: str) -> None:
    assume(pattern and not pattern.startswith("!"))
    assert matches_pattern("!" + pattern, value) is not matches_pattern(pattern, value)


@given(text, text)
def test_matching_ignores_case(pattern: str, value: str) -> None:
    assert matches_pattern(pattern.upper(), value.lower()) is matches_pattern(pattern, value)


@given(st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=8), text, text)
def test_a_literal_matches_whenever_it_occurs(needle: str, before: str, after: str) -> None:
    assert matches_pattern(needle, before + needle + after)


# --- filters and queries --------------------------------------------------------------------


def test_filter_fields_combine_with_and() -> None:
    f = EventFilter(routes=("lin*",), outcomes=("!success",))
    assert f.matches(ev(outcome="denied"))
    assert not f.matches(ev(outcome="success"))
    assert not f.matches(ev(route="github", outcome="denied"))


def test_filter_name_falls_back_to_the_path_and_missing_fields_are_empty() -> None:
    gateway_event = {"event": "gateway.request", "path": "/oauth/token", "outcome": "error"}
    assert EventFilter(names=("/oauth/*",)).matches(gateway_event)
    assert not EventFilter(users=("alice",)).matches(gateway_event)
    assert EventFilter(users=("!alice",)).matches(gateway_event)


def test_filter_words_match_any_column_and_all_words_must_match() -> None:
    f = parse_query("claude search_1")
    assert f.matches(ev(1))
    assert not f.matches(ev(2))
    assert not parse_query("claude !search_1").matches(ev(1))
    assert parse_query("claude !search_1").matches(ev(2))


def test_parse_query_fields_aliases_and_words() -> None:
    assert parse_query("route:lin* o:!success hello u=bob") == EventFilter(
        routes=("lin*",), outcomes=("!success",), users=("bob",), text="hello"
    )
    assert parse_query("name:") == EventFilter()  # a field still being typed filters nothing
    assert parse_query("  ") == EventFilter()
    assert parse_query("route:a route:b") == EventFilter(routes=("a", "b"))  # either
    assert parse_query("e:auth.*") == EventFilter(events=("auth.*",))
    assert parse_query("http://x") == EventFilter(text="http://x")  # not a field: a word


pattern = st.text(
    alphabet=string.ascii_letters + string.digits + "_-.*?!/@", min_size=0, max_size=10
)
word = st.text(alphabet=string.ascii_letters + string.digits + "_*", min_size=1, max_size=8)


@given(pattern, pattern, pattern, pattern, st.lists(word, max_size=3))
def test_query_round_trips(
    route: str, user: str, outcome: str, name: str, words: list[str]
) -> None:
    assume(all(w.lower() not in {f for f in FIELDS} for w in words))

    def one(p: str) -> tuple[str, ...]:
        return (p,) if p else ()

    f = EventFilter(
        routes=one(route), users=one(user), outcomes=one(outcome), names=one(name),
        text=" ".join(words),
    )  # fmt: skip
    assert parse_query(f.query()) == f


@given(st.text(max_size=40))
def test_parse_query_never_raises_and_is_stable(query: str) -> None:
    f = parse_query(query)
    assert parse_query(f.query()) == f


event_values = st.sampled_from(["linear", "github", "alice", "bob", "success", "denied", "x"])


@given(
    st.fixed_dictionaries(
        {"route": event_values, "user": event_values, "outcome": event_values, "name": event_values}
    ),
    st.fixed_dictionaries({"route": pattern, "user": pattern, "outcome": pattern, "name": pattern}),
)
def test_a_filter_is_the_conjunction_of_its_fields(
    event: dict[str, str], patterns: dict[str, str]
) -> None:
    f = EventFilter(**{f"{k}s": (p,) for k, p in patterns.items()})
    expected = all(matches_field((patterns[k],), event[k]) for k in FIELDS if k in patterns)
    assert f.matches(event) is expected


def test_field_patterns_are_whole_value_globs_ignoring_case() -> None:
    assert matches_field(("linear",), "Linear")
    assert not matches_field(("lin",), "linear")  # not any part: that is what words do
    assert not matches_field(("error",), "upstream_error")
    assert matches_field(("*error",), "upstream_error")
    assert not matches_field(("[l]inear",), "linear")  # only * and ?, as in the profile
    assert matches_field(("a", "b"), "b")  # repeats: either
    assert not matches_field(("*", "!success"), "success")  # plain ones, and none negated
    assert matches_field(("!success", "!started"), "denied")
    assert not matches_field(("*",), None) and matches_field(("!x",), None)
    assert matches_field(("", "!"), "anything")  # still being typed: no constraint


def test_time_bounds_since_inclusive_until_exclusive() -> None:
    at = datetime(2027, 1, 15, 8, 0, 0, 10000, tzinfo=UTC)  # ev(1)'s time
    assert EventFilter(since=at).matches(ev(1)) and not EventFilter(until=at).matches(ev(1))
    assert not EventFilter(since=at).matches({"event": "x"})  # no ts: fails any bound
    assert EventFilter(since=at) and not EventFilter()


# --- guardrail findings: rule and kind ------------------------------------------------------

MASKED = {
    "kind": "redaction",
    "rule": "GITHUB_TOKEN",
    "path": "params.arguments.token",
    "count": 1,
    "action": "mask",
    "direction": "up",
}
HIDDEN = {
    "kind": "finding",
    "rule": "HIDDEN_INSTRUCTIONS",
    "severity": "high",
    "target": "tool:send_email",
    "path": "description",
    "action": "hide",
}
PIN = {"kind": "pin", "rule": "PIN_CHANGED", "target": "tool:create_issue", "action": "hide"}


def test_rule_matches_any_finding_ignoring_case_as_a_glob() -> None:
    both = ev(findings=[MASKED, HIDDEN])
    assert EventFilter(rules=("HIDDEN_INSTRUCTIONS",)).matches(both)
    assert EventFilter(rules=("hidden_instructions",)).matches(both)  # case does not count
    assert EventFilter(rules=("github_*",)).matches(both)
    assert not EventFilter(rules=("HIDDEN",)).matches(both)  # a whole-value glob, as fields
    assert not EventFilter(rules=("PIN_*",)).matches(both)
    assert EventFilter(rules=("PIN_*", "GITHUB_TOKEN")).matches(both)  # repeats: either
    assert not EventFilter(rules=("*",)).matches(ev())  # no findings: no rule to match
    assert EventFilter(rules=("*",)).matches(ev(findings=[PIN]))


def test_a_negated_rule_keeps_events_without_it_even_those_without_findings() -> None:
    f = EventFilter(rules=("!GITHUB_TOKEN",))
    assert not f.matches(ev(findings=[HIDDEN, MASKED]))  # one item is enough to exclude
    assert f.matches(ev(findings=[HIDDEN]))
    assert f.matches(ev())
    some_but_not = EventFilter(rules=("*", "!GITHUB_TOKEN"))
    assert some_but_not.matches(ev(findings=[HIDDEN]))
    assert not some_but_not.matches(ev()) and not some_but_not.matches(ev(findings=[MASKED]))


def test_kind_and_rule_combine_with_the_other_fields() -> None:
    f = EventFilter(kinds=("redaction",), routes=("linear",))
    assert f.matches(ev(findings=[MASKED]))
    assert not f.matches(ev(findings=[HIDDEN]))
    assert not f.matches(ev(route="github", findings=[MASKED]))
    assert EventFilter(kinds=("!redaction",)).matches(ev(findings=[HIDDEN, PIN]))


def test_rule_reads_odd_findings_without_raising() -> None:
    f = EventFilter(rules=("X",))
    for odd in ("X", 7, None, {"rule": "X"}, [None, "X", {"rule": None}, {"rule": ""}]):
        event = ev(findings=odd)
        assert f.matches(event) is (odd == {"rule": "X"}), odd  # a lone item counts as a list
    assert EventFilter(rules=("7",)).matches(ev(findings=[{"rule": 7}]))  # as text


def test_search_words_find_rule_ids_too() -> None:
    assert parse_query("HIDDEN").matches(ev(findings=[HIDDEN]))
    assert not parse_query("HIDDEN").matches(ev(findings=[MASKED]))
    assert not parse_query("!GITHUB").matches(ev(findings=[MASKED]))
    assert not parse_query("params").matches(ev(findings=[MASKED]))  # paths are not columns


def test_parse_query_reads_rule_and_kind_and_r_stays_route() -> None:
    assert parse_query("rule:HIDDEN_* kind:redaction k:pin r:lin*") == EventFilter(
        rules=("HIDDEN_*",), kinds=("redaction", "pin"), routes=("lin*",)
    )
    f = EventFilter(rules=("PIN_*", "!EMAIL"), kinds=("limit",), text="x")
    assert f.query() == "rule:PIN_* rule:!EMAIL kind:limit x"
    assert parse_query(f.query()) == f
    assert EventFilter(rules=("x",)) and EventFilter(kinds=("x",))


names = st.sampled_from(["EMAIL", "GITHUB_TOKEN", "HIDDEN_INSTRUCTIONS", "PIN_CHANGED", "x"])
rule_patterns = st.sampled_from(["EMAIL", "!EMAIL", "*TOKEN", "!PIN_*", "*", "hidden_*", "?"])


@given(names, st.lists(rule_patterns, max_size=3))
def test_one_value_matches_as_the_single_field_would(value: str, patterns: list[str]) -> None:
    assert matches_any(patterns, [value]) is matches_field(patterns, value)
    assert matches_any(patterns, []) is matches_field(patterns, None)


@given(st.lists(names, max_size=5), st.lists(rule_patterns, min_size=1, max_size=3))
def test_rule_is_any_of_the_plain_and_none_of_the_negated(
    rules: list[str], patterns: list[str]
) -> None:
    event = ev(findings=[{"kind": "finding", "rule": r, "action": "warn"} for r in rules])
    plain = [p for p in patterns if not p.startswith("!")]
    negated = [p[1:] for p in patterns if p.startswith("!")]
    expected = (not plain or any(matches_field((p,), r) for p in plain for r in rules)) and not any(
        matches_field((p,), r) for p in negated for r in rules
    )
    assert EventFilter(rules=tuple(patterns)).matches(event) is expected
    assert finding_values(event, "rule") == rules
    # The order of the findings never changes the verdict.
    shuffled = ev(findings=list(reversed(event["findings"])))
    assert EventFilter(rules=tuple(patterns)).matches(shuffled) is expected
