"""JSON-RPC 2.0 messages as MCP uses them.

The gateway decides on what it parses here, so parsing is strict: anything an
upstream or a client could read differently from us is refused with a
`ValueError` rather than guessed at.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
CONNECT_REQUIRED = -32042
# The gateway's guardrails refused a message (the rule is in `data.rule`).
GUARDRAIL_BLOCKED = -32003
# A rate limit refused a request (with HTTP 429 and Retry-After).
RATE_LIMITED = -32029

PROTOCOL_VERSION = "2025-11-25"  # the MCP revision of the requests lockgate itself sends


class InvalidJson(ValueError):
    """The body is not UTF-8 JSON at all (answer PARSE_ERROR), as opposed to a bad message."""


Kind = Literal["request", "notification", "response", "error"]

_NAMED_BY_NAME = frozenset({"tools/call", "prompts/get"})
_NAMED_BY_URI = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})


@dataclass(frozen=True, slots=True)
class Message:
    """One parsed message; `raw` is the decoded object, kept for forwarding and rewriting."""

    kind: Kind
    id: str | int | None
    method: str | None
    params: dict[str, Any] | None
    result: Any
    error: dict[str, Any] | None
    raw: dict[str, Any]

    @property
    def name(self) -> str | None:
        """The item a call targets (tool or prompt name, resource uri), for audit and policy."""
        if self.params is None or self.method is None:
            return None
        if self.method in _NAMED_BY_NAME:
            value = self.params.get("name")
        elif self.method in _NAMED_BY_URI:
            value = self.params.get("uri")
        else:
            return None
        return value if isinstance(value, str) else None


def _valid_id(value: object) -> bool:
    # bool is an int subclass, but `true` is not a JSON-RPC id.
    return value is None or isinstance(value, str) or (type(value) is int)


def parse_message(obj: object) -> Message:
    """Classify one decoded JSON value; raise ValueError on anything not JSON-RPC 2.0."""
    if not isinstance(obj, dict):
        raise ValueError(f"a JSON-RPC message must be an object, not {type(obj).__name__}")
    if obj.get("jsonrpc") != "2.0":
        raise ValueError('a JSON-RPC message needs "jsonrpc": "2.0"')
    has_id = "id" in obj
    msg_id = obj.get("id")
    if not _valid_id(msg_id):
        raise ValueError("a JSON-RPC id must be a string, an integer or null")

    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str):
            raise ValueError("a JSON-RPC method must be a string")
        if "result" in obj or "error" in obj:
            raise ValueError("a JSON-RPC request cannot carry a result or an error")
        params: dict[str, Any] | None = None
        if "params" in obj:
            raw_params = obj["params"]
            if isinstance(raw_params, dict):
                params = raw_params
            elif not isinstance(raw_params, list):
                raise ValueError("JSON-RPC params must be an object or an array")
        kind: Kind = "request" if has_id else "notification"
        return Message(kind, msg_id, method, params, None, None, obj)

    if not has_id:
        raise ValueError("a JSON-RPC response needs an id")
    has_result = "result" in obj
    has_error = "error" in obj
    if has_result and has_error:
        raise ValueError("a JSON-RPC response cannot carry both a result and an error")
    if has_result:
        return Message("response", msg_id, None, None, obj["result"], None, obj)
    if not has_error:
        raise ValueError("a JSON-RPC message needs a method, a result or an error")
    error = obj["error"]
    if not isinstance(error, dict):
        raise ValueError("a JSON-RPC error must be an object")
    if type(error.get("code")) is not int:
        raise ValueError("a JSON-RPC error needs an integer code")
    if not isinstance(error.get("message"), str):
        raise ValueError("a JSON-RPC error needs a string message")
    return Message("error", msg_id, None, None, None, error, obj)


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} does not fit a double")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # Parsers disagree on which duplicate wins: refuse rather than filter one reading
        # and forward another.
        raise ValueError("duplicate key in a JSON object")
    return obj


def parse_body(body: bytes, *, reject_duplicate_keys: bool = True) -> list[Message]:
    """Parse an HTTP body holding one message or a batch; only ever raises ValueError.

    `InvalidJson` (a ValueError) when the body is not JSON, plain ValueError when it
    is JSON but not JSON-RPC.

    Duplicate-key detection roughly doubles decoding time; callers parsing large
    upstream results may turn it off.
    """
    try:
        text = body.decode("utf-8")
        if reject_duplicate_keys:
            decoded = json.loads(
                text,
                parse_constant=_no_constants,
                parse_float=_finite_float,
                object_pairs_hook=_unique_keys,
            )
        else:
            decoded = json.loads(text, parse_constant=_no_constants, parse_float=_finite_float)
    except RecursionError as e:
        raise InvalidJson("JSON nested too deeply") from e
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, int digit limits
        raise InvalidJson(f"body is not valid UTF-8 JSON: {e}") from e
    if isinstance(decoded, list):
        if not decoded:
            raise ValueError("an empty JSON-RPC batch is invalid")
        return [parse_message(item) for item in decoded]
    return [parse_message(decoded)]


def readable_id(body: bytes) -> str | int | None:
    """The id of a body that is one JSON object but not a valid message, when it has a
    usable one: the gateway's error then answers the client's request, not `null`."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    rid = obj.get("id") if isinstance(obj, dict) else None
    return rid if isinstance(rid, (str, int)) and not isinstance(rid, bool) else None


def initialize_request(client_name: str, *, id: int = 1, version: str = "0") -> dict[str, Any]:
    """An MCP ``initialize`` request from a client with no capabilities."""
    return {
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": client_name, "version": version},
        },
    }


def error_response(
    id: str | int | None, code: int, message: str, data: object = None
) -> dict[str, Any]:
    """A JSON-RPC error object the gateway answers with itself."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": id, "error": error}


def encode(obj: object) -> bytes:
    """Compact UTF-8 JSON (orjson on the hot path; the stdlib for what orjson refuses)."""
    try:
        return orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        pass  # integers beyond 64 bits, lone surrogates: the stdlib handles them
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


# The compact envelope most servers write first (the Python SDK's, orjson's): anchored at
# the body's first byte, the id it matches is the top-level id (depth one, right after the
# opening brace and a complete "jsonrpc" member), whatever the body holds after it.
_RESULT_HEAD = re.compile(
    rb'\{"jsonrpc":"2\.0","id":(?:-?(?:0|[1-9][0-9]{0,14})|"[A-Za-z0-9._:-]{0,64}"),"result":'
)


def result_key(raw: bytes) -> bytes | None:
    """The bytes that decide a single response's `result`: the body after its id.

    Two bodies with equal keys differ at most in their ids, so their results are equal: a
    processor may reuse what it decided for the last one (a 2,000-tool list costs ~2 ms to
    serialize again only to compare). None when the body is not in the compact form.
    """
    m = _RESULT_HEAD.match(raw)
    return None if m is None else raw[m.end() :]


def loads(data: bytes | str) -> Any:
    """Decode upstream JSON fast; what orjson refuses (huge integers) goes to the stdlib.

    Raises ValueError for text that is not JSON.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data, parse_constant=_refuse_constant)


def has_duplicate_keys(raw: bytes | str, obj: Any) -> bool:
    """Whether `raw`, which `loads` decoded to `obj` (the last of equal keys winning), holds an
    object with a key twice: a client whose parser keeps the first would read other values
    than the gateway checked, so such an answer goes on as `obj` re-encoded, not as sent.

    Why by counting colons: with no `\\u` escape in the text, every `:` in it is a key's or one
    inside a string, where an encoder writes it again as is; a dropped duplicate takes its
    own colon (and its value's) away, so the counts differ exactly when one was dropped. Two
    byte counts and an orjson encode, in C: a 2,000-tool list costs ~0.6 ms more, where a
    second, duplicate-checking decode in Python would cost ~10x that. Text with `\\u`
    escapes (one may spell a colon) takes that decode."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if b":" not in data:
        return False  # no object member at all
    if b"\\u" in data:
        try:
            json.loads(data, object_pairs_hook=_unique_keys)
        except ValueError:
            return True
        return False
    again = encode(obj)
    if again == data:
        return False  # a compact body as orjson writes it: one memcmp
    return data.count(b":") != again.count(b":")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
