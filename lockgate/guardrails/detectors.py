"""The redaction engine: find secrets and personal data in text, and mask them.

Why it exists: every string value of every MCP message crossing the gateway (tool arguments up,
results, resources, prompts and sampling payloads down, SSE event by event) goes through
`find`, so this is the hot path of the guardrail stage. The API lives here: `find`, `redact`,
`placeholder`, the profile's `Custom` detectors and the `Detectors` engine that runs them with
the built-ins. The types and the detector table are in `patterns.py` (re-exported here), the
validators that keep precision up (Luhn, mod-97, SSN rules, IP ranges, the `phonenumbers`
parser, placeholders, prose after a secret-named key) in `validators.py`, and the hand-written
fast path that runs the table (see its docstring for why, how, and its speed as measured by
bench/redact.py) in `scan.py`. No model, no network.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

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
    GROUPS,
    IBAN,
    IP,
    JWT,
    NPM_TOKEN,
    OPENAI_KEY,
    PHONE,
    PRIVATE_KEY,
    SECRET_VALUE,
    SENDGRID_KEY,
    SLACK_TOKEN,
    SSN,
    STRIPE_KEY,
    TYPES,
    URL_PASSWORD,
    Action,
    Detector,
    Span,
    placeholder,
)
from lockgate.guardrails.scan import candidates

__all__ = [
    "ANTHROPIC_KEY",
    "AUTH_HEADER",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "CARD",
    "DETECTORS",
    "EMAIL",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "GOOGLE_API_KEY",
    "GROUPS",
    "IBAN",
    "IP",
    "JWT",
    "NPM_TOKEN",
    "OPENAI_KEY",
    "PHONE",
    "PRIVATE_KEY",
    "SECRET_VALUE",
    "SENDGRID_KEY",
    "SLACK_TOKEN",
    "SSN",
    "STRIPE_KEY",
    "TYPES",
    "URL_PASSWORD",
    "Action",
    "Custom",
    "Detector",
    "Detectors",
    "Span",
    "find",
    "placeholder",
    "redact",
]


@dataclass(frozen=True, slots=True)
class Custom:
    """A detector from the profile: a type name, a regex, and an optional validator of the
    match. ValueError (at profile load, never per message) when the pattern does not compile."""

    name: str
    pattern: str
    validator: Literal["luhn", "mod97"] | None = None

    def compiled(self) -> Detector:
        try:
            rx = re.compile(self.pattern)
        except re.error as e:
            raise ValueError(f"the pattern of detector {self.name} does not compile: {e}") from e
        valid = _CUSTOM_VALIDATORS[self.validator] if self.validator else None
        return (rx, self.name, 0, valid)


def _luhn_match(m: re.Match[str]) -> bool:
    digits = "".join(c for c in m.group() if c.isdigit())
    return len(digits) > 1 and v.luhn(digits)


def _mod97_match(m: re.Match[str]) -> bool:
    return v.mod97("".join(c for c in m.group() if c.isalnum()))


_CUSTOM_VALIDATORS: Final[Mapping[str, Callable[[re.Match[str]], bool]]] = {
    "luhn": _luhn_match,
    "mod97": _mod97_match,
}


def _resolve(found: Iterable[tuple[Span, int]]) -> list[Span]:
    """Sorted spans without overlaps: the earliest, then longest, then first detector wins;
    a phone number loses to anything it overlaps (a card, an IP, an IBAN's digits)."""
    spans_all = list(found)
    if len(spans_all) < 2:  # none, or one: nothing to overlap (most values that hold one)
        return [spans_all[0][0]] if spans_all else []
    others = [s for s, _ in spans_all if s.type != PHONE]
    if len(others) < len(spans_all):
        spans_all = [
            (s, p)
            for s, p in spans_all
            if s.type != PHONE or not any(o.start < s.end and s.start < o.end for o in others)
        ]
    ordered = sorted(spans_all, key=lambda c: (c[0].start, c[0].start - c[0].end, c[1]))
    spans: list[Span] = []
    end = -1
    for span, _ in ordered:
        if span.start >= end:
            spans.append(span)
            end = span.end
    return spans


def find(text: str) -> list[Span]:
    """Every entity in `text`, sorted, without overlaps (the earliest, then longest, wins)."""
    found = candidates(text)
    if not found:  # most values: no call of `_resolve`
        return []
    return _resolve(found)


def _custom_candidates(text: str, custom: tuple[Detector, ...]) -> Iterable[tuple[Span, int]]:
    base = len(DETECTORS)
    for i, (pattern, type_, group, valid) in enumerate(custom):
        for m in pattern.finditer(text):
            if m.end() > m.start() and (valid is None or valid(m)):
                yield Span(m.start(group), m.end(group), type_), base + i


class Detectors:
    """The built-in detectors plus a profile's custom ones (built once per policy)."""

    __slots__ = ("custom",)

    def __init__(self, custom: Iterable[Custom] = ()) -> None:
        self.custom = tuple(c.compiled() for c in custom)

    def find(self, text: str) -> list[Span]:
        if not self.custom:
            return find(text)
        return _resolve([*candidates(text), *_custom_candidates(text, self.custom)])

    def redact(self, text: str, actions: Mapping[str, Action] | None = None) -> str:
        """As the module's `redact`, with the custom detectors too."""
        return _redact(text, actions, self.find)


def _mask(
    text: str, actions: Mapping[str, Action] | None, finder: Callable[[str], list[Span]]
) -> str:
    out: list[str] = []
    pos = 0
    for span in finder(text):
        if actions is not None and actions.get(span.type) != "mask":
            continue
        out.append(text[pos : span.start])
        out.append(placeholder(span.type))
        pos = span.end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


# Passes until nothing more is masked; two in practice, the cap is a safety net.
_MAX_PASSES: Final = 4


def redact(text: str, actions: Mapping[str, Action] | None = None) -> str:
    """`text` with each span whose type's action is `mask` replaced by `[REDACTED:TYPE]`
    (every span when `actions` is None). Text outside the masked spans is kept as is.

    A secret glued to another one without a separator (`bob@acme.ioAKIA...`) can hide its
    neighbour's edge; masking it exposes that edge, so `redact` runs `find` again on what it
    produced until nothing changes. That makes it idempotent, at the cost of one more pass
    over text in which something was masked (none over clean text)."""
    return _redact(text, actions, find)


def _redact(
    text: str, actions: Mapping[str, Action] | None, finder: Callable[[str], list[Span]]
) -> str:
    for _ in range(_MAX_PASSES):
        masked = _mask(text, actions, finder)
        if masked is text:
            break
        text = masked
    return text
