"""The redaction engine: positives and hard negatives per type, and its properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.guardrails.detectors import find, placeholder, redact

NPM = "npm_a1B2c3D4e5a1B2c3D4e5a1B2c3D4e5F6g7H8"
GH = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
SG = "SG." + "aB1c2D3e4F5g6H7i8J9k0L" + "." + "Z1y2X3w4V5u6T7s8R9q0P1o2N3m4L5k6J7i8H9g0F1e"
JWT_TOKEN = (
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234567890abcdef\n"
    "-----END RSA PRIVATE KEY-----"
)

# (text, the secret inside it, its type)
POSITIVES = [
    ("card 4111 1111 1111 1111 ok", "4111 1111 1111 1111", "CARD"),
    ("amex 378282246310005.", "378282246310005", "CARD"),
    ("mc 5555-5555-5555-4444", "5555-5555-5555-4444", "CARD"),
    ("iban DE89 3704 0044 0532 0130 00 x", "DE89 3704 0044 0532 0130 00", "IBAN"),
    ("to GB82WEST12345698765432", "GB82WEST12345698765432", "IBAN"),
    ("ssn 536-22-1234", "536-22-1234", "SSN"),
    ("mail bob.smith@acme.io today", "bob.smith@acme.io", "EMAIL"),
    ("mailto:ann@corp.de", "ann@corp.de", "EMAIL"),
    ("from 10.1.2.3 port", "10.1.2.3", "IP"),
    ("host 2a00:1450:4001:80b::200e up", "2a00:1450:4001:80b::200e", "IP"),
    ("id AKIAQWERTYUIOPASDFGH", "AKIAQWERTYUIOPASDFGH", "AWS_ACCESS_KEY"),
    (
        "aws_secret_access_key = Xb9aZk3Lm0pQrStUvWxYz1234567890ABCDEFGhi",
        "Xb9aZk3Lm0pQrStUvWxYz1234567890ABCDEFGhi",
        "AWS_SECRET_KEY",
    ),
    (f"GITHUB_TOKEN {GH}", GH, "GITHUB_TOKEN"),
    ("glpat-AbCdEfGh1234567890ab", "glpat-AbCdEfGh1234567890ab", "GITLAB_TOKEN"),
    ("xoxb-123456789012-abcdefABCDEF", "xoxb-123456789012-abcdefABCDEF", "SLACK_TOKEN"),
    ("sk_live_a1B2c3D4e5F6g7H8i9J0k1L2", "sk_live_a1B2c3D4e5F6g7H8i9J0k1L2", "STRIPE_KEY"),
    ("sk-ant-api03-" + "Ab1" * 15, "sk-ant-api03-" + "Ab1" * 15, "ANTHROPIC_KEY"),
    ("key sk-proj-" + "Ab1_x" * 6, "sk-proj-" + "Ab1_x" * 6, "OPENAI_KEY"),
    (
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
        "GOOGLE_API_KEY",
    ),
    (
        "npm_a1B2c3D4e5a1B2c3D4e5a1B2c3D4e5F6g7H8",
        "npm_a1B2c3D4e5a1B2c3D4e5a1B2c3D4e5F6g7H8",
        "NPM_TOKEN",
    ),
    (SG, SG, "SENDGRID_KEY"),
    (f"token {JWT_TOKEN}", JWT_TOKEN, "JWT"),
    ("curl -H 'Authorization: Bearer abc123def456ghi'", "abc123def456ghi", "AUTH_HEADER"),
    ('{"Authorization": "Basic dXNlcjpwYXNz"}', "dXNlcjpwYXNz", "AUTH_HEADER"),
    ("postgres://admin:s3cr3tP4ss@db.internal:5432/x", "s3cr3tP4ss", "URL_PASSWORD"),
    (PEM, PEM, "PRIVATE_KEY"),
    ('{"key": "' + PEM.replace("\n", "\\n") + '"}', PEM.replace("\n", "\\n"), "PRIVATE_KEY"),
    ("api_key=zq8Xv0Lp3Rt5&x=1", "zq8Xv0Lp3Rt5", "SECRET_VALUE"),
    ('{"client_secret": "Qw9Er8Ty7Ui6"}', "Qw9Er8Ty7Ui6", "SECRET_VALUE"),
    ("X-Api-Key: Zx1Cv2Bn3Mm4", "Zx1Cv2Bn3Mm4", "SECRET_VALUE"),
    ("password: hunter2XY", "hunter2XY", "SECRET_VALUE"),
    ("password: hunter2", "hunter2", "SECRET_VALUE"),
    ("password: P@ssw0rd!", "P@ssw0rd!", "SECRET_VALUE"),
    ("password=s3cr3t-value", "s3cr3t-value", "SECRET_VALUE"),
    (
        '{"password": "correct horse battery staple"}',
        "correct horse battery staple",
        "SECRET_VALUE",
    ),
    ("PASSWORD=correcthorsebattery", "correcthorsebattery", "SECRET_VALUE"),
    ("call me at (415) 555-2671 today", "(415) 555-2671", "PHONE"),
    ("office 415.555.2671.", "415.555.2671", "PHONE"),
    ('{"phone": "+14155552671"}', "+14155552671", "PHONE"),
    ("phone: 4155552671", "4155552671", "PHONE"),
    ("London +44 20 7946 0958 desk", "+44 20 7946 0958", "PHONE"),
    ("Paris: +33 1 23 45 67 89", "+33 1 23 45 67 89", "PHONE"),
    ("Tokyo +81 3-1234-5678", "+81 3-1234-5678", "PHONE"),
    ("ext (212) 582-4420 x12", "(212) 582-4420 x12", "PHONE"),
    ("server at 10.1.2.3", "10.1.2.3", "IP"),
    ("link-local fe80::1 up", "fe80::1", "IP"),
]

NEGATIVES = [
    "card 4111111111111112 and 1234 5678 9012 3456",
    "epoch 1700000000000 order 12345678901234",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "commit da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "version 4.17.21 and 1.2.3-beta.4",
    "mac 00:1a:2b:3c:4d:5e at 12:30:45",
    "logo@2x.png lodash@4.17.21 @scope/pkg@1.2.3",
    "a@example.com b@mail.example.org c@foo.test d@x.invalid e@y.example f@example.net",
    "127.0.0.1 192.0.2.5 198.51.100.7 203.0.113.9 ::1 2001:db8::1 0.0.0.0",
    "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "api_key=<YOUR_API_KEY> token=${TOKEN} password: ****1234 ghp_xxxx",
    "Authorization: Bearer <token> and Authorization: Bearer $TOKEN",
    f"secret = {placeholder('SECRET_VALUE')}",
    "iban DE89 3704 0044 0532 0130 01",
    "ssn 000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----",
    "max_tokens: 512, token_count: 3",
    '<script integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC">',
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA",
    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTAN\n-----END CERTIFICATE-----",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop",
    "docker pull nginx@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "git clone git@github.com:org/repo.git",
    "at com.foo.Bar.baz(Bar.java:42) pip install requests==2.31.0",
    "TOKEN_URL=https://auth.acme.io/token ts 1699999999999 isbn 9780306406157",
    # versions that look like dotted quads, scope operators that look like IPv6
    "version 1.2.3.4, pkg==1.2.3.4, lib@1.2.3.4, ver. 10.0.19.41, >=2.1.0.3",
    "std::vector 1::2 a::b dead:beef",
    # prose and type names after a secret-named key
    "password: must be at least 8 characters",
    '{"password": "string", "token": "required", "secret": "hidden"}',
    '"password": "The password must be at least 12 characters long"',
    "token: the bearer token from the login response",
    # phone-shaped digit runs that are not phones
    "order 4155552671 shipped, invoice #2125824420, ref: 6505551234, id=4155550100",
    "price $415.555.2671 and version 415.555.2671, v212.582.4420",
    "epoch 1700000000000 and 1699999999 and 2024-01-15 10:30:00 and 20240115103000",
    "documentation addresses 203.0.113.219 and 198.51.100.255, 192.0.2.146",
    "uuid 41555526-7123-4123-8123-415555267112 and 4155552671-abc",
    "bare 4155552671 without context and 1234567 and 555-0100",
    "card 1234 5678 9012 3456 is Luhn-invalid, 4111 1111 1111 1112 too",
]


@pytest.mark.parametrize(("text", "secret", "type_"), POSITIVES)
def test_positive(text: str, secret: str, type_: str) -> None:
    start = text.index(secret)
    assert [(s.start, s.end, s.type) for s in find(text)] == [(start, start + len(secret), type_)]
    assert redact(text) == text.replace(secret, f"[REDACTED:{type_}]")


@pytest.mark.parametrize("text", NEGATIVES)
def test_hard_negative(text: str) -> None:
    assert find(text) == []
    assert redact(text) is text


def test_actions_mask_only_masked_types() -> None:
    text = "bob@acme.io paid with 4111 1111 1111 1111"
    assert redact(text, {"CARD": "mask", "EMAIL": "log"}) == "bob@acme.io paid with [REDACTED:CARD]"
    assert redact(text, {}) == text


PIECES = st.sampled_from([s for _, s, _ in POSITIVES] + NEGATIVES + [" ", "\n", ":", "@", "="])
TEXTS = st.lists(st.one_of(PIECES, st.text(max_size=20)), max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_text_without_spans_is_unchanged(text: str) -> None:
    if not find(text):
        assert redact(text) == text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(PIECES, st.text(max_size=20)), max_size=8).map(" ".join))
def test_redact_changes_only_found_spans(text: str) -> None:
    """With secrets apart (the usual case) one pass of `find` is the whole story."""
    spans = find(text)
    expected, pos = [], 0
    for s in spans:
        assert pos <= s.start < s.end
        expected += [text[pos : s.start], placeholder(s.type)]
        pos = s.end
    assert redact(text) == "".join([*expected, text[pos:]])


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_redact_changes_only_text_inside_spans(text: str) -> None:
    """Whatever `redact` keeps is the original text: it only ever replaces spans."""
    pieces = re.split(r"\[REDACTED:[A-Z_]+\]", redact(text))
    assert re.fullmatch("(?s)" + ".+?".join(map(re.escape, pieces)), text)


def test_card_wins_over_a_phone_inside_it() -> None:
    # 16 digits with a valid card checksum; its first ten could parse as a US number.
    text = "paid with 4155552671004 0000 and phone: 4111111111111111"
    assert {s.type for s in find(text)} <= {"CARD"}


def test_phone_needs_strict_grouping() -> None:
    """`212.58.244.20` has the digits of a valid NYC number in a grouping no one writes."""
    assert find("212-58-244-20 and 21-2582-4420") == []
    assert [s.type for s in find("212-582-4420")] == ["PHONE"]
    assert [s.type for s in find("ip 212.58.244.20 up")] == ["IP"]


def test_import_does_not_load_phonenumbers() -> None:
    import subprocess
    import sys

    code = "import sys, lockgate.guardrails.detectors; print('phonenumbers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_card_next_to_other_digits_is_still_found() -> None:
    assert redact("4111 1111 1111 1111 10.1.2.3") == "[REDACTED:CARD] [REDACTED:IP]"


# Pieces that put entities next to each other and to the anchors of the fast path.
NEAR = st.sampled_from(
    [s for _, s, _ in POSITIVES]
    + [" ", "\n", ":", "=", "@", "-", ".", "(", ")", "+", "://", "::", '"', "'", "_", "x"]
    + ["password: ", "api_key=", "Authorization: Bearer ", "https://u:", "phone ", "v", "10."]
    # keywords before a separator, as the backward key search reads them
    + ["Token =", "credentials':", "PASSWD\t:", 'secret"  =', "pwd:", "passwordd:", "tokens="]
    # tokens at the edge of the 15-character run gate
    + ["xoxb-123456789", "xoxb-1234567890", "eyJhbGci.eyJzdWIi.", "AKIA", "ghp_"]
    # digit runs at the edges of the number prefilter: dates, short runs, IBAN heads
    + ["2026-09-04", "2026-09-04 11", "2026-09-04T11", "2026-0904", "1234567", "123456789"]
    + ["+1 (", "(555) ", "IT60", "12.34.56", "1-2", "  ", "0"]
)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.one_of(NEAR, PIECES, st.text(max_size=12)), max_size=10).map("".join))
def test_the_fast_path_finds_what_every_pattern_over_the_whole_text_finds(text: str) -> None:
    """The anchors and windows are an optimisation: the spans are those of running every
    detector's pattern over the whole string."""
    from lockgate.guardrails.detectors import _resolve
    from lockgate.guardrails.scan import reference as _reference

    assert find(text) == _resolve(_reference(text))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(NEAR, PIECES), min_size=20, max_size=60).map("".join))
def test_the_fast_path_holds_on_long_text(text: str) -> None:
    from lockgate.guardrails.detectors import _resolve
    from lockgate.guardrails.scan import reference as _reference

    assert find(text * 3) == _resolve(_reference(text * 3))


def test_a_token_as_the_user_part_of_a_url_is_its_own_type_not_a_secret_value() -> None:
    text = f"git remote set-url origin https://x-access-token:{GH}@github.com/org/repo.git"
    assert [(text[s.start : s.end], s.type) for s in find(text)] == [(GH, "GITHUB_TOKEN")]
    text = "amqp://token:s3cr3t-v4lue@rabbit:5672/"
    assert [(text[s.start : s.end], s.type) for s in find(text)] == [
        ("s3cr3t-v4lue", "URL_PASSWORD")
    ]


def test_custom_detectors_run_with_the_built_ins_and_their_validators() -> None:
    from lockgate.guardrails.detectors import Custom, Detectors

    engine = Detectors(
        [Custom("EMPLOYEE_ID", r"EMP-\d{6}"), Custom("ACCOUNT", r"AC\d{7}", validator="luhn")]
    )
    text = "EMP-123456 AC0000000 AC0000001 bob@acme.io"
    assert [(text[s.start : s.end], s.type) for s in engine.find(text)] == [
        ("EMP-123456", "EMPLOYEE_ID"),
        ("AC0000000", "ACCOUNT"),  # Luhn-valid; AC0000001 is not
        ("bob@acme.io", "EMAIL"),
    ]
    assert engine.redact(text, {"EMPLOYEE_ID": "mask", "EMAIL": "log"}) == (
        "[REDACTED:EMPLOYEE_ID] AC0000000 AC0000001 bob@acme.io"
    )
    assert Detectors().find(text) == find(text)


def test_a_custom_mod97_detector_checks_the_checksum() -> None:
    from lockgate.guardrails.detectors import Custom, Detectors

    engine = Detectors([Custom("INTERNAL_IBAN", r"XX\d{2}[A-Z0-9]{10}", validator="mod97")])
    body = "BANK123456"
    check = 98 - int("".join(str(int(c, 36)) for c in body + "XX00")) % 97
    good, bad = f"XX{check:02d}{body}", f"XX{(check + 1) % 100:02d}{body}"
    assert [s.type for s in engine.find(f"{good} {bad}")] == ["INTERNAL_IBAN"]


def test_a_custom_pattern_that_does_not_compile_is_refused_at_load() -> None:
    from lockgate.guardrails.detectors import Custom, Detectors

    with pytest.raises(ValueError, match="EMPLOYEE_ID"):
        Detectors([Custom("EMPLOYEE_ID", r"EMP-(\d{6}")])


def test_a_url_glued_to_a_long_token_still_has_its_password_found() -> None:
    """The scheme's run of characters reaches back beyond any fixed window (found by the
    fast-path property test)."""
    from lockgate.guardrails.detectors import _resolve
    from lockgate.guardrails.scan import reference as _reference

    text = "sk-ant-api03-" + "Ab1" * 15 + "378282246310005https://u:bob.smith@acme.io"
    assert "URL_PASSWORD" in {s.type for s in find(text)}
    assert find(text) == _resolve(_reference(text))
    long_scheme = "x" * 700 + "://u:hunter2secret@acme.io"
    assert find(long_scheme) == _resolve(_reference(long_scheme))
