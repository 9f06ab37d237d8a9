"""The one TLS trust store for calls to upstreams: certifi's bundle plus the profile's CA.

Every outbound https call of the core (metadata and token requests in `lockgate.net.fetch`,
the upstream OAuth probe, doctor's upstream checks) verifies against `trust_store`, so a
profile's `gateway.upstream_ca` means the same thing everywhere and a change to the trust
rules lands in one place. `profile_ca` resolves that setting the way the gateway does
(relative to the profile file).
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


def profile_ca(upstream_ca: str | None, profile_path: Path | None) -> Path | None:
    """`gateway.upstream_ca` as a path: `~` expanded, a relative one next to the profile."""
    if upstream_ca is None:
        return None
    path = Path(upstream_ca).expanduser()
    if not path.is_absolute() and profile_path is not None:
        path = profile_path.parent / path
    return path
