"""tools/call arguments against the listed inputSchema (lockgate.mcp.arguments), pure."""

from __future__ import annotations

import timeit

from hypothesis import given
from hypothesis import strategies as st

from lockgate.mcp.arguments import ArgumentSchemas

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "n": {"type": "integer", "minimum": 0},
    },
    "required": ["title"],
}
LISTED = {"tools": [{"name": "add_note", "inputSchema": SCHEMA}]}
SECRET = "sk-live-0123456789"


def schemas() -> ArgumentSchemas:
    s = ArgumentSchemas()
    s.remember("r", LISTED)
    return s


def test_valid_arguments_and_unlisted_tools_pass() -> None:
    s = schemas()
    assert s.problem("r", "add_note", {"title": "t", "tags": ["a"], "n": 1}) is None
    assert s.problem("r", "other", {"title": 1}) is None
    assert s.problem("other-route", "add_note", {"title": 1}) is None


def test_a_wrong_type_names_the_path_and_the_type_never_the_value() -> None:
    s = schemas()
    msg = s.problem("r", "add_note", {"title": "t", "tags": ["a", {"k": SECRET}]})
    assert msg == "The argument arguments.tags[1] of tool 'add_note' must be string."
    msg = s.problem("r", "add_note", {"title": SECRET, "n": -5})
    assert msg is not None and "minimum 0" in msg and SECRET not in msg and "-5" not in msg


def test_a_missing_required_argument_is_named() -> None:
    assert schemas().problem("r", "add_note", None) == (
        "The argument arguments of tool 'add_note' needs 'title'."
    )


def test_validators_are_compiled_once_per_definition_and_bounded() -> None:
    s = ArgumentSchemas(max_tools=2, max_validators=1)
    for route in ("a", "b", "c"):
        s.remember(route, LISTED)
    assert s.problem("a", "add_note", {}) is None  # dropped: oldest of three
    assert s.problem("b", "add_note", {}) is not None
    assert s.problem("c", "add_note", {}) is not None
    assert len(s._validators) == 1


def test_an_uncompilable_schema_passes() -> None:
    s = ArgumentSchemas()
    s.remember("r", {"tools": [{"name": "t", "inputSchema": {"type": 5}}]})
    assert s.problem("r", "t", {"x": 1}) is None


@given(st.dictionaries(st.text(max_size=5), st.text(min_size=12, max_size=20) | st.integers()))
def test_no_refusal_ever_echoes_a_value(args: dict[str, object]) -> None:
    msg = schemas().problem("r", "add_note", args)
    for value in args.values():
        if isinstance(value, str) and msg is not None:
            assert value not in msg


def test_the_check_is_cheap() -> None:
    s = schemas()
    args = {"title": "t", "tags": ["a", "b"], "n": 3}
    per_call = timeit.timeit(lambda: s.problem("r", "add_note", args), number=2000) / 2000
    assert per_call < 50e-6, per_call


def test_a_list_in_the_same_bytes_again_keeps_what_it_remembered() -> None:
    s = ArgumentSchemas()
    s.remember("r", LISTED, b"k1")
    s.remember("r", LISTED, b"k1")
    assert s.problem("r", "add_note", {}) is not None


def test_a_wider_view_of_the_same_bytes_is_remembered_too() -> None:
    """Another user's view of the same upstream list may show tools the first did not."""
    other = {"name": "tag_note", "inputSchema": {"type": "object", "required": ["tag"]}}
    s = ArgumentSchemas()
    s.remember("r", LISTED, b"k1")
    s.remember("r", {"tools": [*LISTED["tools"], other]}, b"k1")
    assert s.problem("r", "tag_note", {}) is not None
    assert s.problem("r", "add_note", {}) is not None


def test_a_new_list_replaces_a_remembered_schema_whatever_the_key() -> None:
    s = ArgumentSchemas()
    s.remember("r", LISTED, b"k1")
    loose = {"tools": [{"name": "add_note", "inputSchema": {"type": "object"}}]}
    s.remember("r", loose, b"k2")
    assert s.problem("r", "add_note", {}) is None
    s.remember("r", LISTED, None)
    assert s.problem("r", "add_note", {}) is not None


def test_an_evicted_tool_is_remembered_again_from_the_same_bytes() -> None:
    s = ArgumentSchemas(max_tools=1)
    s.remember("r", LISTED, b"k1")
    s.remember("r2", {"tools": [{"name": "x", "inputSchema": {"type": "object"}}]}, b"k9")
    assert s.problem("r", "add_note", {}) is None  # evicted
    s.remember("r", LISTED, b"k1")
    assert s.problem("r", "add_note", {}) is not None
