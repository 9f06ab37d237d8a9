"""Client ID metadata documents: URL rules, document validation, cache lifetime, the fetch.

Why it exists: a client_id URL is chosen by whoever starts a sign-in, so the gateway fetches
a stranger's URL and trusts what it says about the client. The URL must be public https
(never this machine in production, never a private network, never via a redirect), the
document must name itself and carry no secret, and what the cache keeps must be bounded.
The fetch runs against real HTTPS servers on 127.0.0.1 with a throwaway CA.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from lockgate.authserver.cimd import (
    MAX_DOCUMENT_BYTES,
    MAX_TTL,
    MIN_TTL,
    ClientDocument,
    DocumentCache,
    cache_ttl,
    client_id_url_problem,
    fetch_document,
    looks_like_cimd,
    parse_document,
)
from lockgate.authserver.requests import OAuthError
from lockgate.net.tls import trust_store
from tests.support.doubles import Reply, Server, started_servers
from tests.support.tls import issue_certs

URL = "https://app.example.com/oauth/client.json"


def doc(**extra: object) -> dict[str, object]:
    return {
        "client_id": URL,
        "client_name": "Example MCP client",
        "redirect_uris": ["http://127.0.0.1:3000/callback", "vscode://ex.mcp/cb"],
        **extra,
    }


# --- the client_id URL -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "why"),
    [
        ("http://app.example.com/client.json", "https"),
        ("https://app.example.com", "no path"),
        ("https://app.example.com/", "no path"),
        ("https://app.example.com/a/../client.json", ". or .."),
        ("https://app.example.com/./client.json", ". or .."),
        ("https://app.example.com/client.json#x", "fragment"),
        ("https://user@app.example.com/client.json", "user info"),
        ("https:///client.json", "no host"),
        ("https://app.example.com/c lient.json", "whitespace"),
        ("https://app.example.com/" + "a" * 600, "longer than"),
    ],
)
def test_bad_client_id_urls(client_id: str, why: str) -> None:
    problem = client_id_url_problem(client_id)
    assert problem is not None and why in problem, problem


def test_good_client_id_url() -> None:
    assert client_id_url_problem(URL) is None
    assert client_id_url_problem("https://app.example.com/c?v=1") is None
    assert looks_like_cimd(URL) and looks_like_cimd("HTTP://x/y")
    assert not looks_like_cimd("lg-abc") and not looks_like_cimd("https:x")


@given(st.text(max_size=60))
def test_client_id_url_judged_without_raising(text: str) -> None:
    problem = client_id_url_problem("https://" + text)
    if problem is None:
        assert "#" not in text and "@" not in text.split("/", 1)[0]


# --- the document --------------------------------------------------------------------------


def test_a_good_document() -> None:
    parsed = parse_document(doc(client_uri="https://app.example.com", extra_field=1), URL)
    assert parsed.client_name == "Example MCP client"
    assert parsed.redirect_uris[1] == "vscode://ex.mcp/cb"
    assert parsed.host == "app.example.com"
    assert parsed.metadata() == {"host": "app.example.com", "client_uri": "https://app.example.com"}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ([1, 2], "not a JSON object"),
        (doc(client_id="https://evil.example/client.json"), "names another client_id"),
        ({k: v for k, v in doc().items() if k != "client_id"}, "names another client_id"),
        ({k: v for k, v in doc().items() if k != "redirect_uris"}, "redirect_uris"),
        (doc(redirect_uris=[]), "redirect_uris"),
        (doc(redirect_uris=["javascript:alert(1)"]), "must be https"),
        (doc(redirect_uris=["http://evil.example/cb"]), "loopback"),
        (doc(client_secret="s3cr3t"), "carries client_secret"),
        (doc(client_secret_expires_at=0), "carries client_secret_expires_at"),
        (doc(token_endpoint_auth_method="client_secret_basic"), "public clients"),
        (doc(token_endpoint_auth_method="client_secret_post"), "public clients"),
        (doc(token_endpoint_auth_method="tls_client_auth"), 'only "none"'),
        (doc(grant_types=["client_credentials"]), "grant_types"),
        (doc(response_types=["token"]), "response_types"),
        (doc(client_name="x" * 300), "client_name"),
    ],
)
def test_refused_documents_say_why(data: object, why: str) -> None:
    with pytest.raises(OAuthError) as info:
        parse_document(data, URL)
    assert info.value.error == "invalid_client"
    assert why in info.value.description, info.value.description
    assert "s3cr3t" not in info.value.description


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "client_id",
                "client_name",
                "redirect_uris",
                "grant_types",
                "response_types",
                "token_endpoint_auth_method",
                "scope",
                "client_secret",
            ]
        ),
        _json,
    ),
    st.booleans(),
    st.lists(st.sampled_from(["http://127.0.0.1/cb", "claude://a/cb", "data:x"]), max_size=3),
)
def test_any_document_is_accepted_or_refused_cleanly(
    data: dict[str, object], own_id: bool, uris: list[str]
) -> None:
    if own_id:  # often a document that names itself, so some get through
        data = {**data, "client_id": URL}
        if uris:
            data["redirect_uris"] = uris
    try:
        parsed = parse_document(data, URL)
    except OAuthError as e:
        assert e.error == "invalid_client" and e.description
        return
    assert parsed.client_id == URL and parsed.redirect_uris
    assert "client_secret" not in data


@given(uris=st.lists(st.text(max_size=30), min_size=1, max_size=3))
def test_documents_never_admit_a_bad_redirect_uri(uris: list[str]) -> None:
    from lockgate.authserver.requests import redirect_uri_problem

    try:
        parsed = parse_document(doc(redirect_uris=uris), URL)
    except OAuthError:
        return
    assert all(redirect_uri_problem(u) is None for u in parsed.redirect_uris)


# --- cache lifetime ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "ttl"),
    [
        ({}, 300.0),
        ({"Cache-Control": "max-age=600"}, 600.0),
        ({"cache-control": "public, max-age=3"}, MIN_TTL),
        ({"Cache-Control": "max-age=99999999"}, MAX_TTL),
        ({"Cache-Control": "no-store"}, 0.0),
        ({"Cache-Control": "max-age=600, no-cache"}, 0.0),
        ({"Expires": "Thu, 01 Jan 1970 00:00:00 GMT"}, MIN_TTL),
        ({"Expires": "not a date"}, MIN_TTL),
        ({"Expires": "Thu, 01 Jan 1970 00:20:00 GMT"}, 1200.0),
        ({"Cache-Control": "max-age=120", "Expires": "Thu, 01 Jan 1970 00:20:00 GMT"}, 120.0),
    ],
)
def test_cache_ttl(headers: dict[str, str], ttl: float) -> None:
    assert cache_ttl(headers, now=0.0) == pytest.approx(ttl)


@given(st.text(max_size=40))
def test_cache_ttl_is_always_within_bounds(control: str) -> None:
    ttl = cache_ttl({"Cache-Control": control})
    assert ttl == 0.0 or MIN_TTL <= ttl <= MAX_TTL


def test_cache_is_bounded_and_expires() -> None:
    now = [0.0]
    cache = DocumentCache(2, clock=lambda: now[0])
    d = ClientDocument.model_validate(doc())
    cache.put("a", d, 10)
    cache.put("b", d, 100)
    assert cache.get("a") is d  # "a" is now the most recently used
    cache.put("c", d, 100)
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") is d
    now[0] = 10.0
    assert cache.get("a") is None and cache.get("c") is d
    cache.put("d", d, 0)  # no-store: never kept
    assert cache.get("d") is None


# --- the fetch, over real HTTPS --------------------------------------------------------------


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    certs = issue_certs(tmp_path, x509.IPAddress(ipaddress.ip_address("127.0.0.1")), "docs")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(certs.cert, certs.key)
    return server, certs.ca


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    yield from started_servers()


@pytest.fixture
def docs(
    servers: Callable[..., Server], tls: tuple[ssl.SSLContext, Path]
) -> tuple[Server, ssl.SSLContext]:
    """An HTTPS server for client metadata documents, and the context that trusts it."""
    return servers(tls[0]), trust_store(str(tls[1]))


@pytest.mark.anyio
async def test_fetch_validates_and_reports_the_cache_lifetime(
    docs: tuple[Server, ssl.SSLContext],
) -> None:
    s, verify = docs
    url = s.url("/client.json")
    body = json.dumps({**doc(), "client_id": url}).encode()
    s.routes["/client.json"] = Reply(
        body=body,
        headers={"Content-Type": "application/json", "Cache-Control": "max-age=900"},
    )
    got, ttl = await fetch_document(url, verify=verify, allow_loopback=True)
    assert got.client_id == url and ttl == 900.0
    assert len(s.requests) == 1


@pytest.mark.anyio
async def test_loopback_is_refused_unless_allowed(
    docs: tuple[Server, ssl.SSLContext],
) -> None:
    s, verify = docs
    # Address refusals say only "address not allowed" (issue 9, item 11).
    with pytest.raises(OAuthError, match="address not allowed"):
        await fetch_document(s.url("/client.json"), verify=verify)
    assert s.requests == []


@pytest.mark.anyio
async def test_private_and_http_client_ids_contact_nothing() -> None:
    with pytest.raises(OAuthError, match="address not allowed"):
        await fetch_document("https://10.1.2.3/client.json", allow_loopback=True)
    with pytest.raises(OAuthError, match="must be an https URL"):
        await fetch_document("http://127.0.0.1:9/client.json", allow_loopback=True)
    with pytest.raises(OAuthError, match="address not allowed"):
        await fetch_document(URL, resolve=lambda host, port: ["192.168.1.5"])


@pytest.mark.anyio
async def test_redirects_are_not_followed_and_a_private_target_is_named(
    docs: tuple[Server, ssl.SSLContext],
) -> None:
    s, verify = docs
    s.routes["/to-private"] = Reply(302, b"", {"Location": "https://169.254.169.254/latest"})
    s.routes["/to-self"] = Reply(302, b"", {"Location": "/client.json"})
    with pytest.raises(OAuthError) as info:
        await fetch_document(s.url("/to-private"), verify=verify, allow_loopback=True)
    assert "into a refused address" in info.value.description
    assert "address not allowed" in info.value.description
    assert "169.254" not in info.value.description.split("redirects elsewhere")[1]
    with pytest.raises(OAuthError, match="redirects are not followed"):
        await fetch_document(s.url("/to-self"), verify=verify, allow_loopback=True)
    assert [p for p, _ in s.requests] == ["/to-private", "/to-self"]


@pytest.mark.anyio
async def test_big_wrong_type_and_untrusted_documents_are_refused(
    docs: tuple[Server, ssl.SSLContext],
) -> None:
    s, verify = docs
    s.routes["/big"] = Reply(body=b"{" + b" " * MAX_DOCUMENT_BYTES + b"}")
    s.routes["/html"] = Reply(body=b"<html>", headers={"Content-Type": "text/html"})
    s.routes["/404"] = Reply(404, b"{}")
    for path, why in (
        ("/big", "more than"),
        ("/html", "did not answer with JSON"),
        ("/404", "404"),
    ):
        with pytest.raises(OAuthError) as info:
            await fetch_document(s.url(path), verify=verify, allow_loopback=True)
        assert why in info.value.description, info.value.description
    # Without the test CA, the certificate is not trusted.
    with pytest.raises(OAuthError, match="could not be fetched"):
        await fetch_document(s.url("/big"), verify=trust_store(), allow_loopback=True)
