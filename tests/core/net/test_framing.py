"""judge_head: honest heads (and every prefix of one) pass; ambiguous framing is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.net.framing import Refusal, judge_head

TOKEN = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=12,
)
TARGET = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-._~%?=&", max_size=30).map(
    lambda t: "/" + t
)
VALUE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
FRAMING_NAMES = {"content-length", "transfer-encoding"}
HEADER = st.tuples(TOKEN.filter(lambda n: n.lower() not in FRAMING_NAMES), VALUE)


@st.composite
def honest_heads(draw: st.DrawFn) -> bytes:
    """A well-formed HTTP/1.1 request head with at most one way to frame its body."""
    method = draw(st.sampled_from(["GET", "POST", "DELETE", "OPTIONS", "PUT"]))
    lines = [f"{method} {draw(TARGET)} HTTP/1.{draw(st.sampled_from([0, 1]))}"]
    headers = [f"{n}: {v}" for n, v in draw(st.lists(HEADER, max_size=6))]
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    if framing == "length":
        headers.append(f"Content-Length: {draw(st.integers(0, 10**18))}")
    elif framing == "chunked" and lines[0].endswith("1.1"):
        headers.append(f"Transfer-Encoding: {draw(st.sampled_from(['chunked', 'Chunked']))}")
    at = draw(st.integers(0, len(headers)))
    headers[at:at] = ["Host: 127.0.0.1:8787"]
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    return (eol.join([*lines, *headers]) + eol + eol).encode()


@given(st.binary(max_size=300), st.booleans())
def test_it_never_raises_and_answers_400_with_one_sentence(data: bytes, blank: bool) -> None:
    verdict = judge_head(data, blank_before=blank)
    if verdict is not None:
        assert isinstance(verdict, Refusal) and verdict.status == 400
        assert verdict.sentence.endswith(".") and "\n" not in verdict.sentence
        assert len(verdict.sentence) < 160


@settings(max_examples=300)
@given(honest_heads(), st.data())
def test_an_honest_head_and_each_of_its_prefixes_pass(head: bytes, data: st.DataObject) -> None:
    assert judge_head(head) is None
    cut = data.draw(st.integers(0, len(head)))
    assert judge_head(head[:cut]) is None  # a slow, honest client is never refused early
    assert judge_head(b"\r\n" + head) is None  # one empty line first is allowed


@given(honest_heads())
def test_content_length_with_transfer_encoding_is_refused(head: bytes) -> None:
    both = head.replace(b"\nHost:", b"\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nHost:")
    verdict = judge_head(both)
    assert verdict is not None
    assert "both Content-Length and Transfer-Encoding" in verdict.sentence


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_two_content_lengths_pass_only_when_equal(a: int, b: int) -> None:
    head = f"POST /mcp/x HTTP/1.1\r\nContent-Length: {a}\r\nContent-Length: {b}\r\n\r\n".encode()
    assert (judge_head(head) is None) == (a == b)


@given(st.text(alphabet="+- x0123456789abcdef", min_size=1, max_size=25))
def test_a_content_length_that_is_not_plain_digits_is_refused(value: str) -> None:
    head = f"POST / HTTP/1.1\r\nContent-Length: {value}\r\n\r\n".encode()
    digits = value.strip(" ")
    ok = digits.isdigit() and len(digits) <= 19 and " " not in digits
    assert (judge_head(head) is None) == ok


@given(honest_heads())
def test_an_empty_line_before_an_empty_line_is_an_empty_request(head: bytes) -> None:
    assert judge_head(b"\r\n\r\n" + head) is not None
    assert judge_head(b"\r\n" + head, blank_before=True) is not None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"GET /mcp/open\r\n", "HTTP/0.9"),
        (b"\x00\xffgarbage", "not HTTP"),
        (b"\x16\x03\x01\x02\x00", "not HTTP"),
        (b"GET / HTTP/2.0\r\n", "HTTP/2.0"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/2.0"),
        (b"GET  / HTTP/1.1\r\n", "METHOD TARGET"),
        (b" GET / HTTP/1.1", "method"),
        (b"\r\n\r\n", "empty"),
        (b"\n\n", "empty"),
        (b"POST / HTTP/1.1\r\nHost : a\r\n", "before its colon"),
        (b"POST / HTTP/1.1\r\nHost: a\r\n folded\r\n", "folded"),
        (b"POST / HTTP/1.1\r\nno colon here\r\n", "NAME: VALUE"),
        (b"POST / HTTP/1.1\r\nX: a\x00b\r\n", "NAME: VALUE"),
        (b"POST / HTTP/1.1\r\nX: a\rb", "carriage return"),
        (b"POST / HTTP/1.1\r\nContent-Length: 1" + b"0" * 19 + b"\r\n\r\n", "digits"),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "not a number"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "not just chunked"),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "not just chunked",
        ),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.0"),
    ],
)
def test_each_bad_head_is_refused_with_its_reason(data: bytes, words: str) -> None:
    verdict = judge_head(data)
    assert verdict is not None and words in verdict.sentence, verdict
