"""Client ID metadata documents through a real gateway, end to end.

Why it exists: an MCP client may name itself with an https URL instead of registering. The
gateway must fetch that document (over verified TLS, under the SSRF rules), show the user the
document's client name and the host that serves it, accept only redirect URIs the document
lists, and refuse everything the draft forbids, each with a clear message and an audit
event. The official `mcp` SDK client uses its `client_metadata_url` here; the documents come
from a real HTTPS server on 127.0.0.1 with a throwaway CA (the profile's `upstream_ca`).

Loopback documents are allowed only because the test sets LOCKGATE_CIMD_ALLOW_LOOPBACK=1; a
real gateway refuses them (tests/core/authserver/test_cimd.py).
"""

from __future__ import annotations

import ipaddress
import json
import ssl
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
from cryptography import x509

from lockgate.audit.verify import verify
from lockgate.cli.demo.headless_oauth import (
    CALLBACK_URI,
    MemoryStorage,
    approve_consent,
    signed_in_client,
)
from tests.support.doubles import Reply, Server
from tests.support.gateway import GatewayStack, profile_text, running_gateway
from tests.support.oauth import authorize_url, pkce
from tests.support.tls import issue_certs
from tests.support.upstreams import sdk_upstream

ENV = {"LOCKGATE_SIGNING_KEY_SOURCE": "memory", "LOCKGATE_CIMD_ALLOW_LOOPBACK": "1"}


@dataclass
class Stack(GatewayStack):
    docs: Server

    def publish(self, path: str, **fields: object) -> str:
        """Serve a metadata document at `path` (its own URL as client_id unless given)."""
        url = self.docs.url(path)
        body = {
            "client_id": url,
            "client_name": "Doc Client <x>",
            "redirect_uris": [CALLBACK_URI],
            **fields,
        }
        self.docs.routes[path] = Reply(
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Cache-Control": "max-age=600"},
        )
        return url


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("cimd")
    certs = issue_certs(tmp, x509.IPAddress(ipaddress.ip_address("127.0.0.1")), "docs")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certs.cert, certs.key)
    with ExitStack() as es:
        notes = es.enter_context(sdk_upstream())
        docs = Server(server_tls)
        es.callback(docs.close)
        profile = profile_text(
            {"notes": notes},
            {"notes": "notes"},
            f'[gateway]\nupstream_ca = "{certs.ca}"\n',
            kind="dev",
        )
        gw = es.enter_context(running_gateway(profile, tmp / "gw", env=ENV))
        yield Stack(gw, docs)


def authorize(stack: Stack, client_id: str, redirect_uri: str = CALLBACK_URI) -> httpx.Response:
    _, challenge = pkce()
    resource = stack.gw.route_url("notes")
    return httpx.get(
        authorize_url(
            stack.base, client_id, resource, challenge, redirect_uri=redirect_uri, state="s"
        )
    )


def events_for(stack: Stack, client: str, event: str) -> list[dict[str, object]]:
    found = stack.gw.wait_for_events(
        lambda evs: any(e.get("event") == event and e.get("client") == client for e in evs)
    )
    return [e for e in found if e.get("event") == event and e.get("client") == client]


# --- the SDK client, end to end ------------------------------------------------------------


def test_metadata_says_documents_are_supported(stack: Stack) -> None:
    meta = httpx.get(f"{stack.base}/.well-known/oauth-authorization-server").json()
    assert meta["client_id_metadata_document_supported"] is True


@pytest.mark.anyio
async def test_the_sdk_client_signs_in_with_its_metadata_document(stack: Stack) -> None:
    url = stack.publish("/sdk/client.json", client_name="Doc Client <x>")
    pages: list[str] = []

    async def browser(authorization_url: str) -> dict[str, str]:
        async with httpx.AsyncClient() as http:
            pages.append((await http.get(authorization_url)).text)
        return await approve_consent(authorization_url)

    storage = MemoryStorage()
    async with signed_in_client(
        stack.gw.route_url("notes"),
        browser,
        client_name="Doc Client <x>",
        storage=storage,
        client_metadata_url=url,
    ) as client:
        result = await client.call_tool("get_note", {"id": "1"})
        assert not result.is_error

    assert storage.client_info is not None and storage.client_info.client_id == url
    # The consent page named the document's client and the host that serves it, escaped.
    page = pages[0]
    assert "Doc Client &lt;x&gt;" in page and "<x>" not in page
    assert "described by <strong>127.0.0.1</strong>" in page

    [registered] = events_for(stack, url, "auth.client_registered")
    assert registered["kind"] == "cimd" and registered["outcome"] == "success"
    issued = events_for(stack, url, "auth.token_issued")
    assert issued and issued[0]["route"] == "notes"
    call = stack.gw.wait_for_events(
        lambda evs: any(e.get("event") == "tool.call" and e.get("client") == url for e in evs)
    )
    assert any(e.get("event") == "tool.call" and e.get("client") == url for e in call)
    # No dynamic registration happened, and the cached document was fetched once.
    assert not any(
        e.get("event") == "auth.client_registered" and e.get("kind") == "dcr"
        for e in stack.gw.events()
    )
    assert [p for p, _ in stack.docs.requests].count("/sdk/client.json") == 1
    assert verify(stack.gw.audit_path).ok


# --- refusals ---------------------------------------------------------------------------------


def test_http_client_id_is_refused(stack: Stack) -> None:
    client_id = stack.docs.url("/plain.json").replace("https://", "http://")
    r = authorize(stack, client_id)
    assert r.status_code == 400 and "must be an https URL" in r.text
    [refused] = events_for(stack, client_id, "auth.authorize_refused")
    assert refused["outcome"] == "denied"
    assert not any(p == "/plain.json" for p, _ in stack.docs.requests)


def test_private_address_is_refused_without_contact(stack: Stack) -> None:
    r = authorize(stack, "https://10.20.30.40/client.json")
    assert r.status_code == 400
    assert "will not fetch the client&#x27;s metadata document" in r.text
    assert "address not allowed" in r.text  # nothing more (issue 9, item 11)


def test_redirect_into_a_private_address_is_refused(stack: Stack) -> None:
    stack.docs.routes["/moved.json"] = Reply(
        302, b"", {"Location": "https://192.168.0.10/client.json"}
    )
    client_id = stack.docs.url("/moved.json")
    r = authorize(stack, client_id)
    assert r.status_code == 400
    assert "redirects elsewhere, into a refused address" in r.text
    assert events_for(stack, client_id, "auth.authorize_refused")


def test_document_naming_another_client_id_is_refused(stack: Stack) -> None:
    client_id = stack.publish("/liar.json", client_id="https://trusted.example/client.json")
    r = authorize(stack, client_id)
    assert r.status_code == 400 and "names another client_id" in r.text


def test_secret_auth_method_is_refused(stack: Stack) -> None:
    client_id = stack.publish("/secret.json", token_endpoint_auth_method="client_secret_post")
    r = authorize(stack, client_id)
    assert r.status_code == 400 and "only serves public clients" in r.text


def test_redirect_uri_not_in_the_document_is_refused(stack: Stack) -> None:
    client_id = stack.publish("/narrow.json")
    r = authorize(stack, client_id, redirect_uri="http://127.0.0.1:9/elsewhere")
    assert r.status_code == 400
    assert "not listed in the client&#x27;s metadata document" in r.text
    assert "location" not in r.headers  # nothing is sent to an unlisted URI
    [refused] = events_for(stack, client_id, "auth.authorize_refused")
    assert "not listed" in str(refused["reason"])
    # The listed one is fine: the consent page shows the document's client name.
    ok = authorize(stack, client_id)
    assert ok.status_code == 200 and "Doc Client &lt;x&gt;" in ok.text


def test_token_endpoint_refuses_a_bad_document(stack: Stack) -> None:
    client_id = stack.publish("/tok.json", client_id="https://other.example/x.json")
    r = httpx.post(
        f"{stack.base}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": "x",
            "redirect_uri": CALLBACK_URI,
            "client_id": client_id,
            "code_verifier": "v" * 43,
        },
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_client"
    assert "names another client_id" in r.json()["error_description"]
    [refused] = events_for(stack, client_id, "auth.token_refused")
    assert refused["reason"] == "client_metadata_refused"


def test_nothing_secret_reaches_the_log(stack: Stack) -> None:
    text = stack.gw.audit_path.read_text()
    assert "code_verifier" not in text and "v" * 43 not in text
