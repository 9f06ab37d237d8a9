"""URLs learned from metadata: only public https (or loopback, when allowed) gets contacted.

`check_url` is table-tested with an injected resolver; `lockgate.net.fetch` is tested against
real servers in test_fetch.py.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import LockgateError
from lockgate.net.urlcheck import CheckedUrl, UnsafeUrl, check_url
from tests.support.doubles import PUBLIC4, PUBLIC6, fake_resolve, resolver

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
