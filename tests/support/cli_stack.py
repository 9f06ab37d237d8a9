"""A `kind = "oidc"` gateway with real CLI sign-ins: the stack `lockgate login` tests share.

Used by tests/e2e/test_login_cli.py and test_sec_cli_session.py: the mock provider with
USERS, the demo upstream, the gateway as a process, and the `lockgate` CLI run against them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from lockgate.identity import session as login
from tests.support import keyring_env
from tests.support.gateway import GatewayStack, profile_text, running_gateway
from tests.support.oidc_mock import OidcMock, mock_provider, oidc_identity
from tests.support.upstreams import sdk_upstream

USERS = (
    {"sub": "alice", "email": "a@example.com", "groups": ["eng"]},
    {"sub": "bob", "email": "b@example.com", "groups": ["ops"]},
)


@dataclass
class Stack(GatewayStack):
    issuer: str
    profile: Path


@contextmanager
def cli_stack(tmp: Path, env: dict[str, str]) -> Iterator[Stack]:
    """A `kind = "oidc"` gateway in front of the mock with USERS and the demo upstream; the
    USERS' CLI sessions are deleted at the end. Skips without a real Secret Service."""
    for _ in keyring_env.real_keyring():  # the real Secret Service, or skip (fail in CI)
        with ExitStack() as es:
            issuer = es.enter_context(mock_provider(*USERS))
            notes = es.enter_context(sdk_upstream())
            profile = profile_text(
                {"notes": notes}, {"notes": "notes"}, identity=oidc_identity(issuer)
            )
            gw = es.enter_context(running_gateway(profile, tmp, env=env))
            try:
                yield Stack(gw, issuer, tmp / "profile.toml")
            finally:
                for user in USERS:
                    login.delete_session(issuer, str(user["sub"]))


def cli_env(stack: Stack) -> dict[str, str]:
    return {
        **os.environ,
        "LOCKGATE_AUDIT_LOG": str(stack.gw.audit_path),  # the running gateway holds it
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",
    }


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate.cli", *args, "--profile", str(stack.profile)],
        capture_output=True,
        text=True,
        env=cli_env(stack),
        timeout=60,
    )


def cli_login(stack: Stack, sub: str) -> str:
    """`lockgate login --no-browser`: read the printed URL, sign in there as `sub` like a
    browser would, and return everything the command printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockgate.cli", "login", "--no-browser", "-p", str(stack.profile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(stack),
    )
    assert proc.stdout is not None
    printed: list[str] = []
    url: str | None = None
    for line in proc.stdout:
        printed.append(line)
        if line.startswith(f"{stack.issuer}/"):
            url = line.strip()
            break
    assert url is not None, "".join(printed)
    with httpx.Client() as browser:
        assert browser.get(url).status_code == 200
        signed = OidcMock(stack.issuer).login(browser, url, sub)
        assert "Signed in to lockgate" in browser.get(signed.headers["location"]).text
    rest = threading.Thread(target=lambda: printed.extend(proc.stdout or []))
    rest.start()
    assert proc.wait(60) == 0, "".join(printed)
    rest.join(10)
    return "".join(printed)
