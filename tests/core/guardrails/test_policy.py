"""The guardrails section of a profile: defaults, precedence, the route override merged key by
key, and the frozen policy the addon reads."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lockgate.guardrails.detectors import GROUPS, TYPES, placeholder
from lockgate.guardrails.limits import Rate
from lockgate.guardrails.policy import (
    RULE_IDS,
    GuardrailsSection,
    KeyedError,
    resolve,
)

ACTIONS = ("off", "log", "mask", "block")


def section(data: dict[str, object]) -> GuardrailsSection:
    return GuardrailsSection.model_validate(data)


def test_defaults_without_a_section() -> None:
    policy = resolve()
    assert policy.enabled and policy.redacts_up and policy.redacts_down
    for group, types in GROUPS.items():
        for t in types:
            want = "log" if group == "contact" else "mask"
            assert policy.up[t] == want and policy.down[t] == want, t
    assert set(policy.up) == set(TYPES) == set(policy.down)
    assert policy.definition_action("HIDDEN_INSTRUCTIONS", "high") == "hide"
    assert policy.definition_action("EXCESSIVE_LENGTH", "medium") == "warn"
    assert policy.definition_action("ANSI_ESCAPE", "low") == "warn"
    assert policy.results == "warn"
    assert policy.pin_mode == "tofu"
    assert policy.pins == {}
    assert policy.limits is None
    # the empty section resolves to the same
    assert resolve(GuardrailsSection()).up == policy.up


def test_type_beats_group_and_direction_beats_both() -> None:
    policy = resolve(
        section(
            {
                "redact": {
                    "contact": "mask",
                    "EMAIL": "log",
                    "up": {"CARD": "block", "contact": "off"},
                    "down": {"financial": "log", "IBAN": "block", "EMAIL": "mask"},
                }
            }
        )
    )
    assert policy.down["PHONE"] == "mask"  # group, both directions
    assert policy.down["EMAIL"] == "mask"  # down's type beats both's type
    assert policy.up["EMAIL"] == "off"  # up's group beats both's type
    assert policy.up["PHONE"] == "off"
    assert policy.up["CARD"] == "block" and policy.down["CARD"] == "log"
    assert policy.up["IBAN"] == "mask" and policy.down["IBAN"] == "block"
    assert policy.up["SSN"] == "mask"  # untouched default


def test_everything_off_redacts_nothing_and_disabled_redacts_nothing() -> None:
    off = {g: "off" for g in GROUPS}
    policy = resolve(section({"redact": off}))
    assert not policy.redacts_up and not policy.redacts_down
    one_way = resolve(section({"redact": {**off, "down": {"EMAIL": "log"}}}))
    assert not one_way.redacts_up and one_way.redacts_down
    disabled = resolve(section({"enabled": False}))
    assert not disabled.enabled and not disabled.redacts_up and not disabled.redacts_down


def test_custom_detectors_are_built_once_with_their_action() -> None:
    policy = resolve(
        section(
            {
                "detectors": [
                    {"name": "EMPLOYEE_ID", "pattern": r"EMP-\d{6}"},
                    {"name": "TICKET", "pattern": r"TCK-\d+", "action": "log"},
                    {"name": "ACCOUNT", "pattern": r"\bACC\d{11}\b", "validator": "luhn"},
                ],
                "redact": {"down": {"EMPLOYEE_ID": "off"}},
            }
        )
    )
    assert policy.up["EMPLOYEE_ID"] == "mask" and policy.down["EMPLOYEE_ID"] == "off"
    assert policy.up["TICKET"] == "log" and policy.up["ACCOUNT"] == "mask"
    text = "ask EMP-123456 about TCK-77 and ACC79927398713 not ACC79927398710"
    types = [s.type for s in policy.detectors.find(text)]
    assert types == ["EMPLOYEE_ID", "TICKET", "ACCOUNT"]
    assert policy.detectors.redact(text, policy.up) == (
        f"ask {placeholder('EMPLOYEE_ID')} about TCK-77 and {placeholder('ACCOUNT')} "
        "not ACC79927398710"
    )


@pytest.mark.parametrize(
    ("detector", "says"),
    [
        ({"name": "EMAIL", "pattern": "x"}, "built-in type"),
        ({"name": "employee_id", "pattern": "x"}, "upper-case"),
        ({"name": "EMP ID", "pattern": "x"}, "upper-case"),
        ({"name": "ÉMP", "pattern": "x"}, "upper-case"),
        ({"name": "EMP", "pattern": "EMP-("}, "does not compile"),
        ({"name": "EMP", "pattern": "a*"}, "empty string"),
        ({"name": "EMP", "pattern": ""}, "at least 1 character"),
        ({"name": "EMP", "pattern": "x", "validator": "crc"}, "'luhn' or 'mod97'"),
        ({"name": "EMP", "pattern": "x", "action": "hide"}, "'mask'"),
        ({"name": "EMP", "pattern": "x", "flags": "i"}, "Extra inputs"),
    ],
)
def test_bad_custom_detectors(detector: dict[str, str], says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        section({"detectors": [detector]})


def test_custom_names_must_be_unique() -> None:
    with pytest.raises(ValidationError, match="defined twice"):
        section({"detectors": [{"name": "A", "pattern": "a"}, {"name": "A", "pattern": "b"}]})


@pytest.mark.parametrize(
    "redact",
    [
        {"EMAL": "mask"},
        {"email": "mask"},  # names are case-sensitive: upper-case types, lower-case groups
        {"Secret": "mask"},
        {"up": {"CONTACT": "off"}},
        {"down": {"EMPLOYEE_ID": "off"}},  # no such custom detector
    ],
)
def test_unknown_type_names_are_refused(redact: dict[str, object]) -> None:
    with pytest.raises(KeyedError, match="unknown type") as info:
        resolve(section({"redact": redact}))
    assert info.value.loc[0] == "redact"


def test_custom_names_inherited_from_the_defaults_are_known() -> None:
    override = section({"redact": {"EMPLOYEE_ID": "log"}})
    with pytest.raises(KeyedError):
        override.check_names()
    override.check_names(["EMPLOYEE_ID"])


@pytest.mark.parametrize(
    "data",
    [
        {"redact": {"EMAIL": "maks"}},
        {"redact": {"up": {"CARD": "hide"}}},
        {"redact": {"EMAIL": 1}},
        {"redact": {"sideways": {"EMAIL": "mask"}}},
        {"findings": {"definitions": {"high": "block"}}},
        {"findings": {"definitions": {"critical": "hide"}}},
        {"findings": {"results": "drop"}},
        {"findings": {"rules": {"NO_SUCH_RULE": "off"}}},
        {"findings": {"rules": {"hidden_instructions": "off"}}},
        {"findings": {"rules": {"EXCESSIVE_LENGTH": "sanitize"}}},
        {"pinning": {"mode": "trust"}},
        {"pinning": {"pins": {"linear": {"create_issue": "abc"}}}},
        {"pinning": {"pins": {"linear": {"create_issue": "g" * 64}}}},
        {"pinning": {"pins": {"linear": {"create_issue": "a" * 65}}}},
        {"pinning": {"pins": {"linear": {"create_issue": "a" * 63 + "\n"}}}},
        {"pinning": {"pins": {"linear": {"": "a" * 64}}}},
        {"limits": {"user": "60/minit"}},
        {"limits": {"user": 60}},
        {"limits": {"burst": 0}},
        {"limits": {"per": "60/minute"}},
        {"enable": True},
    ],
)
def test_bad_sections_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        section(data)


def test_pins_are_normalised_and_rules_apply() -> None:
    pin = "ABCDEF" + "0" * 58
    policy = resolve(
        section(
            {
                "findings": {
                    "definitions": {"high": "warn", "low": "hide"},
                    "results": "withhold",
                    "rules": {"EXCESSIVE_LENGTH": "off", "TOOL_NAME_SPOOFING": "hide"},
                },
                "pinning": {"mode": "approve", "pins": {"linear": {"create_issue": pin}}},
            }
        )
    )
    assert policy.pins == {"linear": {"create_issue": pin.lower()}}
    assert policy.pin_mode == "approve" and policy.results == "withhold"
    assert policy.definition_action("EXCESSIVE_LENGTH", "high") == "off"
    assert policy.definition_action("TOOL_NAME_SPOOFING", "low") == "hide"
    assert policy.definition_action("HIDDEN_INSTRUCTIONS", "high") == "warn"
    assert policy.definition_action("ANSI_ESCAPE", "medium") == "warn"
    assert policy.definition_action("ANSI_ESCAPE", "low") == "hide"
    assert len(RULE_IDS) == 11


def test_limits_resolve_to_a_spec() -> None:
    policy = resolve(section({"limits": {"route": "600/minute", "tool": "30/min", "burst": 10}}))
    assert policy.limits is not None
    assert policy.limits.route == Rate(600, 60.0) and policy.limits.user is None
    assert policy.limits.tool == Rate(30, 60.0) and policy.limits.burst == 10
    assert resolve(section({"limits": {"burst": 5}})).limits is None


def test_the_policy_is_frozen() -> None:
    policy = resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.enabled = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.up["CARD"] = "off"  # type: ignore[index]
    with pytest.raises(ValidationError):
        GuardrailsSection().enabled = False  # type: ignore[misc]


# --- merge --------------------------------------------------------------------------------

DEFAULTS = section(
    {
        "redact": {"EMAIL": "mask", "contact": "log", "up": {"CARD": "block"}},
        "detectors": [{"name": "EMPLOYEE_ID", "pattern": r"EMP-\d{6}"}],
        "findings": {"definitions": {"medium": "hide"}, "rules": {"EXCESSIVE_LENGTH": "off"}},
        "pinning": {"mode": "approve", "pins": {"linear": {"a": "a" * 64, "b": "b" * 64}}},
        "limits": {"route": "600/minute", "user": "120/minute", "tool": "30/minute"},
    }
)


def test_override_merges_key_by_key() -> None:
    override = section(
        {
            "redact": {"EMAIL": "off", "up": {"PHONE": "mask"}},
            "detectors": [{"name": "TICKET", "pattern": r"TCK-\d+"}],
            "findings": {"results": "withhold", "rules": {"ANSI_ESCAPE": "hide"}},
            "pinning": {"pins": {"linear": {"b": "c" * 64}}},
            "limits": {"tool": "5/minute", "user": "off"},
        }
    )
    merged = DEFAULTS.merged(override)
    policy = resolve(merged)
    assert policy.up["EMAIL"] == policy.down["EMAIL"] == "off"
    assert policy.up["CARD"] == "block"  # the default's up table survives
    assert policy.up["PHONE"] == "mask" and policy.down["PHONE"] == "log"
    assert {"EMPLOYEE_ID", "TICKET"} <= set(policy.up)
    assert policy.results == "withhold"
    assert policy.definition_action("SCHEMA_POISONING", "medium") == "hide"  # kept
    assert policy.definition_action("EXCESSIVE_LENGTH", "high") == "off"  # kept
    assert policy.definition_action("ANSI_ESCAPE", "low") == "hide"  # added
    assert policy.pin_mode == "approve"
    assert policy.pins == {"linear": {"a": "a" * 64, "b": "c" * 64}}
    assert policy.limits is not None
    assert policy.limits.route == Rate(600, 60.0)
    assert policy.limits.user is None  # "off" lifts the default
    assert policy.limits.tool == Rate(5, 60.0)


def test_override_without_keys_changes_nothing() -> None:
    assert DEFAULTS.merged(None) is DEFAULTS
    assert DEFAULTS.merged(GuardrailsSection()) == DEFAULTS
    assert resolve(DEFAULTS.merged(section({}))).up == resolve(DEFAULTS).up


def test_override_can_disable_and_redefine_a_detector() -> None:
    override = section(
        {"enabled": False, "detectors": [{"name": "EMPLOYEE_ID", "pattern": "E-[0-9]+"}]}
    )
    merged = DEFAULTS.merged(override)
    assert not merged.enabled
    assert [d.pattern for d in merged.detectors] == ["E-[0-9]+"]
    # and the defaults themselves are untouched
    assert DEFAULTS.enabled and DEFAULTS.detectors[0].pattern == r"EMP-\d{6}"


TABLE = st.dictionaries(st.sampled_from([*GROUPS, *TYPES[:6]]), st.sampled_from(ACTIONS))


@settings(max_examples=150, deadline=None)
@given(base=TABLE, base_up=TABLE, top=TABLE, top_down=TABLE)
def test_merge_equals_applying_the_override_keys_over_the_defaults(
    base: dict[str, str], base_up: dict[str, str], top: dict[str, str], top_down: dict[str, str]
) -> None:
    defaults = section({"redact": {**base, "up": base_up}})
    override = section({"redact": {**top, "down": top_down}})
    merged = resolve(defaults.merged(override))
    expected = resolve(section({"redact": {**base, **top, "up": base_up, "down": top_down}}))
    assert merged.up == expected.up and merged.down == expected.down
    # and every action is one of the four, for every type
    assert set(merged.up.values()) <= set(ACTIONS) and set(merged.up) == set(TYPES)


def test_a_route_group_key_does_not_beat_a_default_type_key() -> None:
    """Key by key: the merged section holds both keys, and a type beats its group, so a route
    that wants EMAIL masked while the defaults log it names EMAIL (documented in `merged`)."""
    defaults = section({"redact": {"EMAIL": "log"}})
    by_group = resolve(defaults.merged(section({"redact": {"contact": "mask"}})))
    assert by_group.up["EMAIL"] == "log" and by_group.up["PHONE"] == "mask"
    by_type = resolve(defaults.merged(section({"redact": {"EMAIL": "mask"}})))
    assert by_type.up["EMAIL"] == "mask"


@pytest.mark.parametrize("up", ["mask", ["CARD"], 1])
def test_a_direction_must_be_a_table(up: object) -> None:
    with pytest.raises(ValidationError, match=r"expected a table of actions"):
        section({"redact": {"up": up}})


KEYS = st.sampled_from(
    [
        "enabled",
        "redact",
        "up",
        "down",
        "EMAIL",
        "secret",
        "CARD",
        "X",
        "detectors",
        "name",
        "pattern",
        "validator",
        "action",
        "findings",
        "results",
        "rules",
        "definitions",
        "high",
        "pinning",
        "mode",
        "pins",
        "limits",
        "user",
        "tool",
        "route",
        "burst",
        "HIDDEN_INSTRUCTIONS",
    ]
)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 100)
    | st.sampled_from(["mask", "log", "off", "block", "hide", "warn", "60/minute", "x(", "A" * 64])
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=5), st.dictionaries(KEYS, VALUES, max_size=5))
def test_any_input_validates_or_is_refused_cleanly(
    base: dict[str, object], top: dict[str, object]
) -> None:
    """Whatever a profile holds, the section validates or raises ValidationError (KeyedError
    for names), and whatever validates merges and resolves."""
    try:
        defaults = section(base)
        override = section(top)
        defaults.check_names()
        override.check_names(defaults.custom_names())
    except (ValidationError, KeyedError):
        return
    policy = resolve(defaults.merged(override))
    assert set(policy.up) >= set(TYPES)
    assert set(policy.up.values()) | set(policy.down.values()) <= set(ACTIONS)


def test_the_rule_ids_a_profile_may_name_are_the_scanners() -> None:
    from lockgate.guardrails.findings import RULES
    from lockgate.guardrails.policy import RULE_IDS

    assert sorted(RULE_IDS) == sorted(RULES)
