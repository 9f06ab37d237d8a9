"""Property tests for every validator of the redaction engine (issue 11): generated valid
values are found in text, and the same values with one digit changed, a bad checksum, a
reserved range or a placeholder are not."""

from __future__ import annotations

import string

import phonenumbers
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from lockgate.guardrails import validators as v
from lockgate.guardrails.detectors import find

DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits


def types_in(text: str) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.type) for s in find(text)]


def luhn_complete(body: str) -> str:
    for d in DIGITS:
        if v.luhn(body + d):
            return body + d
    raise AssertionError("no Luhn digit")


def one_digit_changed(value: str, data: st.DataObject) -> str:
    positions = [i for i, c in enumerate(value) if c.isdigit()]
    i = data.draw(st.sampled_from(positions))
    new = data.draw(st.sampled_from([d for d in DIGITS if d != value[i]]))
    return value[:i] + new + value[i + 1 :]


# --- cards ------------------------------------------------------------------------------------

ISSUERS = [
    *[("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16)],
    *[("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("3528", 16), ("36", 14), ("62", 16)],
]


@st.composite
def cards(draw: st.DrawFn) -> str:
    prefix, length = draw(st.sampled_from(ISSUERS))
    body = prefix + draw(
        st.text(DIGITS, min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1)
    )
    return luhn_complete(body)


def grouped(card: str, sep: str) -> str:
    if len(card) == 16:
        return sep.join(card[i : i + 4] for i in range(0, 16, 4))
    if len(card) == 15:
        return sep.join((card[:4], card[4:10], card[10:]))
    return card


@settings(max_examples=300, deadline=None)
@given(cards(), st.sampled_from(["", " ", "-"]))
def test_valid_cards_are_found(card: str, sep: str) -> None:
    shown = grouped(card, sep) if sep else card
    assert v.card(shown)
    assert types_in(f"paid with {shown}, thanks") == [(shown, "CARD")]


@settings(max_examples=300, deadline=None)
@given(cards(), st.data())
def test_a_card_with_one_digit_changed_is_not_a_card(card: str, data: st.DataObject) -> None:
    bad = one_digit_changed(card, data)
    assert not v.luhn(bad)  # Luhn catches every single-digit error
    assert not v.card(bad)
    assert "CARD" not in {t for _, t in types_in(f"paid with {bad}, thanks")}


@settings(max_examples=200, deadline=None)
@given(st.text(DIGITS, min_size=13, max_size=19))
def test_a_luhn_valid_run_without_an_issuer_prefix_is_not_a_card(digits: str) -> None:
    assume(not v.issuer(luhn_complete(digits[:-1])))
    assert not v.card(luhn_complete(digits[:-1]))


@st.composite
def diners_short(draw: st.DrawFn) -> str:
    """A Luhn-valid 14-digit number in the Diners Club range 300-305."""
    head = str(draw(st.integers(300, 305)))
    return luhn_complete(head + draw(st.text(DIGITS, min_size=10, max_size=10)))


@settings(max_examples=200, deadline=None)
@given(diners_short(), st.sampled_from(["row", "id", "record", "shipment", "ref", "trace"]))
def test_a_bare_14_digit_diners_run_without_a_card_word_is_not_a_card(
    number: str, word: str
) -> None:
    assert not v.card(number)
    for text in (f"{word} {number} done", f'{{"{word}": "{number}"}}', f"{number},2026-01-02"):
        assert "CARD" not in {t for _, t in types_in(text)}


@settings(max_examples=200, deadline=None)
@given(diners_short(), st.sampled_from(["card", "Card number:", "credit", "cc_num=", "paid with"]))
def test_a_14_digit_diners_number_after_a_card_word_is_a_card(number: str, word: str) -> None:
    assert v.card(number, f"{word} ")
    assert types_in(f"{word} {number} ok") == [(number, "CARD")]


@settings(max_examples=200, deadline=None)
@given(diners_short(), st.sampled_from([" ", "-"]))
def test_a_14_digit_diners_number_grouped_4_6_4_is_a_card(number: str, sep: str) -> None:
    shown = sep.join((number[:4], number[4:10], number[10:]))
    assert v.card(shown)
    assert types_in(f"ref {shown} ok") == [(shown, "CARD")]


def test_our_own_card_placeholder_is_no_card_word() -> None:
    # masking a neighbour must not make a bare run a card (`redact` stays one pass)
    assert not v.card_context("[REDACTED:CARD] ")
    assert v.card_context("card ")


# --- IBAN -------------------------------------------------------------------------------------

BBAN = {"DE": "n" * 18, "GB": "aaaa" + "n" * 14, "FR": "n" * 10 + "c" * 11 + "nn",
        "NL": "aaaa" + "n" * 10, "ES": "n" * 20, "IT": "a" + "n" * 10 + "c" * 12,
        "BE": "n" * 12, "CH": "n" * 5 + "c" * 12, "PL": "n" * 24, "NO": "n" * 11}  # fmt: skip
ALPHABET = {"n": DIGITS, "a": string.ascii_uppercase, "c": DIGITS + string.ascii_uppercase}


@st.composite
def ibans(draw: st.DrawFn) -> str:
    cc = draw(st.sampled_from(sorted(BBAN)))
    bban = "".join(draw(st.sampled_from(ALPHABET[k])) for k in BBAN[cc])
    check = 98 - int("".join(str(int(c, 36)) for c in bban + cc + "00")) % 97
    return f"{cc}{check:02d}{bban}"


@settings(max_examples=300, deadline=None)
@given(ibans(), st.booleans())
def test_valid_ibans_are_found(iban: str, spaced: bool) -> None:
    shown = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if spaced else iban
    assert v.iban(shown)
    assert types_in(f"pay to {shown} today") == [(shown, "IBAN")]


@settings(max_examples=300, deadline=None)
@given(ibans(), st.data())
def test_an_iban_with_one_digit_changed_fails_mod97(iban: str, data: st.DataObject) -> None:
    bad = iban[:2] + one_digit_changed(iban[2:], data)
    assert not v.iban(bad)  # mod-97 catches every single substitution
    assert "IBAN" not in {t for _, t in types_in(f"pay to {bad} today")}


@given(ibans())
def test_an_iban_of_the_wrong_length_for_its_country_is_not_one(iban: str) -> None:
    assert not v.iban(iban + "0")
    assert not v.iban(iban[:-1])


# --- SSN --------------------------------------------------------------------------------------

AREAS = st.integers(1, 899).filter(lambda a: a != 666)


@settings(max_examples=300, deadline=None)
@given(AREAS, st.integers(1, 99), st.integers(1, 9999))
def test_valid_ssns_are_found(area: int, group: int, serial: int) -> None:
    ssn = f"{area:03d}-{group:02d}-{serial:04d}"
    assume(ssn != "078-05-1120" and ssn != "219-09-9999" and ssn != "123-45-6789")
    assert v.ssn(ssn)
    assert types_in(f"ssn {ssn} on file") == [(ssn, "SSN")]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.tuples(st.sampled_from([0, 666]), st.integers(1, 99), st.integers(1, 9999)),
        st.tuples(st.integers(900, 999), st.integers(1, 99), st.integers(1, 9999)),
        st.tuples(AREAS, st.just(0), st.integers(1, 9999)),
        st.tuples(AREAS, st.integers(1, 99), st.just(0)),
    )
)
def test_ssns_outside_the_rules_are_not_found(parts: tuple[int, int, int]) -> None:
    ssn = "{:03d}-{:02d}-{:04d}".format(*parts)
    assert not v.ssn(ssn)
    assert "SSN" not in {t for _, t in types_in(f"ssn {ssn} on file")}


# --- phone numbers ----------------------------------------------------------------------------

REGIONS = ["US", "GB", "DE", "FR", "JP", "IN", "BR", "AU", "ES", "IT", "CA", "MX", "NL", "CH"]


@st.composite
def phone_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    region = draw(st.sampled_from(REGIONS))
    kind = draw(st.sampled_from([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE]))
    example = phonenumbers.example_number_for_type(region, kind)
    assert example is not None
    nsn = str(example.national_number)
    tail = draw(st.text(DIGITS, min_size=3, max_size=3))
    num = phonenumbers.parse(f"+{example.country_code}{nsn[:-3]}{tail}")
    assume(phonenumbers.is_valid_number(num))
    return num


@settings(max_examples=150, deadline=None)
@given(phone_numbers(), st.sampled_from([PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.E164]))
def test_valid_international_numbers_are_found(num: phonenumbers.PhoneNumber, fmt: int) -> None:
    shown = phonenumbers.format_number(num, fmt)
    assert types_in(f"call {shown} after 5") == [(shown, "PHONE")]


@settings(max_examples=150, deadline=None)
@given(st.integers(200, 999), st.integers(200, 999), st.integers(0, 9999))
def test_us_numbers_are_found_only_when_valid(area: int, exchange: int, line: int) -> None:
    shown = f"({area}) {exchange}-{line:04d}"
    valid = phonenumbers.is_valid_number(phonenumbers.parse(shown, "US"))
    assert (types_in(f"call {shown} today") == [(shown, "PHONE")]) == valid


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 199), st.integers(200, 999), st.integers(0, 9999))
def test_us_shaped_numbers_with_an_impossible_area_code_are_not_found(
    area: int, exchange: int, line: int
) -> None:
    shown = f"({area:03d}) {exchange}-{line:04d}"
    assert "PHONE" not in {t for _, t in types_in(f"call {shown} today")}


@settings(max_examples=100, deadline=None)
@given(phone_numbers())
def test_a_phone_number_after_order_or_a_price_is_not_one(num: phonenumbers.PhoneNumber) -> None:
    digits = phonenumbers.format_number(num, PhoneNumberFormat.E164)[1:]
    for text in (f"order {digits} shipped", f"price ${digits}", f"v{digits}", f"id={digits}"):
        assert "PHONE" not in {t for _, t in types_in(text)}, text


# --- AWS and tokens ---------------------------------------------------------------------------


def token_text(alphabet: str, n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=n, max_size=n).filter(lambda s: len(set(s)) > 3)


AWS_ID = token_text(string.ascii_uppercase + "234567", 16).filter(
    lambda s: not s.endswith("EXAMPLE")
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["AKIA", "ASIA"]), AWS_ID)
def test_aws_key_ids_are_found_at_their_length_only(prefix: str, body: str) -> None:
    key = prefix + body
    assert types_in(f"id {key} used") == [(key, "AWS_ACCESS_KEY")]
    assert "AWS_ACCESS_KEY" not in {t for _, t in types_in(f"id {key[:-1]} used")}
    assert "AWS_ACCESS_KEY" not in {t for _, t in types_in(f"id {key}Q used")}
    assert types_in(f"id {key[:13]}EXAMPLE used") == []


@settings(max_examples=200, deadline=None)
@given(token_text(ALNUM + "/+", 40).filter(v.real))  # `…XXXx…` is a placeholder's `xxxx`
def test_aws_secret_keys_are_found_in_context_only(secret: str) -> None:
    assert types_in(f"aws_secret_access_key = {secret}") == [(secret, "AWS_SECRET_KEY")]
    assert "AWS_SECRET_KEY" not in {t for _, t in types_in(f"value = {secret}")}


TOKENS = [
    # (type, literal prefix, alphabet, length after the prefix, a length that is too short)
    ("GITHUB_TOKEN", "ghp_", ALNUM, 36, 35),
    ("GITLAB_TOKEN", "glpat-", ALNUM, 20, 19),
    ("NPM_TOKEN", "npm_", ALNUM, 36, 35),
    ("STRIPE_KEY", "sk_live_", ALNUM, 24, 23),
    ("SLACK_TOKEN", "xoxb-", ALNUM, 24, 9),
    ("GOOGLE_API_KEY", "AIza", ALNUM, 35, 34),
    ("OPENAI_KEY", "sk-proj-", ALNUM, 24, 19),
    ("ANTHROPIC_KEY", "sk-ant-api03-", ALNUM, 40, 31),
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TOKENS), st.data())
def test_tokens_are_found_at_their_length_and_placeholders_are_not(
    spec: tuple[str, str, str, int, int], data: st.DataObject
) -> None:
    type_, prefix, alphabet, n, short = spec
    token = prefix + data.draw(token_text(alphabet, n).filter(v.real))
    assert types_in(f"token {token} here") == [(token, type_)]
    assert type_ not in {
        t for _, t in types_in(f"token {prefix}{token[len(prefix) :][:short]} here")
    }
    assert types_in(f"token {prefix}{'x' * n} here") == []
    assert types_in(f"token {prefix}<YOUR_{type_}> here") == []


# --- email and IP -----------------------------------------------------------------------------

LABEL = st.text(string.ascii_lowercase + DIGITS, min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
# `git@host` is an SSH remote, not a person's address (validators.email).
@given(
    LABEL.filter(lambda s: s != "git"), LABEL, st.sampled_from(["io", "com", "de", "co.uk", "org"])
)
def test_emails_are_found_except_at_reserved_domains(local: str, domain: str, tld: str) -> None:
    address = f"{local}@{domain}x.{tld}"
    assert types_in(f"mail {address} now") == [(address, "EMAIL")]
    for reserved in ("example.com", "example.org", "x.test", "y.invalid", "z.example"):
        assert types_in(f"mail {local}@{reserved} now") == []


OCTET = st.integers(0, 255)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 223), OCTET, OCTET, OCTET)
def test_ipv4_addresses_are_found_except_loopback_and_documentation(
    a: int, b: int, c: int, d: int
) -> None:
    ip = f"{a}.{b}.{c}.{d}"
    doc = ip.startswith(("192.0.2.", "198.51.100.", "203.0.113.")) or a == 127
    assert v.ipv4(ip) == v.ip(ip) == (not doc)
    assert types_in(f"from {ip} port") == ([] if doc else [(ip, "IP")])
    assert types_in(f"version {ip} released") == []


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 255), OCTET, OCTET, st.integers(256, 999))
def test_a_dotted_quad_with_an_octet_over_255_is_not_an_address(
    a: int, b: int, c: int, d: int
) -> None:
    assert types_in(f"from {a}.{b}.{c}.{d} port") == []
    assert not v.ipv4(f"{a}.{b}.{c}.{d}")


@given(st.text(ALNUM + ".", max_size=20))
def test_ipv4_agrees_with_ipaddress(value: str) -> None:
    import ipaddress

    try:
        addr = ipaddress.IPv4Address(value)
    except ValueError:
        assert not v.ipv4(value)
        return
    documented = any(addr in n for n in v.DOC_NETS if n.version == 4)
    assert v.ipv4(value) == (not addr.is_loopback and not addr.is_unspecified and not documented)


# --- secret values ----------------------------------------------------------------------------

PASSWORDS = st.from_regex(r"[a-z]{3,8}[0-9]{1,3}[!@#%^*]?[A-Za-z0-9]{0,6}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(
    PASSWORDS, st.sampled_from(["password: {}", "api_key={}", '"client_secret": "{}"', "TOKEN={}"])
)
def test_credential_looking_values_are_found(secret: str, shape: str) -> None:
    assume(v.real(secret))
    assert types_in(shape.format(secret)) == [(secret, "SECRET_VALUE")]


@given(st.sampled_from(sorted(v._PROSE_WORDS)), st.sampled_from(["password: {} x", "token = {}"]))
def test_prose_after_a_secret_named_key_is_not_a_value(word: str, shape: str) -> None:
    assert types_in(shape.format(word)) == []


@settings(max_examples=100, deadline=None)
@given(token_text(ALNUM + "_", 82).filter(v.real))
def test_fine_grained_github_tokens_are_found_in_short_values(body: str) -> None:
    token = "github_pat_" + body
    assert types_in(token) == [(token, "GITHUB_TOKEN")]
    assert types_in(f'{{"token": "{token}"}}') == [(token, "GITHUB_TOKEN")]


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz", min_size=5, max_size=40))
def test_mod97_is_the_per_character_base36_checksum(s: str) -> None:
    """`mod97`'s one translate reads each character as `int(c, 36)` did."""
    rotated = (s[4:] + s[:4]).upper()
    assert v.mod97(s) == (int("".join(str(int(c, 36)) for c in rotated)) % 97 == 1)


PLACEHOLDERISH = st.sampled_from(
    [
        *("<", ">", "${", "{{", "%(", "$", "x", "X", "*", "your", "_", "-", "Example", "PLACE"),
        *("holder", "Redacted", "changeme", "DUMMY", "true", "False", "null", "None", "\n"),
        *("undefined", "a", "b", "1", "2", "abc", "K", "\u212a", "\u2022", "\u0130", "s"),
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(PLACEHOLDERISH, st.text(max_size=3)), max_size=8).map("".join))
def test_real_is_the_placeholder_pattern_and_four_distinct_characters(value: str) -> None:
    """`real`'s substring tests on ASCII say what the placeholder pattern says."""
    assert v.real(value) == (v._PLACEHOLDER.search(value) is None and len(set(value)) > 3)


# --- the context checks' fast paths ---------------------------------------------------------

CONTEXT_WORDS = [
    *("phone", "Tel", "tel:", "MOBILE", "cell", "fax", "call", "sms", "WhatsApp", "contact"),
    *("ph", "dial", "card", "Credit", "debit", "diners", "cc", "pan", "pay", "paid", "charge"),
    *("order", "invoice", "Transaction", "ref", "id", "no", "v", "$", "#", "@", "€", "~"),
    *("[REDACTED:PHONE]", "[REDACTED:CARD]", "_", "-", ".", ":", "=", " ", "\n", "x"),
    *("\u017fms", "\u212aey", "é", "1", "42"),
]


@st.composite
def context_text(draw: st.DrawFn) -> str:
    """Text before a candidate: context words, their parts and neighbours, glued or not."""
    parts = draw(st.lists(st.sampled_from(CONTEXT_WORDS) | st.text(ALNUM + " _-:[]", max_size=3)))
    return "".join(parts)[-32:]


@settings(max_examples=1000, deadline=None)
@given(context_text())
def test_the_context_checks_fast_paths_answer_as_their_regexes(before: str) -> None:
    assert v.phone_context(before) == (v._PHONE_CONTEXT.search(before) is not None)
    assert v.card_context(before) == (v._CARD_CONTEXT.search(before) is not None)
    assert v.not_a_phone_context(before) == (v._PHONE_NOT_AFTER.search(before) is not None)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["+1 415-555-2671", "+49 1512 3456743", "(415) 555-2671", "+447400123456"]),
    st.sampled_from(["", "1", " 4111", "-12", "2", " 99 1"]),
    st.sampled_from(["US", "GB"]),
)
def test_the_phone_cache_answers_as_the_parser(number: str, tail: str, region: str) -> None:
    candidate = number + tail
    try:
        v.phone_cache(0)
        uncached = v.phone(candidate, "phone ", region)
        v.phone_cache(8)
        assert v.phone(candidate, "phone ", region) == uncached  # a miss
        assert v.phone(candidate, "phone ", region) == uncached  # a hit
    finally:
        v.phone_cache(v.PHONE_CACHE)


def test_the_parser_keeps_its_compiled_metadata_patterns_once_loaded() -> None:
    """`phonenumbers.enable_pattern_cache` is on after the first number parsed: the library's
    pattern look-ups are dict hits (`validators._load_phonenumbers`)."""
    import phonenumbers.re_util

    assert v.phone("+1 415-555-2671", "phone ") == (0, 15)
    kept = phonenumbers.re_util._COMPILED_PATTERNS
    assert isinstance(kept, dict) and kept


_CALLING_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_EXAMPLES = sorted(
    {
        (n.country_code, str(n.national_number))
        for region in phonenumbers.SUPPORTED_REGIONS
        for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE)
        if (n := phonenumbers.example_number_for_type(region, kind)) is not None
    }
)


@st.composite
def national_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    """A calling code and national number: a region's example (valid) with its tail redrawn,
    cut or lengthened, or random digits for any calling code (mostly invalid), with or
    without leading zeros."""
    if draw(st.booleans()):
        cc, nsn = draw(st.sampled_from(_EXAMPLES))
        keep = draw(st.integers(max(1, len(nsn) - 6), len(nsn)))
        nsn = nsn[:keep] + draw(st.text(DIGITS, max_size=len(nsn) - keep + 2))
    else:
        cc = draw(st.sampled_from(_CALLING_CODES))
        nsn = draw(st.text(DIGITS, min_size=1, max_size=17))
    zeros = draw(st.integers(0, 2))
    return phonenumbers.PhoneNumber(
        country_code=cc,
        national_number=int(nsn),
        italian_leading_zero=zeros > 0 or None,
        number_of_leading_zeros=zeros if zeros > 1 else None,
    )


@settings(max_examples=3000, deadline=None)
@given(national_numbers())
def test_the_validity_check_answers_as_the_library(num: phonenumbers.PhoneNumber) -> None:
    """`valid_number_checker` (one pattern per region and length) says what
    `phonenumbers.is_valid_number` says, for valid and invalid numbers of every region."""
    assert v.valid_number_checker()(num) == phonenumbers.is_valid_number(num)


def test_the_validity_check_holds_on_every_regions_examples() -> None:
    checker = v.valid_number_checker()
    valid = 0
    for cc, nsn in _EXAMPLES:
        num = phonenumbers.PhoneNumber(country_code=cc, national_number=int(nsn))
        assert checker(num) == phonenumbers.is_valid_number(num), (cc, nsn)
        valid += checker(num)
    assert valid > 400
