"""Confusable names, read the way an attacker writes them: case, full-width and other
compatibility forms, Cyrillic and Greek homoglyphs, separators, digits for letters, invisible
characters and combining marks all meet the name they imitate; a name never meets itself, and
genuinely different names never meet."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lockgate.guardrails.confusables import (
    _ASCII_PROTOTYPES,
    _ascii_keys,
    _prototypes,
    _unicode_keys,
    confusable_with,
    lookalike_name,
    skeleton,
    spoofed_names,
)

FULLWIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "send_email")  # NFKC folds it

# Latin letters and what an attacker puts in their place: the lookalikes UTS 39 lists (not Greek
# chi for x, which it keeps apart).
HOMOGLYPHS = {
    "a": "\u0430\u0251",  # Cyrillic A, Latin Alpha
    "c": "\u0441\u03f2",  # Cyrillic Es, Greek Lunate Sigma Symbol
    "d": "\u0501",  # Cyrillic Komi De
    "e": "\u0435",  # Cyrillic Ie
    "h": "\u04bb",  # Cyrillic Shha
    "i": "\u0456\u0131\u03b9\u04cf",  # Cyrillic I, Latin Dotless I, Greek Iota, Cyrillic Palochka
    "j": "\u0458",  # Cyrillic Je
    "l": "\u0406\u04c0",  # Cyrillic Capital I, Cyrillic Capital Palochka
    "n": "\u0578",  # Armenian Vo
    "o": "\u043e\u03bf\u0585",  # Cyrillic O, Greek Omicron, Armenian Oh
    "p": "\u0440\u03c1",  # Cyrillic Er, Greek Rho
    "q": "\u051b",  # Cyrillic Qa
    "s": "\u0455",  # Cyrillic Dze
    "u": "\u057d",  # Armenian Seh
    "v": "\u03bd\u0475",  # Greek Nu, Cyrillic Izhitsa
    "w": "\u051d",  # Cyrillic We
    "x": "\u0445\u2179",  # Cyrillic Ha, Small Roman Numeral Ten
    "y": "\u0443",  # Cyrillic U
    "A": "\u0410\u0391",  # Cyrillic Capital A, Greek Capital Alpha
    "B": "\u0412\u0392",  # Cyrillic Capital Ve, Greek Capital Beta
    "C": "\u0421",  # Cyrillic Capital Es
    "E": "\u0415\u0395",  # Cyrillic Capital Ie, Greek Capital Epsilon
    "H": "\u041d\u0397",  # Cyrillic Capital En, Greek Capital Eta
    "I": "\u0406\u0399",  # Cyrillic Capital I, Greek Capital Iota
    "K": "\u041a\u039a",  # Cyrillic Capital Ka, Greek Capital Kappa
    "M": "\u041c\u039c",  # Cyrillic Capital Em, Greek Capital Mu
    "N": "\u039d",  # Greek Capital Nu
    "O": "\u041e\u039f",  # Cyrillic Capital O, Greek Capital Omicron
    "P": "\u0420\u03a1",  # Cyrillic Capital Er, Greek Capital Rho
    "T": "\u0422\u03a4",  # Cyrillic Capital Te, Greek Capital Tau
    "X": "\u0425\u03a7",  # Cyrillic Capital Ha, Greek Capital Chi
    "Y": "\u03a5",  # Greek Capital Upsilon
    "Z": "\u0396",  # Greek Capital Zeta
}
INVISIBLE = [
    "\u200b",  # zero-width space
    "\u200c",  # ZWNJ
    "\u200d",  # ZWJ
    "\u2060",  # word joiner
    "\ufeff",  # BOM
    "\u00ad",  # soft hyphen
    "\u200e",  # LRM
    "\u202e",  # right-to-left override
    "\u2066",  # LRI
    "\U000e0041",  # tag A
    "\ufe0f",  # variation selector 16
    "\u0301",  # combining acute
    "\u0336",  # combining long stroke overlay
]
SEPARATORS = ["_", "-", ".", " ", "", "__", ":", "/", "\u00b7", "\u2010", "\u3000", "\uff3f"]

words = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=1, max_size=8)
latin_names = st.lists(words, min_size=1, max_size=4).map("_".join)
# Any letters and digits of any script, as the findings scanner sees them.
any_names = st.text(
    alphabet=st.characters(categories=("Ll", "Lu", "Nd"), include_characters="_-"),
    min_size=1,
    max_size=24,
)


def meets(variant: str, name: str) -> bool:
    return confusable_with(variant, ["list_users", name]) == name and (
        confusable_with(name, [variant]) == variant
    )


# --- never itself ---------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=30), st.lists(st.text(max_size=12), max_size=5))
def test_a_name_is_never_confusable_with_itself(name: str, others: list[str]) -> None:
    assert confusable_with(name, [name]) is None
    assert confusable_with(name, [*others, name]) != name
    assert spoofed_names([name, name]) == {}


@settings(max_examples=300, deadline=None)
@given(any_names, st.lists(any_names, max_size=5))
def test_no_letter_or_digit_name_is_confusable_with_itself(name: str, others: list[str]) -> None:
    assert confusable_with(name, [name]) is None
    assert confusable_with(name, [*others, name]) != name


# --- variants that must meet ----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(any_names)
def test_case_variants_are_confusable(name: str) -> None:
    for variant in {name.swapcase(), name.upper(), name.lower(), name.casefold()} - {name}:
        assert meets(variant, name)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_the_case_key_is_case_blind_for_any_text(name: str) -> None:
    assert skeleton(name) == skeleton(name)
    assert skeleton(name.casefold())[0] == skeleton(name)[0]


@settings(max_examples=300, deadline=None)
@given(latin_names, st.data())
def test_fullwidth_and_mathematical_forms_are_confusable(name: str, data: st.DataObject) -> None:
    styles = [
        "FULLWIDTH LATIN SMALL LETTER",
        "MATHEMATICAL BOLD SMALL",
        "MATHEMATICAL SCRIPT SMALL",
    ]
    style = data.draw(st.sampled_from(styles))

    def styled(c: str) -> str:
        if c == "_":
            return "\uff3f" if style.startswith("FULLWIDTH") else c
        try:
            return unicodedata.lookup(f"{style} {c.upper()}")
        except KeyError:  # a reserved code point in that alphabet (script small e, g, o)
            return c

    variant = "".join(styled(c) for c in name)
    assume(variant != name)
    assert unicodedata.normalize("NFKC", variant) == name
    assert meets(variant, name)


@settings(max_examples=400, deadline=None)
@given(latin_names, st.data())
def test_cyrillic_greek_and_other_homoglyphs_are_confusable(name: str, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from([name, name.upper(), name.title()]))
    spots = [i for i, c in enumerate(name) if c in HOMOGLYPHS]
    assume(spots)
    chosen = data.draw(st.sets(st.sampled_from(spots), min_size=1))
    chars = list(name)
    for i in chosen:
        chars[i] = data.draw(st.sampled_from(HOMOGLYPHS[chars[i]]))
    variant = "".join(chars)
    assert meets(variant, name)


@settings(max_examples=300, deadline=None)
@given(st.lists(words, min_size=2, max_size=4), st.data())
def test_separator_swaps_are_confusable(parts: list[str], data: st.DataObject) -> None:
    name = "_".join(parts)
    seps = data.draw(
        st.lists(st.sampled_from(SEPARATORS), min_size=len(parts) - 1, max_size=len(parts) - 1)
    )
    variant = parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=True))
    assume(variant != name)
    assert meets(variant, name)


@settings(max_examples=300, deadline=None)
@given(latin_names, st.data())
def test_invisible_characters_and_marks_are_dropped(name: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(1, len(name)))
    junk = "".join(data.draw(st.lists(st.sampled_from(INVISIBLE), min_size=1, max_size=3)))
    assert meets(name[:at] + junk + name[at:], name)


@pytest.mark.parametrize(
    ("variant", "name"),
    [
        ("read_fi1e", "read_file"),
        ("read_fiIe", "read_file"),  # capital I as l, by glyph
        ("read_fIle", "read_file"),  # capital I as i, by case
        ("t00l", "tool"),
        ("b00kmark", "bookmark"),
        ("deIete_repo", "delete_repo"),
        ("get_fi|e", "get_file"),
        ("send_ernail", "send_email"),  # rn as m
        ("vvrite_file", "write_file"),  # vv as w
        ("Send-Fi1e", "send_file"),
        ("s\u0435nd_email", "send_email"),
        ("\uff53end_email", "send_email"),
        (FULLWIDTH, "send_email"),
        ("send\u200b_email", "send_email"),
        ("s\u00e9nd_email", "send_email"),  # precomposed é
        ("se\u0301nd_email", "send_email"),  # e + combining acute
        ("SEND_EMAIL", "send_email"),
        ("sendemail", "send_email"),
        ("\u0455end_ema\u0456l", "send_email"),
    ],
)
def test_known_spoofs_meet(variant: str, name: str) -> None:
    assert meets(variant, name)
    assert spoofed_names([name, "list_users", variant]) == {name: variant, variant: name}


# --- names that must not meet ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "others"),
    [
        ("list_issues", ["list_users"]),
        ("send_email", ["send_emails", "read_email"]),
        ("get_user", ["get_users", "list_users"]),
        ("get_issue", ["get_issues", "list_issue"]),
        ("create_issue", ["update_issue", "delete_issue"]),
        ("search", ["research", "searches"]),
        ("検索", ["検査"]),
        ("поиск", ["search"]),
        ("read_file", ["read_files", "write_file"]),
        ("tool_a", ["tool_b", "tool_c"]),
        ("v1_list", ["v2_list"]),
    ],
)
def test_distinct_names_do_not_meet(name: str, others: list[str]) -> None:
    assert confusable_with(name, others) is None
    assert spoofed_names([name, *others]) == {}


@settings(max_examples=300, deadline=None)
@given(st.lists(words, min_size=1, max_size=3), st.lists(words, min_size=1, max_size=3))
def test_names_whose_words_differ_in_letters_do_not_meet(a: list[str], b: list[str]) -> None:
    # Letters that no rule joins (no i/l/o, no rn/vv/m/w): different words stay different.
    plain = str.maketrans("", "", "ilomnrvw")
    a = [w.translate(plain) or "x" for w in a]
    b = [w.translate(plain) or "x" for w in b]
    assume("".join(a) != "".join(b))
    assert confusable_with("_".join(a), ["_".join(b)]) is None


# --- one list -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "send_email",
                "Send-Email",
                "s\u0435nd_email",
                "get_file",
                "get_fi1e",
                "list_users",
                "list_issues",
                "t00l",
                "tool",
            ]
        )
        | any_names,
        max_size=8,
    )
)
def test_spoofed_names_agrees_with_confusable_with(names: list[str]) -> None:
    spoofed = spoofed_names(names)
    for name in set(names):
        others = [n for n in names if n != name]
        assert (name in spoofed) == (confusable_with(name, others) is not None)
        if name in spoofed:
            assert spoofed[name] != name and confusable_with(name, [spoofed[name]])


def test_spoofed_names_reports_both_of_a_pair() -> None:
    assert spoofed_names(["a_b", "A-B", "c"]) == {"a_b": "A-B", "A-B": "a_b"}


# --- the fast path and the cache ------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(max_codepoint=127), max_size=30))
def test_the_ascii_fast_path_equals_the_general_one(name: str) -> None:
    assert _ascii_keys(name) == _unicode_keys(name)


def test_the_written_out_ascii_classes_are_the_datas() -> None:
    # ASCII names never load the confusables data: the ASCII part of its classes is written out.
    assert {ch: rep for ch, rep in _prototypes().items() if ch.isascii()} == _ASCII_PROTOTYPES


def test_long_names_are_not_cached_but_read_the_same() -> None:
    name = "send_email_" * 40
    assert confusable_with(name.upper(), [name]) == name
    assert confusable_with(name.replace("e", "\u0435"), [name]) == name


# --- a lone lookalike name ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "lookalike"),
    [
        ("s\u0435nd_email", True),  # a Cyrillic e among ASCII letters
        (FULLWIDTH, True),
        ("\uff53end_email", True),
        ("send_email\u200b", True),  # ASCII once the invisible character is gone
        ("send_email", False),
        ("поиск", False),  # another script, no ASCII letters
        ("\u0441\u043e\u0440", False),  # Russian "sor": all Cyrillic lookalikes of "cop", a word
        ("検索_docs", False),
        ("r\u00e9sum\u00e9_parse", False),  # accented Latin letters are letters, not disguises
        (
            "get_\u0434\u0430\u043d\u043d\u044b\u0435",
            False,
        ),  # Cyrillic word: д and н imitate nothing
    ],
)
def test_lookalike_name(name: str, lookalike: bool) -> None:
    assert lookalike_name(name) is lookalike
