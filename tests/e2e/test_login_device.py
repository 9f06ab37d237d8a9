"""`lockgate login --device` (RFC 8628) against a real, certified provider, end to end.

Why it exists: on a machine without a browser the user signs in on another device with a
short code; the CLI must poll at the provider's pace, validate the ID token, keep the
refresh token in the OS keyring, and `lockgate logout` must revoke it at the provider.
The provider is panva's `oidc-provider` (tests/node/oidc_provider.mjs, Node 22 from
tests/node); the test plays the user's phone with httpx: the code page, the login page,
the consent page. Needs Node and the keyring: skipped locally without them, failed in CI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lockgate.audit.read import read_events
from lockgate.audit.verify import verify
from lockgate.identity import cli_login, refresh
from lockgate.identity import session as login
from lockgate.identity.provider import OIDCError, discover
from lockgate.profile.model import IdentitySection
from tests.support import keyring_env, require
from tests.support.oidc_node import (
    CLIENT_ID,
    INSTALL_HINT,
    approve_device,
    node_provider,
    node_provider_cmd,
)


@dataclass
class Setup:
    issuer: str
    profile: Path
    audit: Path

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LOCKGATE_AUDIT_LOG": str(self.audit),
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lockgate.cli", *args, "-p", str(self.profile)],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    require(node_provider_cmd() is not None, f"Node 22 or oidc-provider missing: {INSTALL_HINT}")
    for _ in keyring_env.real_keyring():
        with node_provider() as issuer:
            tmp = tmp_path_factory.mktemp("login-device")
            profile = tmp / "profile.toml"
            profile.write_text(
                "\n".join(
                    [
                        "[identity]",
                        'kind = "oidc"',
                        f'issuer = "{issuer}"',
                        f'client_id = "{CLIENT_ID}"',
                        'scopes = ["openid", "offline_access", "email", "groups"]',
                        "[upstreams.notes]",
                        'url = "http://127.0.0.1:9/mcp"',
                        "[routes.notes]",
                        'upstream = "notes"',
                        "",
                    ]
                ),
                encoding="utf-8",
            )
            try:
                yield Setup(issuer, profile, tmp / "audit.jsonl")
            finally:
                login.delete_session(issuer, "carol")


def test_device_login_whoami_and_logout_revoke_at_the_provider(setup: Setup) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lockgate.cli",
            "login",
            "--device",
            "--no-browser",
            "-p",
            str(setup.profile),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=setup.env(),
    )
    assert proc.stdout is not None
    printed: list[str] = []
    uri = code = None
    for line in proc.stdout:
        printed.append(line)
        if line.startswith(f"{setup.issuer}/"):
            uri = line.strip()
        m = re.match(r"user_code: (\S+)", line)
        if m:
            code = m.group(1)
            break
    assert uri == f"{setup.issuer}/device" and code, "".join(printed)

    page = approve_device(uri, code, "carol")
    assert "Sign-in Success" in page, page[:300]
    rest = threading.Thread(target=lambda: printed.extend(proc.stdout or []))
    rest.start()
    assert proc.wait(120) == 0, "".join(printed)
    rest.join(10)
    out = "".join(printed)
    assert "Signed in as carol (carol@example.com)" in " ".join(out.split())

    session = login.current_session(setup.issuer)
    assert session is not None and session.sub == "carol" and session.refresh_token
    assert session.groups == ("eng",)
    assert session.refresh_token not in out

    who = setup.cli("whoami", "--json")
    assert who.returncode == 0, who.stderr
    info = json.loads(who.stdout)
    assert info["alive"] is True and info["sub"] == "carol" and info["groups"] == ["eng"]
    token = login.load_session(setup.issuer, "carol")
    assert token is not None and token.refresh_token  # whoami refreshed: maybe rotated

    bye = setup.cli("logout")
    assert bye.returncode == 0, bye.stderr
    assert "the provider revoked its refresh token" in " ".join(bye.stdout.split())
    assert login.current_session(setup.issuer) is None
    # The provider no longer honours the refresh token lockgate held.
    refused = httpx.post(
        f"{setup.issuer}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token.refresh_token,
            "client_id": CLIENT_ID,
        },
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"

    # No gateway ran: the CLI wrote its events to the audit log itself, chained.
    events = [e for e in read_events(setup.audit) if e["event"].startswith("auth.")]
    assert [(e["event"], e.get("user"), e.get("method")) for e in events] == [
        ("auth.login", "carol", "device"),
        ("auth.logout", "carol", None),
    ]
    assert verify(setup.audit).ok
    assert token.refresh_token not in setup.audit.read_text()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_polling_waits_while_pending_and_stops_when_the_code_expires(setup: Setup) -> None:
    """Nobody approves: the CLI polls at the provider's interval, hears
    `authorization_pending`, and gives up with a clear sentence once the code expires.
    Only the waiting is simulated (a clock that jumps), every poll goes to the provider."""
    provider = await discover(setup.issuer)
    identity = IdentitySection(
        kind="oidc", issuer=setup.issuer, client_id=CLIENT_ID, scopes=("openid",)
    )
    client = refresh.IdpClient(identity)
    device = await cli_login.start_device(provider, client)
    assert device.verification_uri == f"{setup.issuer}/device" and device.interval == 5
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    short = dataclasses.replace(device, expires_in=22)
    with pytest.raises(OIDCError, match="expired before the sign-in was approved"):
        await cli_login.finish_device(provider, client, short, sleep=sleep, clock=lambda: now[0])
    assert waits == [5, 5, 5, 5, 5]  # four polls answered "pending", the fifth wait ran out
