"""Issue 3's "Done when" against a real identity provider: sign in once, use two upstreams.

Why it exists: the pieces are tested apart (OIDC sign-in in test_oidc_signin, upstream OAuth
with kind "dev" in test_upstream_oauth); this is the whole story a new user lives. A gateway
with `[identity] kind = "oidc"` (a real `oidc-provider-mock` process) fronts two upstreams
that are each their own OAuth authorization server (tests/support/protected_upstream.py).
The official `mcp` SDK client with its OAuthClientProvider signs in to route alpha: one
headless browser (one cookie jar, like one real browser) follows the redirects to the
provider, submits its login form once, reaches the gateway's consent page, connects the
route's upstream through the page's Connect link (a single-use ticket stands for the user,
kind "oidc") and allows. A second SDK client signs in to route beta in the same browser
without meeting the provider again, connects beta from its consent page and comes back to
the same authorization request. Then each upstream proves it only ever saw tokens its own
authorization server issued, the audit log verifies and names every step, and no token,
refresh token, code or ticket of any party is in it. Used and missing tickets are refused.

The gateway keeps upstream tokens and the provider session in the real OS keyring (Secret
Service in CI): these tests skip without one, and fail under LOCKGATE_REQUIRE_ALL=1.
"""

from __future__ import annotations

import contextlib
import html
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from lockgate.audit.verify import verify
from lockgate.identity.session import delete_session
from lockgate.upstream import tokens as upstream_tokens
from tests.support import keyring_env
from tests.support.demo_mcp import text_of
from tests.support.gateway import running_gateway
from tests.support.oauth import (
    authorize_url,
    exchange,
    mcp_post,
    pkce,
    redirect_params,
    register,
)
from tests.support.oauth_client import (
    CALLBACK_URI,
    MemoryStorage,
    approve,
    hidden_fields,
    signed_in_client,
)
from tests.support.oidc_mock import OidcMock, OidcStack, oidc_identity, oidc_mock
from tests.support.protected_upstream import ProtectedUpstream, protected_upstream

pytestmark = pytest.mark.keyring

ENV = {"LOCKGATE_SIGNING_KEY_SOURCE": "memory"}
USER = "alice"
CLAIMS = {"email": "alice@example.com", "groups": ["eng", "notes-admins"]}
CONNECT_LINK = re.compile(r'<a href="([^"]+)"([^>]*)>Connect</a>')


@dataclass
class Stack(OidcStack):
    ups: dict[str, ProtectedUpstream]  # route -> its upstream
    names: dict[str, str]  # route -> upstream name in the profile


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcMock]:
    """A real OpenID Connect provider process, alice registered with her groups."""
    with oidc_mock(claims={USER: CLAIMS}) as mock:
        yield mock


def _forget(names: list[str], issuer: str) -> None:
    """Remove every keyring entry the gateway made for alice in this module."""
    for name in names:
        with contextlib.suppress(Exception):  # cleanup: never mask the test's own outcome
            upstream_tokens.delete(name, USER)
    with contextlib.suppress(Exception):
        delete_session(issuer, USER)


@pytest.fixture(scope="module")
def stack(provider: OidcMock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    keyring_env.require_keyring()
    run = uuid.uuid4().hex[:8]
    routes = ("alpha", "beta", "gamma")
    names = {r: f"lockgate-test-{run}-{r}" for r in routes}
    with ExitStack() as es:
        ups = {r: es.enter_context(protected_upstream(r)) for r in routes}
        lines = oidc_identity(provider.issuer)
        for r in routes:
            lines += [f'[upstreams."{names[r]}"]', f'url = "{ups[r].url}"', 'auth = "oauth"']
            lines += [f"[routes.{r}]", f'upstream = "{names[r]}"', 'access.groups = ["eng"]']
        gw = es.enter_context(
            running_gateway(
                "\n".join(lines) + "\n", tmp_path_factory.mktemp("oidc-two-upstreams"), env=ENV
            )
        )
        es.callback(_forget, list(names.values()), provider.issuer)
        yield Stack(gw, provider, ups, names)


# --- the headless browser ----------------------------------------------------------------------


@dataclass
class Browser:
    """One browser for the whole scenario: one cookie jar, and a note of what it did.

    `steps` is the path of each sign-in ("provider", "consent: <state>", "connect: back",
    "connect: new tab", "allow"); `seen` holds every code, state and ticket that passed
    through a URL, so the test can prove none reached the audit log.
    """

    http: httpx.AsyncClient
    stack: Stack
    provider_logins: int = 0
    steps: list[list[str]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def _note(self, r: httpx.Response) -> None:
        for resp in (*r.history, r):
            for url in (str(resp.request.url), resp.headers.get("location", "")):
                for key, values in parse_qs(urlsplit(url).query).items():
                    if key in ("code", "state", "ticket"):
                        self.seen.update(values)

    async def sign_in(self, authorization_url: str) -> dict[str, str]:
        """What a user does for the SDK's authorization URL; the redirect's parameters."""
        base = self.stack.base
        steps: list[str] = []
        self.steps.append(steps)
        r = await self.http.get(authorization_url)
        for _ in range(12):  # a bounded walk: a loop in the product fails, not hangs
            self._note(r)
            location = r.headers.get("location", "")
            if r.status_code == 302 and location.startswith(self.stack.issuer):
                steps.append("provider")
                form = await self.http.get(location)
                assert form.status_code == 200, form.text[:300]
                r = await self.stack.mock.alogin(self.http, location, USER)
                self.provider_logins += 1
                self._note(r)
                r = await self.http.get(r.headers["location"])
                continue
            if r.status_code == 302 and location.startswith(CALLBACK_URI):
                return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
            assert r.status_code == 200 and "/oauth/consent" in r.text, (r.status_code, r.text)
            state = re.search(r": <strong>([^<]+)</strong>", r.text)
            assert state is not None, r.text
            steps.append(f"consent: {state.group(1)}")
            link = CONNECT_LINK.search(r.text)
            if link is None:
                steps.append("allow")
                r = await self.http.post(
                    f"{base}/oauth/consent",
                    data={**hidden_fields(r.text), "decision": "approve"},
                    headers={"Origin": base},
                )
                continue
            target = html.unescape(link.group(1))
            self.links.append(target)
            done = await self.http.get(target, follow_redirects=True)
            self._note(done)
            if str(done.url).startswith(f"{base}/oauth/authorize?"):
                steps.append("connect: back")  # the same authorization request, re-rendered
                r = done
                continue
            # From the provider's callback the link opens a tab of its own, which ends on a
            # "connected" page; the user then reloads the authorization request.
            assert 'target="_blank"' in link.group(2), link.group(0)
            assert done.status_code == 200, done.text
            assert "you can close this tab" in done.text, done.text
            steps.append("connect: new tab")
            r = await self.http.get(authorization_url)
        raise AssertionError(f"the sign-in did not end: {steps}")


# --- the scenario ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_one_provider_login_two_upstreams_each_with_its_own_token(stack: Stack) -> None:
    storages = {"alpha": MemoryStorage(), "beta": MemoryStorage()}
    calls: dict[str, list[str]] = {"alpha": [], "beta": []}
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        browser = Browser(http, stack)

        async def use(route: str, tool: str, args: dict[str, str]) -> str:
            async with signed_in_client(
                stack.gw.route_url(route),
                browser.sign_in,
                client_name=f"SDK client for {route}",
                storage=storages[route],
            ) as client:
                result = await client.call_tool(tool, args)
                assert not result.is_error, result
                calls[route].append(tool)
                return text_of(result)

        # 1-2. Route alpha: provider login, consent page, Connect, Allow.
        assert await use("alpha", "whoami", {}) == "alpha"
        assert browser.provider_logins == 1
        assert browser.steps[0] == [
            "provider",
            "consent: needs connect",
            "connect: new tab",
            "consent: connected",
            "allow",
        ]
        assert any(c.name == "lockgate_session" for c in http.cookies.jar)

        # 3. Route beta in the same browser: no second provider login; Connect comes back to
        # the same authorization request.
        assert await use("beta", "whoami", {}) == "beta"
        assert browser.provider_logins == 1
        assert browser.steps[1] == [
            "consent: needs connect",
            "connect: back",
            "consent: connected",
            "allow",
        ]

        # Both clients keep working with their stored gateway tokens, no new sign-in.
        assert await use("alpha", "echo", {"text": "hi"}) == "alpha: hi"
        assert await use("beta", "echo", {"text": "hi"}) == "beta: hi"
        assert len(browser.steps) == 2

        # 5. A used Connect ticket is refused, and starts nothing.
        assert len(browser.links) == 2
        for route, link in zip(("alpha", "beta"), browser.links, strict=True):
            assert f"/connect/{stack.names[route]}?" in link
            assert parse_qs(urlsplit(link).query)["ticket"]
            before = len(stack.ups[route].provider.authorizations)
            again = await http.get(link)
            assert again.status_code == 401, again.text
            assert "location" not in again.headers
            assert "Sign in to the gateway first" in again.text
            assert len(stack.ups[route].provider.authorizations) == before

    # 4. Each upstream saw only tokens its own authorization server issued.
    alpha, beta = stack.ups["alpha"].provider, stack.ups["beta"].provider
    gateway_tokens = {
        t
        for s in storages.values()
        if s.tokens is not None
        for t in (s.tokens.access_token, s.tokens.refresh_token)
        if t
    }
    assert len(gateway_tokens) == 4
    for up in (stack.ups["alpha"], stack.ups["beta"]):
        assert up.provider.received, "the upstream was never called"
        assert up.only_saw_own_tokens()
        assert not set(up.provider.received) & gateway_tokens
    assert not set(alpha.received) & set(beta.issued)
    assert not set(beta.received) & set(alpha.issued)
    # What the clients hold is the gateway's token, never an upstream's.
    assert not gateway_tokens & {*alpha.issued, *alpha.issued_refresh}
    assert not gateway_tokens & {*beta.issued, *beta.issued_refresh}
    # The gateway connected each upstream with that upstream's resource indicator and PKCE.
    for route in ("alpha", "beta"):
        [asked] = stack.ups[route].provider.authorizations
        assert asked.resource == stack.ups[route].url and asked.code_challenge
        assert upstream_tokens.stored(stack.names[route], USER)

    # The audit log: every step, by alice, and nothing secret.
    events = stack.gw.wait_for_events(
        lambda evs: sum(e.get("event") == "tool.call" for e in evs) >= 4
    )
    by = {
        name: [e for e in events if e.get("event") == name]
        for name in {
            "auth.login",
            "auth.consent",
            "auth.upstream_connected",
            "auth.token_issued",
            "tool.call",
        }
    }
    assert [(e["user"], e["outcome"]) for e in by["auth.login"]] == [(USER, "success")]
    consents = [e for e in by["auth.consent"] if e["outcome"] == "success"]
    assert sorted(str(e["route"]) for e in consents) == ["alpha", "beta"]
    assert all(e["user"] == USER for e in consents)
    connected = [e for e in by["auth.upstream_connected"] if e["outcome"] == "success"]
    assert sorted(str(e["upstream"]) for e in connected) == sorted(
        [stack.names["alpha"], stack.names["beta"]]
    )
    assert all(e["user"] == USER for e in connected)
    assert len(by["auth.token_issued"]) >= 2
    assert {e["route"] for e in by["tool.call"] if e["outcome"] == "success"} >= {"alpha", "beta"}
    assert all(e["user"] == USER for e in by["tool.call"])

    text = stack.gw.audit_path.read_text()
    upstream_secrets = {*alpha.issued, *alpha.issued_refresh, *beta.issued, *beta.issued_refresh}
    session = {c.value for c in http.cookies.jar if c.value}
    secrets_ = {s for s in {*gateway_tokens, *upstream_secrets, *browser.seen, *session} if s}
    assert len(browser.seen) >= 8  # codes, states and tickets of three parties
    leaked = [s[:8] + "…" for s in secrets_ if len(s) >= 16 and s in text]
    assert not leaked, f"secrets in the audit log: {leaked}"
    assert verify(stack.gw.audit_path).ok


def test_connect_without_a_ticket_or_a_gateway_session_is_refused(stack: Stack) -> None:
    name = stack.names["gamma"]
    with httpx.Client(trust_env=False, timeout=30) as stranger:
        for url in (
            f"{stack.base}/connect/{name}",
            f"{stack.base}/connect/{name}?ticket=",
            f"{stack.base}/connect/{name}?{urlencode({'ticket': 'forged-ticket-value'})}",
        ):
            r = stranger.get(url)
            assert r.status_code == 401, (url, r.text)
            assert "location" not in r.headers
            assert "Sign in to the gateway first" in r.text
    assert stack.ups["gamma"].provider.authorizations == []
    assert not upstream_tokens.stored(name, USER)


def test_a_ticket_stands_for_its_own_upstream_only(stack: Stack) -> None:
    """A Connect ticket issued on route gamma's consent page does not start a connect flow
    for another upstream (it is minted for one user *and one upstream*)."""
    with httpx.Client(trust_env=False, timeout=30) as http:
        client_id = register(stack.base, name="ticket scope test")
        url = authorize_url(stack.base, client_id, stack.gw.route_url("gamma"), pkce()[1])
        r = http.get(url)
        if r.status_code == 302 and r.headers["location"].startswith(stack.issuer):
            r = stack.mock.login(http, r.headers["location"], USER)
            r = http.get(r.headers["location"])
        assert r.status_code == 200 and "needs connect" in r.text, r.text
        link = CONNECT_LINK.search(r.text)
        assert link is not None, r.text
        ticket = parse_qs(urlsplit(html.unescape(link.group(1))).query)["ticket"][0]
        other = stack.names["alpha"]
        before = len(stack.ups["alpha"].provider.authorizations)
        with httpx.Client(trust_env=False, timeout=30) as elsewhere:  # no cookies at all
            moved = elsewhere.get(f"{stack.base}/connect/{other}?{urlencode({'ticket': ticket})}")
        assert moved.status_code == 401, moved.text
        assert len(stack.ups["alpha"].provider.authorizations) == before


def test_allow_now_connect_later_through_the_connect_url_of_a_refused_call(stack: Stack) -> None:
    """The consent page says "allow now and connect later: until then its calls are answered
    with the connect link". With kind "oidc" that link (no ticket) must work in the browser
    that is signed in to the gateway."""
    name = stack.names["gamma"]
    client_id = register(stack.base, name="connect later test")
    verifier, challenge = pkce()
    resource = stack.gw.route_url("gamma")
    with httpx.Client(trust_env=False, timeout=30) as browser:
        r = browser.get(authorize_url(stack.base, client_id, resource, challenge))
        if r.status_code == 302 and r.headers["location"].startswith(stack.issuer):
            r = stack.mock.login(browser, r.headers["location"], USER)
            r = browser.get(r.headers["location"])
        assert r.status_code == 200 and f"{name}: <strong>needs connect</strong>" in r.text
        allowed = approve(browser, stack.base, r.text)  # Allow without connecting
        code = redirect_params(allowed)["code"]
        token = exchange(stack.base, client_id, code, verifier, resource)
        assert token.status_code == 200, token.text
        access = token.json()["access_token"]
        refused = mcp_post(resource, access)
        assert refused.status_code == 200, refused.text
        error = refused.json()["error"]
        assert error["code"] == -32042
        connect = error["data"]["connect_url"]
        assert connect == f"{stack.base}/connect/{name}"
        assert any(c.name == "lockgate_session" for c in browser.cookies.jar)
        started = browser.get(connect)
        assert started.status_code == 302, started.text
        assert started.headers["location"].startswith(stack.ups["gamma"].issuer)
        done = browser.get(started.headers["location"], follow_redirects=True)
        assert done.status_code == 200 and "connected" in done.text, done.text
    assert upstream_tokens.stored(name, USER)
    answered = mcp_post(resource, access)
    # Answered by the upstream now (JSON or an SSE event, as it chooses), not by the gateway.
    assert answered.status_code == 200, answered.text
    assert '"result"' in answered.text and "-32042" not in answered.text, answered.text
    assert stack.ups["gamma"].only_saw_own_tokens()
