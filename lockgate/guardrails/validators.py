"""Validators of the redaction engine: what confirms that a regex candidate is a real value.

Why it exists: `detectors.py` finds candidates with regexes; precision comes from what is here
— checksums (Luhn, mod-97), issuer prefixes and IBAN lengths per country, SSN area rules,
`ipaddress` with the reserved documentation ranges and loopback, the phone parser
(`phonenumbers`, imported on first use so that importing the engine stays cheap: the package
costs ~45 ms to import; its validity check is asked through `valid_number_checker`, the same
answer from the same metadata at a fifth of the cost, since it is on the measured hot
path), and the negative lists (placeholders, masked values, AWS's example keys, prose after
a secret-named key). Each validator is a pure function of a string, so the
property tests drive them directly.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from phonenumbers import PhoneMetadata, PhoneNumber, PhoneNumberMatcher

_PLACEHOLDER = re.compile(
    r"[<>]|\$\{|\{\{|%\(|^\$|x{4,}|\*{3,}|•|your[_-]|example|placeholder|redacted|changeme"
    r"|dummy|^(?:true|false|null|none|undefined)$",
    re.IGNORECASE,
)


def real(value: str) -> bool:
    """Not a placeholder, masked value or template reference, and not one repeated char."""
    if len(set(value)) <= 3:
        return False
    if not value.isascii():
        return _PLACEHOLDER.search(value) is None
    # `_PLACEHOLDER` as substring tests on ASCII (IGNORECASE folds only ASCII letters there):
    # one search of its alternation cost ~6 us per token, most of a token's validation.
    lower = value.lower()
    if any(x in lower for x in _PLACEHOLDER_PARTS) or lower.startswith("$"):
        return False
    return (lower[:-1] if lower.endswith("\n") else lower) not in _PLACEHOLDER_WORDS


_PLACEHOLDER_PARTS: Final = (
    *("<", ">", "${", "{{", "%(", "xxxx", "***", "your_", "your-", "example", "placeholder"),
    *("redacted", "changeme", "dummy"),
)
_PLACEHOLDER_WORDS: Final = frozenset(("true", "false", "null", "none", "undefined"))


def luhn(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def issuer(d: str) -> bool:
    """Whether a digit string has a card issuer's prefix and that issuer's length."""
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


def card(value: str, before: str = "") -> bool:
    """A payment card number, with or without space/dash separators. `before` is the text
    just before it (up to 32 characters).

    A bare 14-digit run in the Diners Club range 300-305 also needs a card word before it
    (`card`, `credit`, `debit`, `cc`, `pan`, `pay`, `charge`…) or the issuer's 4-6-4
    grouping: one random 14-digit number in ~1,700 has that prefix and a valid Luhn digit,
    and in machine text such runs are mostly record ids, not cards."""
    digits = value.replace(" ", "").replace("-", "")
    if not (13 <= len(digits) <= 19 and digits.isdigit() and issuer(digits) and luhn(digits)):
        return False
    if len(digits) == 14 and len(value) == 14 and "300" <= digits[:3] <= "305":
        return card_context(before)
    return True


# Near a bare digit run: what says it is a card (not our own `[REDACTED:CARD]`).
_CARD_CONTEXT = re.compile(
    r"(?:card|credit|debit|diners|\bcc|\bpan\b|\bpa(?:y|id)|charge)(?![A-Z_]*\])",
    re.IGNORECASE,
)


_CARD_WORDS: Final = ("card", "credit", "debit", "diners", "cc", "pa", "charge")


def card_context(before: str) -> bool:
    """Whether the text before a bare digit run names it a card number (`phone_context`'s
    substring tests first, for the same reason)."""
    if before.isascii():
        low = before.lower()
        if not any(w in low for w in _CARD_WORDS):
            return False
    return _CARD_CONTEXT.search(before) is not None


IBAN_LENGTHS: Final[Mapping[str, int]] = {
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


def mod97(s: str) -> bool:
    """ISO 7064 mod-97-10 over an alphanumeric string (the IBAN check, also for custom ids)."""
    if len(s) < 5 or not s.isascii() or not s.isalnum():
        return False
    return int("".join(map(_BASE36, (s[4:] + s[:4]).upper()))) % 97 == 1


# Each character as its base-36 value in decimal (`A` -> `10`), looked up in one C-level map:
# a call of `int(c, 36)` per character was most of an IBAN's validation, and `str.translate`
# with a table of 2-character strings still took ~6 us on an IBAN where this takes ~2.5.
_BASE36: Final = {c: str(int(c, 36)) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}.__getitem__


def iban(value: str) -> bool:
    """An IBAN: the country's length and the mod-97 check (spaces between groups allowed)."""
    s = value.replace(" ", "")
    return IBAN_LENGTHS.get(s[:2]) == len(s) and mod97(s)


_SSN_SAMPLES: Final = frozenset({"078051120", "219099999", "123456789"})


def ssn(value: str) -> bool:
    """A US SSN `AAA-GG-SSSS`: area not 000, 666 or 9xx, group and serial not zero, and not
    one of the numbers published as samples (the Woolworth card, the 1940s ad, 123-45-6789)."""
    area, group, serial = value[:3], value[4:6], value[7:]
    if not (area + group + serial).isdigit() or len(value) != 11:
        return False
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _SSN_SAMPLES


RESERVED_TLDS: Final = frozenset({"test", "invalid", "example", "localhost", "local"})
RESERVED_DOMAINS: Final = frozenset({"example.com", "example.org", "example.net"})
# File extensions that look like TLDs after an `@2x`-style asset suffix or a package version.
FILE_TLDS: Final = frozenset(
    re.findall(
        r"\w+",
        "png jpg jpeg gif svg webp ico bmp tif tiff avif js mjs cjs ts tsx jsx css scss map json"
        " html htm md txt pdf zip gz tgz py rb go rs java wasm mp4 mp3 woff woff2 ttf",
    )
)


def email(address: str) -> bool:
    """A person's address: not an SSH remote (`git@host`), not at a reserved documentation
    domain (RFC 2606/6761), not an asset or package name whose "TLD" is a file extension."""
    local, _, domain = address.rpartition("@")
    if local == "git" or not local:
        return False
    labels = domain.lower().split(".")
    if labels[-1] in RESERVED_TLDS or labels[-1] in FILE_TLDS:
        return False
    return ".".join(labels[-2:]) not in RESERVED_DOMAINS


DOC_NETS: Final = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


_DOC_V4: Final = ("192.0.2.", "198.51.100.", "203.0.113.")


def ipv4(value: str) -> bool:
    """`ip` for a dotted quad, without `ipaddress` (8 µs a call, on the hot path): four
    decimal octets 0-255 without leading zeros, not loopback, 0.0.0.0 or documentation."""
    parts = value.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not (p.isascii() and p.isdigit()) or len(p) > 3 or (len(p) > 1 and p[0] == "0"):
            return False
        if int(p) > 255:
            return False
    return parts[0] != "127" and value != "0.0.0.0" and not value.startswith(_DOC_V4)


def ip(value: str) -> bool:
    """An IPv4/IPv6 address that is not loopback, unspecified or a documentation range."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return False
    if addr.is_loopback or addr.is_unspecified:
        return False
    return not any(addr.version == n.version and addr in n for n in DOC_NETS)


def ipv6_shape(value: str) -> bool:
    """An IPv6 candidate that looks like an address rather than `1::2` or `a::b` (scope
    operators, ratios, labels): three groups or more, or two with a full 4-digit first group
    (`fe80::1`, `2a00::1`)."""
    groups = [g for g in value.split(":") if g]
    return len(groups) >= 3 or (len(groups) == 2 and len(groups[0]) == 4)


# What comes just before a dotted quad that is a version, not an address.
_VERSION_BEFORE = re.compile(
    r"(?:\bv|version|\bver\.?|release|==|~=|>=|<=|\^|~|@)[\"']?\s*[:=]?\s*[\"']?\Z",
    re.IGNORECASE,
)


def version_context(before: str) -> bool:
    """Whether the text before a dotted quad makes it a version (`==1.2.3.4`, `version
    1.2.3.4`, `pkg@1.2.3.4`, `APP_VERSION=1.2.3.4`, `"version": "1.2.3.4"`)."""
    return _VERSION_BEFORE.search(before) is not None


def aws_access_key(value: str) -> bool:
    """Not AWS's published example key id (`AKIAIOSFODNN7EXAMPLE` and its kin)."""
    return not value.endswith("EXAMPLE")


# Words that make a value after `password:`/`token:` prose, not a credential: function words
# and the vocabulary of documentation about credentials ("must be at least 8 characters").
_PROSE_WORDS: Final = frozenset(
    re.findall(
        r"\w+",
        "a an the be is are was were must should shall will would can could may might not no"
        " and or of to for with in on at by from as if it its this that these those your you"
        " our we they least most minimum maximum max min characters chars long required"
        " optional empty blank set unset here there see please enter provide use used when",
    )
)
_WORD = re.compile(r"[A-Za-z]+")
# `secret = os.environ[...]`, `token = config.api.token`: an expression in code, not a value.
_CODE_REFERENCE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\Z")


def credential(value: str, unquoted: bool, rest: str) -> bool:
    """Whether the value of a secret-named key (`password: VALUE`) looks like a credential.

    Rule: a placeholder or masked value never is (`real`); a value with a prose word as a
    word of its own is documentation ("must be at least 8 characters", "the user's token");
    an unquoted value that is one word of letters followed on its line by another word is the
    start of a sentence; and a value of only letters shorter than 12 characters is a type
    name or a word (`password: string`, `token: hidden`, `"secret": "required"`), not a
    secret, nor is an unquoted dotted name or call in code (`secret = os.environ[...]`).
    Real credentials carry a digit, a symbol, mixed case or are long (`hunter2`, `P@ssw0rd!`,
    `s3cr3t-value`, `jyZsXRvFYwyHboZq`, `correcthorsebatterystaple`): those pass. The cost,
    accepted and documented: a short one-case all-letter password (`letmein`) is not
    redacted."""
    v = value.strip()
    if not real(v):
        return False
    words = _WORD.findall(v)
    if any(w.lower() in _PROSE_WORDS for w in words) and (" " in v or v.lower() in _PROSE_WORDS):
        return False
    if unquoted and (_CODE_REFERENCE.match(v) or rest[:1] in ("(", "[")):
        return False
    if v.isalpha() and v.isascii() and (v.islower() or v.isupper() or v.istitle()):
        if len(v) < 12:
            return False
        if unquoted and re.match(r"[ \t]+[A-Za-z]", rest):
            return False
    return True


_USERINFO = re.compile(r"://[^\s/@]*\Z")


def in_url_userinfo(before: str) -> bool:
    """Whether a `key:` is the user part of a URL (`https://x-access-token:TOKEN@host`): the
    URL's password is its own detector's, and the value would run on into the host."""
    return _USERINFO.search(before) is not None


# --- phone numbers ----------------------------------------------------------------------------

# Just before a candidate: what makes it an order number, id, price or version instead.
_PHONE_NOT_AFTER = re.compile(
    r"(?:\b(?:order|invoice|tracking|ticket|txn|transaction|ref|reference|sku|serial|isbn|id"
    r"|build|version|ver|account|acct|po|no)\b\.?[\s#:=-]{0,4}|\bv\s?|[$€£¥#@^~]\s?)\Z",
    re.IGNORECASE,
)
# Near a bare digit run: what says it is a phone number (not our own `[REDACTED:PHONE]`).
_PHONE_CONTEXT = re.compile(
    r"(?:phone|tel\b|tel:|mobile|cell|fax|call|sms|whatsapp|contact|\bph\b|dial)(?![A-Z_]*\])",
    re.IGNORECASE,
)
_matcher: Callable[[str, str], PhoneNumberMatcher] | None = None
_valid: Callable[[str, str], bool] | None = None
# E.164 and the NANP forms: their grouping is the standard one by construction, so parsing and
# `is_valid_number` decide what STRICT_GROUPING would, at a third of the matcher's cost.
_CANONICAL = re.compile(
    r"\+[1-9]\d{7,14}\Z|(?:\+?1[ .\-]?)?(?:\([2-9]\d\d\) ?|[2-9]\d\d[ .\-]?)[2-9]\d\d[ .\-]?\d{4}\Z"
)


def _load_phonenumbers() -> None:
    """On the parser's first use: keep its compiled metadata patterns (the library's own
    `enable_pattern_cache`, ~2,000 patterns and ~1 MB at most, every region's), so that each
    of the ~30 pattern look-ups a number costs is a dict hit instead of a call through
    `re.compile`'s cache (~1.5 us each, a third of a grouped number's matcher time)."""
    from phonenumbers import enable_pattern_cache

    enable_pattern_cache()


def _phone_valid() -> Callable[[str, str], bool]:
    global _valid
    if _valid is None:
        _load_phonenumbers()
        from phonenumbers import NumberParseException, parse

        is_valid = valid_number_checker()

        def valid(text: str, region: str) -> bool:
            try:
                return is_valid(parse(text, region))
            except NumberParseException:
                return False

        _valid = valid
    return _valid


def valid_number_checker() -> Callable[[PhoneNumber], bool]:
    """`phonenumbers.is_valid_number`, the same answer for every number at a fifth of its
    cost (~4 us where it takes ~20, a third of a real number's parse and check): the library
    matches each of a region's ~10 number types' patterns in turn, each through two regex
    calls, twice (once to find the number's region, once to check it there); this asks one
    pattern per (region, length), compiled on first use from the same metadata: the general
    pattern as a lookahead, then the types' patterns that allow that length, as one
    alternation (so fullmatch of it is: general and any type, which is what the library's
    `number type != UNKNOWN` is; mobile counts only when its pattern is not the fixed line's,
    as there). The region is chosen as the library does (its leading digits, else the first
    region whose types match). Held equal to the library by a property test."""
    global _valid_number
    if _valid_number is None:
        from phonenumbers import (
            COUNTRY_CODE_TO_REGION_CODE,
            REGION_CODE_FOR_NON_GEO_ENTITY,
            PhoneMetadata,
            country_code_for_valid_region,
            national_significant_number,
        )

        by_metadata: dict[int, tuple[PhoneMetadata, dict[int, re.Pattern[str] | None]]] = {}
        leading: dict[str, re.Pattern[str]] = {}

        def typed(nsn: str, md: PhoneMetadata) -> bool:
            entry = by_metadata.get(id(md))
            if entry is None or entry[0] is not md:
                entry = by_metadata[id(md)] = (md, {})
            n = len(nsn)
            if n not in entry[1]:
                entry[1][n] = _typed_pattern(md, n)
            rx = entry[1][n]
            return rx is not None and rx.fullmatch(nsn) is not None

        def region_of(nsn: str, regions: tuple[str, ...]) -> str | None:
            for region in regions:
                md = PhoneMetadata.metadata_for_region(region.upper(), None)
                if md is None:
                    continue
                if md.leading_digits is not None:
                    rx = leading.get(md.leading_digits)
                    if rx is None:
                        rx = leading[md.leading_digits] = re.compile(md.leading_digits)
                    if rx.match(nsn):
                        return region
                elif typed(nsn, md):
                    return region
            return None

        def valid(num: PhoneNumber) -> bool:
            cc = num.country_code
            regions = COUNTRY_CODE_TO_REGION_CODE.get(cc) if cc is not None else None
            if cc is None or regions is None:
                return False
            nsn = national_significant_number(num)
            region = regions[0] if len(regions) == 1 else region_of(nsn, regions)
            if region is None:
                return False
            md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region.upper())
            if md is None or (
                region != REGION_CODE_FOR_NON_GEO_ENTITY
                and cc != country_code_for_valid_region(region)
            ):
                return False
            return typed(nsn, md)

        _valid_number = valid
    return _valid_number


_valid_number: Callable[[PhoneNumber], bool] | None = None


def _typed_pattern(md: PhoneMetadata, length: int) -> re.Pattern[str] | None:
    """One pattern that a national number of `length` digits fully matches when it matches
    the region's general pattern and one of its types' (None: no type allows the length)."""

    def usable(desc: object) -> str | None:
        pattern = getattr(desc, "national_number_pattern", None)
        lengths = getattr(desc, "possible_length", ())
        if not pattern or (len(lengths) > 0 and length not in lengths):
            return None
        return str(pattern)

    general = usable(md.general_desc)
    descs = [
        md.premium_rate,
        md.toll_free,
        md.shared_cost,
        md.voip,
        md.personal_number,
        md.pager,
        md.uan,
        md.voicemail,
        md.fixed_line,
    ]
    if not md.same_mobile_and_fixed_line_pattern:
        descs.append(md.mobile)
    types = [p for p in map(usable, descs) if p is not None]
    if general is None or not types:
        return None
    return re.compile(f"(?=(?:{general})\\Z)(?:{'|'.join(f'(?:{p})' for p in types)})")


def _phone_matcher() -> Callable[[str, str], PhoneNumberMatcher]:
    global _matcher
    if _matcher is None:
        _load_phonenumbers()
        from phonenumbers import Leniency, PhoneNumberMatcher

        def matcher(text: str, region: str) -> PhoneNumberMatcher:
            return PhoneNumberMatcher(text, region, leniency=Leniency.STRICT_GROUPING)

        _matcher = matcher
    return _matcher


# What `_PHONE_CONTEXT` needs in ASCII text, lowercased (`\bph\b` and `phone` hold `ph`):
# ten substring tests cost ~0.5 us where its search costs ~9 (an alternation under
# IGNORECASE is tried at every position). Not for other text, where IGNORECASE also takes
# U+017F (long s) for `s`, which lower() does not.
_PHONE_WORDS: Final = (
    "ph",
    "tel",
    "mobile",
    "cell",
    "fax",
    "call",
    "sms",
    "whatsapp",
    "contact",
    "dial",
)
# The longest match of `_PHONE_NOT_AFTER`, which ends where `before` ends: `transaction.`
# and four separators.
_NOT_AFTER_MAX: Final = 16


def phone_context(before: str) -> bool:
    """Whether the text before a bare digit run names it a phone number."""
    if before.isascii():
        low = before.lower()
        if not any(w in low for w in _PHONE_WORDS):
            return False
    return _PHONE_CONTEXT.search(before) is not None


def not_a_phone_context(before: str) -> bool:
    """Whether the text just before a candidate makes it an id, price or version."""
    return _PHONE_NOT_AFTER.search(before, max(0, len(before) - _NOT_AFTER_MAX)) is not None


def phone(candidate: str, before: str, region: str = "US") -> tuple[int, int] | None:
    """The phone number in `candidate` (a regex-shaped run of digits and separators), as
    (start, end) inside it, or None. `before` is the text just before the candidate (up to 32
    characters), for context.

    The parser decides (`phonenumbers.PhoneNumberMatcher`, leniency STRICT_GROUPING: a valid
    number for its region whose digit groups are where the region's formatting puts them, so
    `212.58.244.20` is not the NYC number 212-582-4420), with the default region US and any
    number in `+CC` international form. Before it: an id, order number, price or version by
    its context is not a phone, and a bare digit run (no `+`, no separator) needs a phone word
    nearby (`phone`, `tel`, `call`…), because in machine text most 10-digit runs are ids."""
    if not_a_phone_context(before):
        return None
    if candidate.isdigit() and not phone_context(before):
        return None
    return _parsed(candidate, region)


def _parse_phone(candidate: str, region: str) -> tuple[int, int] | None:
    """`phone` after its context checks: what the parser finds in the candidate alone."""
    # The candidate may run on into other digit groups (`+14155552671 4111 1111 …`): try it
    # whole, then cut at each separator from the right, while it has 9 to 17 digits.
    cuts = [len(candidate)]
    cuts += [i for i in range(len(candidate) - 1, 6, -1) if candidate[i] in " .-"]
    for cut in cuts:
        piece = candidate[:cut]
        digits = sum(c.isdigit() for c in piece)
        if digits < 9:  # a `+CC` and 7 digits at least; the engine's digit-run anchor too
            break
        if digits <= 17:
            if _CANONICAL.match(piece):
                if _phone_valid()(piece, region):
                    return 0, len(piece)
                continue
            for m in _phone_matcher()(piece, region):
                return m.start, m.end
    return None


# The parser costs 40-300 us per real number, most of the engine's time on text that holds
# some (a quarter of the bench's documents, a third of its values), and the same numbers come
# back in a session (a contact in every result, a history re-sent with each sampling request).
# So its answer per exact candidate string is kept, for the last `PHONE_CACHE` distinct ones:
# bounded memory (under 200 KB, strings included), and a candidate is only digits and
# separators, a number the audit reports anyway or none. `phone_cache(0)` turns it off (the
# bench measures both: it repeats its load, which flatters any cache).
PHONE_CACHE: Final = 1024
_parsed: Callable[[str, str], tuple[int, int] | None] = functools.lru_cache(PHONE_CACHE)(
    _parse_phone
)


def phone_cache(size: int) -> None:
    """Keep the parser's answers for the last `size` distinct candidates (0: none)."""
    global _parsed
    _parsed = functools.lru_cache(size)(_parse_phone) if size > 0 else _parse_phone
