"""The fast path's prefilters: a string one of them rules out yields nothing from the path it
guards (the whole-text comparison with `reference` is in test_detectors.py)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from hypothesis import example, given, settings
from hypothesis import strategies as st

from lockgate.guardrails import scan
from lockgate.guardrails.patterns import DETECTORS, PHONE

# Digit runs at the edges of `_number_runs`: lengths 7 to 14, dates and date-hours, separators
# at the positions its alternatives test, `+`/`(` leads, IBAN heads, phone words, extensions.
NUMBERISH = st.sampled_from(
    [
        *("0", "1", "2", "4", "5", "9", "12", "123", "4111", "2026", "-", " ", ".", "(", ")"),
        *("+", "2026-09-04", "2026-09-04 11", "2026-09-04T11", "415-555-2671", "(415) 555-2671"),
        *("GB82", "DE89 ", "IT60X", "QA", "ab", "x", " x12", " ext. 5", "phone ", "tel:", "\n"),
        *("4111 1111 1111 1111", "123-45-6789", "+44 20 7946 0958", "1-", "00", "T", "Z", ":"),
        *("4111111111111111", "5555-5555-5555-4444", "3782 822463 10005", "536-22-1934", "]"),
        *("4155552671", "14155552671", "d27b8258-8785-4398", "1679977233498", "85.66.104.18", "_"),
    ]
)
ASCII = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=8)


def _hits(text: str, windows: Iterable[tuple[int, int]]) -> dict[str, list[tuple[int, int]]]:
    """The runs `_numbers` reads in `windows`, by the type `_may_hold` gives them."""
    hits: dict[str, list[tuple[int, int]]] = {}
    for lo, hi in windows:
        for m in scan._NUM_ANCHOR.finditer(text, lo, hi):
            if not scan._date(text, *m.span()):
                for type_ in scan._may_hold(text, *m.span()):
                    hits.setdefault(type_, []).append(m.span())
    return hits


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(NUMBERISH, ASCII), max_size=30).map("".join))
def test_the_run_windows_hold_every_run_a_number_detector_reads(text: str) -> None:
    """`_run_windows` (RE2's pass of `_number_runs`) leaves out only runs that `_date` skips
    or `_may_hold` gives no type: the same runs, so the same number findings."""
    if not text.isascii():
        return
    windows = scan._run_windows(text.encode("ascii"))
    assert all(a < b for a, b in windows)
    assert all(x[1] < y[0] for x, y in itertools.pairwise(windows))
    assert _hits(text, windows) == _hits(text, [(0, len(text))])
    assert scan._numbers(text, windows) == scan._numbers(text, [(0, len(text))])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(NUMBERISH, ASCII), min_size=40, max_size=120).map("".join))
def test_the_run_windows_hold_on_long_text(text: str) -> None:
    if text.isascii():
        text *= 3
        windows = scan._run_windows(text.encode("ascii"))
        assert _hits(text, windows) == _hits(text, [(0, len(text))])


_TOKENS = [DETECTORS[i] for i in scan._TOKEN_PRIORITIES]
TOKENISH = st.sampled_from(
    [
        *sorted({x for literals in scan._LITERALS.values() for x in literals}),
        *("-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "\n", " ", "_"),
        *("live_", "test_", "ant-api03-", "proj-", "T3BlbkFJ", ".eyJ", ".", "-", "/services/"),
        *("aB3dE5fG7hJ9kL1mN3pQ5rS7", "ABCDEFGHIJKLMNOP", "0123456789", "abcdefghij", "Zz"),
    ]
)


KEYISH = st.sampled_from(
    [
        *("password", "PASSWD", "pwd", "token", "api_key", "Secret", "credentials", "key"),
        *("authorization", "Authorization: Bearer ", '"', "'", ":", "=", " ", "\t", "\x1c"),
        *("@", "a@b.co", "://", "u:p@h", "::", ":", "fe80", "1:2:3:4:", ".", "10.0.0.1", "1.2"),
        *("https://", "user:", "s3cr3t@", "db.io", "mailto:", "x.y@mail.org", "@2x.png", "7."),
        *("2001:db8:0:0:0:0:0:1", "2a00:1450:4001:81b::200e", "fe80::1", "68:05:a7:d1:be:5e"),
        *("10.1.2.3", "8.8.8.8", "4.17.21", "v1.2.3.4", "1.2.3.4.5", "0", "255", "com"),
    ]
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.one_of(TOKENISH, NUMBERISH, KEYISH, ASCII), max_size=30).map("".join))
def test_a_family_the_set_rules_out_finds_nothing(text: str) -> None:
    """`_FAMILIES` names every family that has something to read in an ASCII string: a
    key before its separator, an `@`, an IPv6 or IPv4 anchor, a number run that `_numbers`
    reads, a match of each token detector's pattern."""
    if not text.isascii():
        return
    named = set(scan._FAMILIES.Match(text.encode("ascii")) or ())
    if scan._F_KEY not in named:
        assert scan._key_hits(text.lower()) == []
    if scan._F_EMAIL not in named:
        assert "@" not in text
    if scan._F_V6 not in named:
        assert scan._ipv6(text) == []
    if scan._F_V4 not in named:
        assert scan._ipv4(text) == []
    if scan._F_NUMBER not in named:
        assert _hits(text, [(0, len(text))]) == {}
    for i, (pattern, _, _, _) in enumerate(_TOKENS):
        if scan._F_TOKENS + i not in named:
            assert pattern.search(text) is None, (i, text)


def test_long_ascii_text_runs_only_the_token_detectors_the_set_names() -> None:
    text = "x" * 5000 + " ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5 gh sk- A3T eyJ"
    named = sorted(scan._FAMILIES.Match(text.encode("ascii")) or ())
    tokens = [DETECTORS[scan._TOKEN_PRIORITIES[f - scan._F_TOKENS]][1] for f in named]
    assert tokens == ["GITHUB_TOKEN"]
    assert scan._FAMILIES.Match(b"x" * 5000) is None


def test_phone_detector_is_not_a_token() -> None:
    assert all(DETECTORS[i][1] != PHONE for i in scan._TOKEN_PRIORITIES)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(TOKENISH, NUMBERISH, ASCII), min_size=10, max_size=40).map("".join))
def test_the_fast_path_holds_on_text_past_the_long_text_threshold(text: str) -> None:
    """Past `_RUNS_MIN` characters the number runs are read in `_run_windows`."""
    from lockgate.guardrails.detectors import _resolve, find

    text = (text + " ") * ((scan._RUNS_MIN + 76) // (len(text) + 1) + 1)
    assert find(text) == _resolve(scan.reference(text))


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(NUMBERISH, ASCII, st.text(max_size=4)), max_size=30).map("".join))
def test_a_window_the_phone_gate_rules_out_holds_no_phone(text: str) -> None:
    """`_PHONE_GATE` is in every match of the phone pattern, so a window without it has no
    phone-shaped run to parse."""
    pattern = DETECTORS[scan._PRIORITY[PHONE]][0]
    if scan._PHONE_GATE.search(text) is None:
        assert pattern.search(text) is None
    for m in pattern.finditer(text):
        assert scan._PHONE_GATE.search(m.group()) is not None


V6ISH = st.sampled_from(
    [":", "::", "a", "f", "0", "12", "fe80", "2001", "db8", "1:2", " ", ".", "-", "g", "x"]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(V6ISH, ASCII), max_size=30).map("".join))
def test_an_address_the_ipv6_gate_rules_out_is_not_found(text: str) -> None:
    """Each IPv6 address the detector finds (its validator passed) makes `_may_hold_ipv6`
    true on its own span, hence on any window holding it."""
    for span, _ in scan._found(scan._P_IPV6, text):
        assert scan._may_hold_ipv6(text, span.start, span.end)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="ab.%+-_@ \\x\u00e9Z9", max_size=90), st.integers(0, 90))
def test_the_local_part_before_an_at_is_the_run_of_its_characters(text: str, at: int) -> None:
    import re

    at = min(at, len(text))
    lo = max(0, at - 64)
    m = re.compile(r"[A-Za-z0-9._%+-]{1,64}\Z").search(text, lo, at)
    start = lo + len(text[lo:at].rstrip(scan._LOCAL_CHARS))
    assert (m.start() if m else at) == start


V4ISH = st.sampled_from(
    [
        *("1", "10", "255", "256", "0", "192", ".", "..", "v", "version ", "==", " ", "-", "a"),
        *("10.1.2.3", "8.8.8.8", "4.17.21", "1.2.3.4.5", "127.0.0.1", "192.0.2.1", "\u0661", "x"),
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(V4ISH, ASCII), max_size=30).map("".join))
def test_ipv4_windows_find_what_the_pattern_finds_over_the_whole_text(text: str) -> None:
    """A dotted quad's window starts from its first three dots (`_DOTTED_QUAD`); a string
    past `_RUNS_MIN` characters is read in those windows, a shorter one whole."""
    whole = scan._found(scan._P_IPV4, text)
    assert scan._ipv4(text) == whole
    pad = " " * (scan._RUNS_MIN + 1)
    assert scan._ipv4(pad + text) == [
        (type(s)(s.start + len(pad), s.end + len(pad), s.type), p) for s, p in whole
    ]


CARDISH = st.sampled_from(
    [
        *("4111 1111 1111 1111", "4111111111111111", "378282246310005", "5555-5555-5555-4444"),
        *("6011000990139424", "3530111333300000", "30569309025904", "2223003122003222"),
        *("1679977233498", "0958 ", "+", "-", "]", "[", "a", "=", " ", "1", "4", "6", "9", "0"),
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(CARDISH, ASCII), max_size=20).map("".join))
def test_a_card_the_detector_finds_starts_where_the_card_start_says(text: str) -> None:
    """Each card found (whole text, validated) starts with a `_CARD_START` match."""
    for span, _ in scan._found(scan._P_CARD, text):
        assert scan._CARD_START.match(text, span.start, span.end) is not None


def _runs_hold_what_the_detector_finds(text: str, name: str) -> None:
    """Each `name` entity the detector finds over the whole text (validated) lies in a number
    run to which `_may_hold` gives `name`, and the number path finds exactly those."""
    priority = scan._PRIORITY[name]
    whole = [s for s, _ in scan._found(priority, text)]
    runs = [m.span() for m in scan._NUM_ANCHOR.finditer(text)]
    for span in whole:
        assert any(
            a <= span.start and span.end <= b and name in scan._may_hold(text, a, b)
            for a, b in runs
        )
    found = [s for s, p in scan._numbers(text, [(0, len(text))]) if p == priority]
    assert sorted((s.start, s.end) for s in found) == sorted((s.start, s.end) for s in whole)


DOTTEDISH = st.sampled_from(["212.252.206.86", "1.2.3.4.5", ".", "-", " ", "123", "4111", "9"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(CARDISH, DOTTEDISH, ASCII), max_size=20).map("".join))
def test_a_card_the_detector_finds_is_in_a_run_that_may_hold_one(text: str) -> None:
    """Each card found (whole text, validated) lies in a run to which `_may_hold` gives CARD
    (13 characters or more, four digits in a row), so the card windows of `_numbers` hold it
    and the number path finds what the card detector finds over the whole text."""
    _runs_hold_what_the_detector_finds(text, "CARD")


SSNISH = st.sampled_from(["536-22-1934", "123-45-6789", "12-34", "+55 11 96123-4341", "-", "1"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(SSNISH, NUMBERISH, ASCII), max_size=20).map("".join))
def test_an_ssn_the_detector_finds_is_in_a_run_that_may_hold_one(text: str) -> None:
    """Each SSN found (whole text, validated) lies in a run to which `_may_hold` gives SSN
    (11 characters or more, two dashes), and the number path finds the same SSNs."""
    _runs_hold_what_the_detector_finds(text, "SSN")


# Bare runs of 9 to 12 digits (a NANP number with and without its `1`), glued or not.
GLUEDISH = st.sampled_from(
    [
        *("IT62L", "x", "_", "phone ", "call", "4155552671", "+1", " ", "-", "14155552671"),
        *("415555267", "141555526712", "(", ")", "4111111111111", "x12", "tel "),
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(GLUEDISH, NUMBERISH, ASCII), max_size=20).map("".join))
@example("phone 4155552671phone 41555526714155552671")  # a window once cut the second run
def test_the_number_path_finds_the_phones_the_whole_text_holds(text: str) -> None:
    """The phones `_numbers` finds in the runs `_may_hold` names PHONE (a bare run glued to a
    word is none) are the ones the phone path finds over the whole text."""
    pattern = DETECTORS[scan._P_PHONE][0]
    whole = [(s.start, s.end) for s in scan._phones(pattern, text)]
    found = [
        (s.start, s.end) for s, p in scan._numbers(text, [(0, len(text))]) if p == scan._P_PHONE
    ]
    assert sorted(found) == sorted(whole)


def test_the_family_set_holds_on_long_random_text() -> None:
    """A set's DFA that ran out of memory would name nothing (RE2 reports it only in a log
    line): on 256 KB of random printable ASCII, whose states are many, it still names each
    family that has something to read."""
    import random

    rng = random.Random(7)
    alphabet = "".join(chr(c) for c in range(32, 127)) + "\n\t"
    text = "".join(rng.choice(alphabet) for _ in range(1 << 18))
    text += " ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5 fe80::1 10.1.2.3 password: x"
    named = set(scan._FAMILIES.Match(text.encode("ascii")) or ())
    assert {scan._F_KEY, scan._F_EMAIL, scan._F_V6, scan._F_V4, scan._F_NUMBER} <= named
    assert any(DETECTORS[scan._TOKEN_PRIORITIES[f - scan._F_TOKENS]][1] == "GITHUB_TOKEN"
               for f in named if f >= scan._F_TOKENS)  # fmt: skip
