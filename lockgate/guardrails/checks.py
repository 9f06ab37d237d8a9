"""The context checks a rule family's match must pass (see `rules.py`): quoted examples, verbs
near a sensitive path, the tool a sentence talks about, line starts.

Why it exists apart from `rules.py`: the families there are data (anchors, pattern, gate
words); these are the few bits of logic they point at, each a (doc, match, string start, own
tool name) -> bool predicate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

_R = re.compile
TOOLREF: Final = r"`?[a-z][a-z0-9]*(?:_[a-z0-9]+)+`?"  # a snake_case tool name

Check = Callable[[str, "re.Match[str]", int, str], bool]  # (doc, match, string start, own name)

_QUOTES: Final = {
    "'": "'",
    '"': '"',
    "`": "`",
    "\u201c": "\u201d",
    "\u2018": "\u2019",
    "\u00ab": "\u00bb",
    "\u201e": "\u201c",
}
_EXAMPLE_CUE: Final = _R(
    r"\b(?:such\s+as|e\.g\.|for\s+example|for\s+instance|like|examples?|phrases?|patterns?"
    r"|strings?|detects?|detecting|flags?|flagging|matches|matching|including|quotes?|blocks?"
    r"|say|says|said|saying|claim|claims|claiming)\b"
)


def quoted_example(t: str, start: int, end: int, lo: int = 0) -> bool:
    """A match inside a short quoted string introduced as an example (a detector's docs)."""
    i = start - 1
    while i >= max(lo, start - 40) and t[i] not in _QUOTES and t[i] not in ".\n":
        i -= 1
    if i < lo or t[i] not in _QUOTES:
        return False
    close = t.find(_QUOTES[t[i]], end, end + 80)
    return close >= 0 and _EXAMPLE_CUE.search(t, max(lo, i - 120), i) is not None


_COMMENT_TO: Final = _R(
    r"\b(?:assistants?|ai|llms?|claude|gpt|chatgpt|copilot|gemini|language\s+models?"
    r"|ai\s+(?:models?|agents?)|the\s+model\s*:|agents?\s*:)"
)  # "model" and "agent" alone are too common in honest comments (data model, user agent)
_COMMENT_DO: Final = _R(
    r"\b(?:must|should|always|never|do\s+not|don'?t|ignore|instead|please|remember|make\s+sure"
    r"|you\s+are|your\s+task|instructions?|read|send|include)\b"
)


def comment(doc: str, m: re.Match[str], lo: int, own: str) -> bool:
    body = m.group(1)
    return _COMMENT_TO.search(body) is not None and _COMMENT_DO.search(body) is not None


READ_VERB: Final = _R(
    r"\b(?:read|reads|reading|cat|open|opens|opening|dump|print|output|copy|send|upload|include"
    r"|attach|paste|pass|provide|exfiltrate|forward|post|share|leak|grab|collect|extract)\b"
    r"|\bcontents?\s+of\b|\btext\s+of\b"
)
TRANSFER_VERB: Final = _R(
    r"\b(?:send|upload|include|attach|paste|pass|provide|exfiltrate|forward|post|share|leak"
    r"|grab|collect|dump|cat)\b|\bcontents?\s+of\b|\b(?:read|open)\b[^.\n]{0,60}\band\s+"
    r"(?:pass|send|include|put|paste|add|provide|attach|upload|post|forward)\b"
)
_AFTER_TRANSFER: Final = _R(
    r"[^.\n]{0,60}?\b(?:and|then)\s+(?:pass|send|include|put|paste|add|provide|attach|upload"
    r"|post|forward|return)\b"
)
_NEGATED: Final = _R(r"\b(?:never|not|n't|without|no)\s+(?:\w+\s+)?$")


def verb_near(verb: re.Pattern[str]) -> Check:
    """A read (or transfer) verb earlier in the sentence, not negated, or "and send" after."""

    def check(doc: str, m: re.Match[str], lo: int, own: str) -> bool:
        start = max(lo, m.start() - 100)
        before = doc[start : m.start()]
        cut = max(before.rfind(". "), before.rfind("\n"))
        if cut >= 0:
            before = before[cut + 1 :]
        last = None
        for last in verb.finditer(before):  # noqa: B007 - the last one is wanted
            pass
        if last is not None and not _NEGATED.search(before, 0, last.start()):
            return True
        return _AFTER_TRANSFER.match(doc, m.end(), min(len(doc), m.end() + 80)) is not None

    return check


_REF_BEFORE: Final = _R(r"(" + TOOLREF + r")\s+$")


def not_self(doc: str, m: re.Match[str], lo: int, own: str) -> bool:
    """The tool the sentence talks about is another one (group "ref"), not `own` or "this"."""
    ref = m.groupdict().get("ref")
    if ref is None or ref.startswith("other"):
        return True
    name = ref.split()[-1].strip("`")
    if name == "tool":
        return m.groupdict().get("pre") not in (None, "this", "the", "a", "our")
    return name.replace("-", "_") != own


def ref_before(doc: str, m: re.Match[str], lo: int, own: str) -> bool:
    """`<snake_case_name> tool must ...`: the name before the anchor, not `own`."""
    ref = _REF_BEFORE.search(doc, max(lo, m.start() - 80), m.start())
    return ref is not None and ref.group(1).strip("`") != own


def after_blank_line(doc: str, m: re.Match[str], lo: int, own: str) -> bool:
    return re.search(r"\n\s*\n\s*$", doc[max(lo, m.start() - 24) : m.start()]) is not None


def line_start(doc: str, m: re.Match[str], lo: int, own: str) -> bool:
    """At the start of a line, or after markdown that makes a heading or label of it."""
    line = doc.rfind("\n", lo, m.start()) + 1
    before = doc[max(lo, line) : m.start()].rstrip()
    return not before or before.endswith(("#", "*", "[", "|", ">"))
