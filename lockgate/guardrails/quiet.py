"""One RE2 pass that clears a whole message: nothing in it to redact, nothing to find.

Why it exists: on a benign call the redactor and the findings' gate each walk the message and
each ask RE2 about its strings, and every call into the RE2 binding costs ~2 us before it reads
a byte (measured: an empty search 1.8 us, 1 KB of prose 2.5 us more). Most traffic is benign,
so the stage first asks one question of the message: are all its strings ASCII, and does
the union of the detectors' anchors (`scan.ANCHORS_BODY`) and of the findings' result gate
(`findings.RESULT_ANY_BODY`, case-insensitive) match nowhere in them? Then neither would find
anything (each gate is a superset of what its rules match on ASCII text), and the message
passes as it is. "No" is exact; "maybe" sends the message down the full path.

The strings are read joined by NUL: a match inside one string is a match in the join (the
anchors read a NUL as any other non-digit edge and no pattern is anchored to the text's
ends), so joining can only add matches, never hide one. Keys are not read (no walk reads
them), every string value is (a superset of what the walks read).

The JSON text a message came in can be asked instead of its strings (`raw_clear`), which
saves the walk and the join (~20 us a 1 KB call in the gateway, where every step runs on cold
caches): when the text is ASCII and its escapes are a newline's, a tab's, a return's, a
quote's or a slash's (decoded in place), each string is in it verbatim, between quotes that
the anchors read as they read the NUL (a non-digit, non-word edge), so a match in one of its
strings is a match in the text. The keys, numbers, punctuation and any other
message of the same body can only add "maybe" answers, which then take the walk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import re2

from lockgate.guardrails.findings import RESULT_ANY_BODY
from lockgate.guardrails.scan import ANCHORS_BODY
from lockgate.guardrails.superset import yes_no

# The gates read every string of every message, base64 images included: fresh base64 needs
# ~11 MB of DFA states to scan at 7 us per KB (64 MB budget); with 32 MB it grew by 9.7 MB at
# 15 us per KB, with 16 MB by 4.6 MB at 34 us (`bench/dfa_memory.py`).
GATE_MAX_MEM: Final = 32 << 20


def _compile(body: str) -> Any:
    options = re2.Options()
    options.never_capture = True
    options.max_mem = GATE_MAX_MEM
    options.dot_nl = True  # as the findings' rules (DOTALL); the anchors have no dot
    return re2.compile(body.encode("ascii"), options)


# Up: only redaction reads the client's data. Down: redaction and the result findings.
UP: Final = yes_no(_compile(ANCHORS_BODY))
DOWN: Final = yes_no(_compile(f"{ANCHORS_BODY}|(?i:{RESULT_ANY_BODY})"))


def _strings(node: Any, out: dict[str, None]) -> bool:
    """Every string value under ``node`` into ``out``; False at the first non-ASCII one."""
    if isinstance(node, str):
        if not node.isascii():
            return False
        out[node] = None
    elif isinstance(node, dict):
        for v in node.values():
            if not isinstance(v, (int, float, bool)) and not _strings(v, out):
                return False
    elif isinstance(node, list):
        for v in node:
            if not isinstance(v, (int, float, bool)) and not _strings(v, out):
                return False
    return True


# The escapes a JSON text is read through in place: each stands for one character, and with no
# `\\` in the text every backslash starts one, so replacing them decodes every string where
# it stands. Any other escape (`\\`, `\u`...) sends the message to the walk.
_ESCAPES: Final = (
    (b"\\n", b"\n"),
    (b"\\t", b"\t"),
    (b"\\r", b"\r"),
    (b'\\"', b'"'),
    (b"\\/", b"/"),
)


def raw_clear(raw: bytes | str | None, rx: Callable[[bytes], bool]) -> bool:
    """True when ``raw``, the JSON text a message travels in (ASCII; `_ESCAPES` at most),
    holds nothing ``rx`` looks for; False means "ask `clear`"."""
    if raw is None or not raw.isascii():
        return False
    data = raw.encode("ascii") if isinstance(raw, str) else raw
    if b"\\" in data:
        if b"\\\\" in data:
            return False
        for escape, char in _ESCAPES:
            data = data.replace(escape, char)
        if b"\\" in data:
            return False
    return not rx(data)


def clear(nodes: list[Any], rx: Callable[[bytes], bool]) -> bool:
    """True when no string under ``nodes`` can hold anything ``rx`` (UP or DOWN) looks for."""
    found: dict[str, None] = {}
    for node in nodes:
        if not _strings(node, found):
            return False
    if not found:
        return True
    return not rx("\x00".join(found).encode("ascii"))
