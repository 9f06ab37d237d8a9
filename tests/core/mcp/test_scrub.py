"""Upstream internals in errors (lockgate.mcp.scrub), on the `mcp` SDK's own answers."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.mcp.scrub import looks_internal, scrub

# Verbatim from the mcp 2.3 SDK server (tests/e2e/test_arguments.py gets them live).
SDK_PARAMS_ARRAY = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {
        "code": -32602,
        "message": "Validation error: 4 validation errors for union[JSONRPCRequest,"
        "JSONRPCNotification,JSONRPCResponse,JSONRPCError]\nJSONRPCRequest.params\n  Input "
        "should be a valid dictionary [type=dict_type, input_value=['x'], input_type=list]\n"
        "    For further information visit https://errors.pydantic.dev/2.14/v/dict_type",
    },
}
SDK_TOOL_ARGS = {
    "jsonrpc": "2.0",
    "id": 1,
    "result": {
        "content": [
            {
                "type": "text",
                "text": "Error executing tool add_note: 1 validation error for add_noteArguments\n"
                "title\n  Input should be a valid string [type=string_type, input_value=['x'], "
                "input_type=list]\n    For further information visit "
                "https://errors.pydantic.dev/2.14/v/string_type",
            }
        ],
        "isError": True,
    },
}
TRACEBACK = 'Traceback (most recent call last):\n  File "/srv/app.py", line 12, in call\nKeyError'
JS_STACK = "TypeError: x is undefined\n    at handler (/srv/index.js:10:5)"


def test_the_sdks_validation_error_is_replaced_keeping_code_and_id() -> None:
    out = scrub(SDK_PARAMS_ARRAY, "notes")
    assert out["id"] is None and out["error"]["code"] == -32602
    assert "'notes'" in out["error"]["message"] and "pydantic" not in str(out)


def test_the_sdks_tool_argument_error_result_is_replaced() -> None:
    out = scrub(SDK_TOOL_ARGS, "notes")
    assert out["id"] == 1 and out["result"]["isError"] is True
    assert "input_value" not in str(out) and "'notes'" in out["result"]["content"][0]["text"]


@pytest.mark.parametrize("text", [TRACEBACK, JS_STACK, "served by uvicorn/0.30 on host", "x"])
def test_internals_in_message_or_data(text: str) -> None:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "id": 2, "error": {"code": -32603, "message": "m"}}
    obj["error"]["data"] = {"detail": text}
    replaced = scrub(obj, "u") is not obj
    assert replaced == (text != "x")


@pytest.mark.parametrize(
    "text",
    [
        "Unknown tool: nope",
        "Invalid request parameters",
        "Note 7 not found",
        "the file at line 3 is empty",
        "validation failed: title is required",
    ],
)
def test_ordinary_errors_pass(text: str) -> None:
    assert not looks_internal(text)
    err = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": text}}
    assert scrub(err, "u") is err
    res = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}}
    assert scrub(res, "u") is res
