"""lockgate.upstream.discovery: MCP authorization discovery, and every metadata URL it refuses.

Why it exists: the gateway follows URLs a third party chose. These tests serve the
upstream's metadata from real HTTP servers on 127.0.0.1 and check that discovery walks the
MCP spec's order (and stops at the first document found), that every metadata URL pointing
at a private address, redirecting into one, or not being http(s) at all is refused before
anything is sent there, and that a server without PKCE S256 is refused.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.upstream import discovery
from lockgate.upstream._errors import UpstreamOAuthError
from tests.core.upstream.metadata_docs import Docs, docs_server


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


@pytest.mark.anyio
async def test_an_upstream_that_answers_without_a_token_is_not_oauth() -> None:
    with docs_server() as docs:
        docs.json("/mcp", {"jsonrpc": "2.0", "id": 0, "result": {}})
        with pytest.raises(UpstreamOAuthError, match="does not ask for OAuth"):
            await discovery.probe(f"{docs.base}/mcp")
