"""Confusable names: when two tool names can be mistaken for one another.

Why it exists: two places ask the same question and must get the same answer. Pinning holds a
new tool whose name is confusable with a pinned one (never auto-pinned: issue 11, section 3);
findings raises TOOL_NAME_SPOOFING for confusable names within one list and for a lone name
that mixes scripts to imitate ASCII. One reading of "looks like", here, for both.

How: :func:`skeleton` gives each name two keys, and two names are confusable when they share
one (and are not the same string). Both keys drop what is invisible or decorative (after NFKD
compatibility decomposition: full-width and mathematical letters become ASCII; combining marks,
punctuation and separators such as ``-``, ``_``, ``.``, spaces, zero-width and bidi controls,
tags and variation selectors are dropped), then map every homoglyph to one representative of
its class from Unicode's confusables data (the ``confusable-homoglyphs`` package: a Cyrillic
``e`` -> ``e``, ``1``/``l``/``I``/``|`` -> ``l``; ``0``/``O`` are joined to ``o``, which UTS 39
keeps apart). The keys differ in when case is folded, because a capital I reads as an ``i`` by
case and as an ``l`` by glyph: the *case* key folds case first (``fIle`` meets ``file``), the
*glyph* key maps homoglyphs first, then also reads ``rn`` as ``m`` and ``vv`` as ``w``
(``fiIe`` and ``rnail`` meet ``file`` and ``mail``). Case folding is Unicode's compatibility
caseless match (NFKD and casefold twice), so a name and its casefolded form always share the
case key.

Hand-written over the package the project already has: it holds the data but computes no
skeleton (it answers "is this string mixed-script / dangerous"); ``confusables`` (PyPI, last
release 2021) only compares two strings, O(n^2) over a list; ``disarm`` (Rust, 0.x) folds per
TR39 but would still need the two keys, 0/o and rn/vv here, for a new compiled dependency. On
the hot path because the findings scanner runs :func:`spoofed_names` over every ``tools/list``
and pinning checks every new name against the pinned ones. So: importing this module loads
nothing; ASCII names, nearly all of them, take two ``bytes.translate`` calls over tables the
general path derives from ``_ASCII_PROTOTYPES`` (the ASCII part of the classes, written out so
that ASCII names never load the package's data, ~6 MB of RSS; a test keeps it equal to the
data); the first non-ASCII name builds the whole table (~7 ms, plus ~35 ms to load the data if
nothing has yet); keys are cached per name (names up to 256 characters, 65,536 of them).
Measured on 2,000 names: ~2 ms uncached, ~0.5 ms cached.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable
from typing import Final

__all__ = ["confusable_with", "lookalike_name", "skeleton", "spoofed_names"]

_CACHED_LEN: Final = 256
_DROPPED: Final = frozenset("MPZC")  # marks, punctuation, separators, controls/format/unassigned
# Multi-letter lookalikes the glyph key reads as one letter (all lower case by then).
_DIGRAPHS: Final = (("rn", "m"), ("vv", "w"))
# The ASCII characters of `_prototypes()` and their representatives: all ASCII text needs.
# tests/core/guardrails keep it equal to the table built from the data.
_ASCII_PROTOTYPES: Final[dict[str, str]] = {
    "`": "'",
    "|": "l",
    "1": "l",
    "I": "l",
    "O": "o",
    "0": "o",
}


@functools.cache
def _prototypes() -> dict[str, str]:
    """Each confusable character -> one representative of its class (union of the single-
    character pairs in the confusables data; a lower-case ASCII letter when the class has one,
    else an ASCII character, else the smallest member)."""
    from confusable_homoglyphs.confusables import confusables_data

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for key, glyphs in confusables_data.items():
        for glyph in glyphs:
            other = str(glyph["c"]).strip("\u200e")
            if len(key) == 1 and len(other) == 1:
                parent[find(key)] = find(other)
    parent[find("0")] = find("o")  # UTS 39 keeps them apart; a tool name should not
    classes: dict[str, list[str]] = {}
    for ch in list(parent):
        classes.setdefault(find(ch), []).append(ch)

    def rank(ch: str) -> tuple[int, str]:
        return (0 if ch.isascii() and ch.islower() else 1 if ch.isascii() else 2, ch)

    table: dict[str, str] = {}
    for members in classes.values():
        rep = min(members, key=rank)
        table.update((ch, rep) for ch in members if ch != rep)
    return table


@functools.cache
def _ascii_tables() -> tuple[bytes, bytes, bytes, bytes]:
    """The general path, :func:`_unicode_keys`, for ASCII as ``bytes.translate`` tables and
    the bytes each deletes: (case table, its deletions, glyph table, its deletions). Built by
    running the general path on each ASCII character (for ASCII it works character by
    character), so the two agree; a property test holds them to it."""
    tables = bytearray(range(256)), bytearray(range(256))
    drops = bytearray(), bytearray()
    for code in range(128):
        for out, drop, key in zip(tables, drops, _unicode_keys(chr(code)), strict=True):
            if key:
                out[code] = ord(key)
            else:
                drop.append(code)
    return bytes(tables[0]), bytes(drops[0]), bytes(tables[1]), bytes(drops[1])


def _visible(text: str) -> str:
    return "".join([ch for ch in text if unicodedata.category(ch)[0] not in _DROPPED])


def _invisible(ch: str) -> bool:
    """Format, control and unassigned characters, and variation selectors."""
    code = ord(ch)
    return (
        unicodedata.category(ch)[0] == "C" or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF
    )


def _proto(text: str) -> str:
    table = _ASCII_PROTOTYPES if text.isascii() else _prototypes()
    return "".join([table.get(ch, ch) for ch in text])


def _caseless(text: str) -> str:
    """Unicode's compatibility caseless form (D146): NFKD(casefold(NFKD(casefold(NFD(x)))))."""
    nfkd = unicodedata.normalize
    return nfkd("NFKD", nfkd("NFKD", nfkd("NFD", text).casefold()).casefold())


def _digraphs(key: str) -> str:
    for pair, letter in _DIGRAPHS:
        key = key.replace(pair, letter)
    return key


def _ascii_keys(name: str) -> tuple[str, str]:
    case, case_drop, glyph, glyph_drop = _ascii_tables()
    raw = name.encode("ascii")
    by_case = raw.translate(case, case_drop).decode("ascii")
    return by_case, _digraphs(raw.translate(glyph, glyph_drop).decode("ascii"))


def _unicode_keys(name: str) -> tuple[str, str]:
    by_case = _visible(_proto(_visible(_caseless(name)))).casefold()
    # Homoglyphs are mapped before NFKD too: some compatibility forms decompose to another
    # letter than the one they look like (Greek lunate sigma, a "c", decomposes to a sigma).
    glyphs = _visible(_proto(_visible(unicodedata.normalize("NFKD", _proto(name)))))
    return by_case, _digraphs(_visible(_proto(_visible(_caseless(glyphs)))))


def _keys(name: str) -> tuple[str, str]:
    return _ascii_keys(name) if name.isascii() else _unicode_keys(name)


_cached_keys: Final = functools.lru_cache(maxsize=65_536)(_keys)


def skeleton(name: str) -> tuple[str, str]:
    """The two keys under which confusable names meet: (by case, by glyph); see the module
    doc. Two names are confusable when they share a key."""
    return _cached_keys(name) if len(name) <= _CACHED_LEN else _keys(name)


def confusable_with(name: str, others: Iterable[str]) -> str | None:
    """The first of ``others`` that ``name`` can be mistaken for (never ``name`` itself), or
    None."""
    case, glyph = skeleton(name)
    for other in others:
        if other != name:
            keys = skeleton(other)
            if case in keys or glyph in keys:
                return other
    return None


def spoofed_names(names: Iterable[str]) -> dict[str, str]:
    """Every name in ``names`` that is confusable with another one, mapped to the first such
    other name (both of a pair are reported: which one is the original is not knowable from a
    list). One pass, O(n)."""
    first: dict[str, str] = {}
    found: dict[str, str] = {}
    for name in dict.fromkeys(names):
        for key in skeleton(name):
            seen = first.setdefault(key, name)
            if seen != name:
                found.setdefault(name, seen)
                found.setdefault(seen, name)
    return found


def lookalike_name(name: str) -> bool:
    """A name that is ASCII only once its disguise is undone: ASCII letters (full-width ones
    count, they are a compatibility form of ASCII) mixed with non-ASCII characters that all
    imitate ASCII ones, such as ``send_email`` with a Cyrillic ``e``. It exists to look like
    another name. A name in another script (``поиск``, even the Russian word "sor", all of
    whose Cyrillic letters look Latin), or with accented letters (``résumé``), is not."""
    if name.isascii():
        return False
    shown = unicodedata.normalize("NFKC", "".join(c for c in name if not _invisible(c)))
    if not any(c.isascii() and c.isalpha() for c in shown):
        return False
    mapped = _proto(shown)
    return mapped.isascii() and mapped != name
