"""The redaction engine: find secrets and personal data in text, and mask them.

Why it exists: every string value of every MCP message crossing the gateway (tool arguments up,
results, resources, prompts and sampling payloads down, SSE event by event) goes through
`find`, so this is the hot path of the guardrail stage. It is hand-written rather than built on
a scanner library: one pass per detector over regexes compiled once at import, each match then
confirmed by a cheap validator (Luhn, mod-97, SSN area rules, `ipaddress`), with no model, no
network and no per-call allocation beyond the spans. The validators and the negative lists
(placeholders, masked values, reserved documentation domains and IP ranges, AWS's published
example keys) are what keep precision up on logs full of hashes, UUIDs and versions.

Not here yet: phone numbers (they need a real parser, the `phonenumbers` package, not a digit
regex).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

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


# --- validators -------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    r"[<>]|\$\{|\{\{|%\(|^\$|x{4,}|\*{3,}|•|your[_-]|example|placeholder|redacted|changeme"
    r"|dummy|^(?:true|false|null|none|undefined)$",
    re.IGNORECASE,
)


def _real(value: str) -> bool:
    """Not a placeholder, masked value or template reference, and not one repeated char."""
    return _PLACEHOLDER.search(value) is None and len(set(value)) > 3


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _issuer(d: str) -> bool:
    n = len(d)
    p2, p3, p4, p6 = int(d[:2]), int(d[:3]), int(d[:4]), int(d[:6])
    if d[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if p2 in (34, 37):
        return n == 15  # Amex
    if p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or 622126 <= p6 <= 622925:
        return 16 <= n <= 19  # Discover
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19  # JCB
    if 300 <= p3 <= 305 or p2 in (36, 38):
        return n == 14 or 16 <= n <= 19  # Diners
    if p2 == 62:
        return 16 <= n <= 19  # UnionPay
    return p4 in (5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763) and 12 <= n <= 19


def _card(m: re.Match[str]) -> bool:
    digits = m.group().replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and _issuer(digits) and _luhn(digits)


_IBAN_LENGTHS: Final = {
    **dict.fromkeys(("NO",), 15),
    **dict.fromkeys(("BE",), 16),
    **dict.fromkeys(("DK", "FI", "FO", "GL", "NL"), 18),
    **dict.fromkeys(("MK", "SI"), 19),
    **dict.fromkeys(("AT", "BA", "EE", "KZ", "LT", "LU", "XK"), 20),
    **dict.fromkeys(("CH", "HR", "LI", "LV"), 21),
    **dict.fromkeys(("BG", "BH", "CR", "DE", "GB", "GE", "IE", "ME", "RS"), 22),
    **dict.fromkeys(("AE", "GI", "IL", "IQ"), 23),
    **dict.fromkeys(("AD", "CZ", "ES", "MD", "PK", "RO", "SA", "SE", "SK", "TN", "VG"), 24),
    **dict.fromkeys(("PT",), 25),
    **dict.fromkeys(("IS", "TR"), 26),
    **dict.fromkeys(("FR", "GR", "IT", "MC", "MR", "SM"), 27),
    **dict.fromkeys(("AL", "AZ", "CY", "DO", "GT", "HU", "LB", "PL"), 28),
    **dict.fromkeys(("BR", "EG", "PS", "QA", "UA"), 29),
    **dict.fromkeys(("JO", "KW", "MU"), 30),
    **dict.fromkeys(("MT", "SC"), 31),
    **dict.fromkeys(("LC",), 32),
}


def _iban(m: re.Match[str]) -> bool:
    s = m.group().replace(" ", "")
    if _IBAN_LENGTHS.get(s[:2]) != len(s):
        return False
    rotated = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rotated)) % 97 == 1


def _ssn(m: re.Match[str]) -> bool:
    area, group, serial = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if area == 0 or area == 666 or area >= 900 or group == 0 or serial == 0:
        return False
    return m.group() not in ("078-05-1120", "219-09-9999", "123-45-6789")


_RESERVED_TLDS: Final = frozenset({"test", "invalid", "example", "localhost", "local"})
_RESERVED_DOMAINS: Final = frozenset({"example.com", "example.org", "example.net"})
# File extensions that look like TLDs after an `@2x`-style asset suffix or a package version.
_FILE_TLDS: Final = frozenset(
    re.findall(
        r"\w+",
        "png jpg jpeg gif svg webp ico bmp tif tiff avif js mjs cjs ts tsx jsx css scss map json"
        " html htm md txt pdf zip gz tgz py rb go rs java wasm mp4 mp3 woff woff2 ttf",
    )
)


def _email(m: re.Match[str]) -> bool:
    if m.group().startswith("git@"):
        return False  # an SSH remote (git@github.com:org/repo), not a person
    domain = m.group(1).lower()
    labels = domain.split(".")
    if labels[-1] in _RESERVED_TLDS or labels[-1] in _FILE_TLDS:
        return False
    return ".".join(labels[-2:]) not in _RESERVED_DOMAINS


_DOC_NETS: Final = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


def _ip(m: re.Match[str]) -> bool:
    try:
        addr = ipaddress.ip_address(m.group())
    except ValueError:
        return False
    if addr.is_loopback or addr.is_unspecified:
        return False
    return not any(addr.version == n.version and addr in n for n in _DOC_NETS)


def _aws_id(m: re.Match[str]) -> bool:
    return not m.group().endswith("EXAMPLE")


def _token(m: re.Match[str]) -> bool:
    return _real(m.group(m.lastindex or 0))


# --- detectors --------------------------------------------------------------------------------

# Token edges: not inside a word, nor joined to one by a dash. A placeholder's brackets count as
# the word they replaced, so masking one span never makes its neighbour detectable (idempotence).
_B = r"(?<![\w\]])(?<![\w\]]-)"
_E = r"(?![\w\[])(?!-[\w\[])"


def _lit(prefix: str, rest: str) -> str:
    """A token that starts with a literal, edges as `_B`/`_E`. The lookbehinds go after the
    literal (checking the characters before it) so that `re` can scan for the literal first,
    which is several times faster than trying a lookbehind at every position."""
    p = re.escape(prefix)
    return p + rf"(?<![\w\]]{p})(?<![\w\]]-{p})" + rest + _E


# A digit at a token edge, checked after it for the same reason.
_DIGIT = r"\d(?<![\w\]]\d)(?<![\w\]]-\d)"

# A detector: a compiled pattern, the type, the group that is the span (0 = whole match) and a
# validator of the match. Order is priority when two spans are identical.
Detector = tuple[re.Pattern[str], str, int, Callable[[re.Match[str]], bool] | None]

# The secret word ends the key (`client_secret`, `X-Api-Key`); any words before it are not
# matched, only required to end in `_` or `-`, which keeps this pattern cheap.
_SECRET_KEY = (
    r"(?:api[_-]?key|apikey|client[_-]?secret|secret[_-]?key|secret"
    r"|access[_-]?token|auth[_-]?token|refresh[_-]?token|token|password|passwd|pwd"
    r"|private[_-]?key|credentials?)"
)

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
        re.compile(r"(?<![A-Z0-9\]])(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Z0-9\[])"),
        AWS_ACCESS_KEY,
        0,
        _aws_id,
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
    (
        re.compile(_lit("SG.", r"[\w-]{22}\.[\w-]{43}")),
        SENDGRID_KEY,
        0,
        _token,
    ),
    (
        re.compile(_lit("eyJ", r"[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]*")),
        JWT,
        0,
        None,
    ),
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
            r"(?i)(?:(?<=[_-])|(?<![a-z0-9]))" + _SECRET_KEY + r"[\"']?\s*[:=]\s*"
            r"(?:\"([^\"\\\n]{3,512})\"|'([^'\\\n]{3,512})'|([^\s\"',;&<>{}\[\]()]{3,512}))"
        ),
        SECRET_VALUE,
        -1,
        None,
    ),
    (
        re.compile(
            _DIGIT + r"(?:\d{12,18}|\d{3}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?"
            r"|\d{3}([ -])\d{6}\2\d{4,5})" + _E
        ),
        CARD,
        0,
        _card,
    ),
    (
        re.compile(
            r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?"
            r"|[A-Z0-9]{11,30})(?![A-Za-z0-9])"
        ),
        IBAN,
        0,
        _iban,
    ),
    (
        re.compile(r"(" + _DIGIT + r"\d{2})-(\d{2})-(\d{4})" + _E),
        SSN,
        0,
        _ssn,
    ),
    (
        re.compile(
            r"(?:(?<=mailto:)|(?<![\w.%+:/-]))[A-Za-z0-9._%+-]+@"
            r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
            r"(?![\w-]|\.[A-Za-z0-9])"
        ),
        EMAIL,
        0,
        _email,
    ),
    (
        re.compile(
            r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
            r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)"
        ),
        IP,
        0,
        _ip,
    ),
    (
        re.compile(
            r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}(?::{1,2}[0-9A-Fa-f]{1,4}){1,7}"
            r"|::[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6}|(?:[0-9A-Fa-f]{1,4}:){1,7}:)"
            r"(?![\w:]|\.\d)"
        ),
        IP,
        0,
        _ip,
    ),
)


def _secret_value(m: re.Match[str]) -> Span | None:
    """The value group of a secret-named key, if it is a real value."""
    for g in (1, 2, 3):
        value = m.group(g)
        if value is not None:
            return Span(m.start(g), m.end(g), SECRET_VALUE) if _real(value.strip()) else None
    return None


# Substrings (of the lowercased text) without which a detector cannot match: a string value
# that has none of them skips that detector's scan, which is most values for most detectors.
_GATES: Final[Mapping[str, tuple[str, ...]]] = {
    PRIVATE_KEY: ("private key",),
    AWS_SECRET_KEY: ("secret",),
    AUTH_HEADER: ("authorization",),
    URL_PASSWORD: ("://",),
    SECRET_VALUE: ("key", "secret", "token", "passw", "pwd", "credential"),
    EMAIL: ("@",),
}


def _candidates(text: str) -> Iterable[tuple[Span, int]]:
    lowered = text.lower()
    for priority, (pattern, type_, group, valid) in enumerate(DETECTORS):
        gate = _GATES.get(type_)
        if gate is not None and not any(needle in lowered for needle in gate):
            continue
        for m in pattern.finditer(text):
            if group < 0:
                span = _secret_value(m)
                if span is not None:
                    yield span, priority
            elif valid is None or valid(m):
                yield Span(m.start(group), m.end(group), type_), priority


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
    return len(digits) > 1 and _luhn(digits)


def _mod97_match(m: re.Match[str]) -> bool:
    s = "".join(c for c in m.group().upper() if c.isalnum())
    if len(s) < 5 or not s.isascii():
        return False
    rotated = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rotated)) % 97 == 1


_CUSTOM_VALIDATORS: Final[Mapping[str, Callable[[re.Match[str]], bool]]] = {
    "luhn": _luhn_match,
    "mod97": _mod97_match,
}


def _resolve(found: Iterable[tuple[Span, int]]) -> list[Span]:
    ordered = sorted(found, key=lambda c: (c[0].start, c[0].start - c[0].end, c[1]))
    spans: list[Span] = []
    end = -1
    for span, _ in ordered:
        if span.start >= end:
            spans.append(span)
            end = span.end
    return spans


def find(text: str) -> list[Span]:
    """Every entity in `text`, sorted, without overlaps (the earliest, then longest, wins)."""
    return _resolve(_candidates(text))


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
        return _resolve([*_candidates(text), *_custom_candidates(text, self.custom)])

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
