"""Checks for URLs the gateway learns from metadata (`lockgate.net.fetch` calls them).

Upstream OAuth discovery and client ID metadata documents hand the gateway URLs that a
third party chose. Fetching them blindly lets a malicious server point the gateway at the
laptop's or the company's internal network (SSRF), so every such URL goes through
`check_url` before use, every redirect hop included, and the connection is pinned to the
addresses that were checked (no second DNS lookup that could rebind; see `lockgate.net.fetch`).

Numeric hosts: a dotted quad in canonical form (`93.184.216.34`) and bracketed IPv6 literals
are IP literals. Any other host whose last label is numeric (`2130706433`, `0x7f000001`,
`0177.0.0.1`, `127.1`, `1.2.3.4.`) is refused: browsers, libc and Python disagree on what
those mean, so none of them is guessed at.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import string
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import idna

from lockgate.errors import LockgateError

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"https": 443, "http": 80}
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_LABEL = re.compile(r"^(?:0[x][0-9a-f]*|[0-9]+)$")
_CANONICAL_OCTET = re.compile(r"^(?:0|[1-9][0-9]{0,2})$")
_PORT = re.compile(r"^[0-9]{1,5}$")

_V4_BLOCKED = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata lives here)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_BLOCKED = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments, Teredo
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
_V4_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_V6_LOOPBACK = ipaddress.IPv6Address("::1")
_V6_ULA = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


class UnsafeUrl(LockgateError):
    """A URL the gateway refuses to contact; `reason` says which rule it broke."""

    def __init__(self, url: str, reason: str, *, address: bool = False) -> None:
        shown = url if len(url) <= 200 else url[:200] + "..."
        super().__init__(
            f"Refused to contact {shown!r}: {reason}.",
            "Check the upstream's metadata; lockgate only follows public https URLs.",
        )
        self.url = url
        self.reason = reason
        # The refusal is about where the name points: shown to a stranger, only
        # "address not allowed" (the reason would say what internal names resolve to).
        self.address = address

    @property
    def public_reason(self) -> str:
        """The reason as an outsider may read it."""
        return "address not allowed" if self.address else self.reason


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    """A URL that passed `check_url`: connect only to `addresses`, never re-resolve `host`."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]

    @property
    def scheme(self) -> str:
        return self.url.split(":", 1)[0]


def default_resolve(host: str, port: int) -> list[str]:
    """Resolve the way the OS would connect, so the checked set is the connected set."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def check_url(
    url: str,
    *,
    allow_loopback_http: bool = True,
    resolve: Resolver | None = None,
) -> CheckedUrl:
    """Refuse anything but a public https URL (or loopback, when allowed) before it is used.

    Loopback is allowed only when the URL itself names it (`localhost`, `127.x.y.z`,
    `[::1]`) and `allow_loopback_http` is true; then http and https are both fine. A public
    name that resolves to loopback or to any non-public address is refused (DNS rebinding).
    """
    try:
        return _check(url, allow_loopback_http, resolve or default_resolve)
    except UnsafeUrl:
        raise
    except Exception as exc:  # never let a parser quirk escape as something else
        raise UnsafeUrl(url, f"it could not be parsed ({type(exc).__name__})") from None


def _check(url: str, allow_loopback: bool, resolve: Resolver) -> CheckedUrl:
    if not isinstance(url, str) or not url:
        raise UnsafeUrl(str(url), "it is empty")
    if any(ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F for c in url):
        raise UnsafeUrl(url, "it contains whitespace or control characters")
    if "\\" in url:
        raise UnsafeUrl(url, "it contains a backslash, which parsers disagree on")
    if "#" in url:
        raise UnsafeUrl(url, "it has a fragment")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeUrl(url, f"scheme {scheme or '(none)'!r} is not https")
    if not url[len(scheme) + 1 :].startswith("//"):
        raise UnsafeUrl(url, "it has no host")
    netloc = parts.netloc
    if "@" in netloc:
        raise UnsafeUrl(url, "it carries user credentials")
    raw_host, port = _split_netloc(url, netloc, scheme)
    host, literal = _normalise_host(url, raw_host)

    if literal is not None:
        loopback_url = _is_loopback_literal(literal)
        addresses: list[IPAddress] = [literal]
    else:
        loopback_url = host == "localhost"
        addresses = _resolve(url, host, port, resolve)

    if loopback_url:
        if not allow_loopback:
            raise UnsafeUrl(url, "loopback addresses are not allowed here", address=True)
        for addr in addresses:
            if not _is_loopback_literal(addr):
                raise UnsafeUrl(
                    url, f"{host} resolves to {addr}, which is not loopback", address=True
                )
    else:
        if scheme != "https":
            raise UnsafeUrl(url, "plain http is only allowed to loopback")
        for addr in addresses:
            why = _non_public(addr)
            if why:
                where = f"{host} resolves to {addr}" if literal is None else str(addr)
                raise UnsafeUrl(url, f"{where} is a {why} address", address=True)

    path = _ascii(parts.path) or "/"
    if not path.startswith("/"):
        raise UnsafeUrl(url, "its path is not absolute")
    shown_host = f"[{host}]" if ":" in host else host
    netloc_out = shown_host if port == DEFAULT_PORTS[scheme] else f"{shown_host}:{port}"
    query = f"?{_ascii(parts.query)}" if parts.query else ""
    unique = tuple(dict.fromkeys(str(a) for a in addresses))
    return CheckedUrl(f"{scheme}://{netloc_out}{path}{query}", host, port, unique)


def _ascii(text: str) -> str:
    """Percent-encode non-ASCII only, as httpx would, so the checked URL is the sent URL."""
    return quote(text, safe=string.punctuation)


def _split_netloc(url: str, netloc: str, scheme: str) -> tuple[str, int]:
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise UnsafeUrl(url, "its IPv6 host is not closed")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise UnsafeUrl(url, "it has junk after the IPv6 host")
        port_text = rest[1:] if rest else None
    else:
        if netloc.count(":") > 1:
            raise UnsafeUrl(url, "its host is malformed")
        host, sep, port_text_ = netloc.partition(":")
        port_text = port_text_ if sep else None
    if port_text is None:
        return host, DEFAULT_PORTS[scheme]
    if not _PORT.match(port_text) or not 0 < int(port_text) < 65536:
        raise UnsafeUrl(url, "its port is not a number from 1 to 65535")
    return host, int(port_text)


def _normalise_host(url: str, raw: str) -> tuple[str, IPAddress | None]:
    """Return the ASCII host and, for IP literals, the address; refuse every ambiguous form."""
    if not raw:
        raise UnsafeUrl(url, "it has no host")
    if raw.startswith("["):
        inner = raw[1:-1]
        if "%" in inner or not re.fullmatch(r"[0-9A-Fa-f:.]+", inner):
            raise UnsafeUrl(url, "its IPv6 host is not a plain IPv6 address")
        try:
            v6 = ipaddress.IPv6Address(inner)
        except ValueError:
            raise UnsafeUrl(url, "its IPv6 host is not a valid address") from None
        return v6.compressed, v6
    if raw.isascii():
        host = raw.lower()
    else:
        try:
            host = idna.encode(raw, uts46=True).decode("ascii").lower()
        except (idna.IDNAError, UnicodeError, ValueError):
            raise UnsafeUrl(url, "its host is not a valid internationalised name") from None
    labels = host.split(".")
    last = labels[-2] if len(labels) > 1 and not labels[-1] else labels[-1]
    if _NUMERIC_LABEL.match(last):  # WHATWG's rule for "this host is an IPv4 number"
        if len(labels) == 4 and all(_CANONICAL_OCTET.match(p) and int(p) < 256 for p in labels):
            return host, ipaddress.IPv4Address(host)
        raise UnsafeUrl(url, "its numeric host is not a canonical dotted-quad IPv4 address")
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise UnsafeUrl(url, "its host is not a valid DNS name")
    if any(label.startswith("xn--") for label in name.split(".")):
        try:
            idna.decode(name)
        except (idna.IDNAError, UnicodeError, ValueError):
            raise UnsafeUrl(url, "its host has an invalid punycode label") from None
    return host, None


def _resolve(url: str, host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        found = resolve(host, port)
    except (OSError, UnicodeError, ValueError):
        raise UnsafeUrl(url, f"{host} could not be resolved", address=True) from None
    if not found:
        raise UnsafeUrl(url, f"{host} resolves to no address", address=True)
    out: list[IPAddress] = []
    for text in found:
        try:
            out.append(ipaddress.ip_address(text))
        except ValueError:
            raise UnsafeUrl(
                url, f"{host} resolves to something that is not an address", address=True
            ) from None
    return out


def _is_loopback_literal(addr: IPAddress) -> bool:
    """Only plain 127/8 and ::1 count: embedded or translated forms never do."""
    if isinstance(addr, ipaddress.IPv4Address):
        return addr in _V4_LOOPBACK
    return addr == _V6_LOOPBACK and addr.scope_id is None


def _non_public(addr: IPAddress) -> str | None:
    """Name the kind of non-public address `addr` is, or None when it is public."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id is not None:
            return "scoped"
        embedded = addr.ipv4_mapped
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is None and addr in _SIX_TO_FOUR:
            embedded = ipaddress.IPv4Address((int(addr) >> 80) & 0xFFFFFFFF)
        if embedded is not None:
            inner = _non_public(embedded)
            return f"{inner} (embedded in IPv6)" if inner else None
        if addr not in _V6_GLOBAL_UNICAST:
            return _v6_kind(addr)
        if any(addr in net for net in _V6_BLOCKED) or not addr.is_global:
            return "reserved"
        return None
    if addr.is_loopback:
        return "loopback"
    if addr.is_multicast:
        return "multicast"
    if addr.is_link_local:
        return "link-local"
    if any(addr in net for net in _V4_BLOCKED) or not addr.is_global:
        return "private or reserved"
    return None


def _v6_kind(addr: ipaddress.IPv6Address) -> str:
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return "loopback"
    if addr.is_multicast:
        return "multicast"
    if addr.is_link_local:
        return "link-local"
    if addr.is_site_local:
        return "site-local"
    if addr in _V6_ULA:
        return "unique-local"
    return "reserved"
