"""The URI normal form resource rules match on (issue 9, item 1).

Why it exists: a rule is only as good as the normaliser before it. Properties: normalising
twice changes nothing, never crashes (only `UriError`), every encoding of an unreserved
character gives the same normal form, and what cannot be normalised is refused. Plus the
route view (`Policy`) matching patterns and URIs in that form.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.mcp.uris import (
    UriError,
    normalise,
    normalise_pattern,
    normalise_template,
    normalised,
)
from lockgate.policy.view import Policy, Rule

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


@pytest.mark.parametrize(
    ("uri", "normal"),
    [
        ("notes://note/2", "notes://note/2"),
        ("notes://note/%32", "notes://note/2"),
        ("NOTES://NOTE/2", "notes://note/2"),
        ("notes://note/./2", "notes://note/2"),
        ("notes://note/x/../2", "notes://note/2"),
        ("notes://note/%2e%2E/2", "notes://note/2"),
        ("notes://note/a%2bb", "notes://note/a+b"),
        ("notes://note/a%2fb?q=%2f", None),
        ("notes://note/a?q=%2f%41", "notes://note/a?q=%2FA"),
        ("http://Ex%41mple.COM/%7e", "http://example.com/~"),
        ("http://[::1]:80/x", "http://[::1]:80/x"),
        ("file:///My Docs/\u00fc", "file:///My%20Docs/%C3%BC"),
        ("notes://note/%25", "notes://note/%25"),
        ("notes://note/%2", None),
        ("notes://note/%zz", None),
        ("notes://note/%00", None),
        ("notes://note/\n", None),
        ("notes://note/a\\b", None),
        ("notes://note/a%5Cb", None),
        ("no-scheme", None),
        ("a:/.//x", None),
        ("notes://note/\ud800", None),
    ],
)
def test_normal_forms(uri: str, normal: str | None) -> None:
    assert normalised(uri) == normal
    if normal is None:
        with pytest.raises(UriError):
            normalise(uri)


def test_templates_keep_their_expressions() -> None:
    assert normalise_template("NOTES://Note/{id}{?q}") == "notes://note/{id}{?q}"
    assert normalise_template("notes://note/%41{id}") == "notes://note/A{id}"
    with pytest.raises(UriError):
        normalise_template("notes://note/{id")


def test_patterns_keep_their_globs() -> None:
    assert normalise_pattern("NOTES://note/*") == "notes://note/*"
    assert normalise_pattern("notes://note/%2A") == "notes://note/%2A"  # not a wildcard
    assert normalise_pattern("notes://note/%32") == "notes://note/2"
    assert normalise_pattern("notes://note/%zz") == "notes://note/%zz"  # kept as written
    assert normalise_pattern("NOTES://note/{id}", template=True) == "notes://note/{id}"


# --- properties --------------------------------------------------------------------------

uri_text = st.text(
    alphabet=st.sampled_from(list(UNRESERVED + ":/?#[]@!$&'()*+,;=% \\\u00fc\u00e9\n\x00")),
    max_size=60,
)
uris = st.builds(
    lambda s, rest: f"{s}:{rest}", st.sampled_from(["notes", "NoTeS", "x+y"]), uri_text
)


@given(st.text(max_size=80))
def test_never_crashes_on_any_text(text: str) -> None:
    with contextlib.suppress(UriError):
        normalise(text)
    with contextlib.suppress(UriError):
        normalise_template(text)
    normalise_pattern(text)
    normalise_pattern(text, template=True)


@given(uris)
def test_idempotent(uri: str) -> None:
    normal = normalised(uri)
    if normal is not None:
        assert normalise(normal) == normal


@given(st.text(max_size=60))
def test_template_and_pattern_idempotent(text: str) -> None:
    try:
        normal = normalise_template(text)
    except UriError:
        pass
    else:
        assert normalise_template(normal) == normal
    pattern = normalise_pattern(text)
    assert normalise_pattern(pattern) == pattern


@given(
    st.lists(st.sampled_from(list(UNRESERVED)), min_size=1, max_size=12),
    st.lists(st.booleans(), min_size=12, max_size=12),
    st.lists(st.booleans(), min_size=12, max_size=12),
    st.sampled_from(["notes://note/", "notes://HOST/a/", "urn:x:", "notes://h/p?q="]),
)
def test_every_encoding_of_unreserved_characters_is_one_uri(
    chars: list[str], encode: list[bool], lower: list[bool], prefix: str
) -> None:
    plain = prefix + "".join(chars)
    spelled = prefix + "".join(
        (f"%{ord(c):02x}" if lo else f"%{ord(c):02X}") if enc else c
        for c, enc, lo in zip(chars, encode, lower, strict=False)
    )
    assert normalise(spelled) == normalise(plain)


@given(uris)
def test_normal_form_holds_only_uri_characters(uri: str) -> None:
    normal = normalised(uri)
    if normal is not None:
        assert normal.isascii()
        assert not any(c.isspace() or ord(c) < 0x20 or c == "\\" for c in normal)
        assert "%2F" not in normal.split("?", 1)[0].split("#", 1)[0]


# --- the route view matches in normal form ------------------------------------------------


def test_policy_refuses_every_spelling_of_a_denied_uri() -> None:
    policy = Policy(resources=Rule(deny=("Notes://note/%32",)))
    for uri in ("notes://note/2", "notes://note/%32", "NOTES://note/./2"):
        assert policy.hidden_target("resources/read", {"uri": uri}) == "notes://note/2"
    assert policy.hidden_target("resources/read", {"uri": "notes://note/1"}) is None
    assert policy.hidden_target("resources/read", {"uri": "notes://note/%zz"}) == "<invalid uri>"
    assert Policy().hidden_target("resources/read", {"uri": "notes://note/%zz"}) is None


def test_policy_denied_templates_hide_reads_and_completions_in_normal_form() -> None:
    policy = Policy(resource_templates=Rule(deny=("notes://note/{id}",)))
    assert policy.hidden_target("resources/read", {"uri": "NOTES://note/%31"}) == "notes://note/1"
    ref = {"ref": {"type": "ref/resource", "uri": "NOTES://note/{id}"}}
    assert policy.hidden_target("completion/complete", ref) == "notes://note/{id}"


def test_policy_filters_listed_uris_in_normal_form() -> None:
    policy = Policy(
        resources=Rule(deny=("notes://note/2",)),
        resource_templates=Rule(deny=("notes://note/{id}",)),
    )
    listed = {"resources": [{"uri": "notes://note/%32"}, {"uri": "notes://%zz"}, {"uri": "x:1"}]}
    assert policy.filter_result("resources/list", listed)["resources"] == [{"uri": "x:1"}]
    templates = {"resourceTemplates": [{"uriTemplate": "NOTES://note/{id}"}]}
    assert policy.filter_result("resources/templates/list", templates)["resourceTemplates"] == []
