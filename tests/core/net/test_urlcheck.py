"""URLs learned from metadata: only public https (or loopback, when allowed) gets contacted.

`check_url` is table-tested with an injected resolver; `fetch_json` runs against real HTTP(S)
servers on 127.0.0.1, and a server that must not be reached records every request it gets.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import LockgateError
from lockgate.net.fetch import FetchError, fetch_json, post_form
from lockgate.net.urlcheck import CheckedUrl, UnsafeUrl, check_url
from tests.support.tls import issue_certs

PUBLIC4 = "93.184.216.34"
PUBLIC6 = "2606:2800:220:1:248:1893:25c8:1946"
DNS: dict[str, list[str]] = {
    "example.com": [PUBLIC4],
    "dual.example": [PUBLIC4, PUBLIC6],
    "xn--bcher-kva.de": [PUBLIC4],
    "localhost": ["127.0.0.1", "::1"],
    "internal.test": ["10.0.0.5"],
    "mixed.test": [PUBLIC4, "10.0.0.5"],
    "mixed6.test": [PUBLIC6, "fd00::5"],
    "rebind.test": ["127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "cgnat.test": ["100.64.1.1"],
    "mapped.test": ["::ffff:192.168.1.1"],
    "empty.test": [],
    "garbage.test": ["not-an-ip"],
}


def fake_resolve(host: str, port: int) -> list[str]:
    if host == "nxdomain.test":
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return list(DNS.get(host, [PUBLIC4]))


def resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host in table:
            return list(table[host])
        return fake_resolve(host, port)

    return resolve


# --------------------------------------------------------------------------- check_url

ACCEPTED: list[tuple[str, str, str, int, tuple[str, ...]]] = [
    # (input, normalised url, host, port, addresses)
    (
        "https://example.com/.well-known/oauth-authorization-server",
        "https://example.com/.well-known/oauth-authorization-server",
        "example.com",
        443,
        (PUBLIC4,),
    ),
    ("https://EXAMPLE.com:443", "https://example.com/", "example.com", 443, (PUBLIC4,)),
    (
        "HTTPS://example.com:8443/a?b=1&c=%20",
        "https://example.com:8443/a?b=1&c=%20",
        "example.com",
        8443,
        (PUBLIC4,),
    ),
    ("https://dual.example/", "https://dual.example/", "dual.example", 443, (PUBLIC4, PUBLIC6)),
    ("https://example.com./x", "https://example.com./x", "example.com.", 443, (PUBLIC4,)),
    ("https://bücher.de/", "https://xn--bcher-kva.de/", "xn--bcher-kva.de", 443, (PUBLIC4,)),
    ("https://8.8.8.8/", "https://8.8.8.8/", "8.8.8.8", 443, ("8.8.8.8",)),
    (f"https://[{PUBLIC6}]/", f"https://[{PUBLIC6}]/", PUBLIC6, 443, (PUBLIC6,)),
    (
        "https://[::ffff:8.8.8.8]/",
        "https://[::ffff:8.8.8.8]/",
        "::ffff:8.8.8.8",
        443,
        ("::ffff:8.8.8.8",),
    ),
    # 6to4 and NAT64 forms of public addresses stay public
    (
        "https://[2002:808:808::1]/",
        "https://[2002:808:808::1]/",
        "2002:808:808::1",
        443,
        ("2002:808:808::1",),
    ),
    (
        "https://[64:ff9b::808:808]/",
        "https://[64:ff9b::808:808]/",
        "64:ff9b::808:808",
        443,
        ("64:ff9b::808:808",),
    ),
    # loopback, when the URL itself names it
    (
        "http://localhost:8080/cb",
        "http://localhost:8080/cb",
        "localhost",
        8080,
        ("127.0.0.1", "::1"),
    ),
    ("https://localhost/", "https://localhost/", "localhost", 443, ("127.0.0.1", "::1")),
    ("http://127.0.0.1:9/", "http://127.0.0.1:9/", "127.0.0.1", 9, ("127.0.0.1",)),
    ("http://127.9.8.7/", "http://127.9.8.7/", "127.9.8.7", 80, ("127.9.8.7",)),
    ("http://[::1]:9/x", "http://[::1]:9/x", "::1", 9, ("::1",)),
    ("http://[0:0::1]:9/", "http://[::1]:9/", "::1", 9, ("::1",)),
    # fullwidth digits normalise (UTS 46) to the same literal; the same rules then apply
    (
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:9/",
        "http://127.0.0.1:9/",
        "127.0.0.1",
        9,
        ("127.0.0.1",),
    ),
]


@pytest.mark.parametrize(("url", "normal", "host", "port", "addresses"), ACCEPTED)
def test_accepted(url: str, normal: str, host: str, port: int, addresses: tuple[str, ...]) -> None:
    got = check_url(url, resolve=fake_resolve)
    assert got == CheckedUrl(normal, host, port, addresses)
    assert check_url(got.url, resolve=fake_resolve) == got  # normal form is a fixed point


REJECTED: list[tuple[str, str]] = [
    # (url, a word the reason must contain)
    # numeric host forms: all mean 127.0.0.1 to someone, none is guessed at
    ("http://2130706433/", "numeric"),
    ("https://2130706433/", "numeric"),
    ("http://0177.0.0.1/", "numeric"),
    ("http://0177.0000.0000.0001/", "numeric"),
    ("http://017700000001/", "numeric"),
    ("http://0x7f.0.0.1/", "numeric"),
    ("http://0x7F.0x0.0x0.0x1/", "numeric"),
    ("http://0x7f000001/", "numeric"),
    ("http://127.1/", "numeric"),
    ("http://127.0.1/", "numeric"),
    ("https://0/", "numeric"),
    ("https://10.1/", "numeric"),
    ("https://8.8.8.08/", "numeric"),
    ("https://256.1.1.1/", "numeric"),
    ("https://1.2.3.4./", "numeric"),
    ("https://1.2.3.4.5/", "numeric"),
    ("https://foo.123/", "numeric"),
    ("https://%31%32%37.0.0.1/", "numeric"),
    ("https://%31%32%37.example/", "DNS name"),
    ("https://\uff11\uff10.\uff10.\uff10.\uff11/", "private"),
    # IPv6 literals
    ("https://[::ffff:10.0.0.1]/", "private"),
    ("http://[::ffff:127.0.0.1]/", "plain http"),
    ("https://[::ffff:127.0.0.1]/", "loopback"),
    ("https://[::ffff:7f00:1]/", "loopback"),
    ("https://[::ffff:169.254.169.254]/", "link-local"),
    ("https://[::127.0.0.1]/", "reserved"),
    ("https://[::]/", "unspecified"),
    ("https://[fe80::1]/", "link-local"),
    ("https://[fe80::1%25eth0]/", "plain IPv6"),
    ("https://[fd12:3456::1]/", "unique-local"),
    ("https://[fc00::1]/", "unique-local"),
    ("https://[fec0::1]/", "site-local"),
    ("https://[ff02::1]/", "multicast"),
    ("https://[64:ff9b::a00:1]/", "private"),
    ("https://[64:ff9b::7f00:1]/", "loopback"),
    ("https://[2002:a00:1::1]/", "private"),
    ("https://[2002:c0a8:101::1]/", "private"),
    ("https://[2001:db8::1]/", "reserved"),
    ("https://[2001::1]/", "reserved"),
    ("https://[::1/", "parsed"),  # urllib already refuses it
    ("https://[::1]x/", "junk"),
    ("https://[example.com]/", "parsed"),
    ("https://[1::2::3]/", "parsed"),
    # IPv4 literals in non-public ranges
    ("https://10.0.0.1/", "private"),
    ("https://172.16.0.1/", "private"),
    ("https://192.168.1.1/", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://100.64.0.1/", "private"),
    ("https://100.127.255.255/", "private"),
    ("https://0.0.0.0/", "private"),
    ("https://224.0.0.1/", "multicast"),
    ("https://255.255.255.255/", "private"),
    ("https://198.18.0.1/", "private"),
    ("https://192.0.2.1/", "private"),
    # scheme and shape
    ("http://example.com/", "plain http"),
    ("http://8.8.8.8/", "plain http"),
    ("javascript:alert(1)", "scheme"),
    ("data:application/json,{}", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("ftp://example.com/", "scheme"),
    ("ws://localhost/", "scheme"),
    ("example.com", "scheme"),
    ("//example.com/", "scheme"),
    ("", "empty"),
    ("https://", "no host"),
    ("https:///x", "no host"),
    ("https:example.com", "no host"),
    ("https:/example.com", "no host"),
    ("https://:443/", "no host"),
    ("https://user@host", "credentials"),
    ("https://user:pass@example.com/", "credentials"),
    ("https://@example.com/", "credentials"),
    ("https://example.com#frag", "fragment"),
    ("https://example.com/#", "fragment"),
    ("https://example.com\\@evil.test/", "backslash"),
    ("https://exa\tmple.com/", "whitespace"),
    ("https://example.com/\n", "whitespace"),
    (" https://example.com/", "whitespace"),
    ("https://example.com:0/", "port"),
    ("https://example.com:/", "port"),
    ("https://example.com:65536/", "port"),
    ("https://example.com:\uff18\uff10/", "port"),
    ("https://example.com:-1/", "port"),
    ("https://a:b:c/", "malformed"),
    ("https://exa mple.com/", "whitespace"),
    ("https://exa_mple..com/", "DNS name"),
    ("https://-bad.com/", "DNS name"),
    ("https://☃.net/", "internationalised"),
    ("https://xn--zz.com/", "punycode"),
    (f"https://{'a' * 64}.com/", "DNS name"),
    # resolution
    ("https://internal.test/", "10.0.0.5"),
    ("https://mixed.test/", "10.0.0.5"),
    ("https://mixed6.test/", "fd00::5"),
    ("https://rebind.test/", "loopback"),
    ("https://metadata.test/", "link-local"),
    ("https://cgnat.test/", "private"),
    ("https://mapped.test/", "embedded"),
    ("https://nxdomain.test/", "could not be resolved"),
    ("https://empty.test/", "no address"),
    ("https://garbage.test/", "not an address"),
    ("http://localhost.:8080/", "plain http"),
    ("https://rebind.test:8443/", "loopback"),
]


@pytest.mark.parametrize(("url", "why"), REJECTED)
def test_rejected(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrl) as info:
        check_url(url, resolve=fake_resolve)
    assert why.lower() in info.value.reason.lower()
    assert isinstance(info.value, LockgateError)
    assert info.value.fix


@pytest.mark.parametrize(
    "url", ["http://localhost:8080/", "https://localhost/", "http://127.0.0.1/", "http://[::1]/"]
)
def test_loopback_refused_when_not_allowed(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="loopback"):
        check_url(url, allow_loopback_http=False, resolve=fake_resolve)


def test_localhost_must_resolve_to_loopback_only() -> None:
    resolve = resolver({"localhost": ["127.0.0.1", "10.0.0.5"]})
    with pytest.raises(UnsafeUrl, match="not loopback"):
        check_url("http://localhost/", resolve=resolve)


def test_literals_are_not_resolved() -> None:
    def boom(host: str, port: int) -> list[str]:
        raise AssertionError(f"resolved {host}")

    assert check_url("https://8.8.8.8/", resolve=boom).addresses == ("8.8.8.8",)
    assert check_url("http://[::1]:1/", resolve=boom).addresses == ("::1",)


def test_resolver_gets_the_ascii_host_and_port() -> None:
    seen: list[tuple[str, int]] = []

    def record(host: str, port: int) -> list[str]:
        seen.append((host, port))
        return [PUBLIC4]

    check_url("https://BÜCHER.de:8443/", resolve=record)
    assert seen == [("xn--bcher-kva.de", 8443)]


def test_default_resolver_resolves_localhost() -> None:
    got = check_url("http://localhost:1/")
    assert got.addresses
    assert all(ipaddress.ip_address(a).is_loopback for a in got.addresses)


def test_message_is_one_sentence_with_a_fix() -> None:
    with pytest.raises(UnsafeUrl) as info:
        check_url("https://internal.test/x?token=abc", resolve=fake_resolve)
    assert info.value.message.count(". ") == 0
    assert info.value.message.endswith(".")
    assert info.value.url == "https://internal.test/x?token=abc"


URLISH = st.builds(
    lambda scheme, sep, host, port, path: f"{scheme}{sep}{host}{port}{path}",
    st.sampled_from(["https", "http", "HTTPS", "javascript", "file", "", "h\u0442tps"]),
    st.sampled_from(["://", ":", ":/", ":///", "//"]),
    st.text(
        alphabet=st.sampled_from(
            [*"abcxyz0189.-_:[]@%#?/\\ fF", "\u3002", "\uff10", "\u00df", "\u200b", "ǅ", "\x00"]
        ),
        max_size=30,
    ),
    st.sampled_from(["", ":443", ":0", ":99999", ":", ":1x", ":\uff18"]),
    st.sampled_from(["", "/", "/a?b", "#f", "/%zz", "/é"]),
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), URLISH))
def test_only_unsafe_url_escapes(text: str) -> None:
    try:
        got = check_url(text, resolve=fake_resolve)
    except UnsafeUrl:
        return
    assert got.url.startswith(("https://", "http://"))
    assert got.url.isascii()
    assert check_url(got.url, resolve=fake_resolve) == got


def _embedded_or_self(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr in ipaddress.IPv6Network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if addr.sixtofour is not None:
            return addr.sixtofour
    return addr


@settings(max_examples=500, deadline=None)
@given(st.lists(st.ip_addresses(), min_size=1, max_size=3))
def test_accepted_addresses_are_global(
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    resolve = resolver({"host.example": [str(a) for a in addresses]})
    try:
        got = check_url("https://host.example/", resolve=resolve)
    except UnsafeUrl:
        return
    for a in got.addresses:
        inner = _embedded_or_self(ipaddress.ip_address(a))
        assert inner.is_global and not inner.is_multicast, a


# --------------------------------------------------------------------------- real servers


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"issuer": "https://as.example"}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    content_length: bool = True
    delay: float = 0.0


class Server:
    """A stdlib HTTP(S) server on 127.0.0.1:0 that records every request it receives."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Reply] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.posts: list[tuple[bytes, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.posts.append((self.rfile.read(length), self.headers.get("Authorization")))
                self.do_GET()

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Host")))
                reply = server.routes.get(self.path, Reply(404, b"{}"))
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.content_length:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client may hang up on a capped body
                    self.wfile.write(reply.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(tls: ssl.SSLContext | None = None) -> Server:
        s = Server(tls)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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


@pytest.mark.anyio
async def test_https_is_pinned_but_verified_against_the_name(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    server_ctx, client_ctx = _tls(tmp_path, "localhost")
    a = servers(server_ctx)
    a.routes["/doc"] = Reply(body=b'{"tls": true}')
    resolve = resolver({"localhost": ["127.0.0.1"]})
    async with httpx.AsyncClient(verify=client_ctx) as client:
        got = await fetch_json(a.url("/doc", host="localhost"), client=client, resolve=resolve)
    assert got == {"tls": True}
    assert a.requests == [("/doc", f"localhost:{a.port}")]


@pytest.mark.anyio
async def test_https_certificate_for_another_name_is_refused(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    server_ctx, client_ctx = _tls(tmp_path, "other.example")
    a = servers(server_ctx)
    a.routes["/doc"] = Reply()
    resolve = resolver({"localhost": ["127.0.0.1"]})
    async with httpx.AsyncClient(verify=client_ctx) as client:
        with pytest.raises(FetchError):
            await fetch_json(a.url("/doc", host="localhost"), client=client, resolve=resolve)
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
