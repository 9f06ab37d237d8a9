"""lockgate.upstream.registration: a preregistered client, and a client ID metadata document
where the authorization server supports one (against the `mcp` SDK's server)."""

from __future__ import annotations

import pytest

from lockgate.upstream import discovery, registration
from lockgate.upstream._errors import UpstreamOAuthError
from tests.core.upstream.metadata_docs import docs_server
from tests.support.protected_upstream import protected_upstream


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
