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


# --- heads: the start of a pattern, for a set whose DFA must stay small ---------------------

_ATOMS = st.sampled_from(["a", "b", "-", "[ab]", "[^a]", r"\w", ".", r"\d", "_"])
_REGEXES = st.recursive(
    _ATOMS,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda t: f"(?:{t[0]}|{t[1]})"),
        st.tuples(inner, st.integers(0, 3), st.integers(0, 12)).map(
            lambda t: f"(?:{t[0]}){{{t[1]},{t[1] + t[2]}}}"
        ),
        st.tuples(inner, st.integers(0, 12)).map(lambda t: f"(?:{t[0]}){{{t[1]},}}"),
        inner.map(lambda x: f"(?:{x})?"),
        inner.map(lambda x: f"(?:{x})*"),
        inner.map(lambda x: f"(?:{x})+"),
    ),
    max_leaves=10,
)


@settings(max_examples=1500, deadline=None)
@given(_REGEXES, st.text(alphabet="ab-_1", max_size=40), st.integers(1, 8))
def test_a_head_matches_wherever_its_pattern_matches(pattern: str, text: str, head: int) -> None:
    rx = re.compile(pattern)
    if rx.search(text) is not None:
        assert compile_union(to_re2(rx, head=head)).search(text.encode()) is not None


def test_a_head_ends_at_the_first_long_repeat() -> None:
    token = re.compile(r"gh[pousr]_[A-Za-z0-9]{36,251}\b")
    assert to_re2(token, head=6) == r"gh[pousr]\x{5f}(?:[A-Za-z0-9]){6,6}"
    optional_then_long = re.compile(r"x(?:y{40})?z")  # none of the long part may come
    assert to_re2(optional_then_long, head=6) == "x"
    short = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}")  # repeats within the head stay whole
    assert to_re2(short, head=6) == to_re2(short)
    twice = re.compile(r"(?:ab{10}){2}")  # a repeat of a cut part: its head once, not twice
    text = ("a" + "b" * 10) * 2
    assert twice.search(text) is not None
    assert compile_union(to_re2(twice, head=3)).search(text.encode()) is not None


def test_the_scanner_set_at_its_budget_still_names_what_follows_a_token_salad() -> None:
    """1 MB of token prefixes and word characters fills the set's DFA budget many times over
    (its cache resets); the families after it are still named and found."""
    import random
    import string

    from lockgate.guardrails import scan
    from lockgate.guardrails.detectors import find

    rnd = random.Random(3)
    prefixes = ["ghp_", "glpat-", "xoxb-", "sk-", "sk_live_", "AKIA", "eyJ", "AIza", "SG.", "npm_"]
    words = string.ascii_letters + string.digits
    pieces = [rnd.choice(prefixes) if rnd.random() < 0.4 else "".join(rnd.choices(words, k=5))
              for _ in range(150_000)]  # fmt: skip
    token = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
    text = " ".join(["".join(pieces), token, "alice@acme.io"])
    named = scan._families(text.encode())
    assert named is not None
    assert scan._F_EMAIL in named and any(i >= scan._F_TOKENS for i in named)
    types = {s.type for s in find(text) if text[s.start : s.end] in (token, "alice@acme.io")}
    assert types == {"GITHUB_TOKEN", "EMAIL"}
