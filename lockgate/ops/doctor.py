"""`lockgate doctor`: small checks of what the gateway needs, each with a fix when it fails.

Every check is a function returning a `CheckResult`; `plan` turns a profile into the list of
checks and `run_checks` runs them concurrently (blocking ones in threads), so a slow
identity provider or a dead upstream costs one timeout, not one per check. Nothing here
prints, and nothing reads or returns a secret's value.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.metadata
import json
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from lockgate.errors import LockgateError
from lockgate.profile.model import Profile, UpstreamSection, load_profile, split_listen
from lockgate.upstream.state import StateLookup, active_profile_path, keyring_lookup

__all__ = [
    "Check",
    "CheckResult",
    "Status",
    "check_client_secret",
    "check_credential",
    "check_identity",
    "check_keyring",
    "check_mitmproxy",
    "check_port",
    "check_profile",
    "check_python",
    "check_signing_key",
    "check_upstream",
    "needs_keyring",
    "plan",
    "run_checks",
]

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


@dataclass(frozen=True)
class Check:
    """A named check not yet run; `run` never raises (see `run_checks`)."""

    name: str
    run: Callable[[], Awaitable[CheckResult]]


def _in_thread(name: str, fn: Callable[[], CheckResult]) -> Check:
    async def run() -> CheckResult:
        return await asyncio.to_thread(fn)

    return Check(name, run)


def _ready(result: CheckResult) -> Check:
    async def run() -> CheckResult:
        return result

    return Check(result.name, run)


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
    from lockgate import keyring as secrets
    from lockgate.errors import KeyringUnavailable

    read = probe or (lambda: secrets.get_entry(PROBE_ENTRY))
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
    from lockgate import keyring as secrets

    return secrets.get_entry(entry)


def check_signing_key(
    profile: Profile, read: Callable[[str], str | None] | None = None
) -> CheckResult:
    """Kinds dev/oidc sign gateway tokens with a key kept in the keyring: it is there and
    readable, or can be made at the first start (never made here). Its value is not shown."""
    from lockgate.authserver.keys import KEYRING_USERNAME, SigningKey
    from lockgate.errors import KeyringUnavailable

    name = "signing key"
    if profile.identity.signing_key == "memory":
        return CheckResult(name, "ok", "kept in memory: gateway tokens end when it stops")
    with _KEYRING_LOCK:
        try:
            stored = (read or _read_entry)(KEYRING_USERNAME)
        except KeyringUnavailable as e:
            return CheckResult(
                name,
                "fail",
                f"the keyring entry {KEYRING_USERNAME!r} cannot be read ({e.message.rstrip('.')})",
                e.fix,
            )
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
    from lockgate.errors import KeyringUnavailable

    name = "client secret"
    entry = (profile.identity.client_secret or "").removeprefix("keyring:")
    with _KEYRING_LOCK:
        try:
            value = (read or _read_entry)(entry)
        except KeyringUnavailable as e:
            return CheckResult(
                name,
                "fail",
                f"the keyring entry {entry!r} cannot be read ({e.message.rstrip('.')})",
                e.fix,
            )
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


def _tls_context(ca_file: Path | None) -> ssl.SSLContext | bool:
    if ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(ca_file))


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
        verify = _tls_context(ca_file)
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


# ---------------------------------------------------------------------------- plan and run


def _ca_file(profile: Profile, profile_path: Path | None) -> Path | None:
    ca = profile.gateway.upstream_ca
    if ca is None:
        return None
    path = Path(ca).expanduser()
    if not path.is_absolute() and profile_path is not None:
        path = profile_path.parent / path
    return path


def plan(
    profile_path: Path | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    lookup: StateLookup | None = None,
    listen: str | None = None,
) -> list[Check]:
    """The checks for this machine and the active profile, in report order.

    The profile is loaded here (it is quick and every later check needs it); when it is not
    valid, the checks that need it are reported as skipped. `listen` overrides the profile's
    gateway.listen like `lockgate up --listen`.
    """
    profile_result, profile = check_profile(profile_path)
    needed = profile is None or needs_keyring(profile)
    checks = [
        _ready(check_python()),
        _ready(check_mitmproxy()),
        _in_thread("keyring", lambda: check_keyring(needed=needed)),
        _ready(profile_result),
    ]
    if profile is None:
        skipped = "skipped: needs a valid profile"
        for name in ("listen port", "identity provider", "upstreams"):
            checks.append(_ready(CheckResult(name, "warn", skipped)))
        return checks
    resolved = active_profile_path(profile_path)
    checks.append(
        Check("listen port", lambda: check_port(listen or profile.gateway.listen, timeout=timeout))
    )
    checks.append(Check("identity provider", lambda: check_identity(profile, timeout=timeout)))
    if profile.identity.kind in ("dev", "oidc"):
        checks.append(_in_thread("signing key", lambda: check_signing_key(profile)))
    if profile.identity.kind == "oidc" and profile.identity.client_secret is not None:
        checks.append(_in_thread("client secret", lambda: check_client_secret(profile)))
    ca_file = _ca_file(profile, resolved)
    states = lookup or keyring_lookup(profile)
    for name in sorted(profile.upstreams):
        upstream = profile.upstreams[name]
        checks.append(
            Check(
                f"upstream {name}",
                _bind_upstream(name, upstream, timeout, ca_file),
            )
        )
        checks.append(
            _in_thread(
                f"credential {name}",
                _bind_credential(name, upstream, states),
            )
        )
    return checks


def _bind_upstream(
    name: str, upstream: UpstreamSection, timeout: float, ca_file: Path | None
) -> Callable[[], Awaitable[CheckResult]]:
    return lambda: check_upstream(name, upstream, timeout=timeout, ca_file=ca_file)


def _bind_credential(
    name: str, upstream: UpstreamSection, lookup: StateLookup
) -> Callable[[], CheckResult]:
    return lambda: check_credential(name, upstream, lookup)


async def _guarded(check: Check) -> CheckResult:
    """A check that raises is a failed check naming the exception, never a crash."""
    try:
        return await check.run()
    except LockgateError as e:
        return CheckResult(check.name, "fail", e.message.rstrip("."), e.fix)
    except Exception as e:  # a doctor must report every other check even if one breaks
        if os.environ.get("LOCKGATE_DEBUG"):
            raise
        return CheckResult(
            check.name,
            "fail",
            f"the check itself failed ({type(e).__name__})",
            "run lockgate --debug doctor and report the traceback",
        )


async def run_checks(
    checks: Sequence[Check],
    on_done: Callable[[int, CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run every check concurrently; results come back in the order of `checks`.

    `on_done(index, result)` is called as each finishes (in completion order), for a
    progress display.
    """

    async def one(index: int, check: Check) -> CheckResult:
        result = await _guarded(check)
        if on_done is not None:
            on_done(index, result)
        return result

    return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(checks))))


def report_json(results: Sequence[CheckResult]) -> str:
    """The results as one JSON document (for scripts and support tickets)."""
    return json.dumps(
        {
            "ok": all(r.passed for r in results),
            "checks": [
                {"name": r.name, "status": r.status, "detail": r.detail, "fix": r.fix}
                for r in results
            ],
        },
        indent=2,
    )
