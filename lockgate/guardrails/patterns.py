"""The redaction engine's vocabulary: the entity types, their groups, the `Span` a finding is,
and the detector table (one regex per pattern, the group that is the span, the validator).

Why it exists: `detectors.py` (the API), `scan.py` (how the table is run fast) and the
profile's custom detectors all speak these names; keeping the table apart keeps each module
to one concern. Patterns are compiled once at import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from lockgate.guardrails import validators as v

Action = Literal["off", "log", "mask", "block"]

CARD: Final = "CARD"
IBAN: Final = "IBAN"
SSN: Final = "SSN"
EMAIL: Final = "EMAIL"
IP: Final = "IP"
AWS_ACCESS_KEY: Final = "AWS_ACCESS_KEY"
AWS_SECRET_KEY: Final = "AWS_SECRET_KEY"
GITHUB_TOKEN: Final = "GITHUB_TOKEN"
GITLAB_TOKEN: Final = "GITLAB_TOKEN"
SLACK_TOKEN: Final = "SLACK_TOKEN"
STRIPE_KEY: Final = "STRIPE_KEY"
OPENAI_KEY: Final = "OPENAI_KEY"
ANTHROPIC_KEY: Final = "ANTHROPIC_KEY"
GOOGLE_API_KEY: Final = "GOOGLE_API_KEY"
NPM_TOKEN: Final = "NPM_TOKEN"
SENDGRID_KEY: Final = "SENDGRID_KEY"
JWT: Final = "JWT"
AUTH_HEADER: Final = "AUTH_HEADER"
URL_PASSWORD: Final = "URL_PASSWORD"
PRIVATE_KEY: Final = "PRIVATE_KEY"
SECRET_VALUE: Final = "SECRET_VALUE"
PHONE: Final = "PHONE"

# The groups a profile names actions by (`secret = "mask"`); a type's own key beats its group.
GROUPS: Final[Mapping[str, tuple[str, ...]]] = {
    "secret": (
        AWS_ACCESS_KEY,
        AWS_SECRET_KEY,
        GITHUB_TOKEN,
        GITLAB_TOKEN,
        SLACK_TOKEN,
        STRIPE_KEY,
        OPENAI_KEY,
        ANTHROPIC_KEY,
        GOOGLE_API_KEY,
        NPM_TOKEN,
        SENDGRID_KEY,
        JWT,
        AUTH_HEADER,
        URL_PASSWORD,
        PRIVATE_KEY,
        SECRET_VALUE,
    ),
    "financial": (CARD, IBAN),
    "national": (SSN,),
    "contact": (EMAIL, PHONE, IP),
}
TYPES: Final[tuple[str, ...]] = tuple(t for types in GROUPS.values() for t in types)


@dataclass(frozen=True, slots=True)
class Span:
    """A found entity: text[start:end] is of `type`."""

    start: int
    end: int
    type: str


def placeholder(type_: str) -> str:
    """What a masked span is replaced with."""
    return f"[REDACTED:{type_}]"


# --- detectors --------------------------------------------------------------------------------

# Token edges: not inside a word, nor joined to one by a dash. A placeholder's brackets count as
# the word they replaced, so masking one span never makes its neighbour detectable (idempotence).
_E = r"(?![\w\[])(?!-[\w\[])"


def _lit(prefix: str, rest: str) -> str:
    """A token that starts with a literal, edges as `_E` and the same before it. The
    lookbehinds go after the literal (checking the characters before it) so that `re` scans
    for the literal first, several times faster than trying a lookbehind at every position."""
    p = re.escape(prefix)
    return p + rf"(?<![\w\]]{p})(?<![\w\]]-{p})" + rest + _E


# A digit at a token edge, checked after it for the same reason.
_DIGIT = r"\d(?<![\w\]]\d)(?<![\w\]]-\d)"

# A detector: a compiled pattern, the type, the group that is the span (0 = whole match; the
# negative kinds below are handled by code of their own) and a validator of the match. Order
# is priority when two spans are identical.
Detector = tuple[re.Pattern[str], str, int, Callable[[re.Match[str]], bool] | None]
KIND_SECRET, KIND_PHONE, KIND_EMAIL = -1, -2, -3

# The secret word ends the key (`client_secret`, `X-Api-Key`); any words before it are not
# matched, only required to end in `_` or `-`, which keeps this pattern cheap.
SECRET_KEY_WORDS = (
    r"(?:api[_-]?key|apikey|client[_-]?secret|secret[_-]?key|secret"
    r"|access[_-]?token|auth[_-]?token|refresh[_-]?token|token|password|passwd|pwd"
    r"|private[_-]?key|credentials?)"
)


def _token(m: re.Match[str]) -> bool:
    return v.real(m.group(m.lastindex or 0))


def _ipv4(m: re.Match[str]) -> bool:
    return v.ipv4(m.group()) and not v.version_context(m.string[max(0, m.start() - 12) : m.start()])


def _card(m: re.Match[str]) -> bool:
    return v.card(m.group(), m.string[max(0, m.start() - 32) : m.start()])


def _ipv6(m: re.Match[str]) -> bool:
    return v.ipv6_shape(m.group()) and v.ip(m.group())


DETECTORS: Final[tuple[Detector, ...]] = (
    (
        re.compile(
            r"-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----"
            r"[\s\S]{16,65536}?-----END \1-----"
        ),
        PRIVATE_KEY,
        0,
        None,
    ),
    (
        re.compile(
            r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])(?<![A-Z0-9\]]....)[A-Z0-9]{16}(?![A-Z0-9\[])"
        ),
        AWS_ACCESS_KEY,
        0,
        lambda m: v.aws_access_key(m.group()),
    ),
    (
        re.compile(
            r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?"
            r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        AWS_SECRET_KEY,
        1,
        _token,
    ),
    (re.compile(_lit("gh", r"[pousr]_[A-Za-z0-9]{36,251}")), GITHUB_TOKEN, 0, _token),
    (re.compile(_lit("github_pat_", r"\w{82}")), GITHUB_TOKEN, 0, _token),
    (
        re.compile(_lit("gl", r"(?:pat|dt|rt|ptt|ft|soat|cbt)-[\w-]{20,}")),
        GITLAB_TOKEN,
        0,
        _token,
    ),
    (re.compile(_lit("xox", r"[abposr]-[A-Za-z0-9-]{10,}")), SLACK_TOKEN, 0, _token),
    (
        re.compile(r"https://hooks\.slack\.com/services/[A-Z0-9]+/[A-Z0-9]+/[A-Za-z0-9]+"),
        SLACK_TOKEN,
        0,
        _token,
    ),
    (re.compile(_lit("sk_", r"(?:live|test)_[A-Za-z0-9]{24,}")), STRIPE_KEY, 0, _token),
    (re.compile(_lit("rk_", r"(?:live|test)_[A-Za-z0-9]{24,}")), STRIPE_KEY, 0, _token),
    (re.compile(_lit("whsec_", r"[A-Za-z0-9]{24,}")), STRIPE_KEY, 0, _token),
    (
        re.compile(_lit("sk-ant-", r"(?:api|admin)\d\d-[\w-]{32,}")),
        ANTHROPIC_KEY,
        0,
        _token,
    ),
    (
        re.compile(
            _lit(
                "sk-",
                r"(?:(?:proj|svcacct|admin)-[\w-]{20,}"
                r"|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|[A-Za-z0-9]{48})",
            )
        ),
        OPENAI_KEY,
        0,
        _token,
    ),
    (re.compile(_lit("AIza", r"[\w-]{35}")), GOOGLE_API_KEY, 0, _token),
    (re.compile(_lit("npm_", r"[A-Za-z0-9]{36}")), NPM_TOKEN, 0, _token),
    (re.compile(_lit("SG.", r"[\w-]{22}\.[\w-]{43}")), SENDGRID_KEY, 0, _token),
    (re.compile(_lit("eyJ", r"[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]*")), JWT, 0, None),
    (
        re.compile(
            r"(?i)(?<![\w-])(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token)"
            r"\s+([\w.~+/=-]{8,})"
        ),
        AUTH_HEADER,
        1,
        _token,
    ),
    (
        re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@\[\]\"'<>]+:([^\s:/@\[\]\"'<>]+)@"),
        URL_PASSWORD,
        1,
        _token,
    ),
    (
        re.compile(
            r"(?i)(?:(?<=[_-])|(?<![a-z0-9]))" + SECRET_KEY_WORDS + r"[\"']?\s*[:=]\s*"
            r"(?:\"([^\"\\\n]{3,512})\"|'([^'\\\n]{3,512})'|([^\s\"',;&<>{}\[\]()]{3,512}))"
        ),
        SECRET_VALUE,
        KIND_SECRET,
        None,
    ),
    (
        re.compile(
            _DIGIT + r"(?<!\+\d)(?:\d{12,18}|\d{3}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?"
            r"|\d{3}([ -])\d{6}\2\d{4,5})" + _E
        ),
        CARD,
        0,
        _card,
    ),
    (
        re.compile(
            r"[A-Z]{2}(?<![A-Za-z0-9][A-Z]{2})\d{2}(?:(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?"
            r"|[A-Z0-9]{11,30})(?![A-Za-z0-9])"
        ),
        IBAN,
        0,
        lambda m: v.iban(m.group()),
    ),
    (re.compile(_DIGIT + r"\d{2}-\d{2}-\d{4}" + _E), SSN, 0, lambda m: v.ssn(m.group())),
    (
        re.compile(
            r"(?:(?<=mailto:)|(?<![\w.%+:/-]))[A-Za-z0-9._%+-]{1,64}@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
            r"(?![\w-]|\.[A-Za-z0-9])"
        ),
        EMAIL,
        KIND_EMAIL,
        lambda m: v.email(m.group()),
    ),
    (
        re.compile(r"\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\d)"),
        IP,
        0,
        _ipv4,
    ),
    (
        re.compile(
            r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}(?::{1,2}[0-9A-Fa-f]{1,4}){1,7}"
            r"|::[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6}|(?:[0-9A-Fa-f]{1,4}:){1,7}:)"
            r"(?![\w:]|\.\d)"
        ),
        IP,
        0,
        _ipv6,
    ),
    (
        # A phone-shaped run: `+CC` and groups, or the US national forms; the parser decides.
        re.compile(
            # Edges as `_E`: a placeholder's brackets count as a word, so masking a neighbour
            # never makes a number detectable; the US `1` prefix is not a neighbour's digit.
            r"(?<![\w\]+.\-/])(?:\+[1-9]\d{0,2}(?:[ .\-]?(?:\(\d{1,4}\)|\d++)){1,7}"
            r"|(?:(?<![\w:\]])1[ .\-]?)?(?:\([2-9]\d\d\) ?|[2-9]\d\d[ .\-]?)[2-9]\d\d[ .\-]?\d{4})"
            r"(?: ?(?:x|ext\.?) ?\d{1,6})?(?![\w\[]|[.\-/]\d)"
        ),
        PHONE,
        KIND_PHONE,
        None,
    ),
)
