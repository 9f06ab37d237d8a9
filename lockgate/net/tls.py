"""The TLS trust stores for outbound calls, built in one place.

Two rules, one per kind of peer, so `gateway.upstream_ca` means the same thing everywhere:
- `upstream_trust`: an MCP upstream itself. With `upstream_ca` set only that CA is trusted,
  exactly as the gateway's own proxy path does (mitmproxy's `ssl_verify_upstream_trusted_ca`),
  so doctor and the connect probe never pass an upstream the gateway would refuse.
- `trust_store`: the OAuth servers and metadata documents around it (`lockgate.net.fetch`),
  which may be public: certifi's bundle plus the profile's CA.
`profile_ca` resolves the setting the way the gateway does (relative to the profile file).
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

import certifi


def trust_store(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """certifi's bundle, plus `ca_file` (a PEM file of the profile's own CA) when given.

    Raises OSError or ssl.SSLError when `ca_file` cannot be loaded. Contexts are built once
    per CA file and shared (an SSLContext is safe to share between clients).
    """
    return _trust_store(None if ca_file is None else str(ca_file))


@functools.lru_cache(maxsize=8)
def _trust_store(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def upstream_trust(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """The profile's CA alone when given (what the gateway trusts for upstreams), else certifi.

    Raises OSError or ssl.SSLError when `ca_file` cannot be loaded.
    """
    return _upstream_trust(None if ca_file is None else str(ca_file))


@functools.lru_cache(maxsize=8)
def _upstream_trust(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file if ca_file is not None else certifi.where())


def profile_ca(upstream_ca: str | None, profile_path: Path | None) -> Path | None:
    """`gateway.upstream_ca` as a path: `~` expanded, a relative one next to the profile."""
    if upstream_ca is None:
        return None
    path = Path(upstream_ca).expanduser()
    if not path.is_absolute() and profile_path is not None:
        path = profile_path.parent / path
    return path


def upstream_verify(upstream_ca: str | None, profile_path: Path | None) -> ssl.SSLContext | bool:
    """What a request of the gateway's own to an upstream trusts, as the proxy path does:
    the profile's CA alone when set (relative to the profile), else the default store."""
    ca = profile_ca(upstream_ca, profile_path)
    return upstream_trust(ca) if ca is not None else True
