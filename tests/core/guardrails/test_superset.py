"""The RE2 union of the rule families matches wherever one of them matches (on ASCII text)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.guardrails import gates
from lockgate.guardrails.rules import FAMILIES
from lockgate.guardrails.superset import compile_union, to_re2, union, yes_no

ANY = union(f.rx for f in FAMILIES)
CORPUS = Path(__file__).parents[2] / "corpus" / "findings"

# The words and anchors the families are built from, and the characters between them.
PIECES = sorted(
    {a for f in FAMILIES for a in f.anchors if a.isascii()}
    | {w.decode() for f in FAMILIES for ws in f.words for w in ws}
)
SEPARATORS = [" ", "  ", "\n", "\t", "\x0b", "\x1c", "_", "-", ".", ",", ":", "/", "~", "<", ">"]
ASCII = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=8)


def _any_family(text: str) -> bool:
    return any(f.rx.search(text) is not None for f in FAMILIES)


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from(PIECES), st.sampled_from(SEPARATORS), ASCII), max_size=24
    ).map("".join)
)
def test_the_union_matches_wherever_a_family_matches(text: str) -> None:
    if _any_family(text):
        assert ANY.search(text.encode("ascii")) is not None


def test_the_union_matches_every_poisoned_corpus_text_a_family_matches() -> None:
    found = 0
    for name in ("results.jsonl", "definitions.jsonl"):
        for line in (CORPUS / name).read_text(encoding="utf-8").splitlines():
            doc = json.dumps(json.loads(line)).lower()
            if doc.isascii() and _any_family(doc):
                found += 1
                assert ANY.search(doc.encode("ascii")) is not None, line[:80]
    assert found >= 40  # the corpus does reach the families


def test_benign_prose_is_ruled_out_in_one_pass() -> None:
    prose = "quarterly planning notes: the team reviewed the roadmap and moved the rewrite."
    assert ANY.search(prose.encode()) is None
    gate = gates.gates(json.dumps([prose]).encode(), definition=False, max_string=10_000)
    assert gate.any_family() is False


def test_lookarounds_are_dropped_and_python_spaces_spelled_out() -> None:
    rx = re.compile(r"(?<![\w.])\.env\s+(?!local)x", re.DOTALL)
    out = to_re2(rx)
    assert "(?<" not in out and "(?!" not in out
    assert r"\x0b" in out and r"\x1c-\x1f" in out
    import re2

    assert re2.compile(out).search(b"a.env\x1cx") is not None  # \x1c is a space to Python
    assert rx.search("a.env\x1cx") is None  # the lookbehind: the superset still says yes


def test_repeats_beyond_re2s_limit_are_left_open() -> None:
    out = to_re2(re.compile(r"a{2,5000}b{3000}"))
    assert out == "(?:a){2,}(?:b){1000,}"


_YES_NO_PATTERNS = [compile_union(b) for b in (r"ab+c", r"(?:x|yz)\d{2}", r"^q", r"z$", r"")]


@given(st.binary(max_size=200), st.sampled_from(range(len(_YES_NO_PATTERNS))))
def test_yes_no_answers_as_search_does(raw: bytes, i: int) -> None:
    """The direct call into RE2's program says what the wrapper's search says."""
    pattern = _YES_NO_PATTERNS[i]
    assert yes_no(pattern)(raw) == (pattern.search(raw) is not None)


def test_yes_no_falls_back_to_search_without_the_private_names() -> None:
    class Plain:
        def search(self, raw: bytes) -> object:
            return True if b"k" in raw else None

    ask = yes_no(Plain())  # type: ignore[arg-type]
    assert ask(b"okay") and not ask(b"no")
