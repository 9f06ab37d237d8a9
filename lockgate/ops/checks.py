"""The checks of `lockgate doctor`: each looks at one thing the gateway needs and returns a
`CheckResult`, with a fix when it fails.

Versions, the OS keyring, the profile, the listen port, the identity provider, the signing
key and client secret, each upstream (reachable, TLS trusted through
`lockgate.net.tls.upstream_trust`) and its credential (the one vocabulary of
`lockgate.upstream.state`). Nothing here prints, and nothing reads or returns a secret's
value. `lockgate.ops.doctor` plans and runs them.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.metadata
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from lockgate.errors import LockgateError
from lockgate.net.tls import upstream_trust
from lockgate.profile.model import (
    Profile,
    UpstreamSection,
    active_profile_path,
    load_profile,
    split_listen,
)
from lockgate.upstream.state import StateLookup

Status = Literal["ok", "fail", "warn"]

MIN_PYTHON = (3, 12)
MITMPROXY_RANGE = ((12, 3), (13, 0))  # pyproject: mitmproxy>=12.3,<13
DEFAULT_TIMEOUT = 5.0

# keyring backends are not known to be thread-safe: the checks that use one take turns.
_KEYRING_LOCK = threading.Lock()


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: what was checked, how it went, and the fix when it failed."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    @property
    def passed(self) -> bool:
        return self.status != "fail"


# ---------------------------------------------------------------------------- versions


def check_python(version: tuple[int, int, int] | None = None) -> CheckResult:
    """Python 3.12 or newer (mitmproxy 12 needs it)."""
    v = version or (sys.version_info[0], sys.version_info[1], sys.version_info[2])
    text = ".".join(str(p) for p in v)
    if v[:2] >= MIN_PYTHON:
        return CheckResult("python", "ok", f"Python {text}")
    return CheckResult(
        "python",
        "fail",
        f"Python {text} is too old (lockgate needs 3.12 or newer)",
        "install Python 3.12+ and reinstall lockgate with it (uv tool install lockgate)",
    )


def _version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_mitmproxy(version: str | None = None) -> CheckResult:
    """mitmproxy installed in the range lockgate is built and tested on."""
    if version is None:
        try:
            version = importlib.metadata.version("mitmproxy")
        except importlib.metadata.PackageNotFoundError:
            return CheckResult(
                "mitmproxy",
                "fail",
                "mitmproxy is not installed",
                "reinstall lockgate, which brings mitmproxy 12.3 or newer (below 13)",
            )
    low, high = MITMPROXY_RANGE
    if low <= _version_tuple(version) < high:
        return CheckResult("mitmproxy", "ok", f"mitmproxy {version}")
    return CheckResult(
        "mitmproxy",
        "fail",
        f"mitmproxy {version} is not supported (lockgate needs 12.3 or newer, below 13)",
        "reinstall lockgate so it brings its own mitmproxy (uv tool install --reinstall lockgate)",
    )


# ---------------------------------------------------------------------------- keyring


def _backend_name() -> str:
    import keyring
    import keyring.backends.chainer

    try:
        backend = keyring.get_keyring()
    except Exception:  # a forced backend that cannot even start: the probe says why
        return "unknown backend"
    if isinstance(backend, keyring.backends.chainer.ChainerBackend):
        inner = ", ".join(type(b).__module__.rsplit(".", 1)[-1] for b in backend.backends)
        return f"chainer of [{inner or 'nothing'}]"
    return f"{type(backend).__module__.rsplit('.', 1)[-1]}.{type(backend).__name__}"


PROBE_ENTRY = "doctor:probe"


def check_keyring(probe: Callable[[], object] | None = None, *, needed: bool = True) -> CheckResult:
    """The OS keyring can be reached and is unlocked: one read of an entry nobody writes.

    With `needed=False` (a profile that keeps nothing in the keyring) a failure is a note.
    """
    from lockgate.errors import KeyringUnavailable
    from lockgate.keyring import get_entry

    read = probe or (lambda: get_entry(PROBE_ENTRY))
    with _KEYRING_LOCK:
        name = _backend_name()
        try:
            read()
        except KeyringUnavailable as e:
            detail = f"{e.message.rstrip('.')} ({name})"
            if not needed:
                return CheckResult("keyring", "warn", f"{detail}; this profile does not need it")
            return CheckResult("keyring", "fail", detail, e.fix)
    return CheckResult("keyring", "ok", f"{name}, reachable and unlocked")


def needs_keyring(profile: Profile) -> bool:
    """Whether serving the profile reads the keyring: upstream secrets or tokens, the
    identity provider's client secret, or the gateway's signing key (kinds dev and oidc)."""
    if any(u.auth != "none" for u in profile.upstreams.values()):
        return True
    identity = profile.identity
    if identity.client_secret is not None:
        return True
    return identity.kind != "none" and getattr(identity, "signing_key", "keyring") == "keyring"


# ---------------------------------------------------------------------------- profile


def check_profile(path: Path | None) -> tuple[CheckResult, Profile | None]:
    """The active profile (the one `lockgate up` would serve) loads and validates."""
    try:
        resolved = active_profile_path(path)
        profile = load_profile(resolved)
    except LockgateError as e:
        return CheckResult("profile", "fail", e.message.rstrip("."), e.fix or _profile_fix()), None
    routes, upstreams = len(profile.routes), len(profile.upstreams)
    detail = (
        f"{resolved} is valid ({routes} route{'s' * (routes != 1)}, "
        f"{upstreams} upstream{'s' * (upstreams != 1)}, identity {profile.identity.kind})"
    )
    return CheckResult("profile", "ok", detail), profile


def _profile_fix() -> str:
    return "fix the profile at that line and key; `lockgate profile validate FILE` rechecks it"


# ---------------------------------------------------------------------------- listen port


async def _healthz(host: str, port: int, timeout: float) -> bool:
    """Whether http://host:port/healthz answers like a lockgate gateway."""
    shown = f"[{host}]" if ":" in host else host
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=timeout) as client:
            r = await client.get(f"http://{shown}:{port}/healthz")
        body = r.json()
    except (httpx.HTTPError, ValueError):
        return False
    return (
        r.status_code == 200
        and isinstance(body, dict)
        and body.get("status") == "ok"
        and "routes" in body
    )


def _try_bind(host: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        if sys.platform != "win32":  # as asyncio's create_server does, so TIME_WAIT is fine
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host if host != "localhost" else "127.0.0.1", port))
        except OSError as e:
            return e
    return None


async def check_port(listen: str, *, timeout: float = DEFAULT_TIMEOUT) -> CheckResult:
    """The listen address is free, or a lockgate gateway already serves it (GET /healthz)."""
    name = "listen port"
    try:
        host, port = split_listen(listen)
    except ValueError as e:
        return CheckResult(name, "fail", str(e), "set gateway.listen to host:port")
    if port == 0:
        return CheckResult(name, "ok", f"{listen}: any free port is taken at start")
    error = await asyncio.to_thread(_try_bind, host, port)
    if error is None:
        return CheckResult(name, "ok", f"{listen} is free")
    if error.errno == errno.EADDRINUSE:
        if await _healthz(host, port, timeout):
            return CheckResult(name, "ok", f"{listen} is already serving lockgate")
        return CheckResult(
            name,
            "fail",
            f"{listen} is in use by another program",
            "stop that program, or change gateway.listen (or pass --listen 127.0.0.1:PORT)",
        )
    return CheckResult(
        name,
        "fail",
        f"cannot listen on {listen} ({error.strerror or error})",
        "set gateway.listen to an address of this machine, such as 127.0.0.1:8787",
    )


# ---------------------------------------------------------------------------- identity


async def check_identity(profile: Profile, *, timeout: float = DEFAULT_TIMEOUT) -> CheckResult:
    """For kind oidc, the provider's discovery document and keys can be fetched and used."""
    identity = profile.identity
    name = "identity provider"
    if identity.kind == "none":
        return CheckResult(name, "ok", 'kind "none": no sign-in, local user only')
    if identity.kind == "dev":
        return CheckResult(name, "ok", 'kind "dev": local sign-in on this machine')
    from lockgate.identity.provider import OIDCError, discover

    issuer = identity.issuer or ""
    try:
        async with asyncio.timeout(timeout + 1):
            provider = await discover(issuer, timeout=timeout)
    except OIDCError as e:
        return CheckResult(name, "fail", e.message.rstrip("."), e.fix)
    except TimeoutError:
        return CheckResult(
            name,
            "fail",
            f"The identity provider {issuer} did not answer within {timeout:g} s",
            "check [identity] issuer in the profile and that the provider is up",
        )
    keys = len(provider.keys.keys)
    return CheckResult(
        name, "ok", f"{issuer}: discovery document OK, {keys} signing key{'s' * (keys != 1)}"
    )


def _read_entry(entry: str) -> str | None:
    from lockgate.keyring import get_entry

    return get_entry(entry)


class _Failed(Exception):
    """A check that has already failed, with its result."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.detail)
        self.result = result


def _read_keyring(name: str, entry: str, read: Callable[[str], str | None] | None) -> str | None:
    """The keyring entry's value for check `name` (one keyring call at a time); raises
    `_Failed` when the keyring cannot be read."""
    from lockgate.errors import KeyringUnavailable

    with _KEYRING_LOCK:
        try:
            return (read or _read_entry)(entry)
        except KeyringUnavailable as e:
            raise _Failed(
                CheckResult(
                    name,
                    "fail",
                    f"the keyring entry {entry!r} cannot be read ({e.message.rstrip('.')})",
                    e.fix,
                )
            ) from None


def check_signing_key(
    profile: Profile, read: Callable[[str], str | None] | None = None
) -> CheckResult:
    """Kinds dev/oidc sign gateway tokens with a key kept in the keyring: it is there and
    readable, or can be made at the first start (never made here). Its value is not shown."""
    from lockgate.authserver.keys import KEYRING_USERNAME, SigningKey

    name = "signing key"
    if profile.identity.signing_key == "memory":
        return CheckResult(name, "ok", "kept in memory: gateway tokens end when it stops")
    try:
        stored = _read_keyring(name, KEYRING_USERNAME, read)
    except _Failed as failed:
        return failed.result
    if stored is None:
        return CheckResult(
            name, "ok", f"not in the keyring yet; `lockgate up` creates {KEYRING_USERNAME!r}"
        )
    try:
        SigningKey.from_text(stored)
    except ValueError:
        return CheckResult(
            name,
            "fail",
            f"the keyring entry {KEYRING_USERNAME!r} is unreadable",
            f"delete the keyring entry service 'lockgate', user '{KEYRING_USERNAME}'; "
            "lockgate makes a new one and MCP clients sign in again",
        )
    return CheckResult(name, "ok", f"Ed25519 key held in the keyring ({KEYRING_USERNAME!r})")


def check_client_secret(
    profile: Profile, read: Callable[[str], str | None] | None = None
) -> CheckResult:
    """Kind oidc with `client_secret = "keyring:<entry>"`: the entry holds a value (which
    is never shown)."""
    name = "client secret"
    entry = (profile.identity.client_secret or "").removeprefix("keyring:")
    try:
        value = _read_keyring(name, entry, read)
    except _Failed as failed:
        return failed.result
    if value:
        return CheckResult(name, "ok", f"the identity provider's client secret is in {entry!r}")
    return CheckResult(
        name,
        "fail",
        f"the identity provider's client secret is not in the keyring (entry {entry!r})",
        f"store it with `keyring set lockgate {entry}`, or remove [identity] client_secret "
        "for a public client",
    )


# ---------------------------------------------------------------------------- upstreams


def _is_tls_error(error: BaseException) -> bool:
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def check_upstream(
    name: str,
    upstream: UpstreamSection,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    ca_file: Path | None = None,
) -> CheckResult:
    """The upstream answers HTTP at all: any status counts, a connection or TLS error does
    not. Only the headers are read (a GET could open an event stream), and no credential
    is sent."""
    label = f"upstream {name}"
    url = upstream.url
    try:
        verify = upstream_trust(ca_file)
    except (OSError, ssl.SSLError) as e:
        return CheckResult(
            label,
            "fail",
            f"cannot load gateway.upstream_ca {ca_file} ({type(e).__name__})",
            "point gateway.upstream_ca at a PEM file of the CA that signs your upstreams",
        )
    started = time.monotonic()
    try:
        async with (
            asyncio.timeout(timeout + 1),
            httpx.AsyncClient(
                trust_env=False, timeout=timeout, verify=verify, follow_redirects=False
            ) as client,
            client.stream("GET", url, headers={"Accept": "application/json"}) as r,
        ):
            status = r.status_code
    except (httpx.TimeoutException, TimeoutError):
        return CheckResult(
            label,
            "fail",
            f"{url} did not answer within {timeout:g} s",
            "check the upstream's URL in the profile and that the server is up",
        )
    except httpx.HTTPError as e:
        if _is_tls_error(e):
            return CheckResult(
                label,
                "fail",
                f"{url}: its TLS certificate is not trusted",
                "if it is signed by your own CA, set gateway.upstream_ca to that CA's PEM file",
            )
        return CheckResult(
            label,
            "fail",
            f"{url} is unreachable ({type(e).__name__})",
            "check the upstream's URL in the profile, your network or VPN, and that the "
            "server is up",
        )
    ms = (time.monotonic() - started) * 1000
    return CheckResult(label, "ok", f"{url} answered HTTP {status} in {ms:.0f} ms")


def check_credential(name: str, upstream: UpstreamSection, lookup: StateLookup) -> CheckResult:
    """The upstream's credential is held (or none is needed), as `lockgate servers` shows."""
    with _KEYRING_LOCK:
        state = lookup(name, upstream)
    label = f"credential {name}"
    detail = f"auth {upstream.auth}: {state.text}"
    if state.user is not None:
        detail += f" for {state.user}"
    if state.ready:
        return CheckResult(label, "ok", detail)
    if state.kind == "sign_in_first":
        return CheckResult(label, "warn", f"{detail} (tokens are per user)", state.fix)
    return CheckResult(label, "fail", detail, state.fix)
