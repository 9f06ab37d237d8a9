"""Text forensics for the findings rules: invisible Unicode, ANSI escapes, folding for matching,
encoded payloads, and `sanitize` (which names are confusable is `confusables`' question).

Why it exists apart from `findings.py`: these are the character-level facts (what is invisible,
what an escape sequence is, what a string looks like once homoglyphs and compatibility forms are
folded away) that the rules build on and that the `sanitize` result action needs on its own.

Hand-written on the hot path: every string of every definition and result passes through
`suspicious` (one `str.isascii()` and one substring test for almost all of them). Only the rare
string with characters outside ASCII goes through the regexes and context checks below. The
confusables table comes from the `confusable-homoglyphs` package (Unicode's confusables.txt),
turned into a `str.translate` table the first time `fold` meets non-ASCII text (not at import:
the package's data costs ~6 MB of RSS and ~35 ms, and ASCII text never needs it).

What counts as invisible (stripped by `sanitize`): zero-width characters (ZWSP, WJ, BOM, the
invisible operators, Mongolian vowel separator, deprecated format controls, interlinear
annotation), bidi embedding/override/isolate controls, Unicode tag characters except inside a
valid emoji flag tag sequence (🏴 + tags + CANCEL TAG, e.g. Scotland's flag), variation selectors
17-256 except after a CJK ideograph (ideographic variation sequences), runs of variation selectors
1-16 beyond the first, and ZWJ/ZWNJ unless they sit between two visible non-ASCII characters
(emoji ZWJ sequences, Persian and Indic orthography). Left alone: LRM/RLM/ALM (needed in mixed
right-to-left text) and soft hyphens.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import unicodedata
from collections.abc import Iterator
from typing import Any, Final

# --- invisible characters ---------------------------------------------------------------------

ZWJ: Final = "\u200d"
ZWNJ: Final = "\u200c"
_FLAG_TAG = re.compile("\U0001f3f4[\U000e0020-\U000e007e]{1,8}\U000e007f")
# Everything `sanitize` may strip (context decides for ZWJ/ZWNJ and the variation selectors).
_INVISIBLE_CLASS = (
    "\u200b-\u200d\u2060-\u2064\u206a-\u206f\ufeff\u180e\ufff9-\ufffb"
    "\u202a-\u202e\u2066-\u2069"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef\ufe00-\ufe0f"
)
_INVISIBLE = re.compile(f"\U0001f3f4[\U000e0020-\U000e007e]{{1,8}}\U000e007f|[{_INVISIBLE_CLASS}]")
_GATE = re.compile(f"[{_INVISIBLE_CLASS}\x1b\x9b]")
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e") | {
    chr(c) for c in range(0x206A, 0x2070)
}
_BIDI_OVERRIDE = frozenset("\u202a\u202b\u202c\u202d\u202e")
_ISOLATE_OPEN = frozenset("\u2066\u2067\u2068")
_PDI = "\u2069"
_TAG_LO, _TAG_HI = 0xE0000, 0xE007F
_VS_SUP_LO, _VS_SUP_HI = 0xE0100, 0xE01EF


def _cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x3400 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3FFFF


def _visible_non_ascii(ch: str) -> bool:
    """A neighbour that makes ZWJ/ZWNJ legitimate: an emoji, a letter of a non-Latin script,
    or an emoji presentation selector in front of the ZWJ."""
    if ch in "\ufe0f\ufe0e":
        return True
    return ord(ch) > 0x7F and not ch.isspace() and _GATE.match(ch) is None


def _ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _keep(s: str, i: int) -> bool:
    """Whether the invisible-class character at s[i] is legitimate in its context."""
    ch = s[i]
    if ch in (ZWJ, ZWNJ):
        return 0 < i < len(s) - 1 and _visible_non_ascii(s[i - 1]) and _visible_non_ascii(s[i + 1])
    o = ord(ch)
    if _VS_SUP_LO <= o <= _VS_SUP_HI:
        return i > 0 and _cjk(s[i - 1])
    if 0xFE00 <= o <= 0xFE0F:
        return i > 0 and not (0xFE00 <= ord(s[i - 1]) <= 0xFE0F) and not s[i - 1].isspace()
    return False


def _strip_invisible(s: str) -> str:
    out: list[str] = []
    last = 0
    for m in _INVISIBLE.finditer(s):
        if len(m.group()) > 1 or _keep(s, m.start()):  # a valid flag tag sequence, or kept
            continue
        out.append(s[last : m.start()])
        last = m.end()
    if not out:
        return s
    out.append(s[last:])
    return "".join(out)


def invisible_reasons(s: str) -> bool:
    """Whether `s` carries invisible characters used to hide or reorder text (INVISIBLE_UNICODE):
    tag characters outside flag sequences, bidi embeddings/overrides, unbalanced isolates,
    variation-selector smuggling, or zero-width runs (two in a row, or two inside ASCII words).
    A lone stray ZWSP, emoji ZWJ sequences, flags and Persian ZWNJ are not."""
    if s.isascii():
        return False
    run = 0
    in_word = 0
    isolates = 0
    for m in _INVISIBLE.finditer(s):
        i = m.start()
        if len(m.group()) > 1:
            run = 0
            continue
        ch = s[i]
        o = ord(ch)
        if _TAG_LO <= o <= _TAG_HI or ch in _BIDI_OVERRIDE:
            return True
        if ch in _ISOLATE_OPEN:
            isolates += 1
            continue
        if ch == _PDI:
            isolates -= 1
            if isolates < 0:
                return True
            continue
        if _keep(s, i):
            run = 0
            continue
        if _VS_SUP_LO <= o <= _VS_SUP_HI or 0xFE00 <= o <= 0xFE0F:
            return True
        if ch in _ZERO_WIDTH:
            run = run + 1 if i > 0 and s[i - 1] in _ZERO_WIDTH else 1
            if run >= 2:
                return True
            if 0 < i < len(s) - 1 and _ascii_alnum(s[i - 1]) and _ascii_alnum(s[i + 1]):
                in_word += 1
                if in_word >= 2:
                    return True
    return isolates != 0


def tag_text(s: str) -> str:
    """The ASCII hidden in Unicode tag characters (the "ASCII smuggling" technique)."""
    return "".join(chr(ord(c) - _TAG_LO) for c in s if 0xE0020 <= ord(c) <= 0xE007E)


# --- ANSI escapes -----------------------------------------------------------------------------

_ANSI = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST (hyperlinks, titles, clipboard)
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]?"  # two-character escapes, or a lone ESC
)
# In results, colour and style SGR (no conceal), erase-in-line and horizontal cursor moves are
# ordinary terminal output (build logs, `ls --color`, progress bars); these are not findings.
_ANSI_HARMLESS = re.compile(
    r"(?:\x1b\[|\x9b)(?:(?:[0-79]|[1-9]\d+)?(?:;(?:[0-79]|[1-9]\d+))*m|[0-2]?[KCDG])"
)


def has_ansi(s: str, *, strict: bool) -> bool:
    """Whether `s` holds an escape sequence; with strict=False plain colour/style and line
    redraws (see above) do not count."""
    if "\x1b" not in s and "\x9b" not in s:
        return False
    if strict:
        return True
    return any(_ANSI_HARMLESS.fullmatch(m.group()) is None for m in _ANSI.finditer(s))


def strip_ansi(s: str) -> str:
    if "\x1b" not in s and "\x9b" not in s:
        return s
    return _ANSI.sub("", s).replace("\x9b", "")


# --- sanitize ---------------------------------------------------------------------------------


def suspicious(s: str) -> bool:
    """Cheap gate: could `s` hold an invisible character or an escape at all."""
    if s.isascii():
        return "\x1b" in s
    return _GATE.search(s) is not None


def clean(s: str) -> str:
    """`s` without ANSI escapes and invisible characters; `s` itself when there are none."""
    if not suspicious(s):
        return s
    out = _strip_invisible(strip_ansi(s))
    for _ in range(3):  # a removal can leave a kept character without its context: settle
        again = _strip_invisible(out)
        if again == out:
            break
        out = again
    return s if out == s else out


def sanitize(value: Any) -> Any:
    """Strip invisible characters and ANSI escapes from every string value, recursively (dict
    keys untouched). Returns the same object when nothing changed, so benign results pass
    byte-identical; changed containers are shallow copies."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        changed: dict[Any, Any] | None = None
        for k, v in value.items():
            nv = sanitize(v)
            if nv is not v:
                if changed is None:
                    changed = dict(value)
                changed[k] = nv
        return value if changed is None else changed
    if isinstance(value, list | tuple):
        items: list[Any] | None = None
        for i, v in enumerate(value):
            nv = sanitize(v)
            if nv is not v:
                if items is None:
                    items = list(value)
                items[i] = nv
        if items is None:
            return value
        return items if isinstance(value, list) else tuple(items)
    return value


# --- folding for matching ---------------------------------------------------------------------


def _confusable_table() -> dict[int, str]:
    from confusable_homoglyphs.confusables import confusables_data

    table: dict[int, str] = {}
    for ch, glyphs in confusables_data.items():
        if len(ch) != 1 or ch.isascii():
            continue
        for g in glyphs:
            target = g["c"].replace("\u200e", "")
            if target and target.isascii() and target.isprintable():
                table[ord(ch)] = target
                break
    return table


def _runs_of(codes: list[int], gap: int = 128) -> str:
    """A regex character class covering `codes` as few ranges (gaps of up to `gap` merged),
    leaving out the CJK, kana and Hangul blocks (no Latin lookalikes worth their cost)."""
    ranges: list[list[int]] = []
    for c in sorted(codes):
        if 0x2E80 <= c <= 0xD7FF:
            continue
        if ranges and c - ranges[-1][1] <= gap:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


@functools.cache
def _lookalikes() -> tuple[re.Pattern[str], dict[int, str]]:
    """The homoglyph table and the regex of runs it translates, built on first use.
    str.translate looks every character up in a dict, which is slow on long CJK text; only runs
    of characters from the blocks that hold Latin lookalikes are translated."""
    table = _confusable_table()
    return re.compile(f"[{_runs_of(list(table))}]+"), table


_DROP_CHARS = "".join(_ZERO_WIDTH | _BIDI_OVERRIDE | _ISOLATE_OPEN | {_PDI, "\u00ad"})
_DROP_RX: Final = re.compile(
    "[" + re.escape(_DROP_CHARS) + "\ufe00-\ufe0f\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)


def _unconfuse(s: str) -> str:
    run, table = _lookalikes()
    return run.sub(lambda m: m.group().translate(table), s)


# Combining diacritics (the blocks Zalgo text and accent disguises use; not the vowel signs
# of Indic or Arabic scripts): "ig\u0301nore" and "ígnore" read as "ignore" to a model.
_MARKS_RX: Final = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(s: str) -> str:
    """`s` as the rules match it: lower case, and for non-ASCII text without invisible and
    soft-hyphen characters and combining diacritics (decomposed first, so precomposed
    accents go too), NFKC (full-width and mathematical letters) and with homoglyphs mapped
    to the ASCII letters they imitate (a Cyrillic o -> "o")."""
    if s.isascii():
        return s.lower()
    s = unicodedata.normalize("NFKD", _DROP_RX.sub("", s))
    s = _MARKS_RX.sub("", s)
    return _unconfuse(unicodedata.normalize("NFKC", s).lower())


# --- encoded payloads -------------------------------------------------------------------------

_B64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,}={0,2}")
_HEX = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){16,}(?![0-9A-Fa-f])|(?:\\x[0-9A-Fa-f]{2}){12,}"
)
_MAX_CANDIDATES = 16
_MAX_LEN = 16384


def _printable_text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text:
        return None
    good = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    letters = sum(1 for c in text if c.isalpha() or c == " ")
    return text if good >= 0.95 * len(text) and letters >= 0.6 * len(text) else None


def decoded_payloads(s: str) -> Iterator[str]:
    """Readable text hidden as base64/base64url or hex runs inside `s` (at most 16 per string).
    Binary results (hashes, images, keys, JWT signatures) are not text and are skipped."""
    n = 0
    for m in _B64.finditer(s):
        tok = m.group()
        if len(tok) > _MAX_LEN:
            continue
        n += 1
        if n > _MAX_CANDIDATES:
            return
        body = tok.rstrip("=").replace("-", "+").replace("_", "/")
        try:
            raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        text = _printable_text(raw)
        if text is not None:
            yield text
    for m in _HEX.finditer(s):
        n += 1
        if n > _MAX_CANDIDATES:
            return
        tok = m.group().replace("\\x", "")
        try:
            text = _printable_text(bytes.fromhex(tok))
        except ValueError:
            continue
        if text is not None:
            yield text
