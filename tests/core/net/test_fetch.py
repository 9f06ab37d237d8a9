"""`lockgate.net.fetch` against real HTTP(S) servers on 127.0.0.1: every hop checked, each
connection pinned to the checked addresses, bodies capped, no redirect followed by httpx."""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from lockgate.net.fetch import FetchError, fetch_json, post_form
from lockgate.net.urlcheck import UnsafeUrl
from tests.support.doubles import Reply, Server, fake_resolve, resolver, started_servers
from tests.support.process import free_port
from tests.support.tls import issue_certs

# --------------------------------------------------------------------------- real servers


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    yield from started_servers()


@pytest.mark.anyio
async def test_fetch_returns_json_and_keeps_host(servers: Callable[..., Server]) -> None:
    a = servers()
    a.routes["/meta?x=1"] = Reply(headers={"Content-Type": "application/json; charset=utf-8"})
    resolve = resolver({"localhost": ["127.0.0.1"]})
    got = await fetch_json(a.url("/meta?x=1", host="localhost"), resolve=resolve)
    assert got == {"issuer": "https://as.example"}
    assert a.requests == [("/meta?x=1", f"localhost:{a.port}")]


@pytest.mark.anyio
async def test_fetch_accepts_plus_json(servers: Callable[..., Server]) -> None:
    a = servers()
    a.routes["/jrd"] = Reply(body=b"[1, 2]", headers={"Content-Type": "application/jrd+json"})
    assert await fetch_json(a.url("/jrd")) == [1, 2]


@pytest.mark.anyio
async def test_fetch_tries_the_next_checked_address(servers: Callable[..., Server]) -> None:
    a = servers()
    a.routes["/doc"] = Reply()
    resolve = resolver({"localhost": ["::1", "127.0.0.1"]})  # nothing listens on [::1]:port
    assert await fetch_json(a.url("/doc", host="localhost"), resolve=resolve) == {
        "issuer": "https://as.example"
    }


@pytest.mark.anyio
async def test_fetch_follows_checked_redirects(servers: Callable[..., Server]) -> None:
    a, b = servers(), servers()
    a.routes["/start"] = Reply(302, b"", {"Location": "/next"})
    a.routes["/next"] = Reply(307, b"", {"Location": b.url("/doc") + "#ignored"})
    b.routes["/doc"] = Reply(body=b'{"ok": true}')
    assert await fetch_json(a.url("/start")) == {"ok": True}
    assert [p for p, _ in a.requests] == ["/start", "/next"]
    assert [p for p, _ in b.requests] == ["/doc"]


PRIVATE_TARGETS: list[tuple[str, type[Exception]]] = [
    ("http://rebind.test:{port}/doc", UnsafeUrl),  # public name resolving to loopback
    ("https://rebind.test:{port}/doc", UnsafeUrl),
    ("http://2130706433:{port}/doc", UnsafeUrl),
    ("http://0x7f000001:{port}/doc", UnsafeUrl),
    ("http://127.1:{port}/doc", UnsafeUrl),
    ("http://[::ffff:127.0.0.1]:{port}/doc", UnsafeUrl),
    ("https://internal.test:{port}/doc", UnsafeUrl),
    ("http://user@127.0.0.1:{port}/doc", UnsafeUrl),
    ("file:///etc/passwd", UnsafeUrl),
    # httpx itself refuses to parse this Location, before lockgate sees it: still not followed
    ("http://0177.0.0.1:{port}/doc", FetchError),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("target", "error"), PRIVATE_TARGETS)
async def test_redirect_to_private_is_refused_before_it_is_followed(
    servers: Callable[..., Server], target: str, error: type[Exception]
) -> None:
    a, b = servers(), servers()
    a.routes["/start"] = Reply(302, b"", {"Location": target.format(port=b.port)})
    b.routes["/doc"] = Reply()
    trusting = httpx.AsyncClient(follow_redirects=True)  # must not matter
    async with trusting:
        with pytest.raises(error):
            await fetch_json(a.url("/start"), client=trusting, resolve=fake_resolve)
    assert [p for p, _ in a.requests] == ["/start"]
    assert b.requests == []


@pytest.mark.anyio
async def test_fetch_refuses_loopback_when_not_allowed(servers: Callable[..., Server]) -> None:
    a = servers()
    a.routes["/doc"] = Reply()
    with pytest.raises(UnsafeUrl):
        await fetch_json(a.url("/doc"), allow_loopback_http=False)
    assert a.requests == []


@pytest.mark.anyio
async def test_redirect_loop_is_capped(servers: Callable[..., Server]) -> None:
    a = servers()
    a.routes["/loop"] = Reply(302, b"", {"Location": "/loop"})
    with pytest.raises(FetchError, match="redirected more than 3 times"):
        await fetch_json(a.url("/loop"), max_redirects=3)
    assert len(a.requests) == 4


@pytest.mark.anyio
async def test_no_redirects_allowed(servers: Callable[..., Server]) -> None:
    a = servers()
    a.routes["/r"] = Reply(301, b"", {"Location": "/doc"})
    a.routes["/doc"] = Reply()
    with pytest.raises(FetchError, match="redirected"):
        await fetch_json(a.url("/r"), max_redirects=0)
    assert [p for p, _ in a.requests] == ["/r"]


SECRET = b"SECRET-BODY-MARKER"


@pytest.mark.anyio
@pytest.mark.parametrize("declared", [True, False])
async def test_oversized_body_is_refused(servers: Callable[..., Server], declared: bool) -> None:
    a = servers()
    big = b'{"pad": "' + SECRET + b"x" * 300_000 + b'"}'
    a.routes["/big"] = Reply(body=big, content_length=declared)
    with pytest.raises(FetchError, match="more than 262144 bytes") as info:
        await fetch_json(a.url("/big"))
    assert SECRET.decode() not in str(info.value)


@pytest.mark.anyio
async def test_body_at_the_cap_is_fine(servers: Callable[..., Server]) -> None:
    a = servers()
    body = b'"' + b"x" * 98 + b'"'
    a.routes["/exact"] = Reply(body=body, content_length=False)
    assert await fetch_json(a.url("/exact"), max_bytes=100) == "x" * 98
    with pytest.raises(FetchError, match="more than 99 bytes"):
        await fetch_json(a.url("/exact"), max_bytes=99)


BAD_REPLIES = {
    "html": (Reply(body=b"<p>" + SECRET + b"</p>", headers={"Content-Type": "text/html"}), "JSON"),
    "no type": (Reply(body=b'{"a": "' + SECRET + b'"}', headers={}), "JSON"),
    "json-ish": (Reply(body=b"{}", headers={"Content-Type": "text/json"}), "JSON"),
    "plus-json text": (Reply(body=b"{}", headers={"Content-Type": "text/x+json"}), "JSON"),
    "status": (Reply(500, b'{"error": "' + SECRET + b'"}'), "HTTP 500"),
    "not json": (Reply(body=b"{" + SECRET), "valid JSON"),
    "empty": (Reply(body=b""), "valid JSON"),
    "gzip": (
        Reply(headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}),
        "compressed",
    ),
    "redirect without location": (Reply(302, b""), "without a Location"),
    "deep": (Reply(body=b"[" * 100_000 + b"]" * 100_000), "valid JSON"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(BAD_REPLIES))
async def test_bad_replies_are_refused(servers: Callable[..., Server], case: str) -> None:
    reply, why = BAD_REPLIES[case]
    a = servers()
    a.routes["/doc"] = reply
    with pytest.raises(FetchError, match=why) as info:
        await fetch_json(a.url("/doc"))
    assert SECRET.decode() not in str(info.value)
    assert info.value.fix


@pytest.mark.anyio
async def test_timeout_bounds_the_whole_fetch(servers: Callable[..., Server]) -> None:
    a = servers()
    a.routes["/slow"] = Reply(delay=3.0)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"longer than 0\.5 seconds"):
        await fetch_json(a.url("/slow"), timeout=0.5)
    assert time.monotonic() - started < 2.0


@pytest.mark.anyio
async def test_connection_refused_is_a_fetch_error() -> None:
    port = free_port()
    with pytest.raises(FetchError, match="Could not connect"):
        await fetch_json(f"http://127.0.0.1:{port}/doc")


@pytest.mark.anyio
async def test_unsafe_first_url_contacts_nothing() -> None:
    with pytest.raises(UnsafeUrl):
        await fetch_json("http://example.com/.well-known/openid-configuration")


# --------------------------------------------------------------------------- pinned TLS


def _tls(tmp: Path, dns_name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A CA and a server certificate for `dns_name`: (server context, client context)."""
    certs = issue_certs(tmp, x509.DNSName(dns_name), dns_name)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(certs.cert, certs.key)
    client = ssl.create_default_context(cafile=str(certs.ca))
    return server, client


def _tls_server(
    servers: Callable[..., Server], tmp: Path, dns_name: str, reply: Reply
) -> tuple[Server, ssl.SSLContext]:
    """A server with a certificate for `dns_name` answering /doc; the client's context."""
    server_ctx, client_ctx = _tls(tmp, dns_name)
    a = servers(server_ctx)
    a.routes["/doc"] = reply
    return a, client_ctx


async def _fetch_doc_as_localhost(a: Server, client_ctx: ssl.SSLContext) -> object:
    """fetch_json of /doc at `a`, named localhost (resolved to 127.0.0.1) over TLS."""
    resolve = resolver({"localhost": ["127.0.0.1"]})
    async with httpx.AsyncClient(verify=client_ctx) as client:
        return await fetch_json(a.url("/doc", host="localhost"), client=client, resolve=resolve)


@pytest.mark.anyio
async def test_https_is_pinned_but_verified_against_the_name(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    a, client_ctx = _tls_server(servers, tmp_path, "localhost", Reply(body=b'{"tls": true}'))
    assert await _fetch_doc_as_localhost(a, client_ctx) == {"tls": True}
    assert a.requests == [("/doc", f"localhost:{a.port}")]


@pytest.mark.anyio
async def test_https_certificate_for_another_name_is_refused(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    a, client_ctx = _tls_server(servers, tmp_path, "other.example", Reply())
    with pytest.raises(FetchError):
        await _fetch_doc_as_localhost(a, client_ctx)
    assert a.requests == []


# --------------------------------------------------------------------------- post_form


@pytest.mark.anyio
async def test_post_form_sends_the_form_to_the_checked_address(
    servers: Callable[..., Server],
) -> None:
    a = servers()
    a.routes["/token"] = Reply(body=b'{"access_token": "t"}')
    resolve = resolver({"localhost": ["127.0.0.1"]})
    status, body = await post_form(
        a.url("/token", host="localhost"),
        {"grant_type": "refresh_token", "refresh_token": "r&1"},
        basic_auth=("client:1", "s3cret"),
        resolve=resolve,
    )
    assert (status, body) == (200, {"access_token": "t"})
    assert a.requests == [("/token", f"localhost:{a.port}")]
    form, authorization = a.posts[0]
    assert form == b"grant_type=refresh_token&refresh_token=r%261"
    # RFC 6749 2.3.1: the id and secret are form-encoded before Basic.
    assert authorization == "Basic " + base64.b64encode(b"client%3A1:s3cret").decode()


@pytest.mark.anyio
async def test_post_form_returns_error_answers_and_non_json(servers: Callable[..., Server]) -> None:
    a = servers()
    a.routes["/token"] = Reply(400, b'{"error": "invalid_grant"}')
    a.routes["/html"] = Reply(502, b"<p>bad gateway</p>", {"Content-Type": "text/html"})
    assert await post_form(a.url("/token"), {}) == (400, {"error": "invalid_grant"})
    assert await post_form(a.url("/html"), {}) == (502, None)


@pytest.mark.anyio
async def test_post_form_does_not_follow_redirects(servers: Callable[..., Server]) -> None:
    a, b = servers(), servers()
    a.routes["/token"] = Reply(307, b"", {"Location": b.url("/token")})
    b.routes["/token"] = Reply()
    status, _ = await post_form(a.url("/token"), {"code": "c"})
    assert status == 307
    assert b.requests == []


@pytest.mark.anyio
async def test_post_form_to_a_private_address_contacts_nothing() -> None:
    resolve = resolver({"as.example": ["10.0.0.7"]})
    with pytest.raises(UnsafeUrl):
        await post_form("https://as.example/token", {"code": "c"}, resolve=resolve)


@pytest.mark.anyio
async def test_post_form_caps_the_body(servers: Callable[..., Server]) -> None:
    a = servers()
    a.routes["/token"] = Reply(body=b'"' + b"x" * 500 + b'"')
    with pytest.raises(FetchError, match="more than 100 bytes"):
        await post_form(a.url("/token"), {}, max_bytes=100)
