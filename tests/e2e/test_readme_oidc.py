"""README.md's "Try it with a stand-in identity provider", followed literally.

Why it exists: that section is a promise to a new user (four terminals, one profile, a
browser sign-in, a keyring secret no client holds, 403 for a user outside the group). This
test reads the commands and the profile out of README.md itself, so the docs cannot drift
from the product: it starts what the README starts (on free ports instead of the fixed ones,
and with a unique upstream name instead of `private-notes`, so a developer's real keyring
entry is never touched), stores the token with the real `lockgate secret set` CLI, runs a
real gateway on the README's profile, and does what the README says a user does with the
official `mcp` SDK client and one headless browser.

The gateway reads the upstream secret from the real OS keyring (Secret Service in CI): this
test skips without one, and fails under LOCKGATE_REQUIRE_ALL=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from lockgate.audit.verify import verify
from lockgate.upstream import secrets
from tests.support import keyring_env
from tests.support.demo_mcp import DEMO_TOOLS, text_of
from tests.support.gateway import GatewayStack, running_gateway
from tests.support.oauth import (
    authorize_url,
    exchange,
    hidden_fields,
    mcp_post,
    pkce,
    redirect_params,
    register,
)
from tests.support.oauth_client import CALLBACK_URI, MemoryStorage, approve, signed_in_client
from tests.support.oidc_mock import OidcMock, free_port

pytestmark = pytest.mark.keyring

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- readme-test: try-oidc.toml -->"
ENV = {"LOCKGATE_SIGNING_KEY_SOURCE": "memory"}


# --- what the README says ------------------------------------------------------------------


@dataclass
class Readme:
    """The section's commands and profile, as parsed from README.md."""

    profile: str
    user_claims: str  # the JSON given to oidc-provider-mock --user-claims
    provider_port: int  # the mock's port: --port if given, else its default 9400
    plain_port: int  # the first demo server's --port
    bearer_port: int  # the second demo server's --port
    bearer_env: str  # its --bearer-env variable name
    token: str  # the variable's value on that command line
    secret_stdin: str  # what `printf ... |` feeds `lockgate secret set`
    secret_name: str  # the upstream name given to `lockgate secret set`


def _console_commands(text: str, before: int) -> list[list[str]]:
    """The `$ ` lines of the last ```console block before offset `before`, shell-split."""
    blocks = list(re.finditer(r"```console\n(.*?)```", text[:before], re.S))
    assert blocks, f"README.md: no ```console block before {MARKER!r}"
    lines = [ln[2:] for ln in blocks[-1].group(1).splitlines() if ln.startswith("$ ")]
    return [shlex.split(ln, comments=True) for ln in lines]


def _option(argv: list[str], name: str) -> str:
    assert name in argv, f"README.md: {name} missing from `{shlex.join(argv)}`"
    return argv[argv.index(name) + 1]


def read_readme() -> Readme:
    text = README.read_text(encoding="utf-8")
    at = text.find(MARKER)
    assert at >= 0, f"README.md has no {MARKER!r} marker: the try-oidc profile is untested"
    block = re.match(r"\s*```toml\n(.*?)\n```", text[at + len(MARKER) :], re.S)
    assert block is not None, f"README.md: no ```toml block right after {MARKER!r}"
    commands = _console_commands(text, at)

    [mock] = [c for c in commands if "oidc-provider-mock" in c]
    demos = [c for c in commands if "lockgate.cli.demo.server" in c]
    assert len(demos) == 2, f"README.md: expected two demo_server commands, got {demos}"
    [plain] = [c for c in demos if "--bearer-env" not in c]
    [bearer] = [c for c in demos if "--bearer-env" in c]
    bearer_env = _option(bearer, "--bearer-env")
    assigned = dict(a.split("=", 1) for a in bearer if re.fullmatch(r"[A-Z_]+=\S+", a))
    assert bearer_env in assigned, f"README.md: {bearer_env} is not set on `{shlex.join(bearer)}`"
    [secret_cmd] = [c for c in commands if "secret" in c and "set" in c]
    assert "|" in secret_cmd, f"README.md: the secret is not piped: `{shlex.join(secret_cmd)}`"
    pipe = secret_cmd.index("|")
    feed, cli = secret_cmd[:pipe], secret_cmd[pipe + 1 :]
    assert feed[0] == "printf" and len(feed) == 2, f"README.md: unexpected feed {feed}"
    assert cli[-3:-1] == ["secret", "set"], f"README.md: unexpected command {cli}"
    assert any("--profile" in c for c in commands), "README.md: no `lockgate up --profile`"
    return Readme(
        profile=block.group(1) + "\n",
        user_claims=_option(mock, "--user-claims"),
        provider_port=int(_option(mock, "--port")) if "--port" in mock else 9400,
        plain_port=int(_option(plain, "--port")),
        bearer_port=int(_option(bearer, "--port")),
        bearer_env=bearer_env,
        token=assigned[bearer_env],
        secret_stdin=feed[1],
        secret_name=cli[-1],
    )


def _replace_once(text: str, old: str, new: str) -> str:
    """Replace `old`, which the README's profile must hold exactly once (else it drifted)."""
    assert text.count(old) == 1, f"README.md profile: expected {old!r} once in:\n{text}"
    return text.replace(old, new)


def rewrite_profile(doc: Readme, ports: dict[str, int], name: str) -> str:
    """The README's profile on this test's ports, with upstream `name` for the secret's."""
    profile = doc.profile
    profile = re.sub(r'(?m)^listen = "127\.0\.0\.1:\d+"', 'listen = "127.0.0.1:0"', profile)
    for old, new in (
        (f'"http://127.0.0.1:{doc.provider_port}"', f'"http://127.0.0.1:{ports["provider"]}"'),
        (f"//127.0.0.1:{doc.plain_port}/", f"//127.0.0.1:{ports['plain']}/"),
        (f"//127.0.0.1:{doc.bearer_port}/", f"//127.0.0.1:{ports['bearer']}/"),
        (f"[upstreams.{doc.secret_name}]", f"[upstreams.{name}]"),
        (f'upstream = "{doc.secret_name}"', f'upstream = "{name}"'),
    ):
        profile = _replace_once(profile, old, new)
    return profile


# --- the four terminals --------------------------------------------------------------------


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exit code {proc.poll()})")
        time.sleep(0.1)


@contextlib.contextmanager
def _process(
    argv: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Stack(GatewayStack):
    doc: Readme
    issuer: str
    name: str  # the upstream name standing in for `private-notes`
    bearer_url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    doc = read_readme()
    keyring_env.require_keyring()
    ports = {"provider": free_port(), "plain": free_port(), "bearer": free_port()}
    issuer = f"http://127.0.0.1:{ports['provider']}"
    name = f"{doc.secret_name}-{uuid.uuid4().hex[:10]}"
    demo = [sys.executable, "-m", "lockgate.cli.demo.server", "--port"]
    with ExitStack() as es:
        mock = es.enter_context(
            _process(
                [
                    sys.executable,
                    "-m",
                    "oidc_provider_mock",
                    "--port",
                    str(ports["provider"]),
                    "--user-claims",
                    doc.user_claims,
                ]
            )
        )
        plain = es.enter_context(_process([*demo, str(ports["plain"])]))
        bearer = es.enter_context(
            _process(
                [*demo, str(ports["bearer"]), "--bearer-env", doc.bearer_env],
                env={doc.bearer_env: doc.token},
            )
        )
        _wait_until(
            lambda: httpx.get(f"{issuer}/.well-known/openid-configuration").status_code == 200,
            mock,
            "oidc-provider-mock",
        )
        plain_url = f"http://127.0.0.1:{ports['plain']}/mcp"
        bearer_url = f"http://127.0.0.1:{ports['bearer']}/mcp"
        _wait_until(lambda: mcp_post(plain_url, None).status_code == 200, plain, "demo server")
        _wait_until(lambda: mcp_post(bearer_url, None).status_code == 401, bearer, "demo server")

        # `printf <token> | lockgate secret set <name>`, through the real CLI.
        es.callback(_forget, name)
        stored = subprocess.run(
            [sys.executable, "-m", "lockgate.cli", "secret", "set", name],
            input=doc.secret_stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert stored.returncode == 0, stored.stdout + stored.stderr
        assert doc.secret_stdin not in stored.stdout + stored.stderr

        gw = es.enter_context(
            running_gateway(
                rewrite_profile(doc, ports, name), tmp_path_factory.mktemp("readme-oidc"), env=ENV
            )
        )
        yield Stack(gw, doc, issuer, name, bearer_url)


def _forget(name: str) -> None:
    with contextlib.suppress(Exception):  # cleanup: never mask the test's own outcome
        secrets.delete_secret(name)


# --- the user --------------------------------------------------------------------------------


@dataclass
class Browser:
    """One headless browser (one cookie jar) that signs in as `user` on the provider's form
    and presses Allow on the gateway's consent page."""

    http: httpx.AsyncClient
    stack: Stack
    user: str
    provider_logins: int = 0
    consents: int = 0
    pages: list[str] = field(default_factory=list)

    async def walk(self, authorization_url: str) -> httpx.Response:
        """Follow the sign-in; the last answer (a redirect to the client, or a refusal)."""
        r = await self.http.get(authorization_url)
        for _ in range(8):  # bounded: a redirect loop in the product fails, not hangs
            location = r.headers.get("location", "")
            if r.status_code == 302 and location.startswith(self.stack.issuer):
                form = await self.http.get(location)
                assert form.status_code == 200 and "<form" in form.text, form.text[:300]
                r = await OidcMock(self.stack.issuer).alogin(self.http, location, self.user)
                self.provider_logins += 1
                r = await self.http.get(r.headers["location"])
                continue
            if r.status_code == 200 and "/oauth/consent" in r.text:
                self.pages.append(r.text)
                self.consents += 1
                r = await self.http.post(
                    f"{self.stack.base}/oauth/consent",
                    data={**hidden_fields(r.text), "decision": "approve"},
                    headers={"Origin": self.stack.base},
                )
                continue
            return r
        raise AssertionError("the sign-in did not end")

    async def sign_in(self, authorization_url: str) -> dict[str, str]:
        r = await self.walk(authorization_url)
        location = r.headers.get("location", "")
        assert r.status_code == 302 and location.startswith(CALLBACK_URI), (r.status_code, r.text)
        return dict(httpx.URL(location).params.items())


# --- the scenario ----------------------------------------------------------------------------


def test_the_readme_commands_parse_and_agree() -> None:
    """The README's own numbers agree: the token piped into the keyring is the one the
    upstream wants, and the claims sign alice in with the group the route asks for."""
    doc = read_readme()
    assert doc.secret_stdin == doc.token
    claims = json.loads(doc.user_claims)
    assert claims["sub"] == "alice"
    assert 'access.groups = ["eng"]' in doc.profile and "eng" in claims["groups"]
    assert 'kind = "oidc"' in doc.profile and 'auth = "header"' in doc.profile


@pytest.mark.anyio
async def test_alice_signs_in_once_and_uses_both_routes(stack: Stack) -> None:
    storages = {"notes": MemoryStorage(), "private-notes": MemoryStorage()}
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        browser = Browser(http, stack, "alice")
        for route in ("notes", "private-notes"):
            async with signed_in_client(
                stack.gw.route_url(route),
                browser.sign_in,
                client_name=f"README client for {route}",
                storage=storages[route],
            ) as client:
                tools = await client.list_tools()
                assert {t.name for t in tools.tools} == DEMO_TOOLS
                added = await client.call_tool(
                    "add_note", {"title": f"from {route}", "body": "via lockgate"}
                )
                assert not added.is_error, added
                assert json.loads(text_of(added))["title"] == f"from {route}"
                listed = await client.call_tool("list_notes", {})
                assert not listed.is_error, listed
                assert f"from {route}" in json.dumps(listed.model_dump(mode="json"))
            # The provider's login form once in this browser, a consent page per route.
            assert browser.provider_logins == 1, route
        assert browser.consents == 2

    # The upstream behind private-notes refuses without its token: the gateway sent it.
    assert mcp_post(stack.bearer_url, None).status_code == 401
    # The clients hold gateway tokens only, never the upstream's.
    for storage in storages.values():
        assert storage.tokens is not None
        held = json.dumps(storage.tokens.model_dump(mode="json"))
        assert stack.doc.token not in held

    events = stack.gw.wait_for_events(
        lambda evs: sum(e.get("event") == "tool.call" for e in evs) >= 4
    )
    calls = [e for e in events if e.get("event") == "tool.call"]
    assert {str(e["route"]) for e in calls if e["outcome"] == "success"} == {
        "notes",
        "private-notes",
    }
    assert all(e["user"] == "alice" for e in calls), calls
    assert stack.doc.token not in stack.gw.audit_path.read_text()
    assert verify(stack.gw.audit_path).ok


def test_a_user_without_the_group_gets_403_on_private_notes(stack: Stack) -> None:
    """bob (created by the mock on the fly, no groups) signs in in a browser of his own."""
    client_id = register(stack.base, name="bob's client")
    verifier, challenge = pkce()
    resource = stack.gw.route_url("private-notes")
    with httpx.Client(trust_env=False, timeout=30) as browser:
        r = browser.get(authorize_url(stack.base, client_id, resource, challenge))
        assert r.status_code == 302 and r.headers["location"].startswith(stack.issuer), r.text
        r = OidcMock(stack.issuer).login(browser, r.headers["location"], "bob")
        r = browser.get(r.headers["location"])
        if r.status_code == 200 and "/oauth/consent" in r.text:
            r = approve(browser, stack.base, r.text)
    code = redirect_params(r)["code"]
    token = exchange(stack.base, client_id, code, verifier, resource)
    assert token.status_code == 200, token.text
    refused = mcp_post(resource, token.json()["access_token"])
    assert refused.status_code == 403, refused.text
    assert "bob" in refused.json()["error"]["message"]
    events = stack.gw.wait_for_events(
        lambda evs: any(e.get("user") == "bob" and e.get("outcome") == "denied" for e in evs)
    )
    assert any(e.get("user") == "bob" and e.get("outcome") == "denied" for e in events), events
