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

from lockgate.audit.filter import FIELDS, EventFilter, matches_field, matches_pattern, parse_query
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
