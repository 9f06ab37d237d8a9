"""The shape of a client's JSON-RPC request, checked before anything reaches the upstream.

`jsonrpc.parse_message` already refuses what is not JSON-RPC 2.0 at all (no
`"jsonrpc": "2.0"`, a float, boolean or object id, a non-string method, params neither
object nor array). This module adds what MCP asks on top, so that an ill-formed request
is answered by the gateway with the client's id instead of being read by the upstream
(whose own validator may answer with its internals):

- a request's id is never null (MCP: "the ID MUST NOT be null") -> `-32600`;
- params are an object when present. JSON-RPC 2.0 allows params "by-position" (an
  array), so an array is a well-formed *request* whose parameters the method cannot take:
  that is "Invalid params" (`-32602`), not "Invalid Request" (`-32600`, reserved for "the
  JSON sent is not a valid Request object");
- the required params of the MCP methods the gateway knows have the right types
  (`tools/call` name string and arguments object, `resources/read` uri string, ...)
  -> `-32602`; `_meta`, when present, is an object;
- batches only where the revision has them: JSON-RPC batching was in MCP 2025-03-26
  and removed in 2025-06-18 ("Remove support for JSON-RPC batching", changelog), so a
  batch is `-32600` on any later revision; with no `MCP-Protocol-Version` header the
  transport spec says to assume 2025-03-26, so a batch then passes, each member checked
  and, when refused, answered alone (its error merged into the batch's answer).
  `initialize` is never part of a batch (2025-03-26 lifecycle).

Messages never echo a value the client sent (an argument may be a secret): only the
method and the parameter's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lockgate.mcp.jsonrpc import INVALID_PARAMS, INVALID_REQUEST, Message

# Revisions with JSON-RPC batches; the transport's default when no header names one.
BATCH_REVISIONS = frozenset({"2025-03-26"})  # its changelog added them; 2025-06-18 removed them
DEFAULT_REVISION = "2025-03-26"

_STR, _OBJ, _STRINGS = "a string", "an object", "an object of strings"
# method -> ((param, expected, required), ...)
_PARAMS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "tools/call": (("name", _STR, True), ("arguments", _OBJ, False)),
    # A prompt's arguments are strings (the schema's `{ [key: string]: string }`).
    "prompts/get": (("name", _STR, True), ("arguments", _STRINGS, False)),
    "resources/read": (("uri", _STR, True),),
    "resources/subscribe": (("uri", _STR, True),),
    "resources/unsubscribe": (("uri", _STR, True),),
    "initialize": (
        ("protocolVersion", _STR, True),
        # Required by the schema, but type-checked only: the upstream answers their absence.
        ("capabilities", _OBJ, False),
        ("clientInfo", _OBJ, False),
    ),
    "completion/complete": (("ref", _OBJ, True), ("argument", _OBJ, True)),
    "logging/setLevel": (("level", _STR, True),),
    "tools/list": (("cursor", _STR, False),),
    "prompts/list": (("cursor", _STR, False),),
    "resources/list": (("cursor", _STR, False),),
    "resources/templates/list": (("cursor", _STR, False),),
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the gateway answers a body itself: a JSON-RPC code and one sentence."""

    code: int
    message: str


def _is(value: object, expected: str) -> bool:
    if expected is _STR:
        return isinstance(value, str)
    if expected is _STRINGS:
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return isinstance(value, dict)


def check_message(m: Message) -> Refusal | None:
    """One client message's MCP shape; None when it may go on."""
    if m.kind not in ("request", "notification") or m.method is None:
        return None  # answers to the server's requests: the upstream's business
    if m.kind == "request" and m.id is None:
        return Refusal(INVALID_REQUEST, "A JSON-RPC request id must not be null.")
    if "params" in m.raw and m.params is None:
        return Refusal(
            INVALID_PARAMS, f"The params of {m.method!r} must be an object, not an array."
        )
    params: dict[str, Any] = m.params or {}
    meta = params.get("_meta")
    if meta is not None and not isinstance(meta, dict):
        return Refusal(INVALID_PARAMS, f"params._meta of {m.method!r} must be an object.")
    for name, expected, required in _PARAMS.get(m.method, ()):
        if name not in params:
            if required:
                return Refusal(INVALID_PARAMS, f"{m.method!r} needs params.{name} ({expected}).")
            continue
        if not _is(params[name], expected):
            return Refusal(INVALID_PARAMS, f"params.{name} of {m.method!r} must be {expected}.")
    return None


def check_body(messages: list[Message], *, batch: bool, revision: str | None) -> Refusal | None:
    """A whole body: batches only on revisions that have them, then each member."""
    refusal = check_batch(messages, batch=batch, revision=revision)
    if refusal is not None:
        return refusal
    for m in messages:
        refusal = check_message(m)
        if refusal is not None:
            return refusal
    return None


def check_batch(messages: list[Message], *, batch: bool, revision: str | None) -> Refusal | None:
    """What refuses a batch as a whole (no batches on this revision, `initialize` in one);
    its members are then checked one by one (`check_message`), each refused alone."""
    if batch:
        rev = revision or DEFAULT_REVISION
        if rev not in BATCH_REVISIONS:
            return Refusal(
                INVALID_REQUEST,
                f"MCP revision {rev} has no JSON-RPC batches; send one message per request.",
            )
        if any(m.method == "initialize" for m in messages):
            return Refusal(INVALID_REQUEST, "An initialize request must not be part of a batch.")
    return None
