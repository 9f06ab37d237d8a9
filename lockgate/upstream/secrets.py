"""Static upstream secrets (`auth = "header"` upstreams) in the OS keyring.

One entry per upstream, under the keyring username ``upstream:<name>``, stored through the
chunked store of `lockgate.keyring` (so a long value works on every OS). The value is
only ever returned by `get_secret`; `has_secret` says whether one is held, never what it is.
"""

from __future__ import annotations

import re

from lockgate.errors import LockgateError, SecretMissing
from lockgate.keyring import delete_chunked, read_chunked, write_chunked

_BAD_NAME_RE = re.compile(r"[#\s\x00-\x1f\x7f]")


def username(upstream: str) -> str:
    """The keyring username of an upstream's secret (its first chunk's base name)."""
    return f"upstream:{upstream}"


def _check_name(upstream: str) -> None:
    if not upstream or _BAD_NAME_RE.search(upstream):
        raise LockgateError(
            f"{upstream!r} is not a valid upstream name",
            "use the name of an [upstreams.NAME] table of your profile (no spaces or '#')",
        )


def get_secret(upstream: str) -> str | None:
    """The upstream's static secret, or None when the keyring holds none."""
    _check_name(upstream)
    incomplete = SecretMissing(
        f"The keyring holds an incomplete secret for upstream '{upstream}'",
        f"store it again with `lockgate secret set {upstream}`",
    )
    return read_chunked(username(upstream), incomplete)


def set_secret(upstream: str, value: str) -> None:
    """Store (or replace) the upstream's static secret, chunked when it is long."""
    _check_name(upstream)
    if not value:
        raise LockgateError(
            f"Refusing to store an empty secret for upstream '{upstream}'",
            f"pass the secret on stdin or at the prompt; to remove it use "
            f"`lockgate secret rm {upstream}`",
        )
    write_chunked(username(upstream), value)


def delete_secret(upstream: str) -> bool:
    """Remove the upstream's secret and its chunks; False when there was none."""
    _check_name(upstream)
    return delete_chunked(username(upstream))


def has_secret(upstream: str) -> bool:
    """Whether the keyring holds a secret for the upstream (reads it, never returns it)."""
    return get_secret(upstream) is not None
