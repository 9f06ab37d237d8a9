"""Whether an upstream's answer, judged by its head, is an MCP answer or a failure to report.

Why: relayed as they are, a `500 text/plain`, a 429 or an HTML login page reach the client as
bodies it cannot read as JSON-RPC, so it never learns which request failed or why. Judged at
the head (before a byte of the body is read or forwarded), such an answer becomes a JSON-RPC
error for the client's request, naming the upstream. The upstream's own 4xx answers other
than 429 pass: a 404 for an ended session or a 401 for the credentials addon mean something
to the client and the gateway.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from typing import Any

import orjson

from lockgate.mcp import jsonrpc
from lockgate.net.charset import foreign_charset

MCP_TYPES = ("application/json", "text/event-stream")
_DELTA = re.compile(r"[0-9]{1,7}")


@dataclass(frozen=True)
class Failure:
    status: int  # what the client is answered
    what: str  # "answered 503 (Service Unavailable)": the middle of the sentence
    fix: str  # what the user can do, the end of the sentence
    retry_after: str | None = None  # the upstream's Retry-After, when well-formed


def retry_after(value: str | None) -> str | None:
    """The upstream's Retry-After when it is delta-seconds or an HTTP date; else None (a
    malformed value is not passed on: it could carry anything into the client's headers)."""
    if value is None:
        return None
    value = value.strip()
    if _DELTA.fullmatch(value):
        return value
    try:
        email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return value if value.isascii() and value.isprintable() and len(value) <= 64 else None


def failure(
    method: str, status: int, reason: str, content_type: str, retry: str | None, has_body: bool
) -> Failure | None:
    """The failure an answer head shows, or None for an answer to relay (and read) as is."""
    plain = reason.isascii() and reason.isprintable() and 0 < len(reason) < 64
    label = f"{status} ({reason})" if plain else str(status)
    if status == 429:
        return Failure(
            429,
            f"is limiting the gateway's requests ({label})",
            "try again later",
            retry_after(retry),
        )
    if status >= 500:
        if status == 503:
            return Failure(503, f"answered {label}", "try again later", retry_after(retry))
        return Failure(502, f"answered {label}", "check the upstream's logs and try again")
    kind = content_type.split(";", 1)[0].strip().lower()
    if 200 <= status < 300 and has_body and method in ("POST", "GET") and kind not in MCP_TYPES:
        shown = kind if kind and kind.isascii() and len(kind) < 80 else "no content type"
        return Failure(
            502,
            f"answered with {shown}, not JSON or an event stream (an MCP server answers "
            "with one of them)",
            "check that the upstream's url in the profile is its MCP endpoint",
        )
    charset = foreign_charset([content_type]) if kind in MCP_TYPES else None
    if has_body and charset is not None:
        # The gateway reads answers as UTF-8; a client that decoded one as labelled would
        # read other text than the gateway filtered and redacted.
        shown = charset if charset.isascii() and charset.isprintable() else "?"
        return Failure(
            502,
            f"answered in charset {shown!r}, not UTF-8 (MCP messages are UTF-8 JSON)",
            "fix the upstream's Content-Type or the encoding it answers in",
        )
    return None


SAME: Any = object()  # `other_id`: the answer is for the request (or is no single answer)
_LARGE = 256 * 1024


def other_id(raw: bytes, rid: str | int | None) -> Any:
    """The id of a whole JSON answer to the one request `rid` when it is another id (a
    look-alike such as "1" for 1 included: JSON-RPC ids match exactly), else SAME. A null id
    on an error is JSON-RPC's answer to a request the server could not read: SAME."""
    if rid is None:
        return SAME
    if len(raw) > _LARGE and raw.startswith(b'{"jsonrpc":"2.0","id":%s,' % orjson.dumps(rid)):
        # Large, compact and the right id at its head: not parsed again only for its id (a
        # duplicate "id" member further on is not seen).
        return SAME
    try:
        obj = jsonrpc.loads(raw)
    except ValueError:
        return SAME  # the capabilities addon decides on unreadable bodies
    return other_id_of(obj, rid)


def other_id_of(obj: object, rid: str | int | None) -> Any:
    """`other_id` of an answer already decoded (the capabilities addon decodes every JSON
    answer; the answer's id is read there rather than the body parsed twice)."""
    if rid is None:
        return SAME
    if not isinstance(obj, dict) or "method" in obj or not ("result" in obj or "error" in obj):
        return SAME
    got = obj.get("id")
    if (got is None and "error" in obj) or (type(got) is type(rid) and got == rid):
        return SAME
    return got
