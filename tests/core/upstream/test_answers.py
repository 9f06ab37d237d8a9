"""Judging an upstream's answer by its head (lockgate.upstream.answers), pure."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.upstream.answers import SAME, failure, other_id, other_id_of, retry_after


@pytest.mark.parametrize(
    ("method", "status", "ctype", "has_body"),
    [
        ("POST", 200, "application/json", True),
        ("POST", 200, "Application/JSON; charset=utf-8", True),
        ("POST", 200, "text/event-stream", True),
        ("POST", 202, "text/plain", False),  # a notification's empty 202
        ("POST", 404, "text/plain", True),  # an ended session: the client starts a new one
        ("POST", 401, "text/html", True),  # the credentials addon's to handle
        ("GET", 405, "text/plain", True),  # no GET stream offered
        ("DELETE", 200, "text/plain", True),
    ],
)
def test_mcp_answers_and_meaningful_client_errors_pass(
    method: str, status: int, ctype: str, has_body: bool
) -> None:
    assert failure(method, status, "", ctype, None, has_body) is None


@pytest.mark.parametrize(
    ("status", "ctype", "to"),
    [
        (500, "text/plain", 502),
        (502, "", 502),
        (599, "application/json", 502),
        (503, "text/plain", 503),
    ],
)
def test_server_errors_fail_whatever_their_type(status: int, ctype: str, to: int) -> None:
    f = failure("POST", status, "x", ctype, None, True)
    assert f is not None and f.status == to and f"answered {status}" in f.what


@pytest.mark.parametrize("ctype", ["text/html", "text/plain", "", "application/jsonx", "image/png"])
def test_a_success_that_is_not_json_or_an_event_stream_fails(ctype: str) -> None:
    f = failure("POST", 200, "OK", ctype, None, True)
    assert f is not None and f.status == 502 and "MCP endpoint" in f.fix


@pytest.mark.parametrize(
    ("status", "ctype"),
    [
        (200, "application/json; charset=utf-7"),
        (200, "text/event-stream; charset = UTF-16"),
        (400, 'application/json; Charset="iso-8859-1"'),
        (200, "application/json; charset="),
    ],
)
def test_an_answer_labelled_with_another_charset_than_utf8_fails(status: int, ctype: str) -> None:
    """The gateway filters and redacts answers read as UTF-8: a client that decoded one as
    labelled would read other text."""
    f = failure("POST", status, "OK", ctype, None, True)
    assert f is not None and f.status == 502 and "not UTF-8" in f.what


def test_429_keeps_a_well_formed_retry_after() -> None:
    f = failure("POST", 429, "Too Many Requests", "text/plain", " 30 ", True)
    assert f is not None and f.status == 429 and f.retry_after == "30"
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    assert retry_after(date) == date


@pytest.mark.parametrize("value", ["soon", "-1", "1.5", "30\r\nSet-Cookie: a=b", "", "9" * 8])
def test_a_malformed_retry_after_is_dropped(value: str) -> None:
    assert retry_after(value) is None


@given(st.text(max_size=80))
def test_retry_after_passes_only_printable_ascii(value: str) -> None:
    out = retry_after(value)
    assert out is None or (out.isascii() and out.isprintable() and len(out) <= 64)


@given(st.text(max_size=200))
def test_a_reason_phrase_never_carries_odd_text_into_the_sentence(reason: str) -> None:
    f = failure("POST", 500, reason, "text/plain", None, True)
    assert f is not None
    assert reason in f.what or f.what == "answered 500"


@pytest.mark.parametrize(
    ("body", "rid", "other"),
    [
        (b'{"jsonrpc":"2.0","id":7,"result":{}}', 7, SAME),
        (b'{"result":{},"jsonrpc":"2.0","id":"a"}', "a", SAME),
        (b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}', 7, SAME),
        (b'{"jsonrpc":"2.0","id":8,"result":{}}', 7, 8),
        (b'{"jsonrpc":"2.0","id":"7","result":{}}', 7, "7"),  # a look-alike is another id
        (b'{"jsonrpc":"2.0","id":7.0,"result":{}}', 7, 7.0),
        (b'{"jsonrpc":"2.0","id":true,"result":{}}', 1, True),
        (b'{"jsonrpc":"2.0","id":null,"result":{}}', 7, None),
        (b'{"jsonrpc":"2.0","id":7,"result":{},"id":9}', 7, 9),  # the last member counts
        (b'{"jsonrpc":"2.0","method":"notifications/x"}', 7, SAME),
        (b"not json", 7, SAME),
        (b"[]", 7, SAME),
    ],
)
def test_an_answer_for_another_id_is_told(body: bytes, rid: int | str, other: object) -> None:
    got = other_id(body, rid)
    assert got is SAME if other is SAME else (got == other and type(got) is type(other))


@given(st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=10)), st.integers(0, 3))
def test_a_large_answer_with_the_right_id_at_its_head_is_not_parsed(rid: object, pad: int) -> None:
    body = b'{"jsonrpc":"2.0","id":%s,"result":{"pad":"%s"}}' % (
        json.dumps(rid).encode(),
        b"x" * (300_000 + pad),
    )
    assert other_id(body, rid) is SAME  # type: ignore[arg-type]


_IDS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["1", "a", ""]))


@given(
    st.dictionaries(
        st.sampled_from(["jsonrpc", "id", "method", "result", "error"]),
        st.one_of(_IDS, st.just({})),
    ),
    st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["1", "a"])),
)
def test_the_decoded_answers_verdict_is_the_bodys(obj: dict[str, object], rid: object) -> None:
    """The capabilities addon hands the upstream addon the id it decoded (other_id_of), in
    place of a second decode of the same bytes (other_id): both must judge alike."""
    assert isinstance(rid, (str, int)) or rid is None
    decoded, body = other_id_of(obj, rid), other_id(json.dumps(obj).encode(), rid)
    assert decoded is body if body is SAME else decoded == body
