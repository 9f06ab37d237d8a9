"""Judging an upstream's answer by its head (lockgate.upstream.answers), pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.upstream.answers import failure, retry_after


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
