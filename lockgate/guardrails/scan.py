"""How the detector table is run on a string fast: `candidates(text)`, every span any
built-in detector finds (with its detector's priority), the same as running each pattern over
the whole string (`reference`, which the property tests compare it with).

Why it exists and why hand-written: `find` runs on every string value crossing the gateway,
and running ~27 regexes over each string measured 3.4 MB/s (2 MB/s on short JSON values,
where the cost is per call). `re` scans fast only for a literal first character (~0.3 ms/MB)
and much slower for a character class (~6 ms/MB, `\\d` ~9), a lookbehind or IGNORECASE
(~50 ms/MB); no scanner library does anchors, windows and validators without a model or a
native build. So each family of detectors is found by one cheap anchor and its patterns run
only in windows around the anchor's hits:
- numbers (CARD, IBAN, SSN, PHONE): runs of 7+ digits and separators minus ISO dates, with a
  prefilter per type (`_may_hold`, all types in one pass per run); in text past 128
  characters only the runs that RE2's form of that prefilter (`_number_runs`) finds are
  read, since most runs in logs are dates, ids and timestamps; a phone window is parsed only
  if it holds a `+CC` or a NANP tail (`_PHONE_GATE`); IPv4 on dotted digits (a literal-first scan);
- secret-named keys (SECRET_VALUE, AWS_SECRET_KEY, AUTH_HEADER): each keyword found by
  substring search in the lowercased text and followed by `:`/`=`; the key is confirmed just
  before the separator and the value matched right after it;
- EMAIL at the local part before each `@`, URL_PASSWORD around each `://`, IPv6 around `::` or
  a 4-colon hex chain (a window without `::` or eight groups, a MAC address's, skipped);
  each token detector over the whole text when its pattern may match.
Before all that, one RE2 set over an ASCII string (`_FAMILIES`: each family's anchor, or its
detector's whole pattern by `superset.to_re2`, as for each token and IPv4, and for IPv6 `::`
or eight groups) says in one DFA pass which families have anything to read (~1.5 us on a
short value, ~3 ms/MB on long text): most values and prose are ruled out at once, `gh` in
prose or a MAC address runs nothing. Text that is not ASCII tests each family by a cheap test
of its own. The property tests check each prefilter: where it rules a family out, the family's
full path finds nothing.
Measured 2026-12-07 ~15:57 UTC on this project's shared 2-core VM, which ran 1.5-2x slower
than the quiet host of the earlier numbers (the previous version gave ~20 MB/s as documents
and ~12.5-14 as values there, 8-13 and 6-8.5 here during the day): by bench/redact.py on its
mixed load (logs, JSON API responses, code, prose, ~1 entity per KB), 19.4-19.6 MB/s on one
core as 64 KB documents and 11.5-12.4 MB/s as its ~100-character string values; against the
previous version of this module in the same process, interleaved per document or per 100
values (best of 11 rounds each), 1.54x as documents (12.9 -> 19.9 MB/s) and 1.54x as values
(8.5 -> 13.1 MB/s), with the same findings on the load and the corpus. What is left is spread
thin but for one part: parsing the real phone numbers (`phonenumbers`, 40-300 us each) is
about a quarter of the documents' time. Since (18:30 UTC, the VM busier still), the parser's
answers are cached per candidate (`validators.phone_cache`) and the phone context checks try
substrings first: 1.33-1.35x as documents and values with the cache, 1.04-1.06x without it,
against the version above in one process, interleaved. Since (22:46 UTC, issue 11's speed
target without the cache), cheaper prefilters per run (no card window without four digits in
a row, no SSN window without two dashes, no phone window for a bare run glued to a word) and
mod-97 by one map: 1.02x as documents and 1.05x as values, interleaved, without the cache
(~19-20 and ~14 MB/s on a quiet spell). Since (2026-12-08 ~00:50 UTC): all number types
decided per run in one pass, a card or SSN searched in its own run, the RE2 form of the runs
naming what a run must hold (a UUID, a timestamp or an IPv4 address runs no number path),
RE2 runs past 128 characters, IPv4 in a short string by its pattern alone, and on the phone
parser's side its pattern cache and a faster exact validity check
(`validators.valid_number_checker`): 1.12-1.15x as documents and 1.24-1.27x as values,
interleaved, without the cache (`bench/redact_ab.py`; 18.7-23.8 and 17.8-19.0 MB/s by
bench/redact.py on a quiet spell). Where a value's time still goes without the cache: the
phone parser (`phonenumbers.parse` and the matcher's grouping check, ~60-90 us a grouped
number, about a quarter of the values' time; every candidate on the bench's load is a real
number, so no cheaper rejection helps there), the RE2 family pass every value of 15
characters or more pays (~1-1.5 us, mostly the call), and ~10-20 us of Python per value that
holds an entity.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Final

import re2

from lockgate.guardrails import validators as v
from lockgate.guardrails.patterns import (
    ANTHROPIC_KEY,
    AUTH_HEADER,
    AWS_ACCESS_KEY,
    AWS_SECRET_KEY,
    CARD,
    DETECTORS,
    EMAIL,
    GITHUB_TOKEN,
    GITLAB_TOKEN,
    GOOGLE_API_KEY,
    IBAN,
    IP,
    JWT,
    KIND_EMAIL,
    KIND_PHONE,
    KIND_SECRET,
    NPM_TOKEN,
    OPENAI_KEY,
    PHONE,
    PRIVATE_KEY,
    SECRET_KEY_WORDS,
    SECRET_VALUE,
    SENDGRID_KEY,
    SLACK_TOKEN,
    SSN,
    STRIPE_KEY,
    URL_PASSWORD,
    Span,
)
from lockgate.guardrails.superset import first_span, pattern_set, to_re2


def _secret_value(m: re.Match[str]) -> Span | None:
    """The value group of a secret-named key, if it looks like a credential."""
    for g in (1, 2, 3):
        value = m.group(g)
        if value is not None:
            rest = m.string[m.end(g) : m.end(g) + 2] if g == 3 else ""
            before = m.string[max(0, m.start() - 64) : m.start()]
            if v.credential(value, g == 3, rest) and not v.in_url_userinfo(before):
                return Span(m.start(g), m.end(g), SECRET_VALUE)
            return None
    return None


def _phones(
    pattern: re.Pattern[str], text: str, lo: int = 0, hi: int | None = None
) -> Iterable[Span]:
    """Phone numbers in text[lo:hi]: each phone-shaped run, confirmed by the parser; after a
    number found at the start of a longer run the rest of the run is searched again."""
    pos, end = lo, len(text) if hi is None else hi
    while (m := pattern.search(text, pos, end)) is not None:
        found = v.phone(m.group(), text[max(0, m.start() - 32) : m.start()])
        if found is None:
            pos = m.end()
            continue
        yield Span(m.start() + found[0], m.start() + found[1], PHONE)
        pos = m.start() + found[1]


# The characters of an address's local part: the one before an `@` is the run of them that
# ends there, 64 at most (one C-speed rstrip, where a search for the run ending at the `@`
# tried each of the 64 starts).
_LOCAL_CHARS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-"


def _emails(pattern: re.Pattern[str], text: str) -> Iterable[Span]:
    """Emails, matched only where one can start: at the beginning of the local-part run that
    ends at each `@` (a scan of the whole text would try the local part at every letter, and
    a search per `@` would retry every start in its window: `a@a@a@…` made that quadratic)."""
    pos, n = 0, len(text)
    while (at := text.find("@", pos)) >= 0:
        pos = at + 1
        lo = max(0, at - 64)
        start = lo + len(text[lo:at].rstrip(_LOCAL_CHARS))
        if start == at:
            continue
        m = pattern.match(text, start, min(n, at + 256))
        if m is not None and v.email(m.group()):
            yield Span(m.start(), m.end(), EMAIL)
            pos = m.end()


def _card_prefix(m: re.Match[str]) -> int:
    """Where a grouped 16-digit card ends when the pattern took a following 3-digit group as
    the tail of a 19-digit one (`4111 1111 1111 1111 415.555.2671`), else 0."""
    g = m.group()
    return m.start() + 19 if len(g) == 23 and g[19] in " -" and v.card(g[:19]) else 0


def _found(priority: int, text: str, lo: int = 0, hi: int | None = None) -> list[tuple[Span, int]]:
    """The matches in text[lo:hi] of the detector `priority` that pass its validator, each
    with the priority. A match that fails it may hide a valid one starting inside it (`0958
    4111 1111 1111 1111`: the card starts at the second group), so the search goes on from
    the next character, not from the end of the failed match. A list, not a generator: most
    windows hold one match or none, where a generator's set-up costs more than the search."""
    pattern, type_, group, valid = DETECTORS[priority]
    out: list[tuple[Span, int]] = []
    pos, end = lo, len(text) if hi is None else hi
    while (m := pattern.search(text, pos, end)) is not None:
        if valid is None or valid(m):
            out.append((Span(m.start(group), m.end(group), type_), priority))
            pos = m.end()
        elif type_ == CARD and (short := _card_prefix(m)):
            out.append((Span(m.start(), short, CARD), priority))
            pos = short
        else:
            pos = m.start() + 1
    return out


def reference(text: str) -> Iterable[tuple[Span, int]]:
    """Every detector's pattern over the whole text: what the fast path below must equal
    (the property tests compare them), and the path for text whose lowercase form has another
    length (`İ`), where the fast path's keyword positions would not line up."""
    for priority, (pattern, _, group, _) in enumerate(DETECTORS):
        if group == KIND_EMAIL:
            spans: Iterable[Span] = _emails(pattern, text)
        elif group == KIND_PHONE:
            spans = _phones(pattern, text)
        elif group == KIND_SECRET:
            spans = (s for m in pattern.finditer(text) if (s := _secret_value(m)) is not None)
        else:
            yield from _found(priority, text)
            continue
        yield from ((s, priority) for s in spans)


# Runs of 7+ digits and separators (a card, SSN or phone number has one, and so has an IBAN
# whose BBAN has a numeric bank code or account of 7 digits with its check digits, which is
# every country's format but for all-alphanumeric accounts such as LC or QA); dotted
# digits for IPv4. Per type: the window before and after a run that its pattern may need.
_NUM_ANCHOR = re.compile(r"[0-9][0-9 .()\-]{5,}[0-9]")
# Before a character only a digit, `@`, `:` or `=` can start an entity that is not a token.
_SHORT_GATE = re.compile(r"[0-9@:=]")
_DOTTED = re.compile(r"\.[0-9]{1,3}\.[0-9]")
# The first three dots of a dotted quad (its window: the first octet before, the last after);
# `4.17.21` has two and costs no window.
_DOTTED_QUAD = re.compile(r"\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")
# What every phone-shaped run holds: a `+CC` or the NANP form's ten digits. A class-first
# scan of a window is cheaper than the phone pattern, whose lookbehind is tried at every
# position (~6 us on a UUID's window, where most windows have no phone).
_PHONE_GATE = re.compile(r"\+[1-9]|[2-9]\d\d(?:\) ?|[ .\-])?[2-9]\d\d[ .\-]?\d{4}")
_EIGHT_GROUPS = re.compile(r"(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]")
_V6_TAKEN: Final = "::|" + _EIGHT_GROUPS.pattern
_V6_ANCHOR = re.compile(r"::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
# The literals a token detector's pattern starts with.
_LITERALS: Final[Mapping[str, tuple[str, ...]]] = {
    PRIVATE_KEY: ("PRIVATE KEY",),
    AWS_ACCESS_KEY: ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
    GITHUB_TOKEN: ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    GITLAB_TOKEN: ("glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glsoat-", "glcbt-"),
    SLACK_TOKEN: ("xox", "hooks.slack.com"),
    STRIPE_KEY: ("sk_", "rk_", "whsec_"),
    ANTHROPIC_KEY: ("sk-ant-",),
    OPENAI_KEY: ("sk-",),
    GOOGLE_API_KEY: ("AIza",),
    NPM_TOKEN: ("npm_",),
    SENDGRID_KEY: ("SG.",),
    JWT: ("eyJ",),
}
_KEYED: Final = {
    # type: (the key, the value right after it), split from the detector's pattern
    SECRET_VALUE: (
        re.compile(r"(?i)(?:(?<=[_-])|(?<![a-z0-9]))" + SECRET_KEY_WORDS + r"[\"']?\s*[:=]"),
        re.compile(
            r"\s*(?:\"([^\"\\\n]{3,512})\"|'([^'\\\n]{3,512})'|([^\s\"',;&<>{}\[\]()]{3,512}))"
        ),
    ),
    AWS_SECRET_KEY: (
        re.compile(r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]"),
        re.compile(r"\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"),
    ),
    AUTH_HEADER: (
        re.compile(r"(?i)(?<![\w-])(?:proxy-)?authorization[\"']?\s*[:=]"),
        re.compile(r"(?i)\s*[\"']?(?:bearer|basic|token)\s+([\w.~+/=-]{8,})"),
    ),
}
_PRIORITY: Final = {type_: i for i, (_, type_, _, _) in reversed(list(enumerate(DETECTORS)))}
_P_EMAIL, _P_URL = _PRIORITY[EMAIL], _PRIORITY[URL_PASSWORD]
_P_IPV4 = _PRIORITY[IP]
_P_IPV6 = _P_IPV4 + 1
_P_PHONE, _P_CARD, _P_SSN, _P_IBAN = (_PRIORITY[t] for t in (PHONE, CARD, SSN, IBAN))
# Every detector of a token type (Stripe, GitHub and Slack have several patterns).
_INDICES: Final = {t: tuple(i for i, d in enumerate(DETECTORS) if d[1] == t) for t in _LITERALS}
_TOKEN_PRIORITIES: Final = tuple(sorted(i for t in _LITERALS for i in _INDICES[t]))
# The token detectors by substrings all their literals hold, so that a short string without
# them costs a few substring tests for the whole group (none of these is common in prose,
# timestamps or ids, unlike `-` or `_` alone).
_TOKEN_GROUPS: Final = tuple(
    (needles, tuple((_INDICES[t], _LITERALS[t]) for t in types))
    for needles, types in (
        (("PRIVATE KEY",), (PRIVATE_KEY,)),
        (("A",), (AWS_ACCESS_KEY, GOOGLE_API_KEY)),
        (("gh", "_"), (GITHUB_TOKEN,)),
        (("github_pat_",), (GITHUB_TOKEN,)),
        (("gl", "-"), (GITLAB_TOKEN,)),
        (("k_",), (STRIPE_KEY,)),
        (("whsec_",), (STRIPE_KEY,)),
        (("npm_",), (NPM_TOKEN,)),
        (("sk-",), (ANTHROPIC_KEY, OPENAI_KEY)),
        (("xox",), (SLACK_TOKEN,)),
        (("hooks.slack",), (SLACK_TOKEN,)),
        (("SG.",), (SENDGRID_KEY,)),
        (("eyJ",), (JWT,)),
    )
)
# Secret-named keys: a keyword, then what may follow it up to the `:`/`=` (lowercased text).
_KEY_TAIL = r"[\"']?\s*[:=]"
_KEYWORDS: Final = tuple(
    (word, re.compile(tail + _KEY_TAIL))
    for word, tail in (
        ("key", ""),
        ("secret", ""),
        ("token", ""),
        ("passw", "(?:or)?d"),
        ("pwd", ""),
        ("credential", "s?"),
        ("authorization", ""),
    )
)


def _keyed(type_: str, text: str, hits: list[tuple[int, int]]) -> Iterable[Span]:
    """The values of secret-named keys at the hits, as the detector's whole pattern finds them
    (the key confirmed just before the separator, the value matched right after it)."""
    key_rx, value_rx = _KEYED[type_]
    last = 0
    for start, end in hits:
        if start < last:
            continue
        key = key_rx.search(text, max(last, start - 24), end)
        while key is not None and key.end() != end:
            key = key_rx.search(text, key.start() + 1, end)
        if key is None or (m := value_rx.match(text, end)) is None:
            continue
        if type_ == SECRET_VALUE:
            last = m.end()  # the reference path's finditer consumes even a rejected value
            for g in (1, 2, 3):
                value = m.group(g)
                if value is not None:
                    rest = text[m.end(g) : m.end(g) + 2] if g == 3 else ""
                    before = text[max(0, key.start() - 64) : key.start()]
                    if v.credential(value, g == 3, rest) and not v.in_url_userinfo(before):
                        yield Span(m.start(g), m.end(g), SECRET_VALUE)
                    break
        elif v.real(m.group(1)):
            last = m.end()
            yield Span(m.start(1), m.end(1), type_)


_RUN_CHARS: Final = frozenset("0123456789 .()-+")


def _merged(
    hits: Iterable[tuple[int, int]], back: int, fwd: int, n: int, text: str | None = None
) -> list[tuple[int, int]]:
    """The windows around the hits, overlapping ones merged. With `text`, no window begins or
    ends inside a run of digits and separators: the phone parser reads a run as one number,
    and `4155552671` cut from `41555526714155552671` is a valid one the whole run is not."""
    out: list[tuple[int, int]] = []
    for start, end in hits:
        lo, hi = max(0, start - back), min(n, end + fwd)
        if text is not None:
            while lo > 0 and text[lo - 1] in _RUN_CHARS:
                lo -= 1
            while hi < n and text[hi] in _RUN_CHARS:
                hi += 1
        if out and lo <= out[-1][1]:
            out[-1] = (min(lo, out[-1][0]), max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


# The keywords as they end before their separator (and its optional quote and spaces).
_KEY_ENDS: Final = (
    "key",
    "secret",
    "token",
    "passwd",
    "password",
    "pwd",
    "credential",
    "credentials",
    "authorization",
)


def _key_hits(lowered: str) -> list[tuple[int, int]]:
    """Where a secret-named key ends in `:`/`=` (start of its keyword, end of the separator),
    found by substring search per keyword: faster than one alternation regex over long text.
    In ASCII text with few separators (prose), looked for backwards from each separator."""
    if lowered.isascii() and lowered.count(":") + lowered.count("=") <= 8:
        return _key_hits_back(lowered)
    hits = []
    for word, tail in _KEYWORDS:
        pos = 0
        while (i := lowered.find(word, pos)) >= 0:
            pos = i + len(word)
            m = tail.match(lowered, pos)
            if m is not None:
                hits.append((i, m.end()))
    hits.sort()
    return hits


def _key_hits_back(lowered: str) -> list[tuple[int, int]]:
    hits = []
    for sep in ":=":
        p = lowered.find(sep)
        while p >= 0:
            j = p
            while j > 0 and lowered[j - 1].isspace():
                j -= 1
            if j > 0 and lowered[j - 1] in "\"'":
                j -= 1
            if lowered.endswith(_KEY_ENDS, 0, j):
                for word in _KEY_ENDS:
                    if lowered.endswith(word, 0, j):
                        hits.append((j - len(word), p + 1))
                        break
            p = lowered.find(sep, p + 1)
    hits.sort()
    return hits


# Everything the fast path below starts from (a secret-named key before its separator, a token
# literal, `@`, the IPv6, IPv4 and number anchors), as one RE2 pattern: a DFA, one linear pass
# of ~2.5 us per KB where `re` takes ~100 us for the same alternation. An ASCII string it does
# not match holds no built-in entity, and most prose is such. RE2's `\s` is not Python's, so
# the key's spaces are spelled out (Python's ASCII whitespace, \x1c-\x1f included).
def _number_runs() -> str:
    """What a digit run that `_may_hold` gives a type holds, as RE2 (no lookarounds, no
    backreferences): a card's start (`_CARD_START`, its edge as the character before), an
    SSN's shape, a phone's gate (`_PHONE_GATE`) with a separator in it or in its run, or a
    bare run of 10 or 11 digits that holds it, a run after `+` or `(`, or an IBAN's head.
    So a UUID's digit groups, a 13-digit timestamp, a dotted version or an IPv4 address
    (no group of four digits, no `+`) count for nothing, nor do ISO dates."""
    d, c, sep, edge = "[0-9]", r"[0-9 .()\-]", r"[ .()\-]", r"[^0-9 .()\-]"
    card = (
        r"(?:^|[^0-9A-Za-z_\]+])[2-6](?:[0-9]{12}|[0-9]{3}(?: [0-9]{4}){3}"
        r"|[0-9]{3}(?:-[0-9]{4}){3}|[0-9]{3} [0-9]{6} [0-9]{4}|[0-9]{3}-[0-9]{6}-[0-9]{4})"
    )
    ssn = "[0-9]{3}-[0-9]{2}-[0-9]{4}"
    bare = "[2-9][0-9]{2}[2-9][0-9]{6}"  # the gate's NANP digits without a separator
    gate = (  # the gate with a separator in it, or in the run before or after it
        r"[2-9][0-9]{2}(?:\) ?|[ .\-])[2-9][0-9]{2}[ .\-]?[0-9]{4}"
        r"|[2-9][0-9]{2}[2-9][0-9]{2}[ .\-][0-9]{4}"
        f"|{d}{sep}{c}*{bare}|{bare}{c}*{sep}{c}*{d}"
    )
    whole = f"(?:^|{edge}){sep}*(?:{bare}|{bare}{d}|{d}{bare}){sep}*(?:{edge}|$)"
    return f"{card}|{ssn}|{gate}|{whole}|[+(]{d}{c}{{5,}}{d}|[A-Z]{{2}}[0-9]{{2}}"


_KEY_ANCHOR: Final = (
    r"(?i:key|secret|token|passw(?:or)?d|pwd|credentials?|authorization)"
    r"[\"']?[\t\n\x0b\x0c\r\x1c-\x1f ]*[:=]"
)
# What any built-in detector needs somewhere in an ASCII string (`quiet` joins it with the
# findings' gate for one pass over a whole message).
ANCHORS_BODY: Final = "|".join(
    (
        _KEY_ANCHOR,
        "|".join(re2.escape(x) for literals in _LITERALS.values() for x in literals),
        "@",
        _V6_ANCHOR.pattern,
        _DOTTED.pattern,
        _number_runs(),
    )
)


# The anchors again, one entry per family, as an RE2 set: one DFA pass over an ASCII string
# says which families may find something in it (~2 us on a short value, ~3 ms/MB on long
# text; the token entries are each detector's start, its prefix and six characters more, by
# `superset.to_re2(head=6)`, so that a `gh` in prose or a `-` runs nothing). Whole patterns
# (`[\w-]{20,}` after a prefix) kept a thread alive per prefix seen: 1 MB of prefixes and
# word characters built 60 MB of states at 1.1 s; their heads need 7 MB and 0.2 s. A set's
# DFA never gives up for slowness, it resets its cache (RE2's many-match mode); it still
# answers right with a 1 MB budget, and has 8 MB (`superset.SET_MAX_MEM`).
_F_KEY, _F_EMAIL, _F_V6, _F_V4, _F_NUMBER, _F_TOKENS = range(6)
_FAMILIES: Final = pattern_set(
    [
        _KEY_ANCHOR,
        "@",
        _V6_TAKEN,  # a MAC address is no IPv6 one
        to_re2(DETECTORS[_PRIORITY[IP]][0]),  # `4.17.21` is no IPv4 address
        _number_runs(),
        *(to_re2(DETECTORS[i][0], head=6) for i in _TOKEN_PRIORITIES),
    ]
)
# The set's own match call when present (the wrapper's adds a call and a type test per value).
_families: Final[Callable[[bytes], list[int] | None]] = getattr(
    getattr(_FAMILIES, "_set", None), "Match", _FAMILIES.Match
)
# The runs of `_number_runs`, found by RE2's own match call (see `superset.first_span`).
_next_run: Final = first_span(re2.compile(_number_runs().encode("ascii")))


# Past this length a string's number runs are found by RE2 (`_run_windows`): a log line's
# dates and timestamps cost a Python step each, more than one RE2 pass past ~128 characters.
_RUNS_MIN = 128


def candidates(text: str) -> list[tuple[Span, int]]:
    n = len(text)
    if n < 7:  # the shortest entity, an IPv4 address like 1.2.3.4
        return []
    if n < 15 and _SHORT_GATE.search(text) is None:  # too short for a token
        return []
    if not text.isascii():
        return _unicode_candidates(text)
    raw = text.encode("ascii")
    families = _families(raw)
    if not families:  # most prose, ids and log lines hold no anchor
        return []
    found: list[tuple[Span, int]] = []
    families.sort()
    if families[0] == _F_KEY:
        hits = _key_hits(text.lower())
        for type_ in _KEYED:
            found += [(s, _PRIORITY[type_]) for s in _keyed(type_, text, hits)]
    for f in families:
        if f >= _F_TOKENS:
            found += _found(_TOKEN_PRIORITIES[f - _F_TOKENS], text)
    if _F_EMAIL in families:
        found += [(s, _P_EMAIL) for s in _emails(DETECTORS[_P_EMAIL][0], text)]
        if "://" in text:
            found += _url_passwords(text)
    if _F_V6 in families:
        found += _ipv6(text)
    if _F_V4 in families:
        found += _ipv4(text)
    if _F_NUMBER in families:
        found += _numbers(text, _run_windows(raw) if n > _RUNS_MIN else ((0, n),))
    return found


def _unicode_candidates(text: str) -> list[tuple[Span, int]]:
    """`candidates` for text that RE2's byte patterns do not read as `re` reads it (`\\w`, `\\d`
    and `\\s` are wider in Unicode): each family by a cheap test of its own."""
    found: list[tuple[Span, int]] = []
    n = len(text)
    if ":" in text or "=" in text:
        lowered = text.lower()
        if len(lowered) != n:
            return list(reference(text))
        hits = _key_hits(lowered)
        if hits:
            for type_ in _KEYED:
                found += [(s, _PRIORITY[type_]) for s in _keyed(type_, text, hits)]
    if n >= 15:  # the shortest token, a Slack one (`xoxb-` and 10 more)
        for priority in _tokens_to_run(text):
            found += _found(priority, text)
    if "@" in text:
        found += [(s, _P_EMAIL) for s in _emails(DETECTORS[_P_EMAIL][0], text)]
        if "://" in text:
            found += _url_passwords(text)
    if "::" in text or text.count(":") >= 4:
        found += _ipv6(text)
    if "." in text and _DOTTED.search(text) is not None:
        found += _ipv4(text)
    if _NUM_ANCHOR.search(text) is not None:
        found += _numbers(text, ((0, n),))
    return found


def _ipv6(text: str) -> list[tuple[Span, int]]:
    return _windowed(_P_IPV6, text, [m.span() for m in _V6_ANCHOR.finditer(text)], 40, 45)


def _may_hold_ipv6(text: str, lo: int, hi: int) -> bool:
    """Whether text[lo:hi] can hold an address `ipaddress` takes: one with `::` or eight
    groups (`_V6_TAKEN`; a MAC address, `68:05:a7:d1:be:5e`, has neither, and its window
    costs ~30 us)."""
    if text.find("::", lo, hi) >= 0:
        return True
    return text.count(":", lo, hi) >= 7 and _EIGHT_GROUPS.search(text, lo, hi) is not None


def _ipv4(text: str) -> list[tuple[Span, int]]:
    """IPv4 addresses: in a short string by the pattern over the whole of it (its digit-first
    scan costs less there than finding the dotted quads and their windows), else in the
    windows of its dotted quads; the same spans either way (a property test)."""
    if len(text) <= _RUNS_MIN:
        return _found(_P_IPV4, text)
    return _windowed(_P_IPV4, text, [m.span() for m in _DOTTED_QUAD.finditer(text)], 3, 14)


def _numbers(text: str, windows: Iterable[tuple[int, int]]) -> list[tuple[Span, int]]:
    """The number detectors in the windows of the digit runs that may hold their entity, all
    types decided in one pass over the runs (`_may_hold`). `windows`: where those runs are,
    each window from one run's stretch of digits and separators to another's (`_run_windows`),
    or the whole text. A card or SSN lies in one run, so it is searched in its run (and the
    two characters after it that the pattern's edge reads); an IBAN's or a phone number's
    window reaches past its run, so those windows are merged first."""
    found: list[tuple[Span, int]] = []
    ibans: list[tuple[int, int]] = []
    phones: list[tuple[int, int]] = []
    n = len(text)
    for lo, hi in windows:
        for m in _NUM_ANCHOR.finditer(text, lo, hi):
            start, end = m.span()
            if _date(text, start, end):
                continue
            for type_ in _may_hold(text, start, end):
                if type_ == CARD:
                    found += _found(_P_CARD, text, start, min(n, end + 2))
                elif type_ == SSN:
                    found += _found(_P_SSN, text, start, min(n, end + 2))
                elif type_ == IBAN:
                    ibans.append((start, end))
                else:
                    phones.append((start, end))
    if ibans:
        found += _windowed(_P_IBAN, text, ibans, 16, 40)
    if phones:
        found += _windowed(_P_PHONE, text, phones, 2, 16)
    return found


_IBAN_HEAD = re.compile(r"[A-Z]{2}[0-9]{2}")
# What every card match starts with: a digit an issuer's number starts with (`validators.
# issuer`: 2 to 6) at the pattern's edge (not after a word character, `]` or `+`), then the
# digits of one of its shapes (13 in a row, or 4-4-4-4 or 4-6-4 grouped). A 13-digit timestamp
# (`ts=1679977233498`), a UUID's digit groups or a dotted version hold none.
_CARD_START = re.compile(
    r"(?<![\w\]+])[2-6](?:\d{12}|\d{3}([ -])\d{4}\1\d{4}\1\d{4}|\d{3}([ -])\d{6}\2\d{4})"
)
# What every SSN match holds.
_SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}")
# A phone match starts after no word character, and a word character is no phone character
# before its digits: a bare digit run glued to a word (an IBAN's account digits) holds none.
_WORD = re.compile(r"\w")
_EXTENSION = re.compile(r" ?(?:x|ext\.?) ?[0-9]")


def _may_hold(text: str, start: int, end: int) -> list[str]:
    """The types whose entity a digit run can hold (or, for IBAN, end). A card starts as
    `_CARD_START` says (it lies in one run: its characters are run characters), an SSN holds
    `_SSN_SHAPE` (in one run too); an IBAN starts with its country code and
    check digits at most 16 characters before the run. A phone number holds `_PHONE_GATE` in
    its run (with the `+` before it), and follows `+` or `(`, or is at least 10 characters
    long with a separator, or is a bare run of 10 or 11 digits (the NANP forms: a phone match
    in a bare run is the whole run, its edges are not word characters) that is not glued to
    a word and has a phone word before it or an extension after it (the parser's rule,
    `validators.phone`): else it is an id, a timestamp or part of a token."""
    n = end - start
    types = []
    if n >= 13 and _CARD_START.search(text, start, min(len(text), end + 2)) is not None:
        types.append(CARD)
    head = text[max(0, start - 16) : start + 2]
    if head != head.lower() and _IBAN_HEAD.search(head) is not None:
        types.append(IBAN)
    if n >= 11 and _SSN_SHAPE.search(text, start, min(len(text), end + 2)) is not None:
        types.append(SSN)
    lead = text[start - 1 : start]
    plus = lead == "+" or lead == "("
    if (
        (plus or n >= 10)
        and _PHONE_GATE.search(text, max(0, start - 1), end) is not None
        and (
            plus
            or not text[start:end].isdigit()
            or (
                n <= 11
                and _WORD.match(lead) is None
                and (
                    v.phone_context(text[max(0, start - 32) : start])
                    or _EXTENSION.match(text, end) is not None
                )
            )
        )
    ):
        types.append(PHONE)
    return types


def _date(text: str, start: int, end: int) -> bool:
    """A run that is an ISO date (and hour): 8 or 10 digits in a shape no entity has. Logs
    have one per line, so skipping them saves four windowed searches a line."""
    return (
        end - start in (10, 13)
        and text[start + 4] == "-"
        and text[start + 7] == "-"
        and (end - start == 10 or text[start + 10] in " T")
    )


# A number run's stretch: the digits and separators around it (a run is the stretch's first to
# last digit, `_NUM_ANCHOR` cannot cross a stretch's edge).
_STRETCH: Final = re.compile(rb"[0-9 .()\-]*")
_STRETCH_BYTES: Final = frozenset(b"0123456789 .()-")


def _run_windows(raw: bytes) -> list[tuple[int, int]]:
    """Where in an ASCII string the digit runs are that `_may_hold` gives a type and `_date`
    does not skip, found by the RE2 form of that rule (`_number_runs`, one DFA pass) instead
    of every run in Python: in logs most runs are dates, ids and timestamps (of ~7 runs per
    KB of the bench's load, about one may hold something). Each window runs from the stretch
    of the match's start to the stretch 17 characters past its end; a run whose witness
    starts inside a match is in that match's window: a card's, SSN's or gate's witness lies
    in its run's stretch (a card's from the character before it), a bare run's is its whole
    stretch, a `+`/`(` one starts at its run, an IBAN head at most 16 characters before it."""
    out: list[tuple[int, int]] = []
    n, pos, covered = len(raw), 0, -1
    while True:
        ms, me = _next_run(raw, pos)
        if ms < 0:
            return out
        pos = me
        lo = ms
        if lo > covered:
            while lo > 0 and raw[lo - 1] in _STRETCH_BYTES:
                lo -= 1
        hi = min(n, me + 17)
        if hi > covered:
            m = _STRETCH.match(raw, hi)
            hi = m.end() if m is not None else hi
            covered = hi
        if out and lo <= out[-1][1]:
            out[-1] = (min(lo, out[-1][0]), max(hi, out[-1][1]))
        else:
            out.append((lo, hi))


def _tokens_to_run(text: str) -> Iterable[int]:
    """The token detectors whose literals are in the text, by index: for text that is not
    ASCII (`_FAMILIES` answers for the rest), where `\\w` takes letters of any script, so
    no run of ASCII token characters is required."""
    if len(text) > 4096:  # in long text the literal-first patterns cost what a test would
        return _TOKEN_PRIORITIES
    groups = _TOKEN_GROUPS
    run: list[int] = []
    for needles, detectors in groups:
        if needles[0] not in text or (len(needles) > 1 and needles[1] not in text):
            continue
        for indices, literals in detectors:
            if indices[0] in run:
                continue
            for x in literals:
                if x in text:
                    run += indices
                    break
    return run


def _url_passwords(text: str) -> list[tuple[Span, int]]:
    """Around each `://`, from the start of the run of scheme characters before it: a scheme
    has no length limit, and a token glued to it (`…0005https://`) makes it one long run."""
    anchors, pos = [], 0
    while (p := text.find("://", pos)) >= 0:
        start = p
        while start > 0:  # back over the run, a chunk at a time (C-speed rstrip)
            lo = max(0, start - 256)
            kept = text[lo:start].rstrip(_SCHEME_CHARS)
            start = lo + len(kept)
            if kept:
                break
        anchors.append((start, p + 3))
        pos = p + 3
    return _windowed(_P_URL, text, anchors, 0, 512)


_SCHEME_CHARS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-"


def _windowed(
    priority: int, text: str, hits: list[tuple[int, int]], back: int, fwd: int
) -> list[tuple[Span, int]]:
    """A detector's validated matches in the windows around its anchor hits: the windows are
    wide enough for any match that holds the anchor, and a validated match always does. A
    window its type's gate rules out (`_may_hold_window`) is not searched."""
    found: list[tuple[Span, int]] = []
    phone = priority == _P_PHONE
    for lo, hi in _merged(hits, back, fwd, len(text), text if phone else None):
        if phone:
            found += [(s, priority) for s in _phones(DETECTORS[priority][0], text, lo, hi)]
        elif _may_hold_window(priority, text, lo, hi):
            found += _found(priority, text, lo, hi)
    return found


def _may_hold_window(priority: int, text: str, lo: int, hi: int) -> bool:
    """Whether text[lo:hi] may hold a validated match of the detector: an IPv6 address's
    `::` or eight groups (a phone's window holds its run's `_PHONE_GATE`, `_may_hold`)."""
    if priority == _P_IPV6:
        return _may_hold_ipv6(text, lo, hi)
    return True
