"""Bad input over real HTTP: every refusal is JSON, nothing reaches the upstream, the gateway lives.

One gateway (`lockgate up` in a subprocess) serves three routes in front of a recording
upstream (tests/support/recorder.py):

- `open`: the recorder, nothing hidden;
- `curated`: the same recorder with `tools.deny = ["delete_*"]`;
- `secured`: the recorder again, as a header-auth upstream whose secret is not stored.

Each test sends one bad request, checks the answer (status, JSON-RPC code, JSON never HTML),
that the recorder saw nothing, and that a valid request right afterwards still works.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import keyring
import pytest

from lockgate.upstream import secrets
from tests.support import keyring_env
from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.recorder import Recorder, recording_upstream

MAX_BODY = 4096
SECURED = f"lockgate-test-{uuid.uuid4().hex[:12]}"  # never stored, unless a test stores it
CLIENT_TOKEN = "client-token"
JSON_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
TOOLS_LIST = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
HIDDEN_CALL = (
    b'{"jsonrpc":"2.0","id":7,"method":"tools/call",'
    b'"params":{"name":"delete_note","arguments":{"id":"1"}}}'
)


@dataclass
class Env:
    gw: GatewayProcess
    rec: Recorder
    client: httpx.Client

    def post(
        self,
        route: str,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.client.post(
            self.gw.route_url(route), content=body, headers={**JSON_HEADERS, **(headers or {})}
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with recording_upstream() as rec:
        profile = profile_text(
            upstreams={"rec": rec.url},
            routes={"open": "rec"},
            extra=(
                f'[upstreams."{SECURED}"]\nurl = "{rec.url}"\nauth = "header"\n'
                'header = "Authorization"\nvalue = "Bearer {secret}"\n\n'
                '[routes.curated]\nupstream = "rec"\ntools.deny = ["delete_*"]\n\n'
                '[routes.cards]\nupstream = "rec"\n\n'
                '[routes.cards.guardrails.redact.up]\nCARD = "block"\n\n'
                f'[routes.secured]\nupstream = "{SECURED}"\n\n'
                f"[gateway]\nmax_body_bytes = {MAX_BODY}\n"
            ),
        )
        with (
            running_gateway(profile, tmp_path_factory.mktemp("bad-input")) as gw,
            httpx.Client(timeout=10) as client,
        ):
            yield Env(gw, rec, client)


@pytest.fixture
def e(env: Env) -> Env:
    env.rec.clear()
    return env


def json_body(resp: httpx.Response) -> Any:
    """The answer is JSON, by header and by body: never mitmproxy's HTML page."""
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    assert not resp.text.lstrip().startswith("<"), resp.text[:200]
    return json.loads(resp.content)


def rpc_error(resp: httpx.Response, code: int) -> dict[str, Any]:
    body = json_body(resp)
    assert isinstance(body, dict), body
    assert body["jsonrpc"] == "2.0"
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def assert_nothing_reached(e: Env) -> None:
    assert e.rec.seen() == []


def assert_still_serving(e: Env) -> None:
    """A valid request afterwards goes through, on the same client (and maybe connection)."""
    resp = e.post("open", TOOLS_LIST)
    assert resp.status_code == 200, resp.text
    assert [t["name"] for t in json_body(resp)["result"]["tools"]][:1] == ["list_notes"]
    assert [r.method for r in e.rec.seen()] == ["POST"]


def refused(e: Env, resp: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error = rpc_error(resp, code)
    assert_nothing_reached(e)
    assert_still_serving(e)
    return error


# --- bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"jsonrpc":"2.0","id":1,', b"\xff\xfe{}", b'{"jsonrpc":"2.0","id":NaN}'],
    ids=["text", "truncated", "not-utf8", "nan"],
)
def test_non_json_body_is_a_parse_error(e: Env, body: bytes) -> None:
    refused(e, e.post("open", body), 400, -32700)


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"1.0","id":1,"method":"tools/list"}',
        b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}',
        b'{"jsonrpc":"2.0","id":1,"method":42}',
        b"[]",
        b"42",
    ],
    ids=["jsonrpc-1.0", "id-object", "method-number", "empty-batch", "scalar"],
)
def test_wrong_jsonrpc_shape_is_an_invalid_request(e: Env, body: bytes) -> None:
    refused(e, e.post("open", body), 400, -32600)


@pytest.mark.parametrize(
    ("body", "rid"),
    [
        (b'{"jsonrpc":"1.0","id":5,"method":"tools/list"}', 5),
        (b'{"id":"s-5","method":"tools/list"}', "s-5"),
        (b'{"jsonrpc":"2.0","id":6,"method":"ping","params":"x"}', 6),
        (b'{"jsonrpc":"2.0","id":true,"method":"tools/list"}', None),  # not an id: null
        (b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}', None),
    ],
    ids=["jsonrpc-1.0", "no-jsonrpc", "params-string", "id-bool", "id-object"],
)
def test_an_invalid_request_with_a_readable_id_is_answered_for_that_id(
    e: Env, body: bytes, rid: object
) -> None:
    resp = e.post("open", body)
    refused(e, resp, 400, -32600)
    assert json_body(resp)["id"] == rid


def test_prompt_arguments_must_be_strings(e: Env) -> None:
    body = (
        b'{"jsonrpc":"2.0","id":8,"method":"prompts/get",'
        b'"params":{"name":"note_prompt","arguments":{"topic":5}}}'
    )
    error = refused(e, e.post("open", body), 200, -32602)
    assert "an object of strings" in error["message"]


def test_oversized_body_with_content_length(e: Env) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":"%s"}}' % (
        b"x" * MAX_BODY
    )
    error = refused(e, e.post("open", body), 413, -32600)
    assert str(MAX_BODY) in error["message"]


def test_oversized_chunked_body(e: Env) -> None:
    chunks = [b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":"']
    chunks += [b"x" * 1024] * 8 + [b'"}}']
    resp = e.client.post(e.gw.route_url("open"), content=iter(chunks), headers=JSON_HEADERS)
    refused(e, resp, 413, -32600)


# --- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/"),
        ("POST", "/mcp/nope"),
        ("POST", "/mcp/"),
        ("POST", "/mcp/open/extra"),
        ("GET", "/mcp/nope?x=1"),
    ],
)
def test_unknown_path_or_route_is_a_json_404_naming_the_routes(
    e: Env, method: str, path: str
) -> None:
    resp = e.client.request(method, e.gw.base_url + path, content=TOOLS_LIST, headers=JSON_HEADERS)
    error = refused(e, resp, 404, -32600)
    assert set(error["data"]["routes"]) == {"open", "curated", "cards", "secured"}
    assert error["data"]["routes"]["open"] == e.gw.route_url("open")
    for name in ("open", "curated", "cards", "secured"):
        assert name in error["message"]


# --- browsers: Origin and Host -------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://localhost.evil.example"]
)
def test_foreign_origin_is_refused(e: Env, origin: str) -> None:
    refused(e, e.post("open", TOOLS_LIST, {"origin": origin}), 403, -32600)


@pytest.mark.parametrize("origin", ["http://localhost:6274", "http://127.0.0.1:6274"])
def test_loopback_origin_is_allowed_and_not_forwarded(e: Env, origin: str) -> None:
    resp = e.post("open", TOOLS_LIST, {"origin": origin})
    assert resp.status_code == 200, resp.text
    assert "tools" in json_body(resp)["result"]
    [seen] = e.rec.seen()
    assert "origin" not in seen.headers


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io"])
def test_dns_rebinding_host_is_refused(e: Env, host: str) -> None:
    refused(e, e.post("open", TOOLS_LIST, {"host": host}), 421, -32600)


# --- the route's view ----------------------------------------------------------------------


def test_hidden_tool_call_is_method_not_found(e: Env) -> None:
    resp = e.post("curated", HIDDEN_CALL)
    body = json_body(resp)
    assert body["id"] == 7
    assert body["error"]["code"] == -32601
    assert "delete_note" in body["error"]["message"]
    assert_nothing_reached(e)
    assert_still_serving(e)


def test_hidden_tool_in_a_batch_is_refused_alone(e: Env) -> None:
    """Each member as if sent alone: the hidden call gets its -32601, the list goes upstream
    (filtered), and the client gets one batch answer with both, in the order it sent them."""
    batch = b"[" + HIDDEN_CALL + b"," + TOOLS_LIST + b"]"
    resp = e.post("curated", batch)
    assert resp.status_code == 200, resp.text
    body = json_body(resp)
    assert [m["id"] for m in body] == [7, 1]
    assert body[0]["error"]["code"] == -32601 and "delete_note" in body[0]["error"]["message"]
    assert [t["name"] for t in body[1]["result"]["tools"]] == ["list_notes", "get_note", "add_note"]
    sent = [r.json() for r in e.rec.seen()]
    assert sent == [[json.loads(TOOLS_LIST)]]  # the hidden call never reached the upstream
    # Each member is audited as it was answered.
    evs = e.gw.wait_for_events(
        lambda evs: any(ev.get("id") == 7 and ev.get("outcome") == "denied" for ev in evs)
    )
    denied = [ev for ev in evs if ev.get("id") == 7 and ev.get("name") == "delete_note"]
    assert denied and denied[-1]["status"] == 200 and denied[-1]["error"]["code"] == -32601


def test_a_guardrail_refuses_one_member_of_a_batch_alone(e: Env) -> None:
    """A blocked card in one call of a batch: that call gets its -32003, the list beside it
    goes upstream and is answered, and no byte of the card reaches the upstream."""
    card = "4111 1111 1111 1111"
    blocked = json.dumps(
        {"jsonrpc": "2.0", "id": 8, "method": "tools/call",
         "params": {"name": "add_note", "arguments": {"text": f"pay with {card}"}}}
    ).encode()  # fmt: skip
    resp = e.post("cards", b"[" + TOOLS_LIST + b"," + blocked + b"]")
    assert resp.status_code == 200, resp.text
    body = json_body(resp)
    assert [m["id"] for m in body] == [1, 8]
    assert "tools" in body[0]["result"]
    assert body[1]["error"]["code"] == -32003 and body[1]["error"]["data"] == {"rule": "CARD"}
    seen = json.dumps([r.json() for r in e.rec.seen()])
    assert card not in seen and card.replace(" ", "") not in seen
    assert [json.loads(TOOLS_LIST)] in [r.json() for r in e.rec.seen()]


def test_a_batch_whose_members_are_all_refused_is_answered_by_the_gateway(e: Env) -> None:
    ill = b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":[1]}'
    resp = e.post("curated", b"[" + ill + b"," + HIDDEN_CALL + b"]")
    assert resp.status_code == 200, resp.text
    assert [(m["id"], m["error"]["code"]) for m in json_body(resp)] == [(3, -32602), (7, -32601)]
    assert_nothing_reached(e)


def test_a_refused_member_beside_a_notification_is_answered_with_its_error(e: Env) -> None:
    """The notification goes upstream (a 202, nothing to answer): the batch's answer is the
    refused member's error alone."""
    note = b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}'
    resp = e.post("curated", b"[" + note + b"," + HIDDEN_CALL + b"]")
    assert resp.status_code == 200, resp.text
    assert [(m["id"], m["error"]["code"]) for m in json_body(resp)] == [(7, -32601)]
    assert [r.json() for r in e.rec.seen()] == [[json.loads(note)]]


def test_hidden_tool_is_not_listed(e: Env) -> None:
    resp = e.post("curated", TOOLS_LIST)
    names = [t["name"] for t in json_body(resp)["result"]["tools"]]
    assert names == ["list_notes", "get_note", "add_note"]


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
def test_hidden_tool_call_in_a_non_post_body_never_reaches_the_upstream(
    e: Env, method: str
) -> None:
    """Only POST bodies are parsed; a body on any other method must not travel unread."""
    resp = e.client.request(
        method, e.gw.route_url("curated"), content=HIDDEN_CALL, headers=JSON_HEADERS
    )
    assert not [r for r in e.rec.seen() if b"delete_note" in r.body], (
        resp.status_code,
        resp.text[:200],
    )
    refused(e, resp, 400 if method in ("GET", "DELETE") else 405, -32600)


@pytest.mark.parametrize(
    ("header", "value"),
    [("mcp-method", "tools/call"), ("mcp-method", "TOOLS/LIST"), ("mcp-name", "list_notes")],
)
def test_mcp_headers_disagreeing_with_the_body(e: Env, header: str, value: str) -> None:
    refused(e, e.post("open", TOOLS_LIST, {header: value}), 400, -32600)


def test_mcp_headers_agreeing_with_the_body_pass(e: Env) -> None:
    call = b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_note"}}'
    resp = e.post("open", call, {"mcp-method": "tools/call", "mcp-name": "get_note"})
    assert json_body(resp)["result"]["content"][0]["text"] == "called get_note"
    assert len(e.rec.seen()) == 1


# --- credentials ---------------------------------------------------------------------------


def test_client_credentials_never_reach_the_upstream(e: Env) -> None:
    resp = e.post(
        "open",
        TOOLS_LIST,
        {
            "authorization": f"Bearer {CLIENT_TOKEN}",
            "proxy-authorization": f"Basic {CLIENT_TOKEN}",
            "cookie": f"session={CLIENT_TOKEN}",
        },
    )
    assert resp.status_code == 200, resp.text
    [seen] = e.rec.seen()
    for header in ("authorization", "proxy-authorization", "cookie"):
        assert header not in seen.headers
    assert CLIENT_TOKEN not in json.dumps(seen.headers)


def test_header_upstream_without_a_secret_is_not_contacted(e: Env) -> None:
    resp = e.post("secured", TOOLS_LIST, {"authorization": f"Bearer {CLIENT_TOKEN}"})
    if resp.status_code == 503:  # no usable keyring on this machine
        error = rpc_error(resp, -32603)
        assert "keyring" in error["message"].lower()
    else:
        assert resp.status_code == 200, resp.text
        error = rpc_error(resp, -32042)
        assert error["data"] == {"upstream": SECURED, "command": f"lockgate secret set {SECURED}"}
    assert CLIENT_TOKEN not in resp.text
    assert_nothing_reached(e)
    assert_still_serving(e)


@pytest.mark.keyring
def test_header_upstream_gets_the_stored_secret_not_the_client_token(e: Env) -> None:
    keyring_env.require_keyring()
    secret = f"upstream-{uuid.uuid4().hex}"
    backend = keyring_env.default_backend()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        secrets.set_secret(SECURED, secret)
        resp = e.post("secured", TOOLS_LIST, {"authorization": f"Bearer {CLIENT_TOKEN}"})
        assert resp.status_code == 200, resp.text
        assert secret not in resp.text
        [seen] = e.rec.seen()
        assert seen.headers["authorization"] == f"Bearer {secret}"
        assert CLIENT_TOKEN not in json.dumps(seen.headers)
    finally:
        secrets.delete_secret(SECURED)
        keyring.set_keyring(previous)


def test_every_refusal_is_audited(e: Env) -> None:
    e.post("open", TOOLS_LIST, {"origin": "https://evil.example"})
    events = e.gw.wait_for_events(lambda evs: any(ev.get("status") == 403 for ev in evs))
    denied = [ev for ev in events if ev.get("status") == 403]
    assert denied and all(ev["outcome"] == "denied" for ev in denied)


# --- a batch that reuses an id must not steer the list filter to the wrong method ----------


def test_batch_with_duplicate_ids_still_filters_tools_list(e: Env) -> None:
    """[tools/list id=1, prompts/list id=1]: `st.methods[1]` would end up "prompts/list", so the
    tools/list answer (id 1) would be filtered with the prompts view, which leaves `tools`."""
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 1, "method": "prompts/list"},
    ]
    r = e.post("curated", json.dumps(batch).encode())
    # Refused outright: answers are matched to requests by id.
    assert r.status_code == 400, r.text
    body = r.json()
    answers = body if isinstance(body, list) else [body]
    assert answers and all(a["error"]["code"] == -32600 for a in answers), body
    assert "delete_note" not in r.text
    assert not [q for q in e.rec.seen() if b"tools/list" in q.body]


# --- MCP shape (lockgate.mcp.shape) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code", "rpc_id"),
    [
        (b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":["add_note"]}', 200, -32602, 5),
        (b'{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":1}}', 200, -32602, "a"),
        (
            b'{"jsonrpc":"2.0","id":6,"method":"tools/call",'
            b'"params":{"name":"add_note","arguments":["sk-secret"]}}',
            200,
            -32602,
            6,
        ),
        (b'{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":1}}', 200, -32602, 8),
        (b'{"jsonrpc":"2.0","id":null,"method":"tools/list"}', 400, -32600, None),
    ],
    ids=["params-array", "name-int", "arguments-array", "uri-int", "id-null"],
)
def test_ill_formed_mcp_request_is_answered_with_the_clients_id(
    e: Env, body: bytes, status: int, code: int, rpc_id: object
) -> None:
    resp = e.post("open", body)
    assert json_body(resp)["id"] == rpc_id
    assert "sk-secret" not in resp.text
    refused(e, resp, status, code)


BATCH = (
    b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"},'
    b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add_note"}}]'
)


def test_batch_on_a_revision_without_batches_is_refused(e: Env) -> None:
    resp = e.post("open", BATCH, {"mcp-protocol-version": "2025-06-18"})
    assert resp.status_code == 400, resp.text
    body = json_body(resp)
    assert [(m["id"], m["error"]["code"]) for m in body] == [(1, -32600), (2, -32600)]
    assert_nothing_reached(e)
    assert_still_serving(e)


def test_batch_with_an_ill_formed_member_refuses_that_member_only(e: Env) -> None:
    bad = BATCH[:-1] + b',{"jsonrpc":"2.0","id":3,"method":"tools/call","params":[1]}]'
    resp = e.post("open", bad, {"mcp-protocol-version": "2025-03-26"})
    assert resp.status_code == 200, resp.text
    body = json_body(resp)
    assert [m["id"] for m in body] == [1, 2, 3]
    assert "result" in body[0] and "result" in body[1]
    assert body[2]["error"]["code"] == -32602 and "array" in body[2]["error"]["message"]
    assert [[m["id"] for m in r.json()] for r in e.rec.seen()] == [[1, 2]]


def test_batch_on_2025_03_26_passes(e: Env) -> None:
    resp = e.post("open", BATCH, {"mcp-protocol-version": "2025-03-26"})
    assert resp.status_code == 200, resp.text
    assert len(e.rec.seen()) == 1
