"""Resource rules and names cannot be read around by another spelling (issue 9, item 1).

Why it exists: the SDK decodes template variables (`notes://note/%32` is note 2 to it),
so a gateway that matched the raw string let a client read a denied note by
percent-encoding it, and the audit named the encoded URI. Here the real demo upstream
(template `notes://note/{id}`) sits behind a real gateway: a route that denies note 2, a
route whose per-user rule keeps note 2 from the (local) user, and a full route as witness.
Every spelling of note 2 is refused, what cannot be normalised is refused on routes with
resource rules, the audit names the normal form, and variants of a denied tool or prompt
name never run on the upstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.mcp_http import messages_of, open_session, session_headers
from tests.support.upstreams import sdk_upstream

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602

RULES = """
[routes.denied.resources]
deny = ["notes://note/2"]

[routes.denied.tools]
deny = ["delete_*"]

[routes.denied.prompts]
deny = ["note_prompt"]

[routes.notpl.resource_templates]
deny = ["notes://note/{id}"]

[[routes.peruser.access.resources]]
match = ["notes://note/2"]
users = ["somebody-else"]
"""

# Spellings the SDK (and RFC 3986) read as notes://note/2.
NOTE_2 = [
    "notes://note/%32",
    "NOTES://note/2",
    "notes://NOTE/2",
    "notes://note/./2",
    "notes://note/x/../2",
    "Notes://Note/%32",
]
# Not a URI the gateway can put in normal form: refused on a route with resource rules.
UNNORMALISABLE = [
    "notes://note/%2",
    "notes://note/%zz",
    "notes://note/%2F2",
    "notes://note/2%00",
    "notes://note/\u00002",
    "notes://note/2\n",
]


@dataclass
class Stack:
    gw: GatewayProcess

    def url(self, route: str) -> str:
        return self.gw.route_url(route)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ExitStack() as es:
        notes = es.enter_context(sdk_upstream(json_response=True))
        profile = profile_text(
            upstreams={"notes": notes},
            routes={"denied": "notes", "peruser": "notes", "notpl": "notes", "full": "notes"},
            extra=RULES,
        )
        yield Stack(es.enter_context(running_gateway(profile, tmp_path_factory.mktemp("uris"))))


def call(http: httpx.Client, url: str, sid: str | None, rid: int, method: str, params: Any) -> Any:
    msg = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    resp = http.post(url, json=msg, headers=session_headers(sid))
    assert resp.status_code in (200, 403), resp.text
    [reply] = messages_of(resp)
    assert reply["id"] == rid
    return reply


def read(stack: Stack, route: str, uri: str) -> Any:
    with httpx.Client(timeout=10) as http:
        url = stack.url(route)
        sid = open_session(http, url)
        return call(http, url, sid, 1, "resources/read", {"uri": uri})


def test_the_full_route_reads_every_spelling_as_note_2(stack: Stack) -> None:
    """The witness: the upstream itself resolves each spelling to note 2 (or to nothing)."""
    reply = read(stack, "full", "notes://note/%32")
    assert reply["result"]["contents"][0]["text"].startswith("# Groceries")


@pytest.mark.parametrize("uri", ["notes://note/2", *NOTE_2])
@pytest.mark.parametrize("route", ["denied", "peruser"])
def test_every_spelling_of_a_denied_resource_is_refused(stack: Stack, route: str, uri: str) -> None:
    reply = read(stack, route, uri)
    assert "result" not in reply, reply
    assert reply["error"]["code"] in (METHOD_NOT_FOUND, -32600)
    assert "notes://note/2" in reply["error"]["message"]


@pytest.mark.parametrize("uri", ["notes://note/%32", "notes://note/3/../2"])
def test_subscribe_to_a_denied_resource_is_refused_by_any_spelling(stack: Stack, uri: str) -> None:
    with httpx.Client(timeout=10) as http:
        url = stack.url("denied")
        sid = open_session(http, url)
        reply = call(http, url, sid, 1, "resources/subscribe", {"uri": uri})
    assert reply["error"]["code"] == METHOD_NOT_FOUND


@pytest.mark.parametrize("uri", UNNORMALISABLE)
@pytest.mark.parametrize("route", ["denied", "peruser"])
def test_what_cannot_be_normalised_is_refused_on_routes_with_resource_rules(
    stack: Stack, route: str, uri: str
) -> None:
    reply = read(stack, route, uri)
    assert "result" not in reply, reply
    assert reply["error"]["code"] == INVALID_PARAMS
    assert "normal form" in reply["error"]["message"]


def test_other_resources_stay_readable_and_are_read_in_normal_form(stack: Stack) -> None:
    reply = read(stack, "denied", "NOTES://note/%31")
    assert reply["result"]["contents"][0]["text"].startswith("# Welcome")
    # What the upstream was sent is what the gateway matched.
    assert reply["result"]["contents"][0]["uri"] == "notes://note/1"


def test_the_audit_names_the_normalised_uri(stack: Stack) -> None:
    before = len(stack.gw.events())
    read(stack, "denied", "notes://note/%32")
    read(stack, "full", "notes://note/%33")

    def reads(evs: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
        return [
            (e["route"], e["name"], e["outcome"])
            for e in evs[before:]
            if e.get("method") == "resources/read"
        ]

    events = reads(stack.gw.wait_for_events(lambda evs: len(reads(evs)) >= 2))
    assert events == [("denied", "notes://note/2", "denied"), ("full", "notes://note/3", "success")]


# --- names: exact, as the upstream resolves them ----------------------------------------

TOOL_VARIANTS = [
    "Delete_note",
    "DELETE_NOTE",
    "delete_note ",
    " delete_note",
    "delete_note\u200b",
    "\uff44elete_note",  # fullwidth d: NFKC-equal
    "delete\u2010note",
    "delete_note\n",
]


@pytest.mark.parametrize("name", TOOL_VARIANTS)
def test_variants_of_a_denied_tool_name_never_run(stack: Stack, name: str) -> None:
    """The SDK looks tools up by exact name: a variant is refused by one side or the other,
    and the note the tool would delete is still there."""
    with httpx.Client(timeout=10) as http:
        url = stack.url("denied")
        sid = open_session(http, url)
        reply = call(http, url, sid, 1, "tools/call", {"name": name, "arguments": {"id": "3"}})
        assert "error" in reply or reply["result"]["isError"] is True, reply
        full = stack.url("full")
        fsid = open_session(http, full)
        still = call(
            http, full, fsid, 2, "tools/call", {"name": "get_note", "arguments": {"id": "3"}}
        )
        assert still["result"]["isError"] is False


@pytest.mark.parametrize("name", ["note_prompt", "Note_prompt", "note_prompt ", "\uff4eote_prompt"])
def test_variants_of_a_denied_prompt_name_are_not_served(stack: Stack, name: str) -> None:
    with httpx.Client(timeout=10) as http:
        url = stack.url("denied")
        sid = open_session(http, url)
        reply = call(http, url, sid, 1, "prompts/get", {"name": name, "arguments": {"topic": "x"}})
    assert "error" in reply, reply


@pytest.mark.parametrize(
    "ref",
    [
        {"type": "ref/prompt", "name": "note_prompt"},
        {"type": "ref/prompt", "name": 3},
        {"type": "ref/other", "name": "note_prompt"},
    ],
)
def test_completion_refs_to_denied_items_are_refused(stack: Stack, ref: dict[str, Any]) -> None:
    with httpx.Client(timeout=10) as http:
        url = stack.url("denied")
        sid = open_session(http, url)
        params = {"ref": ref, "argument": {"name": "topic", "value": "x"}}
        reply = call(http, url, sid, 1, "completion/complete", params)
    assert reply["error"]["code"] == METHOD_NOT_FOUND


@pytest.mark.parametrize("uri", ["notes://note/%31", "NOTES://note/1", "notes://note/./1"])
def test_reads_through_a_denied_template_are_refused_by_any_spelling(
    stack: Stack, uri: str
) -> None:
    reply = read(stack, "notpl", uri)
    assert reply["error"]["code"] == METHOD_NOT_FOUND


@pytest.mark.parametrize("uri", ["notes://note/{id}", "NOTES://note/{id}", "notes://note/%7Bid%7D"])
def test_completion_refs_to_a_denied_template_are_refused(stack: Stack, uri: str) -> None:
    with httpx.Client(timeout=10) as http:
        url = stack.url("notpl")
        sid = open_session(http, url)
        params = {
            "ref": {"type": "ref/resource", "uri": uri},
            "argument": {"name": "id", "value": "1"},
        }
        reply = call(http, url, sid, 1, "completion/complete", params)
    assert "error" in reply, reply
