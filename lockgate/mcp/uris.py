"""Resource URIs in one normal form, so a rule cannot be read around by another spelling.

Why it exists: the gateway matches resource URIs against the profile's rules, and the
upstream resolves them its own way. The SDK percent-decodes template variables, so
`notes://note/%32` is note 2 to it; a gateway matching the raw string let a denied note be
read. Every URI is brought to one normal form before it is matched, audited and (on routes
with resource rules) forwarded, so the upstream reads exactly the URI the rules saw.

The normal form (RFC 3986 section 6.2.2, plus what template decoding makes equal):

- the scheme and the host in lower case; percent-escapes in upper case;
- escapes of unreserved characters decoded everywhere; in the path also escapes of the
  sub-delimiters and of `:` and `@` (template variables decode those too, so `a%2Bb` and
  `a+b` name one thing upstream);
- dot segments removed (`/a/./b/../c` is `/a/c`);
- characters a URI cannot hold raw (space, `"`, `<`, non-ASCII, ...) percent-encoded as
  UTF-8.

What has no normal form raises `UriError`: no scheme, a malformed escape, an encoded `/`
or `\\` in the path or authority (decoding it changes the path's segments), a raw `\\`,
control characters raw or encoded, lone surrogates, more than `MAX_URI` characters.
"""

from __future__ import annotations

import functools
import re

__all__ = [
    "MAX_URI",
    "UriError",
    "normalise",
    "normalise_pattern",
    "normalise_template",
    "normalised",
]

MAX_URI = 16 * 1024

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Decoded in a path as well: they mean the same raw or encoded to a template variable, and
# none of them splits a path into segments, a query or a fragment.
_PATH_DECODED = _UNRESERVED | frozenset("!$&'()*+,;=:@")
# Characters a URI may hold raw (unreserved, reserved, and `%` for escapes).
_URI_CHARS = _UNRESERVED | frozenset(":/?#[]@!$&'()*+,;=%")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_ESCAPE = re.compile(r"%(?:[0-9A-Fa-f]{2})?")
_EXPRESSION = re.compile(r"(\{[^{}]*\})")
_GLOB = re.compile(r"(\*|\?)")
_GLOB_OR_EXPRESSION = re.compile(r"(\*|\?|\{[^{}]*\})")


class UriError(ValueError):
    """A URI with no normal form; the message says what is wrong with it (one sentence)."""


def _check_chars(text: str) -> None:
    for c in text:
        o = ord(c)
        if o < 0x20 or 0x7F <= o < 0xA0:
            raise UriError("it holds a control character")
        if c == "\\":
            raise UriError("it holds a backslash")
        if 0xD800 <= o < 0xE000:
            raise UriError("it holds a lone surrogate")


def _encode_other(text: str) -> str:
    """Percent-encode, as UTF-8, what a URI cannot hold raw (IRI to URI, RFC 3987 3.1)."""
    if all(c in _URI_CHARS for c in text):
        return text
    out: list[str] = []
    for c in text:
        if c in _URI_CHARS:
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8"))
    return "".join(out)


def _escapes(text: str, decoded: frozenset[str], structural: bool) -> str:
    """Escapes in upper case, those of `decoded` characters decoded; `structural`: refuse an
    encoded `/` or `\\` (a path's or an authority's segments would change on decoding)."""
    if "%" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        escape = m.group(0)
        if len(escape) != 3:
            raise UriError("it holds a '%' that does not start a two-digit hex escape")
        byte = int(escape[1:], 16)
        if byte < 0x20 or byte == 0x7F:
            raise UriError("it holds an encoded control character")
        char = chr(byte)
        if structural and char in "/\\":
            raise UriError(f"its path holds an encoded {char!r}")
        return char if char in decoded else escape.upper()

    return _ESCAPE.sub(one, text)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4."""
    if "." not in path:
        return path
    out: list[str] = []
    rest = path
    while rest:
        if rest.startswith("../"):
            rest = rest[3:]
        elif rest.startswith(("./", "/./")):
            rest = rest[2:]
        elif rest == "/.":
            rest = "/"
        elif rest.startswith("/../"):
            rest = rest[3:]
            if out:
                out.pop()
        elif rest == "/..":
            rest = "/"
            if out:
                out.pop()
        elif rest in (".", ".."):
            rest = ""
        else:
            start = 1 if rest.startswith("/") else 0
            end = rest.find("/", start)
            end = len(rest) if end < 0 else end
            out.append(rest[:end])
            rest = rest[end:]
    return "".join(out)


def _authority(authority: str) -> str:
    userinfo, at, hostport = authority.rpartition("@")
    host, port = hostport, ""
    if not host.startswith("["):
        host, colon, port = hostport.partition(":")
        port = colon + port
    elif "]" in host:
        end = host.index("]") + 1
        host, port = host[:end], host[end:]
    userinfo = _escapes(userinfo, _UNRESERVED, True) if at else ""
    host = _escapes(host, _UNRESERVED, True).lower()
    # Escapes stay upper case after lowering the host (RFC 3986 6.2.2.1).
    host = re.sub(r"%[0-9a-f]{2}", lambda m: m.group(0).upper(), host)
    return f"{userinfo}{at}{host}{port}"


@functools.lru_cache(maxsize=4096)
def normalise(uri: str) -> str:
    """`uri` in normal form; raises `UriError` for what has none (see the module's text)."""
    if len(uri) > MAX_URI:
        raise UriError(f"it is longer than {MAX_URI} characters")
    _check_chars(uri)
    m = _SCHEME.match(uri)
    if m is None:
        raise UriError("it has no scheme")
    scheme = m.group(0).lower()
    rest = _encode_other(uri[m.end() :])
    rest, hash_, fragment = rest.partition("#")
    rest, qmark, query = rest.partition("?")
    authority: str | None = None
    path = rest
    if rest.startswith("//"):
        end = rest.find("/", 2)
        end = len(rest) if end < 0 else end
        authority, path = rest[2:end], rest[end:]
    path = _remove_dot_segments(_escapes(path, _PATH_DECODED, True))
    if authority is None and path.startswith("//"):
        raise UriError("removing its dot segments leaves a path that reads as an authority")
    out = scheme
    if authority is not None:
        out += "//" + _authority(authority)
    out += path
    if qmark:
        out += "?" + _escapes(query, _UNRESERVED, False)
    if hash_:
        out += "#" + _escapes(fragment, _UNRESERVED, False)
    return out


def normalised(uri: str) -> str | None:
    """`normalise(uri)`, or None when it has no normal form."""
    try:
        return normalise(uri)
    except UriError:
        return None


def _pieces(text: str, opaque: re.Pattern[str], path_decoded: frozenset[str]) -> str:
    """Normal form of a text whose `opaque` parts (template expressions, glob characters)
    stand for URI text: literal parts get escapes, scheme and host case normalised; dot
    segments stay (an expression may stand for one)."""
    if len(text) > MAX_URI:
        raise UriError(f"it is longer than {MAX_URI} characters")
    _check_chars(text)
    parts = opaque.split(text)
    out: list[str] = []
    in_path = True
    for i, part in enumerate(parts):
        if i % 2:  # an opaque part, kept verbatim
            out.append(part)
            continue
        literal = _encode_other(part)
        pieces: list[str] = []
        for j, seg in enumerate(re.split(r"([?#])", literal)):
            if j % 2:
                in_path = False
                pieces.append(seg)
            else:
                pieces.append(_escapes(seg, path_decoded if in_path else _UNRESERVED, in_path))
        out.append("".join(pieces))
    head = out[0] if out else ""
    m = _SCHEME.match(head)
    if m is not None:
        head = m.group(0).lower() + head[m.end() :]
        rest = head[m.end() :]
        if rest.startswith("//"):
            end = rest.find("/", 2)
            if end >= 0 or len(out) == 1:  # the authority is all literal
                end = len(rest) if end < 0 else end
                head = head[: m.end()] + "//" + _authority(rest[2:end]) + rest[end:]
        out[0] = head
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def normalise_template(template: str) -> str:
    """An RFC 6570 template (or a `ref/resource` uri) in normal form: its literal text as
    `normalise` would put it, its `{...}` expressions verbatim; raises `UriError`."""
    if "{" not in template and "}" not in template:
        return normalise(template)
    outside = _EXPRESSION.sub("", template)
    if "{" in outside or "}" in outside:
        raise UriError("its braces do not pair up")
    return _pieces(template, _EXPRESSION, _PATH_DECODED)


def normalise_pattern(pattern: str, *, template: bool = False) -> str:
    """A profile's glob (`*`, `?`) over URIs or templates in the normal form of what it
    matches; a pattern that has none is returned as written (it then matches nothing a
    client can send, since such URIs are refused)."""
    try:
        if not _GLOB.search(pattern):
            out = normalise_template(pattern) if template else normalise(pattern)
            if "*" not in out:
                return out
        opaque = _GLOB_OR_EXPRESSION if template else _GLOB
        # A decoded `*` would become a wildcard: in a glob it stays encoded.
        return _pieces(pattern, opaque, _PATH_DECODED - {"*"})
    except UriError:
        return pattern
