"""`lockgate doctor`: which checks a profile needs, run concurrently, and the report.

`plan` turns a profile into the list of checks (the functions of `lockgate.ops.checks`) and
`run_checks` runs them concurrently (blocking ones in threads), so a slow identity provider
or a dead upstream costs one timeout, not one per check. Nothing here prints, and nothing
reads or returns a secret's value.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lockgate.errors import LockgateError
from lockgate.net.tls import profile_ca
from lockgate.ops.checks import (
    DEFAULT_TIMEOUT,
    CheckResult,
    check_client_secret,
    check_credential,
    check_identity,
    check_keyring,
    check_mitmproxy,
    check_port,
    check_profile,
    check_python,
    check_signing_key,
    check_upstream,
    needs_keyring,
)
from lockgate.profile.model import UpstreamSection, active_profile_path
from lockgate.upstream.state import StateLookup, keyring_lookup


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


# ---------------------------------------------------------------------------- plan and run


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
    ca_file = profile_ca(profile.gateway.upstream_ca, resolved)
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
