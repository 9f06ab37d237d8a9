"""Python regexes as one RE2 pattern that matches wherever any of them matches, on ASCII text.

Why it exists: the findings gate asks of every result "could any text rule match here?", and
answering it with `re` means a word split and a dozen anchored matches, ~20 us per KB and
three times that with the caches cold between requests. RE2 answers the same question for
the union of every family's pattern in one linear pass (~3 us per KB), but reads neither
lookarounds nor Python's escapes. So each pattern is parsed with the standard library's own
parser and written out as RE2 syntax that matches at least where the original does:
lookarounds and `^`/`$` are dropped (a weaker pattern), repeats above RE2's limit of 1000 are
left open, lazy and greedy repeats are the same question, and `\\s` is spelled as Python's
ASCII whitespace. `\\b` and `\\w` agree with Python's on ASCII text, which is why callers only
ask on ASCII text. A superset is all the gate needs: "no" means no rule can match; "yes"
sends the text through the real rules.
"""

from __future__ import annotations

import re
import re._constants as _C  # the standard library's own regex parser and its opcodes
import re._parser as sre
from collections.abc import Callable, Iterable
from typing import Any, Final

import re2

# Python's \s on ASCII (str.isspace(): \x1c-\x1f included); RE2's \s is only [\t\n\f\r ].
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f "
_RE2_MAX = 1000


class Unsupported(ValueError):
    """A construct this translation does not know (tests keep the rules within it)."""


def _char(code: int) -> str:
    c = chr(code)
    return c if c.isascii() and c.isalnum() else f"\\x{{{code:x}}}"


def _class(items: Iterable[tuple[Any, Any]]) -> str:
    out: list[str] = []
    negate = False
    for op, av in items:
        if op is _C.NEGATE:
            negate = True
        elif op is _C.LITERAL:
            out.append(_char(av))
        elif op is _C.RANGE:
            out.append(f"{_char(av[0])}-{_char(av[1])}")
        elif op is _C.CATEGORY:
            out.append(_category(av, in_class=True))
        else:
            raise Unsupported(f"class item {op}")
    return f"[{'^' if negate else ''}{''.join(out)}]"


def _category(cat: Any, *, in_class: bool) -> str:
    if cat is _C.CATEGORY_DIGIT:
        return r"\d"
    if cat is _C.CATEGORY_NOT_DIGIT:
        return r"\D"
    if cat is _C.CATEGORY_WORD:
        return r"\w"
    if cat is _C.CATEGORY_NOT_WORD:
        return r"\W"
    if cat is _C.CATEGORY_SPACE:
        return _SPACE if in_class else f"[{_SPACE}]"
    if cat is _C.CATEGORY_NOT_SPACE:
        return r"\S"  # RE2's is wider than Python's (\x0b, \x1c-\x1f): still a superset
    raise Unsupported(f"category {cat}")


def _repeat(lo: int, hi: int, sub: str) -> str:
    lo = min(lo, _RE2_MAX)
    if hi is _C.MAXREPEAT or hi > _RE2_MAX:
        return f"(?:{sub}){{{lo},}}"
    return f"(?:{sub}){{{lo},{hi}}}"


def _emit(parsed: Iterable[tuple[Any, Any]]) -> str:
    out: list[str] = []
    for op, av in parsed:
        if op is _C.LITERAL:
            out.append(_char(av))
        elif op is _C.NOT_LITERAL:
            out.append(f"[^{_char(av)}]")
        elif op is _C.ANY:
            out.append(".")  # the union is compiled with (?s), as the rules are (DOTALL)
        elif op is _C.IN:
            out.append(_class(av))
        elif op in (_C.MAX_REPEAT, _C.MIN_REPEAT, _C.POSSESSIVE_REPEAT):
            lo, hi, sub = av
            out.append(_repeat(lo, hi, _emit(sub)))
        elif op is _C.SUBPATTERN:
            _, add_flags, _, sub = av
            inner = _emit(sub)
            out.append(f"(?i:{inner})" if add_flags & re.IGNORECASE else f"(?:{inner})")
        elif op is _C.ATOMIC_GROUP:
            out.append(f"(?:{_emit(av)})")
        elif op is _C.BRANCH:
            out.append("(?:" + "|".join(_emit(b) for b in av[1]) + ")")
        elif op is _C.AT:
            if av is _C.AT_BOUNDARY:
                out.append(r"\b")
            elif av is _C.AT_NON_BOUNDARY:
                out.append(r"\B")
            # ^, $, \A, \Z: dropped (a superset)
        elif op in (_C.ASSERT, _C.ASSERT_NOT):
            pass  # lookarounds: dropped (a superset)
        elif op is _C.CATEGORY:
            out.append(_category(av, in_class=False))
        elif op is _C.GROUPREF:
            out.append("(?:.*)")  # whatever the group matched is some string
        else:
            raise Unsupported(f"regex operator {op}")
    return "".join(out)


_REPEATS = (_C.MAX_REPEAT, _C.MIN_REPEAT, _C.POSSESSIVE_REPEAT)


def _head(parsed: Iterable[tuple[Any, Any]], limit: int) -> tuple[list[tuple[Any, Any]], bool]:
    """The start of a parsed pattern, up to its first repeat of more than ``limit`` (which
    asks for at most ``limit``), and whether anything was cut: every match of the pattern
    begins with a match of it."""
    out: list[tuple[Any, Any]] = []
    for op, av in parsed:
        if op in _REPEATS:
            lo, hi, sub = av
            inner, cut = _head(sub, limit)
            if hi is _C.MAXREPEAT or hi > limit or cut:
                if lo == 0:
                    return out, True  # none at all may follow: what came before is the start
                if cut or min(lo, limit) == 1:
                    return [*out, *inner], True
                return [*out, (op, (min(lo, limit), min(lo, limit), inner))], True
            out.append((op, (lo, hi, inner)))
        elif op is _C.SUBPATTERN:
            group, add_flags, del_flags, sub = av
            inner, cut = _head(sub, limit)
            out.append((op, (group, add_flags, del_flags, inner)))
            if cut:
                return out, True
        elif op is _C.ATOMIC_GROUP:
            inner, cut = _head(av, limit)
            out.append((op, inner))
            if cut:
                return out, True
        elif op is _C.BRANCH:
            alternatives = [_head(b, limit) for b in av[1]]
            out.append((op, (av[0], [a for a, _ in alternatives])))
            if any(cut for _, cut in alternatives):
                return out, True
        else:
            out.append((op, av))
    return out, False


def to_re2(pattern: re.Pattern[str], *, head: int | None = None) -> str:
    """RE2 syntax matching (on ASCII text) at least where ``pattern`` matches. `head`: only
    the pattern's start, up to its first repeat of more than that many (`ghp_[A-Za-z0-9]{36}`
    is `ghp_[A-Za-z0-9]{8}`): a weaker pattern whose threads end within a few characters,
    which a set's DFA needs (`pattern_set`)."""
    parsed: Iterable[tuple[Any, Any]] = sre.parse(pattern.pattern, pattern.flags)
    if head is not None:
        parsed = _head(parsed, head)[0]
    body = _emit(parsed)
    return f"(?i:{body})" if pattern.flags & re.IGNORECASE else body


def union_body(patterns: Iterable[re.Pattern[str]]) -> str:
    """The RE2 alternation of ``patterns`` (each translated by `to_re2`, duplicates once)."""
    unique = {(p.pattern, p.flags): p for p in patterns}
    return "|".join(f"(?:{to_re2(p)})" for p in unique.values())


# What a union may spend on its program and lazily built DFA states. RE2 grows a pattern's
# states as text needs them, up to about a third of this for a search's forward DFA (then it
# resets them), and keeps the memory: benign text needs a few hundred KB, random text fills
# the budget (`bench/dfa_memory.py`). The findings' union grew by 21 MB at 64 MB; at 16 MB by
# 5 MB, scanning random text at ~50-110 us per KB instead of ~25; at 8 MB RE2 gives up on
# the DFA for such text (a slow NFA, ~300 us per KB, and a log line each time).
UNION_MAX_MEM: Final = 16 << 20
# A set's DFA never gives up (RE2's many-match mode resets its cache and goes on; it still
# answers right with 1 MB), so its budget trades memory for speed on hostile text only: the
# scanner's set on fresh token salads grew by 6.6 MB at 8 MB (190 us per KB), by 15 MB at
# 16 MB (87 us per KB); benign text needs under 1 MB either way.
SET_MAX_MEM: Final = 8 << 20


def compile_union(body: str, *, ignore_case: bool = False) -> re2._Regexp:
    """An RE2 pattern (dot matches newline, as the rules' DOTALL), without captures."""
    options = re2.Options()
    options.never_capture = True
    options.max_mem = UNION_MAX_MEM
    options.dot_nl = True
    options.case_sensitive = not ignore_case
    return re2.compile(body, options)


def pattern_set(patterns: Iterable[str]) -> re2.Set:
    """An RE2 set of ``patterns`` (RE2 syntax, options as `compile_union`'s): its `Match` of
    some bytes lists the indices of those that match in them, in no order (None for none)."""
    options = re2.Options()
    options.never_capture = True
    options.max_mem = SET_MAX_MEM
    options.dot_nl = True
    out = re2.Set.SearchSet(options)
    for p in patterns:
        out.Add(p)
    out.Compile()
    return out


def union(patterns: Iterable[re.Pattern[str]]) -> re2._Regexp:
    """One RE2 pattern for all of ``patterns``."""
    return compile_union(union_body(patterns))


def yes_no(pattern: re2._Regexp) -> Callable[[bytes], bool]:
    """Whether `pattern` occurs in some bytes, asked of RE2's compiled program itself.

    The wrapper's `search` builds a generator and a match object per call: 2 of the 5 us a
    ~100-character value costs here (measured on bench/redact.py's values). Its private
    names are used when present, else its public `search`."""
    rx = getattr(pattern, "_regexp", None)
    unanchored = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    null = getattr(re2, "_NULL_SPAN", None)
    if rx is None or unanchored is None or null is None:
        return lambda raw: pattern.search(raw) is not None
    match = rx.Match
    return lambda raw: bool(match(unanchored, raw, 0, len(raw))[0] != null)


def first_span(pattern: re2._Regexp) -> Callable[[bytes, int], tuple[int, int]]:
    """The span of the first match of `pattern` in some bytes from a position on, (-1, -1)
    for none: RE2's program asked directly, as `yes_no` does (the wrapper's `search` costs a
    generator and a match object per call, more than a short search)."""
    rx = getattr(pattern, "_regexp", None)
    unanchored = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    if rx is None or unanchored is None:

        def search(raw: bytes, pos: int) -> tuple[int, int]:
            m = pattern.search(raw, pos)
            return (-1, -1) if m is None else m.span()

        return search
    match = rx.Match
    return lambda raw, pos: match(unanchored, raw, pos, len(raw))[0]
