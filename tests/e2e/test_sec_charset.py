"""A body the gateway reads as UTF-8 is never decoded as another charset by the upstream.

Why it exists: the TypeScript SDK's own Express helper (`createMcpExpressApp`, whose
`express.json()` decodes a body in any `utf-*` charset its Content-Type names) reads
`charset=utf-7` bodies as UTF-7. A body that is plain UTF-8 JSON to the gateway, calling an
allowed tool with a string argument, is to such an upstream a call of another tool: in UTF-7
`+ACI-` is a quote, so the string ends early and a second `"name"` follows (JSON.parse keeps
the last). The direct test shows the upstream doing it; through the gateway the same bytes
get 415 and reach no tool.

Needs Node >= 22 and tests/node's packages (the SDK comes with server-everything).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support import require
from tests.support.gateway import Fronted, fronted
from tests.support.node import INSTALL_HINT, express_upstream, express_upstream_cmd

pytestmark = pytest.mark.node

ACCEPT = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
RAN = "SECRET TOOL RAN"


class Env(Fronted):
    @property
    def route(self) -> str:
        return self.gw.route_url("guarded")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    require(
        express_upstream_cmd() is not None, f"the MCP SDK or Node >= 22 missing: {INSTALL_HINT}"
    )
    deny = '[routes.guarded.tools]\ndeny = ["secret"]\n'
    home = tmp_path_factory.mktemp("gateway")
    routes = {"guarded": "express"}
    with express_upstream() as url, fronted(url, "express", routes, deny, home) as f:
        yield Env(f.direct, f.gw)


def _utf7(text: str) -> str:
    """`text` in UTF-7 with every non-alphanumeric character base64-encoded: ASCII with no
    quote or backslash, so a plain JSON string to a UTF-8 reader."""
    return "".join(
        c
        if c.isalnum()
        else "+" + base64.b64encode(c.encode("utf-16-be")).decode().rstrip("=") + "-"
        for c in text
    )


def smuggled_call() -> bytes:
    """`tools/call` of `echo` to a UTF-8 reader; of `secret` to a UTF-7 one."""
    inner = _utf7('"},"name":"secret","arguments":{"text":"')
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": inner}},
    }
    return json.dumps(body, separators=(",", ":")).encode("ascii")


def post(url: str, body: bytes, content_types: list[str]) -> httpx.Response:
    headers = [("content-type", c) for c in content_types] + list(ACCEPT.items())
    with httpx.Client(timeout=10) as http:
        return http.post(url, content=body, headers=headers)


def test_the_upstream_reads_a_utf7_body_as_a_call_of_another_tool(env: Env) -> None:
    """The threat, directly: the same bytes call `echo` as UTF-8 and `secret` as UTF-7."""
    as_utf8 = post(env.direct, smuggled_call(), ["application/json"])
    assert as_utf8.status_code == 200 and "echo: " in as_utf8.text and RAN not in as_utf8.text
    as_utf7 = post(env.direct, smuggled_call(), ["application/json; charset=utf-7"])
    assert as_utf7.status_code == 200 and RAN in as_utf7.text


@pytest.mark.parametrize(
    "content_types",
    [
        ["application/json; charset=utf-7"],
        ["application/json; charset=UTF-7"],
        ['application/json; charset="utf-7"'],
        ["application/json;charset = utf-7"],
        ["application/json; Charset=utf-7"],
        ["application/json; charset*=utf-7''"],
        ["application/json; charset=utf-16"],
        ["application/json; charset=iso-8859-1"],
        ["application/json; charset="],
        ["application/json", "application/json; charset=utf-7"],
        ["application/json; charset=utf-8; charset=utf-7"],
    ],
)
def test_a_body_labelled_with_another_charset_is_415_and_runs_no_tool(
    env: Env, content_types: list[str]
) -> None:
    resp = post(env.route, smuggled_call(), content_types)
    assert resp.status_code == 415, resp.text
    error = resp.json()["error"]
    assert error["code"] == -32600 and "UTF-8" in error["message"]
    assert RAN not in resp.text


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", 'application/json; charset="UTF-8"'],
)
def test_a_utf8_body_calls_the_tool_it_names(env: Env, content_type: str) -> None:
    resp = post(env.route, smuggled_call(), [content_type])
    assert resp.status_code == 200, resp.text
    assert "echo: +ACI-" in resp.text and RAN not in resp.text


def test_the_hidden_tool_called_by_its_name_is_refused(env: Env) -> None:
    call = {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "secret"}}
    resp = post(env.route, json.dumps(call).encode(), ["application/json"])
    assert resp.json()["error"]["code"] == -32601 and RAN not in resp.text
