"""A real OpenID Connect provider for tests: `oidc-provider-mock` as a process on a free port.

Why it exists: every `kind = "oidc"` test needs the same provider (start it, wait until its
discovery document answers, register users, submit its sign-in form as a browser would, stop
it) and the same `[identity]` profile section pointing at it; one copy keeps them alike.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.gateway import GatewayStack
from tests.support.oauth_client import hidden_fields

ALICE: dict[str, Any] = {"sub": "alice", "email": "a@example.com", "groups": ["eng"]}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def oidc_identity(issuer: str, *extra: str) -> list[str]:
    """The profile's `[identity] kind = "oidc"` section for the mock, plus `extra` lines."""
    return [
        "[identity]",
        'kind = "oidc"',
        f'issuer = "{issuer}"',
        'client_id = "lockgate-test"',
        'scopes = ["openid", "email", "profile"]',
        *extra,
    ]


@dataclass(frozen=True)
class OidcMock:
    """A running provider: its issuer URL and what a browser does there."""

    issuer: str

    def put_user(self, sub: str, claims: Mapping[str, Any]) -> None:
        """Set `sub`'s claims through the mock's `PUT /users/<sub>` API (nested claims too)."""
        r = httpx.put(f"{self.issuer}/users/{sub}", json=dict(claims))
        assert r.status_code == 204, r.text

    def login(self, client: httpx.Client, location: str, sub: str) -> httpx.Response:
        """Submit the sign-in form at `location` as `sub`; the provider's redirect back."""
        r = client.post(location, data={"sub": sub})
        assert r.status_code == 302, r.text[:300]
        return r

    async def alogin(self, client: httpx.AsyncClient, location: str, sub: str) -> httpx.Response:
        """`login` for an async browser."""
        r = await client.post(location, data={"sub": sub})
        assert r.status_code == 302, r.text[:300]
        return r

    async def browse(
        self,
        browser: httpx.AsyncClient,
        base: str,
        url: str,
        sub: str,
        visited: list[str] | None = None,
    ) -> httpx.Response:
        """Follow a gateway sign-in from `url` as a browser would: the provider's form as
        `sub` when sent there, the gateway's consent page (at `base`) approved. Returns the
        answer that goes to the client's redirect URI; `visited` gets every page's URL."""
        seen = [] if visited is None else visited
        r = await browser.get(url)
        while True:
            seen.append(str(r.request.url).split("?", 1)[0])
            if r.status_code == 302 and r.headers["location"].startswith(self.issuer):
                location = r.headers["location"]
                form = await browser.get(location)
                assert form.status_code == 200, form.text[:300]
                r = await self.alogin(browser, location, sub)
                seen.append(location.split("?", 1)[0])
                r = await browser.get(r.headers["location"])
                continue
            if r.status_code == 200 and "/oauth/consent" in r.text:
                r = await browser.post(
                    f"{base}/oauth/consent",
                    data={**hidden_fields(r.text), "decision": "approve"},
                    headers={"Origin": base},
                )
                continue
            return r


@dataclass
class OidcStack(GatewayStack):
    """A gateway with `kind = "oidc"` in front of the mock; test modules add their parts."""

    mock: OidcMock

    @property
    def issuer(self) -> str:
        return self.mock.issuer


@contextmanager
def oidc_mock(
    *users: Mapping[str, Any], claims: Mapping[str, Mapping[str, Any]] | None = None
) -> Iterator[OidcMock]:
    """Start the mock with `users` (`--user-claims`, each with its "sub") and then `claims`
    (sub -> claims, set through its API); yield it once discovery answers, stop it after."""
    port = free_port()
    args = [sys.executable, "-m", "oidc_provider_mock", "--port", str(port)]
    for user in users:
        args += ["--user-claims", json.dumps(user)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mock = OidcMock(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"{mock.issuer}/.well-known/openid-configuration")
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("oidc-provider-mock did not start")
            time.sleep(0.1)
        for sub, user_claims in (claims or {}).items():
            mock.put_user(sub, user_claims)
        yield mock
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def mock_provider(*users: Mapping[str, Any]) -> Iterator[str]:
    """`oidc_mock` with `users` (alice when none); yields only the issuer URL."""
    with oidc_mock(*(users or (ALICE,))) as mock:
        yield mock.issuer
