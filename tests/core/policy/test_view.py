"""Route views: glob rules, refused targets, filtered and overridden list results."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.policy.view import Override, Policy, Rule, glob_match


def reference_glob(pattern: str, name: str) -> bool:
    """fnmatch restricted to `*` and `?`, written the obvious (backtracking) way."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.DOTALL) is not None


# --- glob_match and Rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("list_*", "list_issues", True),
        ("list_*", "list_", True),
        ("list_*", "xlist_issues", False),
        ("*", "", True),
        ("*", "a/b\nc", True),
        ("file:///*", "file:///etc/passwd", True),
        ("get_?", "get_a", True),
        ("get_?", "get_", False),
        ("get_?", "get_ab", False),
        ("get_?", "get_é", True),
        ("a[bc]", "a[bc]", True),
        ("a[bc]", "ab", False),
        ("a[!b]", "a[!b]", True),
        ("v1.0", "v1x0", False),
        ("a+b(c)", "a+b(c)", True),
        ("Search", "search", False),
        ("*a*b", "xaxxb", True),
        ("*a*b", "xaxxbx", False),
        ("a**b", "ab", True),
        ("*_*_*", "a_b", False),
    ],
)
def test_glob_match(pattern: str, name: str, expected: bool) -> None:
    assert glob_match(pattern, name) is expected


def test_glob_has_no_catastrophic_backtracking() -> None:
    # A client picks the name; the naive regex would take hours on this.
    start = time.perf_counter()
    assert not glob_match("*a*a*a*a*a*a*a*b", "a" * 20_000)
    assert Rule(deny=("*a*a*a*a*a*a*a*b",)).visible("a" * 20_000)
    assert time.perf_counter() - start < 2.0


def test_deny_wins_over_allow() -> None:
    rule = Rule(allow=("*",), deny=("delete_*",))
    assert rule.visible("list_issues")
    assert not rule.visible("delete_issue")


def test_absent_allow_passes_everything() -> None:
    assert Rule().visible("anything")
    assert Rule().is_passthrough


def test_empty_allow_hides_everything() -> None:
    rule = Rule(allow=())
    assert not rule.visible("")
    assert not rule.visible("x")
    assert not rule.is_passthrough


def test_literal_and_glob_patterns_mix() -> None:
    rule = Rule(allow=("exact", "get_*", "a?c"), deny=("get_secret",))
    assert [rule.visible(n) for n in ["exact", "exactly", "get_x", "get_secret", "abc", "ac"]] == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]


def test_rule_takes_lists_but_not_a_bare_string() -> None:
    rule = Rule(allow=["a_*"], deny=["a_b"])  # type: ignore[arg-type]
    assert rule.allow == ("a_*",)
    assert rule == Rule(allow=("a_*",), deny=("a_b",))
    with pytest.raises(TypeError):
        Rule(allow="list_*")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Rule(deny=(1,))  # type: ignore[arg-type]


# --- Policy.hidden_target -----------------------------------------------------------------

POLICY = Policy(
    tools=Rule(deny=("delete_*",)),
    prompts=Rule(allow=("summarize",)),
    resources=Rule(allow=("file:///public/*",)),
    resource_templates=Rule(deny=("db://*",)),
)


@pytest.mark.parametrize(
    ("method", "params", "hidden"),
    [
        ("tools/call", {"name": "search"}, None),
        ("tools/call", {"name": "delete_all"}, "delete_all"),
        ("tools/call", {"name": 3}, "<invalid name>"),
        ("tools/call", {}, "<invalid name>"),
        ("tools/call", None, "<invalid name>"),
        ("prompts/get", {"name": "summarize"}, None),
        ("prompts/get", {"name": "other"}, "other"),
        ("prompts/get", {"name": ["summarize"]}, "<invalid name>"),
        ("resources/read", {"uri": "file:///public/a"}, None),
        ("resources/read", {"uri": "file:///etc/passwd"}, "file:///etc/passwd"),
        ("resources/subscribe", {"uri": "file:///etc/passwd"}, "file:///etc/passwd"),
        ("resources/unsubscribe", {"uri": "file:///x"}, "file:///x"),
        ("resources/read", {"uri": None}, "<invalid uri>"),
        ("completion/complete", {"ref": {"type": "ref/prompt", "name": "summarize"}}, None),
        ("completion/complete", {"ref": {"type": "ref/prompt", "name": "other"}}, "other"),
        ("completion/complete", {"ref": {"type": "ref/resource", "uri": "db://{t}"}}, "db://{t}"),
        ("completion/complete", {"ref": {"type": "ref/resource", "uri": "gh://{r}"}}, None),
        (
            "completion/complete",
            {"ref": {"type": "ref/tool", "name": "x"}},
            "<unknown ref ref/tool>",
        ),
        ("completion/complete", {"ref": "summarize"}, "<invalid ref>"),
        ("completion/complete", {}, "<invalid ref>"),
        ("tools/list", {}, None),
        ("initialize", {"name": "delete_all"}, None),
    ],
)
def test_hidden_target(method: str, params: dict[str, Any] | None, hidden: str | None) -> None:
    assert POLICY.hidden_target(method, params) == hidden


def test_hidden_target_on_an_unrestricted_capability_leaves_errors_to_the_upstream() -> None:
    policy = Policy(tools=Rule(deny=("x",)))
    assert policy.hidden_target("prompts/get", {"name": 3}) is None
    assert policy.hidden_target("resources/read", None) is None
    assert policy.hidden_target("completion/complete", {"ref": 1}) is None
    assert policy.hidden_target("tools/call", {"name": 3}) == "<invalid name>"


def test_empty_string_name_can_be_hidden() -> None:
    assert Policy(tools=Rule(allow=("a",))).hidden_target("tools/call", {"name": ""}) == ""


# --- Policy.filter_result -----------------------------------------------------------------


def tool(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": f"upstream {name}", "inputSchema": {}, **extra}


def test_passthrough_policy() -> None:
    assert Policy().is_passthrough
    assert not Policy(tools=Rule(deny=("x",))).is_passthrough
    assert not Policy(prompts=Rule(allow=())).is_passthrough
    assert not Policy(resource_overrides={"u": Override(title="t")}).is_passthrough
    result = {"tools": [1, "junk"]}
    assert Policy().filter_result("tools/list", result) is result


def test_tools_filtered_cursor_and_meta_kept() -> None:
    result = {
        "tools": [tool("list_a"), tool("delete_a"), tool("get_b")],
        "nextCursor": "abc",
        "_meta": {"x": 1},
    }
    out = Policy(tools=Rule(deny=("delete_*",))).filter_result("tools/list", result)
    assert [t["name"] for t in out["tools"]] == ["list_a", "get_b"]
    assert out["nextCursor"] == "abc"
    assert out["_meta"] == {"x": 1}


def test_overrides_apply_to_copies_and_input_is_untouched() -> None:
    result = {
        "tools": [
            tool("search", annotations={"destructiveHint": True, "title": "S"}),
            tool("plain"),
            tool("bare"),
        ]
    }
    before = copy.deepcopy(result)
    policy = Policy(
        tool_overrides={
            "search": Override(
                description="Search (read-only).",
                title="Search",
                annotations={"readOnlyHint": True, "destructiveHint": False},
            ),
            "bare": Override(annotations={"readOnlyHint": True}),
            "absent": Override(description="never shown"),
        }
    )
    out = policy.filter_result("tools/list", result)
    search, plain, bare = out["tools"]
    assert search["description"] == "Search (read-only)."
    assert search["title"] == "Search"
    assert search["annotations"] == {"destructiveHint": False, "title": "S", "readOnlyHint": True}
    assert search["inputSchema"] is result["tools"][0]["inputSchema"]  # shallow copy only
    assert plain is result["tools"][1]  # untouched items are not copied
    assert bare["annotations"] == {"readOnlyHint": True}
    assert bare["description"] == "upstream bare"
    assert result == before
    assert out is not result


def test_prompt_overrides_do_not_add_annotations() -> None:
    result = {"prompts": [{"name": "p", "description": "d"}]}
    policy = Policy(
        prompt_overrides={"p": Override(description="new", annotations={"readOnlyHint": True})}
    )
    assert policy.filter_result("prompts/list", result) == {
        "prompts": [{"name": "p", "description": "new"}]
    }


def test_resources_match_on_uri_and_templates_on_uri_template() -> None:
    policy = Policy(
        resources=Rule(allow=("file:///public/*",)),
        resource_templates=Rule(deny=("db://*",)),
        resource_overrides={"file:///public/a": Override(title="A")},
    )
    resources = {
        "resources": [
            {"uri": "file:///public/a", "name": "a"},
            {"uri": "file:///private/b", "name": "file:///public/b"},
            {"name": "no uri"},
        ]
    }
    assert policy.filter_result("resources/list", resources) == {
        "resources": [{"uri": "file:///public/a", "name": "a", "title": "A"}]
    }
    templates = {
        "resourceTemplates": [
            {"uriTemplate": "db://{table}", "name": "db"},
            {"uriTemplate": "gh://{repo}", "name": "gh"},
            {"uri": "gh://x", "name": "wrong key"},
        ]
    }
    out = policy.filter_result("resources/templates/list", templates)
    assert [t["name"] for t in out["resourceTemplates"]] == ["gh"]


def test_malformed_items_are_dropped() -> None:
    result = {"tools": [tool("ok"), "junk", None, {"name": 5}, {"title": "no name"}, [1]]}
    out = Policy(tools=Rule(deny=("x",))).filter_result("tools/list", result)
    assert out["tools"] == [tool("ok")]


def test_a_list_key_that_is_not_a_list_becomes_empty() -> None:
    policy = Policy(tools=Rule(deny=("x",)))
    assert policy.filter_result("tools/list", {"tools": {"name": "x"}}) == {"tools": []}
    no_key = {"nextCursor": "c"}
    assert policy.filter_result("tools/list", no_key) is no_key


def test_other_methods_pass_unchanged() -> None:
    result = {"content": [{"type": "text", "text": "x"}], "tools": [tool("delete_me")]}
    assert Policy(tools=Rule(deny=("delete_*",))).filter_result("tools/call", result) is result


def test_only_the_restricted_list_is_touched() -> None:
    prompts = {"prompts": ["junk"]}
    assert Policy(tools=Rule(deny=("x",))).filter_result("prompts/list", prompts) is prompts


def test_two_thousand_tools_filter_fast() -> None:
    result = {
        "tools": [
            tool(f"{verb}_{i}") for i in range(500) for verb in ("get", "list", "delete", "update")
        ]
    }
    policy = Policy(
        tools=Rule(allow=("get_*", "list_*", "update_1?"), deny=("*_13",)),
        tool_overrides={"get_1": Override(description="x")},
    )
    out = policy.filter_result("tools/list", result)
    # get_* and list_* minus their _13, update_10..19 minus update_13
    assert len(out["tools"]) == 499 + 499 + 9
    start = time.perf_counter()
    for _ in range(20):
        policy.filter_result("tools/list", result)
    per_call = (time.perf_counter() - start) / 20
    assert per_call < 0.02  # measured around 1 ms; generous for slow CI machines


# --- properties ---------------------------------------------------------------------------

glob_alphabet = st.sampled_from(list("ab*?[]/.\\é\n"))
patterns = st.text(glob_alphabet, max_size=8)
names = st.text(st.sampled_from(list("ab[]/.\\é\nc")), max_size=10)


@given(patterns, names)
def test_glob_matches_reference(pattern: str, name: str) -> None:
    assert glob_match(pattern, name) == reference_glob(pattern, name)


@given(st.text(), st.text())
def test_glob_never_raises(pattern: str, name: str) -> None:
    assert glob_match(pattern, name) in (True, False)


@given(
    st.none() | st.lists(patterns, max_size=4),
    st.lists(patterns, max_size=4),
    names,
)
def test_rule_matches_per_pattern_semantics(
    allow: list[str] | None, deny: list[str], name: str
) -> None:
    rule = Rule(allow=None if allow is None else tuple(allow), deny=tuple(deny))
    expected = not any(reference_glob(p, name) for p in deny) and (
        allow is None or any(reference_glob(p, name) for p in allow)
    )
    assert rule.visible(name) is expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "uri", "uriTemplate", "x"]) | st.text(max_size=3),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)
item_names = st.sampled_from(["get_a", "delete_a", "a", "file:///x", "db://{t}"]) | st.text(
    max_size=4
)
items = (
    st.fixed_dictionaries(
        {},
        optional={
            "name": item_names | json_values,
            "uri": item_names,
            "uriTemplate": item_names,
            "annotations": json_values,
            "description": json_values,
        },
    )
    | json_values
)
LIST_KEYS = {
    "tools/list": ("tools", "name"),
    "prompts/list": ("prompts", "name"),
    "resources/list": ("resources", "uri"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate"),
}
FUZZ_POLICY = Policy(
    tools=Rule(allow=("get_*", "a", "?"), deny=("delete_*",)),
    prompts=Rule(deny=("a",)),
    resources=Rule(allow=("file:///*",)),
    resource_templates=Rule(deny=("db://*",)),
    tool_overrides={"get_a": Override(description="d", annotations={"readOnlyHint": True})},
    prompt_overrides={"get_a": Override(title="t")},
    resource_overrides={"file:///x": Override(description="r")},
)


@given(
    st.sampled_from([*LIST_KEYS, "tools/call"]),
    st.dictionaries(
        st.sampled_from(
            ["tools", "prompts", "resources", "resourceTemplates", "nextCursor", "_meta"]
        ),
        st.lists(items, max_size=6) | json_values,
        max_size=4,
    ),
)
def test_filter_result_never_raises_and_only_removes(method: str, result: dict[str, Any]) -> None:
    before = copy.deepcopy(result)
    out = FUZZ_POLICY.filter_result(method, result)
    assert result == before
    if method not in LIST_KEYS or LIST_KEYS[method][0] not in result:
        assert out is result
        return
    key, match = LIST_KEYS[method]
    assert {k: v for k, v in out.items() if k != key} == {
        k: v for k, v in result.items() if k != key
    }
    rule = FUZZ_POLICY._views[method].rule
    input_names = [
        i.get(match)
        for i in (result[key] if isinstance(result[key], list) else [])
        if isinstance(i, dict)
    ]
    for kept in out[key]:
        assert isinstance(kept, dict)
        assert isinstance(kept[match], str)
        assert rule.visible(kept[match])
        assert kept[match] in input_names
    assert len(out[key]) <= len(input_names)


def test_a_denied_template_hides_reads_of_its_uris() -> None:
    policy = Policy(resource_templates=Rule(deny=("notes://note/{id}", "files://*/{path}")))
    assert policy.hidden_target("resources/read", {"uri": "notes://note/1"}) == "notes://note/1"
    assert policy.hidden_target("resources/subscribe", {"uri": "files://a/b/c"}) is not None
    assert policy.hidden_target("resources/read", {"uri": "notes://index"}) is None
    assert policy.hidden_target("resources/read", {"uri": "notes://note"}) is None
    assert Policy().hidden_target("resources/read", {"uri": "notes://note/1"}) is None
