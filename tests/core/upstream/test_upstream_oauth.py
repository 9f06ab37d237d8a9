"""lockgate/upstream/oauth.py: MCP authorization discovery, registration, PKCE and tokens.

Why it exists: the gateway follows URLs a third party chose. These tests serve the
upstream's metadata from real HTTP servers on 127.0.0.1 and check that discovery walks the
MCP spec's order (and stops at the first document found), that every metadata URL pointing
at a private address, redirecting into one, or not being http(s) at all is refused before
anything is sent there, and that a server without PKCE S256 is refused. The whole client
side then runs against the `mcp` SDK's own authorization server (tests/support/
protected_upstream.py): DCR, authorization with PKCE and the resource indicator, code
exchange, refresh.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lockgate.cli.demo.server import BackgroundServer
from lockgate.upstream import discovery, oauth, registration
from lockgate.upstream._errors import RefreshRefused, UpstreamOAuthError
from tests.support.process import free_port
from tests.support.protected_upstream import protected_upstream

# --- a metadata server whose documents each test chooses --------------------------------------


@dataclass
class Docs:
    """Path -> (status, JSON body or None, extra headers); every hit is recorded."""

    base: str = ""
    routes: dict[str, tuple[int, Any, dict[str, str]]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def json(self, path: str, body: Any) -> None:
        self.routes[path] = (200, body, {})

    def redirect(self, path: str, location: str) -> None:
        self.routes[path] = (302, None, {"location": location})

    def as_doc(self, issuer: str | None = None, **over: Any) -> dict[str, Any]:
        issuer = issuer or self.base
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{self.base}/authorize",
            "token_endpoint": f"{self.base}/token",
            "registration_endpoint": f"{self.base}/register",
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"],
            **over,
        }


@contextmanager
def docs_server() -> Iterator[Docs]:
    docs = Docs()

    async def serve(request: Request) -> Response:
        path = request.url.path
        docs.hits.append(path)
        if path not in docs.routes:
            return JSONResponse({"error": "not found"}, status_code=404)
        status, body, headers = docs.routes[path]
        if body is None:
            return Response(b"", status_code=status, headers=headers)
        return JSONResponse(body, status_code=status, headers=headers)

    app = Starlette(routes=[Route("/{path:path}", serve, methods=["GET", "POST"])])
    with BackgroundServer(app) as server:
        docs.base = server.url
        yield docs


# --- parsers ---------------------------------------------------------------------------------


def test_the_bearer_challenge_is_parsed_with_quotes_and_commas() -> None:
    header = (
        'Basic realm="x", Bearer error="invalid_token", '
        'resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", '
        'scope="files:read files:write", error_description="a, \\"quoted\\" text"'
    )
    params = discovery.parse_bearer_challenge(header)
    assert params["resource_metadata"].endswith("/oauth-protected-resource/mcp")
    assert params["scope"] == "files:read files:write"
    assert params["error_description"] == 'a, "quoted" text'
    assert "realm" not in params  # Basic's parameters are not Bearer's


@given(st.text(alphabet=st.sampled_from(' \t,="\\abBearer'), max_size=60) | st.text(max_size=300))
def test_the_challenge_parser_never_raises_nor_hangs(header: str) -> None:
    assert isinstance(discovery.parse_bearer_challenge(header), dict)


@pytest.mark.parametrize("header", ["=", ", =x", "Bearer =", 'Bearer a=1, = , b="2"'])
def test_a_stray_equals_sign_is_skipped(header: str) -> None:
    params = discovery.parse_bearer_challenge(header)  # once looped forever on "="
    assert params.get("b", "2") == "2"


@given(st.from_regex(r"[A-Za-z0-9:/._~ -]{0,80}", fullmatch=True))
def test_a_quoted_value_comes_back_intact(value: str) -> None:
    params = discovery.parse_bearer_challenge(f'Bearer scope="{value}", realm=r')
    assert params["scope"] == value and params["realm"] == "r"


def test_well_known_candidates_follow_the_spec_order() -> None:
    assert discovery.protected_resource_candidates("https://Mcp.Example.com/public/mcp") == [
        "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp",
        "https://mcp.example.com/.well-known/oauth-protected-resource",
    ]
    assert discovery.authorization_server_candidates("https://auth.example.com/tenant1") == [
        "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
        "https://auth.example.com/.well-known/openid-configuration/tenant1",
        "https://auth.example.com/tenant1/.well-known/openid-configuration",
    ]
    assert discovery.authorization_server_candidates("https://auth.example.com/") == [
        "https://auth.example.com/.well-known/oauth-authorization-server",
        "https://auth.example.com/.well-known/openid-configuration",
    ]
    assert discovery.canonical_resource("HTTPS://MCP.Example.com/mcp/#frag") == (
        "https://mcp.example.com/mcp"
    )


# --- discovery order ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_resource_metadata_from_the_challenge_comes_first() -> None:
    with docs_server() as docs:
        docs.json("/custom/prm", {"authorization_servers": [docs.base]})
        docs.json("/.well-known/oauth-authorization-server", docs.as_doc())
        challenge = f'Bearer resource_metadata="{docs.base}/custom/prm", scope="a b"'
        found = await discovery.discover(f"{docs.base}/mcp", challenge)
    assert docs.hits == ["/custom/prm", "/.well-known/oauth-authorization-server"]
    assert found.scopes == ("a", "b")  # the challenge's scope wins over scopes_supported
    assert found.resource == f"{docs.base}/mcp"
    assert found.metadata.token_endpoint == f"{docs.base}/token"


@pytest.mark.anyio
async def test_without_a_challenge_path_inserted_then_root() -> None:
    with docs_server() as docs:
        docs.json(
            "/.well-known/oauth-protected-resource",
            {"authorization_servers": [f"{docs.base}/tenant1"], "scopes_supported": ["x"]},
        )
        docs.json("/tenant1/.well-known/openid-configuration", docs.as_doc(f"{docs.base}/tenant1"))
        found = await discovery.discover(f"{docs.base}/public/mcp", "Bearer")
    assert docs.hits == [
        "/.well-known/oauth-protected-resource/public/mcp",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server/tenant1",
        "/.well-known/openid-configuration/tenant1",
        "/tenant1/.well-known/openid-configuration",
    ]
    assert found.scopes == ("x",)
    assert found.issuer == f"{docs.base}/tenant1"


@pytest.mark.anyio
async def test_the_first_document_found_ends_the_search() -> None:
    with docs_server() as docs:
        docs.json(
            "/.well-known/oauth-protected-resource/mcp", {"authorization_servers": [docs.base]}
        )
        docs.json("/.well-known/oauth-protected-resource", {"authorization_servers": ["bad"]})
        docs.json("/.well-known/oauth-authorization-server", docs.as_doc())
        docs.json("/.well-known/openid-configuration", docs.as_doc(issuer="elsewhere"))
        await discovery.discover(f"{docs.base}/mcp", None)
    assert docs.hits == [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
    ]


# --- refusals --------------------------------------------------------------------------------


async def _refused(docs: Docs, as_doc: dict[str, Any] | None = None, prm: Any = None) -> str:
    docs.json(
        "/.well-known/oauth-protected-resource", prm or {"authorization_servers": [docs.base]}
    )
    if as_doc is not None:
        docs.json("/.well-known/oauth-authorization-server", as_doc)
    with pytest.raises(UpstreamOAuthError) as e:
        await discovery.discover(f"{docs.base}/", None)
    assert "Traceback" not in str(e.value)
    return str(e.value)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "server",
    [
        "https://10.0.0.5/",
        "https://169.254.169.254/latest",
        "http://example.com/",
        "https://[fc00::1]/",
    ],
)
async def test_an_authorization_server_at_a_private_address_is_refused(server: str) -> None:
    with docs_server() as docs:
        message = await _refused(docs, prm={"authorization_servers": [server]})
    assert "refused" in message
    assert len(docs.hits) == 1  # nothing was fetched from the refused server


@pytest.mark.anyio
async def test_metadata_redirecting_into_a_private_address_is_refused() -> None:
    with docs_server() as docs:
        docs.redirect("/.well-known/oauth-protected-resource/mcp", "https://10.1.2.3/prm")
        with pytest.raises(UpstreamOAuthError) as e:
            await discovery.discover(f"{docs.base}/mcp", None)
    assert "10.1.2.3" in str(e.value) and "private" in str(e.value)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("authorization_endpoint", "javascript:alert(document.cookie)"),
        ("authorization_endpoint", "https://192.168.1.1/authorize"),
        ("token_endpoint", "http://169.254.169.254/token"),
        ("registration_endpoint", "file:///etc/passwd"),
    ],
)
async def test_an_unsafe_endpoint_in_the_metadata_is_refused(key: str, url: str) -> None:
    with docs_server() as docs:
        message = await _refused(docs, docs.as_doc(**{key: url}))
    assert key in message


@pytest.mark.anyio
@pytest.mark.parametrize("methods", [["plain"], [], None])
async def test_a_server_without_pkce_s256_is_refused(methods: list[str] | None) -> None:
    with docs_server() as docs:
        doc = docs.as_doc(code_challenge_methods_supported=methods)
        if methods is None:
            del doc["code_challenge_methods_supported"]
        message = await _refused(docs, doc)
    assert "S256" in message


@pytest.mark.anyio
async def test_an_issuer_that_names_another_server_is_refused() -> None:
    with docs_server() as docs:
        message = await _refused(docs, docs.as_doc(issuer="https://evil.example.com"))
    assert "calls itself" in message


def _pending(
    found: discovery.Discovery, redirect_uri: str = "http://127.0.0.1:1/cb"
) -> tuple[str, str, oauth.PendingConnect]:
    """A connect of alice to upstream "u" (client "c"), pending in a fresh PendingConnects."""
    return oauth.PendingConnects().add(
        upstream="u",
        user="alice",
        discovery=found,
        client=registration.UpstreamClient("c"),
        redirect_uri=redirect_uri,
    )


@pytest.mark.anyio
async def test_a_javascript_authorization_url_never_reaches_a_browser() -> None:
    """Even if metadata changed after discovery, the URL is checked when it is built."""
    with docs_server() as docs:
        docs.json("/.well-known/oauth-protected-resource", {"authorization_servers": [docs.base]})
        docs.json("/.well-known/oauth-authorization-server", docs.as_doc())
        found = await discovery.discover(f"{docs.base}/", None)
    evil = discovery.Discovery(
        **{
            **found.__dict__,
            "metadata": found.metadata.model_copy(
                update={"authorization_endpoint": "javascript:alert(1)//"}
            ),
        }
    )
    state, challenge, record = _pending(evil, "http://127.0.0.1:1/connect/u/callback")
    with pytest.raises(UpstreamOAuthError, match="authorization_endpoint"):
        await oauth.authorization_url(record, state, challenge)


@pytest.mark.anyio
async def test_a_token_endpoint_that_redirects_is_not_followed() -> None:
    with docs_server() as docs:
        docs.redirect("/token", "http://10.0.0.1/token")
        docs.json("/.well-known/oauth-protected-resource", {"authorization_servers": [docs.base]})
        docs.json("/.well-known/oauth-authorization-server", docs.as_doc())
        found = await discovery.discover(f"{docs.base}/", None)
        _, _, record = _pending(found)
        with pytest.raises(UpstreamOAuthError, match="redirect"):
            await oauth.exchange_code(record, "some-code")
        assert "/token" in docs.hits


@pytest.mark.anyio
async def test_an_unreachable_token_endpoint_is_an_upstream_error_naming_the_step() -> None:
    """Token calls go through net.fetch's pinned client; its errors come back in the
    upstream's words (the step named, no body, no query)."""
    port = free_port()
    found = discovery.Discovery(
        "http://127.0.0.1:9/mcp",
        "http://127.0.0.1:9/mcp",
        "http://127.0.0.1:9/prm",
        "http://127.0.0.1:9",
        discovery.ServerMetadata(
            issuer="http://127.0.0.1:9",
            authorization_endpoint="http://127.0.0.1:9/a",
            token_endpoint=f"http://127.0.0.1:{port}/token?secret=q",
        ),
        (),
    )
    _, _, record = _pending(found)
    with pytest.raises(UpstreamOAuthError, match="token_endpoint failed") as e:
        await oauth.exchange_code(record, "some-code")
    assert "secret=q" not in str(e.value) and "some-code" not in str(e.value)


def test_pending_flows_are_single_use_browser_bound_and_short_lived() -> None:
    now = [1000.0]
    pending = oauth.PendingConnects(ttl=60, clock=lambda: now[0])
    found = discovery.Discovery(
        "http://x/mcp",
        "http://x/mcp",
        "http://x/prm",
        "http://x",
        discovery.ServerMetadata(
            issuer="http://x", authorization_endpoint="http://x/a", token_endpoint="http://x/t"
        ),
        (),
    )
    fields = {
        "upstream": "u",
        "user": "alice",
        "discovery": found,
        "client": registration.UpstreamClient("c"),
        "redirect_uri": "http://127.0.0.1:1/cb",
    }
    state, _, record = pending.add(**fields)  # type: ignore[arg-type]
    assert pending.take(state, "another-browser") is None
    assert pending.take(state, record.browser) is None  # the failed try consumed it
    state, _, record = pending.add(**fields)  # type: ignore[arg-type]
    assert pending.take(state, record.browser) is record
    assert pending.take(state, record.browser) is None  # single use
    state, _, record = pending.add(**fields)  # type: ignore[arg-type]
    now[0] += 61
    assert pending.take(state, record.browser) is None  # expired
    assert "verifier" not in repr(record) or record.verifier not in repr(record)


# --- the whole client side against the mcp SDK's authorization server --------------------------


@pytest.mark.anyio
async def test_dcr_pkce_resource_code_exchange_and_refresh_against_the_sdk() -> None:
    with protected_upstream("alpha") as up:
        challenge = await discovery.probe(up.url)
        assert "resource_metadata=" in challenge
        found = await discovery.discover(up.url, challenge)
        redirect_uri = "http://127.0.0.1:9/connect/alpha/callback"
        client = await registration.register(found, redirect_uri=redirect_uri)
        assert client.auth_method == "none" and client.client_id in up.provider.clients
        pending = oauth.PendingConnects()
        state, pkce, record = pending.add(
            upstream="alpha",
            user="alice",
            discovery=found,
            client=client,
            redirect_uri=redirect_uri,
        )
        url = await oauth.authorization_url(record, state, pkce)
        async with httpx.AsyncClient() as browser:
            answer = await browser.get(url)
        assert answer.status_code == 302
        location = answer.headers["location"]
        assert location.startswith(redirect_uri + "?")
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert params["state"] == state
        taken = pending.take(params["state"], record.browser)
        assert taken is record
        tokens = await oauth.exchange_code(record, params["code"])
        [asked] = up.provider.authorizations
        assert asked.resource == up.url  # the resource indicator is the upstream's URL
        assert asked.code_challenge == pkce
        assert tokens.access_token in up.provider.issued
        assert tokens.refresh_token in up.provider.issued_refresh
        assert tokens.expires_at is not None and tokens.resource == up.url
        assert tokens.issuer == up.issuer
        with pytest.raises(UpstreamOAuthError):
            await oauth.exchange_code(record, params["code"])  # a code is single use

        again = await oauth.refresh(tokens, upstream="alpha")
        assert again.access_token != tokens.access_token
        assert again.access_token in up.provider.issued and up.provider.refreshes == 1
        with pytest.raises(RefreshRefused):
            await oauth.refresh(tokens, upstream="alpha")  # the rotated-away refresh token
        up.provider.refuse_refresh = True
        with pytest.raises(RefreshRefused) as e:
            await oauth.refresh(again, upstream="alpha")
        assert again.refresh_token is not None and again.refresh_token not in str(e.value)


@pytest.mark.anyio
async def test_a_preregistered_client_is_used_as_is() -> None:
    with protected_upstream("beta") as up:
        found = await discovery.discover(up.url, await discovery.probe(up.url))
        client = await registration.register(
            found,
            redirect_uri="http://127.0.0.1:9/cb",
            preregistered=registration.UpstreamClient("pre", "s3"),
        )
    assert client == registration.UpstreamClient(
        "pre", "s3", "client_secret_basic"
    )  # basic when offered
    assert up.provider.clients == {}  # nothing was registered


@pytest.mark.anyio
async def test_a_client_id_metadata_document_when_the_server_supports_it() -> None:
    with docs_server() as docs:
        docs.json("/.well-known/oauth-protected-resource", {"authorization_servers": [docs.base]})
        docs.json(
            "/.well-known/oauth-authorization-server",
            docs.as_doc(client_id_metadata_document_supported=True),
        )
        found = await discovery.discover(f"{docs.base}/", None)
        https = await registration.register(
            found,
            redirect_uri="https://gw.example.com/connect/u/callback",
            base_url="https://gw.example.com",
        )
        assert https.client_id == "https://gw.example.com/connect/_client-metadata.json"
        assert "/register" not in docs.hits
        # Without an https public URL there is no document to point at: DCR.
        with pytest.raises(UpstreamOAuthError, match="register"):
            await registration.register(
                found, redirect_uri="http://127.0.0.1:1/cb", base_url="http://x"
            )
        assert "/register" in docs.hits


@pytest.mark.anyio
async def test_an_upstream_that_answers_without_a_token_is_not_oauth() -> None:
    with docs_server() as docs:
        docs.json("/mcp", {"jsonrpc": "2.0", "id": 0, "result": {}})
        with pytest.raises(UpstreamOAuthError, match="does not ask for OAuth"):
            await discovery.probe(f"{docs.base}/mcp")


# --- the profile's keys for auth = "oauth" ------------------------------------------------------

PROFILE_HEAD = '[routes.a]\nupstream = "a"\n\n[upstreams.a]\nurl = "https://mcp.example.com/mcp"\n'


@pytest.mark.parametrize(
    ("extra", "line", "expected"),
    [
        ('auth = "oauth"\nclient_secret = "hunter2"\n', 7, 'use "keyring:<entry name>"'),
        ('auth = "oauth"\nclient_id = "c"\nclient_secret = "keyring:"\n', 8, "keyring:"),
        ('auth = "header"\nclient_id = "c"\n', 4, 'only used with auth = "oauth"'),
        ('auth = "oauth"\nclient_secret = "keyring:x"\n', 4, "needs the client_id"),
        ('auth = "oauth"\nscopes = "read"\n', 7, "expected a list"),
    ],
)
def test_profile_oauth_keys_are_checked_with_file_and_line(
    extra: str, line: int, expected: str
) -> None:
    from lockgate.errors import ProfileError
    from lockgate.profile.model import parse_profile

    with pytest.raises(ProfileError) as e:
        parse_profile(PROFILE_HEAD + extra, "p.toml")
    assert str(e.value).startswith(f"p.toml:{line}: upstreams.a")
    assert expected in str(e.value)


def test_profile_oauth_keys_are_read() -> None:
    from lockgate.profile.model import parse_profile

    profile = parse_profile(
        PROFILE_HEAD
        + 'auth = "oauth"\nclient_id = "lockgate"\nclient_secret = "keyring:linear-client"\n'
        + 'scopes = ["read", "write"]\n',
        "p.toml",
    )
    up = profile.upstreams["a"]
    assert (up.client_id, up.client_secret, up.scopes) == (
        "lockgate",
        "keyring:linear-client",
        ("read", "write"),
    )
