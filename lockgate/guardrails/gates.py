"""The document gate: one pass over an item's JSON that decides which findings can apply.

Why it exists: most definitions and results are honest, and most of their strings could never
match a rule. The JSON the cache key hashes anyway is lowered (folded, for non-ASCII) once;
on ASCII text one RE2 pass of every family's pattern (`superset`) rules the text rules out
for most items. Otherwise the text is read as a set of words, the rule families whose gate
words are absent are skipped, the others are matched once over the whole JSON text with their
checks relaxed (a superset of the real matches), and only on a hit are the strings collected
and matched one by one. The other rules
get their own cheap byte tests here (non-ASCII or ESC for characters, a 24-character base64
run, padding, a required parameter with a context-like name).
"""

from __future__ import annotations

import re
from typing import Final

import ahocorasick

from lockgate.guardrails import text
from lockgate.guardrails.rules import FAMILIES, Family, is_open, matches
from lockgate.guardrails.superset import union


class Gate:
    """What one pass over an item's JSON found: the groups that may match, and its folded
    JSON text (as is, and with "_" as spaces) for a permissive first match; its words (the
    gate words it holds) are read only when a text rule may match."""

    __slots__ = ("_low", "_words", "doc", "groups", "spaced")

    def __init__(self, groups: frozenset[str], low: bytes) -> None:
        self.groups = groups
        self._low = low
        self._words: frozenset[bytes] | None = None
        self.doc = low.decode("utf-8", "surrogatepass")
        self.spaced = self.doc.replace("_", " ")

    @property
    def words(self) -> frozenset[bytes]:
        """The gate words found anywhere in the letters of the text, inside longer runs too:
        some families match words run together ("instructionsassistant"), which a split into
        words would not show (read only for non-ASCII text, so its cost is that path's)."""
        if self._words is None:
            letters = self._low.translate(_LETTERS).decode("ascii")
            self._words = frozenset(w for _, w in _VOCAB_MATCHER.iter(letters))
        return self._words

    @property
    def ascii(self) -> bool:
        return self._low.isascii()

    def any_family(self) -> bool:
        """On ASCII text, whether some family's pattern (without its lookarounds) matches
        anywhere in the JSON text: the RE2 pass alone, no word gate (which assumes words
        between boundaries, while some families match glued ones too). Otherwise text_hit."""
        low = self._low
        if not low.isascii():
            return self.text_hit()
        if _ANY_FAMILY.search(low) is not None:
            return True
        spaced = low.replace(b"_", b" ") if self.spaced is not self.doc else None
        return spaced is not None and _ANY_FAMILY.search(spaced) is not None

    def text_hit(self) -> bool:
        """Whether any text family matches anywhere in the JSON text, ignoring checks and
        quoted examples, among the families whose gate words it holds (`any_family` asks
        this of non-ASCII text only)."""
        ends = (len(self.doc),)
        words = self.words
        for fam in _candidates(words):
            if is_open(fam, words):
                # property names are matched with "_" as spaces, values as they are
                if next(matches(fam, self.spaced, (0,), ends), None) is not None:
                    return True
                if (
                    fam.snake
                    and self.spaced is not self.doc  # str.replace returns itself unchanged
                    and next(matches(fam, self.doc, (0,), ends), None) is not None
                ):
                    return True
        return False


# Every family's pattern in one RE2 pass (`superset`): on ASCII text, no match means no family.
_ANY_FAMILY: Final = union(f.rx for f in FAMILIES)


def _trigger_index() -> tuple[tuple[Family, ...], dict[bytes, tuple[int, ...]]]:
    """Families without a word gate, and for the others: first gate word -> family indexes."""
    always: list[Family] = []
    index: dict[bytes, list[int]] = {}
    for i, fam in enumerate(FAMILIES):
        if not fam.words:
            always.append(fam)
        else:
            for w in fam.words[0]:
                index.setdefault(w, []).append(i)
    return tuple(always), {w: tuple(ix) for w, ix in index.items()}


_ALWAYS, _TRIGGERS = _trigger_index()
_TRIGGER_WORDS: Final = frozenset(_TRIGGERS)
# Every gate word of every family: an item's other words are never looked at, so they are
# not kept (looking a word up costs less than inserting it).
_VOCAB: Final = frozenset().union(*(ws for fam in FAMILIES for ws in fam.words))


def _matcher() -> ahocorasick.Automaton:
    """Every gate word, found in one pass wherever it occurs (overlaps too): 241 substring
    tests per item made a CJK result ~30 us slower (measured), Aho-Corasick costs one scan."""
    found = ahocorasick.Automaton()
    for w in _VOCAB:
        found.add_word(w.decode("ascii"), w)
    found.make_automaton()
    return found


_VOCAB_MATCHER: Final = _matcher()


def _candidates(words: frozenset[bytes]) -> list[Family]:
    """The families whose first gate set meets `words`, in FAMILIES order, plus the ungated."""
    found: set[int] = set()
    for w in _TRIGGER_WORDS & words:
        found.update(_TRIGGERS[w])
    return [*_ALWAYS, *(FAMILIES[i] for i in sorted(found))]


# Words are read in the letters of the folded, lower-cased JSON with its escapes undone.

# JSON escapes, undone: the patterns read each string's own characters (a literal backslash
# before "new" is not the escape "\n", and a control character is no letter).
_ESCAPE: Final = re.compile(rb'\\(["\\/bfnrt]|u[0-9a-f]{4})')
_SHORT_ESCAPES: Final = {
    b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r",
    b"t": b"\t",
}  # fmt: skip


def _unescape(m: re.Match[bytes]) -> bytes:
    e = m.group(1)
    if len(e) == 1:
        return _SHORT_ESCAPES[e]
    return chr(int(e[1:], 16)).encode("utf-8", "surrogatepass")


_LETTERS: Final = bytes(c if 97 <= c <= 122 else 32 for c in range(256))
_B64CHARS: Final = bytes(
    97 if chr(c).isascii() and (chr(c).isalnum() or chr(c) in "+/=_-") else 32 for c in range(256)
)
_B64RUN: Final = b"a" * 24  # text.decoded_payloads looks at runs of 24 or more
# Padding (25 newlines, or 300 spaces/tabs) is, in JSON, a run of 50+ of " ", "\\", "n", "t".
_WS: Final = bytes(97 if chr(c) in " \\nt" else 32 for c in range(256))
_WSRUN: Final = b"a" * 50


_PARAM_RX: Final = re.compile(
    rb"prompt|history|context|message|conversation|chat|transcript|memory|dump|turn|instruction"
    rb"|dialog|convo|log|rules|snapshot|export|window|sofar|so_far"
)


def gates(js: bytes, *, definition: bool, max_string: int) -> Gate:
    """One pass over the item whose JSON is `js`: its words and folded text for the text
    families, and the other groups that may apply: "link", "chars" (invisible/ANSI),
    "encoded", "length", "params"."""
    ascii_ = js.isascii()
    if ascii_:
        low = js.lower()
    else:
        low = text.fold(js.decode("utf-8", "surrogatepass")).encode("utf-8", "surrogatepass")
    if b"\\" in low:
        low = _ESCAPE.sub(_unescape, low)
    active: set[str] = set()
    # A one-byte test (memchr) before each longer one: most items have neither.
    if (b"]" in low and b"](" in low) or (b"<" in low and b"<img" in low):
        active.add("link")
    escaped = b"\\" in js
    if not ascii_ or (escaped and b"\\u001b" in js):
        active.add("chars")  # invisible/ANSI characters; tag-smuggled text
    if _B64RUN in js.translate(_B64CHARS) or (escaped and b"\\\\x" in js):
        active.add("encoded")
    if definition and (not ascii_ or len(js) > max_string or _WSRUN in js.translate(_WS)):
        active.add("length")
    if definition and _params(js, low):
        active.add("params")
    return Gate(frozenset(active), low)


def _params(js: bytes, low: bytes) -> bool:
    """A required parameter or prompt argument whose name may be an exfiltration one."""
    if b'"required":true' in js:
        return True
    i = low.find(b'"required":[')
    while i >= 0:
        j = low.find(b"]", i)
        if _PARAM_RX.search(low, i, j):
            return True
        i = low.find(b'"required":[', j)
    return False
