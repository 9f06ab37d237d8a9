"""lockgate's entries in the OS keyring (Keychain, Credential Manager, Secret Service).

Entries live under the service ``lockgate``: short ones of lockgate's own (`get_entry`,
`set_entry`: the signing key, the audit key), and values of any length (`read_chunked`,
`write_chunked`: upstream secrets in `lockgate.upstream.secrets`, upstream tokens, sign-in
sessions). Windows Credential Manager caps one secret at 2,560 bytes (UTF-16), so a long
value is split into numbered chunks ``<user>#1``, ``#2``, ... and the main entry holds a
count marker with a digest of the whole value. This happens on every OS, so a keyring moved
between machines and a test on Linux see the same layout.

Every keyring failure becomes one :class:`KeyringUnavailable` sentence that says what to do;
a raw library exception never reaches the user and a secret never appears in a message.
There is no plaintext fallback.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the keyring package loads its backends (~60 ms): only when one is used
    import keyring.backend

from lockgate.errors import KeyringUnavailable, LockgateError

SERVICE = "lockgate"

# Credential Manager stores UTF-16: 2,560 bytes is 1,280 UTF-16 code units. Keep a margin.
CHUNK_BYTES = 2_000
_MARKER_PREFIX = "lockgate-chunked:v1:"
_MARKER_RE = re.compile(r"lockgate-chunked:v1:(?P<count>[1-9][0-9]{0,5}):(?P<digest>[0-9a-f]{32})")


@functools.cache
def _backend_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a keyring backend lets escape, named: keyring's own, D-Bus's, the OS's."""
    import keyring.errors

    errors: list[type[BaseException]] = [keyring.errors.KeyringError, RuntimeError, OSError]
    try:  # Linux only: secretstorage and jeepney are the Secret Service backend's libraries.
        from secretstorage.exceptions import SecretStorageException

        errors.append(SecretStorageException)
    except ImportError:  # pragma: no cover - not on macOS / Windows
        pass
    try:
        from jeepney.wrappers import DBusErrorResponse

        errors.append(DBusErrorResponse)
    except ImportError:  # pragma: no cover - not on macOS / Windows
        pass
    try:  # Windows only: Credential Manager's errors, should a backend let one through.
        from win32ctypes.pywin32.pywintypes import error as WindowsError_

        errors.append(WindowsError_)
    except ImportError:  # pragma: no cover - not on Windows
        pass
    return tuple(errors)


def _no_keyring_fix() -> str:
    if sys.platform == "darwin":
        return "run lockgate in your logged-in macOS user session, where the login Keychain is"
    if sys.platform == "win32":
        return "run lockgate in your logged-in Windows session, where Credential Manager is"
    return (
        "install and start a Secret Service such as gnome-keyring (apt-get install "
        "gnome-keyring) or KeePassXC with Secret Service integration, in your desktop session"
    )


def _no_keyring() -> KeyringUnavailable:
    return KeyringUnavailable(
        "No OS keyring is available to hold upstream secrets", _no_keyring_fix()
    )


def _locked() -> KeyringUnavailable:
    return KeyringUnavailable(
        "The OS keyring is locked",
        "unlock your keyring (log in to your desktop session, or unlock the 'Login' keyring "
        "in your keyring manager such as Seahorse) and try again",
    )


def _no_bus() -> KeyringUnavailable:
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return KeyringUnavailable(
            "The Secret Service keyring cannot be reached because there is no D-Bus session "
            "(DBUS_SESSION_BUS_ADDRESS is unset)",
            "run lockgate inside your desktop session, or over SSH start one with "
            "`dbus-run-session -- $SHELL` and unlock gnome-keyring in it",
        )
    return KeyringUnavailable(
        "The Secret Service keyring cannot be reached over D-Bus "
        "(the session bus or its Secret Service does not answer)",
        "start a Secret Service such as gnome-keyring in your desktop session and check "
        "that DBUS_SESSION_BUS_ADDRESS points to that session",
    )


def _translate(error: BaseException, action: str) -> KeyringUnavailable:
    """One clear sentence for a keyring failure; never the library's text, never a secret."""
    import keyring.errors

    if isinstance(error, keyring.errors.KeyringLocked):
        return _locked()
    if isinstance(error, keyring.errors.NoKeyringError):
        return _no_keyring()
    if not isinstance(error, keyring.errors.KeyringError) and sys.platform.startswith("linux"):
        # A plain RuntimeError from a forced SecretService backend, secretstorage's
        # SecretServiceNotAvailableException, or a socket error: no usable D-Bus session.
        return _no_bus()
    return KeyringUnavailable(
        f"The OS keyring could not {action} ({type(error).__name__})",
        "check that your keyring is running and unlocked; run with --debug for details",
    )


def _backend() -> keyring.backend.KeyringBackend:
    """The active backend, refusing the ones that would lose or refuse every secret."""
    import keyring
    import keyring.backends.chainer
    import keyring.backends.fail
    import keyring.backends.null

    try:
        backend = keyring.get_keyring()
    except _backend_errors() as e:
        raise _translate(e, "start") from e
    if isinstance(backend, keyring.backends.fail.Keyring | keyring.backends.null.Keyring):
        raise _no_keyring()
    if isinstance(backend, keyring.backends.chainer.ChainerBackend) and not backend.backends:
        raise _no_keyring()
    return backend


def _call[T](action: str, operation: Callable[[], T]) -> T:
    try:
        return operation()
    except _backend_errors() as e:
        raise _translate(e, action) from e


def _get(backend: keyring.backend.KeyringBackend, user: str) -> str | None:
    return _call("read a secret", lambda: backend.get_password(SERVICE, user))


def _set(backend: keyring.backend.KeyringBackend, user: str, value: str) -> None:
    _call("store a secret", lambda: backend.set_password(SERVICE, user, value))


def get_entry(user: str) -> str | None:
    """One short keyring entry of lockgate's own (such as the gateway's signing key)."""
    return _get(_backend(), user)


def set_entry(user: str, value: str) -> None:
    """Store one short entry of lockgate's own; same errors as upstream secrets."""
    _set(_backend(), user, value)


def _delete(backend: keyring.backend.KeyringBackend, user: str) -> bool:
    """Delete one entry; False when it was not there."""
    import keyring.errors

    try:
        backend.delete_password(SERVICE, user)
    except keyring.errors.PasswordDeleteError:
        return False
    except _backend_errors() as e:
        raise _translate(e, "delete a secret") from e
    return True


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def _utf16_size(char: str) -> int:
    return 4 if ord(char) > 0xFFFF else 2


def split_chunks(value: str, limit: int = CHUNK_BYTES) -> list[str]:
    """Split on code points so that each chunk's UTF-16 encoding fits in ``limit`` bytes."""
    chunks: list[str] = []
    start = size = 0
    for i, char in enumerate(value):
        cost = _utf16_size(char)
        if size + cost > limit:
            chunks.append(value[start:i])
            start, size = i, 0
        size += cost
    chunks.append(value[start:])
    return chunks


def _chunk_user(user: str, index: int) -> str:
    return f"{user}#{index}"


def _parse_marker(stored: str) -> tuple[int, str] | None:
    match = _MARKER_RE.fullmatch(stored)
    if match is None:
        return None
    return int(match["count"]), match["digest"]


def _stored_count(stored: str | None) -> int:
    """How many chunks the main entry's current value refers to (0 for a plain value)."""
    if stored is None:
        return 0
    marker = _parse_marker(stored)
    return marker[0] if marker else 0


def read_chunked(user: str, incomplete: LockgateError) -> str | None:
    """A value stored by :func:`write_chunked` under ``user``; ``incomplete`` is raised when
    a chunk is missing or the digest does not match (a half-written or tampered entry)."""
    backend = _backend()
    stored = _get(backend, user)
    if stored is None:
        return None
    if not stored.startswith(_MARKER_PREFIX):
        return stored
    marker = _parse_marker(stored)
    if marker is None:
        raise incomplete
    count, digest = marker
    parts: list[str] = []
    for index in range(1, count + 1):
        part = _get(backend, _chunk_user(user, index))
        if part is None:
            raise incomplete
        parts.append(part)
    value = "".join(parts)
    if not hmac.compare_digest(_digest(value), digest):
        raise incomplete
    return value


def write_chunked(user: str, value: str) -> None:
    """Store (or replace) a value of any length under ``user``, chunked when it is long."""
    backend = _backend()
    old_count = _stored_count(_get(backend, user))
    chunks = split_chunks(value)
    if len(chunks) == 1 and not value.startswith(_MARKER_PREFIX):
        _set(backend, user, value)
        new_count = 0
    else:
        # Chunks first, marker last: a reader never sees a marker before its chunks.
        for index, chunk in enumerate(chunks, start=1):
            _set(backend, _chunk_user(user, index), chunk)
        _set(backend, user, f"{_MARKER_PREFIX}{len(chunks)}:{_digest(value)}")
        new_count = len(chunks)
    for index in range(new_count + 1, old_count + 1):
        _delete(backend, _chunk_user(user, index))


def delete_chunked(user: str) -> bool:
    """Remove a value stored by :func:`write_chunked` and its chunks; False when absent."""
    backend = _backend()
    count = _stored_count(_get(backend, user))
    for index in range(1, count + 1):
        _delete(backend, _chunk_user(user, index))
    return _delete(backend, user)
