"""Judging an HTTP/1 request head as it arrives: is its framing something to refuse now?

The gateway's HTTP/1 wire (addons/client_wire/) calls `judge_head` with the bytes of a
request head received so far, before mitmproxy parses them. A refusal is a 400 with one
sentence, answered at once and followed by a close: a request line that is not HTTP/1.x
(HTTP/0.9, garbage, an empty request), a malformed header line, or a body framing that two
parsers could read differently (Content-Length with Transfer-Encoding, differing or
non-numeric lengths, a transfer coding other than chunked). An honest head is never refused
for being incomplete: every prefix of a valid head passes (the property tests hold it to it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 9110 token characters (method, header names).
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/(\d)\.(\d)")
_PARTIAL_LINE = re.compile(rb"[\x20-\x7e]*")  # what a request line may hold before its end
_TOKEN_PREFIX = re.compile(_TOKEN)
_HEADER = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*")
_DIGITS = re.compile(rb"[0-9]{1,19}")
_VALUE = rb"[\t\x20-\x7e\x80-\xff]*"
# A whole honest head in one match (the common case: checked in C, then only its framing
# headers are looked at); anything else takes the slow path, which says what is wrong.
_WHOLE = re.compile(
    rb"(?:\r?\n)?"
    + _TOKEN
    + rb" [\x21-\x7e]+ HTTP/1\.[01]\r?\n(?:"
    + _TOKEN
    + rb":"
    + _VALUE
    + rb"\r?\n)*\r?\n"
)
_FRAMING_LINE = re.compile(
    rb"^(content-length|transfer-encoding):(" + _VALUE + rb")\r?$", re.IGNORECASE | re.MULTILINE
)
# A Content-Length with more digits than this is not a length but an attack (10^19 - 1 is
# already far above any body limit, which answers 413 for the rest).
MAX_LENGTH_DIGITS = 19


@dataclass(frozen=True)
class Refusal:
    """Why a request head is refused: a status (400) and one sentence for the client."""

    status: int
    sentence: str


def _bad(sentence: str) -> Refusal:
    return Refusal(400, sentence)


def _lines(data: bytes) -> tuple[list[bytes], bytes, bool]:
    """The complete lines (without their CRLF or LF), the unfinished rest, and whether an
    empty line (the head's end) was reached."""
    lines: list[bytes] = []
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return lines, data[start:], False
        line = data[start:end]
        if line.endswith(b"\r"):
            line = line[:-1]
        start = end + 1
        if not line:
            return lines, b"", True
        lines.append(line)


def judge_head(data: bytes, *, blank_before: bool = False) -> Refusal | None:
    """A Refusal if the request head beginning `data` is already malformed, else None (fine,
    or not complete enough to tell). `blank_before`: an empty line came before `data` (a
    client may send one before its request line; a second one is an empty request)."""
    if _WHOLE.fullmatch(data) and not (blank_before and data[:1] in (b"\r", b"\n")):
        low = data.lower()
        length = low.find(b"\ncontent-length:")
        if b"\ntransfer-encoding:" not in low:
            if length < 0:
                return None
            if low.find(b"\ncontent-length:", length + 16) < 0:
                value = data[length + 16 : data.find(b"\n", length + 16)].strip(b" \t\r")
                if value.isdigit() and len(value) <= MAX_LENGTH_DIGITS:
                    return None  # one plain length: the common case
        found = _FRAMING_LINE.findall(data)
        return _framing(found, b" HTTP/1.0\r\n" in data or b" HTTP/1.0\n" in data)
    data, blank = _strip_blank(data)
    if blank and blank_before:
        return _bad(_EMPTY)
    if blank:
        data, again = _strip_blank(data)
        if again:
            return _bad(_EMPTY)
    lines, rest, ended = _lines(data)
    if not lines:
        return _partial_request_line(rest)
    refusal = _request_line(lines[0])
    if refusal is not None:
        return refusal
    for line in lines[1:]:
        refusal = _header_line(line)
        if refusal is not None:
            return refusal
    if not ended:
        if b"\r" in rest.rstrip(b"\r"):
            return _bad("A header line holds a bare carriage return; end lines with CRLF.")
        return None
    pairs = [(n, v) for n, _, v in (line.partition(b":") for line in lines[1:])]
    return _framing(pairs, lines[0].endswith(b"HTTP/1.0"))


_EMPTY = "The request is empty: send an HTTP/1.1 request line and headers."


def _strip_blank(data: bytes) -> tuple[bytes, bool]:
    """`data` without one leading empty line, and whether it had one."""
    if data[:2] == b"\r\n":
        return data[2:], True
    if data[:1] == b"\n":
        return data[1:], True
    return data, False


def _partial_request_line(rest: bytes) -> Refusal | None:
    stripped = rest[:-1] if rest.endswith(b"\r") else rest
    if not _PARTIAL_LINE.fullmatch(stripped):
        return _bad("The request line holds bytes that are not HTTP: send an HTTP/1.1 request.")
    method = stripped.split(b" ", 1)[0]
    if method and not _TOKEN_PREFIX.fullmatch(method):
        return _bad("The request line does not start with an HTTP method: send HTTP/1.1.")
    if stripped.startswith(b" "):
        return _bad("The request line does not start with an HTTP method: send HTTP/1.1.")
    return None


def _request_line(line: bytes) -> Refusal | None:
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        parts = line.split(b" ")
        if len(parts) == 2 and _TOKEN_PREFIX.fullmatch(parts[0]):
            return _bad("HTTP/0.9 requests are not served: send an HTTP/1.1 request.")
        return _bad("The request line is not METHOD TARGET HTTP/1.1: send an HTTP/1.1 request.")
    if (match.group(3), match.group(4)) not in ((b"1", b"1"), (b"1", b"0")):
        version = f"HTTP/{match.group(3).decode()}.{match.group(4).decode()}"
        return _bad(f"{version} is not served over this connection: send an HTTP/1.1 request.")
    return None


def _header_line(line: bytes) -> Refusal | None:
    if line[:1] in (b" ", b"\t"):
        return _bad("A header line is folded (starts with whitespace); send it on one line.")
    if _HEADER.fullmatch(line) is None:
        if b":" in line and line.split(b":", 1)[0].rstrip(b" \t") != line.split(b":", 1)[0]:
            return _bad("A header name is followed by whitespace before its colon; remove it.")
        return _bad("A header line is not NAME: VALUE; send well-formed HTTP/1.1 headers.")
    return None


def _framing(headers: list[tuple[bytes, bytes]], http10: bool) -> Refusal | None:
    """The body framing the headers (name, value) give, judged."""
    lengths: list[bytes] = []
    codings: list[bytes] = []
    for name, value in headers:
        key = name.lower()
        if key == b"content-length":
            lengths += [v.strip(b" \t") for v in value.split(b",")]
        elif key == b"transfer-encoding":
            codings += [v.strip(b" \t").lower() for v in value.split(b",")]
    if lengths and codings:
        return _bad(
            "The request has both Content-Length and Transfer-Encoding; send only one of them."
        )
    if lengths:
        for length in lengths:
            if not _DIGITS.fullmatch(length):
                if length.isdigit():
                    return _bad(
                        f"The request's Content-Length has more than {MAX_LENGTH_DIGITS} "
                        "digits; send a real length."
                    )
                return _bad("The request's Content-Length is not a number; send its length.")
        if len({int(v) for v in lengths}) > 1:
            return _bad("The request has differing Content-Length values; send exactly one.")
    if codings:
        if http10:
            return _bad("An HTTP/1.0 request cannot use Transfer-Encoding; send Content-Length.")
        if codings != [b"chunked"]:
            return _bad(
                "The request's Transfer-Encoding is not just chunked; send chunked or "
                "Content-Length."
            )
    return None
