"""An upstream's internals never reach the client in an error.

Upstream servers leak their insides into errors: the `mcp` SDK answers a params array
with pydantic's text ("4 validation errors for union[JSONRPCRequest,...]", each with
"input_value=..." echoing what was sent, and "For further information visit
https://errors.pydantic.dev/..."), and a tool called with the wrong argument types with an
`isError` result carrying the same text. Such a message is replaced by one sentence naming
the upstream; the code and id stay. Conservative on purpose: only text with an
unmistakable marker (a Python traceback or frame, pydantic's wording, a JavaScript stack
frame, a server banner) is replaced; a tool's ordinary error ("Unknown tool: x") passes.
"""

from __future__ import annotations

import re
from typing import Any

_INTERNALS = re.compile(
    r"Traceback \(most recent call last\)"
    r'|File "[^"\n]+", line \d+'
    r"|\d+ validation errors? for "
    r"|errors\.pydantic\.dev"
    r"|\[type=[a-z_]+, input_value="
    r"|\n\s+at \S+ \([^()\s]+:\d+(?::\d+)?\)"  # a JavaScript stack frame
    r"|\b(?:uvicorn|gunicorn|werkzeug|Werkzeug|Apache|nginx|Jetty|Kestrel)/\d"  # banners
)


def looks_internal(value: object) -> bool:
    """True when a message or data holds an upstream's internals (checked as text)."""
    if isinstance(value, str):
        return _INTERNALS.search(value) is not None
    if isinstance(value, dict):
        return any(looks_internal(v) for v in value.values())
    if isinstance(value, list):
        return any(looks_internal(v) for v in value)
    return False


def generic(upstream: str) -> str:
    return (
        f"The upstream {upstream!r} refused or failed this request; "
        "its details stay in the upstream's own logs."
    )


def scrub(obj: dict[str, Any], upstream: str) -> dict[str, Any]:
    """`obj` itself when clean; otherwise a copy without the upstream's internals."""
    error = obj.get("error")
    if isinstance(error, dict):
        if looks_internal(error.get("message")) or looks_internal(error.get("data")):
            clean = {"code": error.get("code"), "message": generic(upstream)}
            return {**obj, "error": clean}
        return obj
    result = obj.get("result")
    if (
        isinstance(result, dict)
        and result.get("isError") is True
        and looks_internal(result.get("content"))
    ):
        content = [{"type": "text", "text": generic(upstream)}]
        return {**obj, "result": {"content": content, "isError": True}}
    return obj
