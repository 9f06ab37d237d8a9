"""Character forensics: sanitize strips invisible and ANSI characters without breaking emoji
sequences or foreign scripts, returns the same object when nothing changed, and is idempotent."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.guardrails.findings import sanitize
from lockgate.guardrails.text import clean, fold, has_ansi, invisible_reasons, suspicious

SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
EMOJI = [
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",  # family
    "\U0001f3f3\ufe0f\u200d\U0001f308",  # rainbow flag
    "\u2764\ufe0f\u200d\U0001f525",  # heart on fire
    "\U0001f469\U0001f3fd\u200d\U0001f4bb",  # technologist, skin tone
    "1\ufe0f\u20e3",  # keycap
    SCOTLAND,
    "\U0001f1ef\U0001f1f5",  # regional indicators
]
FOREIGN = [
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian with ZWNJ
    "क्\u200dष",  # Devanagari with ZWJ
    "\u0627\u0644\u0645\u0644\u0641 \u200freport\u200f",  # Arabic with RLM
    "漢字",
]
INVISIBLE = [
    "\u200b",
    "\u2060",
    "\ufeff",
    "\u202e",
    "\u2066",
    "\u2069",
    "\U000e0041",
    "\U000e007f",
    "\U000e0101",
    "\u200d",  # ZWJ outside an emoji
    "\u180e",
]
ANSI = ["\x1b[31m", "\x1b[0m", "\x1b]8;;https://x\x07", "\x1b]52;c;aGk=\x1b\\", "\x1b[2J", "\x1b7"]


@pytest.mark.parametrize("s", EMOJI + FOREIGN)
def test_emoji_and_scripts_survive_and_are_not_findings(s: str) -> None:
    text = f"hi {s} there"
    assert clean(text) is text
    assert not invisible_reasons(text)


@pytest.mark.parametrize("bad", INVISIBLE + ANSI)
def test_each_invisible_or_escape_is_stripped(bad: str) -> None:
    assert clean(f"ab{bad}cd") == "abcd"


def test_findings_thresholds() -> None:
    assert invisible_reasons("x\U000e0041y")  # a tag outside a flag
    assert invisible_reasons("a\u202eb")  # override
    assert invisible_reasons("a\u2067b")  # unbalanced isolate
    assert not invisible_reasons("\u2068Anna\u2069")  # balanced isolate (Fluent)
    assert invisible_reasons("a\u200b\u200cb")  # a run
    assert invisible_reasons("pa\u200bss wo\u200brd")  # inside ASCII words, twice
    assert not invisible_reasons("a stray\u200b space")
    assert invisible_reasons("\U0001f600" + "\U000e0100\U000e0101")  # variation-selector data
    assert has_ansi("\x1b[2A", strict=False) and has_ansi("\x1b[31m", strict=True)
    assert not has_ansi("\x1b[1;31mred\x1b[0m\r\x1b[K", strict=False)


def test_sanitize_keeps_identity_and_keys() -> None:
    value: dict[str, Any] = {"content": [{"type": "text", "text": "fine \U0001f44d"}], "n": 3}
    assert sanitize(value) is value
    dirty = {"k\u200b": ["ok", "a\u200bb"], "t": ("x\x1b[31m",), "same": {"z": "z"}}
    out = sanitize(dirty)
    assert out == {"k\u200b": ["ok", "ab"], "t": ("x",), "same": {"z": "z"}}
    assert out["same"] is dirty["same"] and out["k\u200b"][0] is dirty["k\u200b"][0]
    assert dirty["k\u200b"] == ["ok", "a\u200bb"]  # the input is not mutated


def test_fold_reads_through_disguises() -> None:
    assert fold("IGNORE") == "ignore"
    assert fold("\u0456gn\u043ere") == "ignore"
    assert fold("ig\u200bnore") == "ignore"
    assert fold("\uff49\uff47\uff4e\uff4f\uff52\uff45") == "ignore"
    assert fold("ig\u0301nore") == "ignore"  # a combining accent inside the word
    assert fold("\u00edgn\u00f6re") == "ignore"  # precomposed accents
    assert fold("i\u0336g\u0336n\u0336o\u0336r\u0336e") == "ignore"  # struck through
    assert fold("\u0928\u092e\u0938\u094d\u0924\u0947") == "\u0928\u092e\u0938\u094d\u0924\u0947"


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=40),
    st.lists(st.integers(0x300, 0x36F), max_size=8),
    st.randoms(),
)
def test_combining_marks_on_ascii_text_fold_away(s: str, marks: list[int], rnd: Any) -> None:
    """Diacritics sprinkled over ASCII text (where a rule looks for "ignore previous
    instructions") fold to the text without them."""
    chars = list(s)
    for m in marks:
        chars.insert(rnd.randint(1, len(chars)), chr(m))
    assert fold("".join(chars)) == fold(s)


PIECES = st.sampled_from(EMOJI + FOREIGN + INVISIBLE + ANSI + ["a", " ", "\n", "é", "\x1b"])
TEXTS = st.lists(st.one_of(PIECES, st.text(max_size=6)), max_size=12).map("".join)


@settings(max_examples=500, deadline=None)
@given(TEXTS)
def test_sanitize_is_idempotent(s: str) -> None:
    once = sanitize(s)
    assert sanitize(once) == once
    assert "\x1b" not in once and not invisible_reasons(once)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cf", "Cc", "Mn", "Cs", "Co", "Cn"))))
def test_strings_without_invisible_or_escapes_are_untouched(s: str) -> None:
    assert not suspicious(s)
    assert sanitize(s) is s


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(EMOJI + FOREIGN + ["a", " ", "x y"]), max_size=10).map("".join))
def test_emoji_sequences_survive_sanitize(s: str) -> None:
    assert sanitize(s) == s
