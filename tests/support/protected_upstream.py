"""An OAuth-protected MCP upstream for tests, built with the `mcp` SDK's server auth support.

Why it exists: issue 3 asks for a real upstream that follows the MCP authorization spec, so
that `lockgate connect` and the gateway's token injection are tested against someone else's
implementation. One process-local server on 127.0.0.1 is both:

- the authorization server (`mcp.server.auth` routes over an in-memory provider): RFC 8414
  metadata, dynamic client registration, an authorize step that approves at once (the
  test's "user" is always `alice`), PKCE S256 and the resource indicator checked by the
  SDK, rotating refresh tokens, revocation;
- the resource server (`MCPServer` with `AuthSettings`): 401 with `resource_metadata`,
  RFC 9728 metadata at the path-inserted well-known URL, tokens checked for this resource.

It records every bearer token presented to it and every token its authorization server
issued, so a test can prove the upstream only ever saw its own tokens. Knobs let a test
shorten the access token's life, revoke tokens, or refuse refreshes.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from lockgate.cli.demo.server import LOOPBACK_SECURITY, BackgroundServer
from lockgate.upstream.tokens import UpstreamTokens

SUBJECT = "alice"


@dataclass
class RecordingProvider:
    """An in-memory authorization server that approves every authorization request."""

    name: str
    access_ttl: int = 3600
    refuse_refresh: bool = False
    clients: dict[str, OAuthClientInformationFull] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    access: dict[str, AccessToken] = field(default_factory=dict)
    refresh: dict[str, RefreshToken] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)  # every access token ever issued
    issued_refresh: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)  # every bearer token presented
    authorizations: list[AuthorizationParams] = field(default_factory=list)
    refreshes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- knobs for tests ---

    def revoke_access_tokens(self) -> None:
        """The upstream forgets every access token (refresh tokens stay valid)."""
        with self.lock:
            self.access.clear()

    def revoke_everything(self) -> None:
        with self.lock:
            self.access.clear()
            self.refresh.clear()

    # --- the provider protocol ---

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id is not None
        self.clients[client_info.client_id] = client_info

    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        self.authorizations.append(params)
        code = secrets.token_urlsafe(32)
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=params.scopes or [],
            expires_at=time.time() + 300,
            client_id=client.client_id or "",
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
            subject=SUBJECT,
        )
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        return self.codes.get(authorization_code)

    def _issue(self, client_id: str, scopes: list[str], resource: str | None) -> OAuthToken:
        access = f"{self.name}-at-{secrets.token_urlsafe(24)}"
        refresh = f"{self.name}-rt-{secrets.token_urlsafe(24)}"
        with self.lock:
            self.access[access] = AccessToken(
                token=access,
                client_id=client_id,
                scopes=scopes,
                expires_at=int(time.time()) + self.access_ttl,
                resource=resource,
                subject=SUBJECT,
            )
            self.refresh[refresh] = RefreshToken(
                token=refresh, client_id=client_id, scopes=scopes, resource=resource
            )
            self.issued.append(access)
            self.issued_refresh.append(refresh)
        return OAuthToken(
            access_token=access,
            token_type="Bearer",
            expires_in=self.access_ttl,
            refresh_token=refresh,
            scope=" ".join(scopes) or None,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        if self.codes.pop(authorization_code.code, None) is None:
            raise TokenError(error="invalid_grant", error_description="code already used")
        return self._issue(
            authorization_code.client_id, authorization_code.scopes, authorization_code.resource
        )

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        if self.refuse_refresh:
            return None
        with self.lock:
            return self.refresh.get(refresh_token)

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        with self.lock:
            if self.refresh.pop(refresh_token.token, None) is None:
                raise TokenError(error="invalid_grant", error_description="refresh token reused")
            self.refreshes += 1
        return self._issue(
            refresh_token.client_id, scopes or refresh_token.scopes, refresh_token.resource
        )

    async def load_access_token(self, token: str) -> AccessToken | None:
        with self.lock:
            self.received.append(token)
            found = self.access.get(token)
        if found is None or (found.expires_at is not None and found.expires_at < time.time()):
            return None
        return found

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        with self.lock:
            self.access.pop(token.token, None)
            self.refresh.pop(token.token, None)


@dataclass
class ProtectedUpstream:
    url: str  # the MCP endpoint, http://127.0.0.1:PORT/mcp
    issuer: str
    provider: RecordingProvider

    def only_saw_own_tokens(self) -> bool:
        """Every bearer token presented here was issued by this upstream's own server."""
        issued = set(self.provider.issued)
        return all(token in issued for token in self.provider.received)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_protected_app(name: str, port: int, provider: RecordingProvider):  # type: ignore[no-untyped-def]
    base = f"http://127.0.0.1:{port}"
    server = MCPServer(
        name,
        auth_server_provider=provider,
        auth=AuthSettings(
            issuer_url=base,  # type: ignore[arg-type]
            resource_server_url=f"{base}/mcp",  # type: ignore[arg-type]
            validate_token_resource=True,
            client_registration_options=ClientRegistrationOptions(enabled=True),
            revocation_options=RevocationOptions(enabled=True),
        ),
    )

    @server.tool()
    def whoami() -> str:
        """Which upstream answered (each test upstream has its own name)."""
        return name

    @server.tool()
    def echo(text: str) -> str:
        """The text back."""
        return f"{name}: {text}"

    return server.streamable_http_app(
        streamable_http_path="/mcp", transport_security=LOOPBACK_SECURITY
    )


@contextmanager
def protected_upstream(name: str = "protected") -> Iterator[ProtectedUpstream]:
    """A fresh OAuth-protected upstream on 127.0.0.1 (its own authorization server)."""
    for _ in range(5):
        port = _free_port()
        provider = RecordingProvider(name=name)
        try:
            server = BackgroundServer(build_protected_app(name, port, provider), port=port)
            server.start()
        except (OSError, RuntimeError, SystemExit):  # the port was taken meanwhile: again
            continue
        try:
            base = f"http://127.0.0.1:{port}"
            yield ProtectedUpstream(url=f"{base}/mcp", issuer=base, provider=provider)
        finally:
            server.stop()
        return
    raise RuntimeError("could not start the protected upstream on a free port")


async def connect_directly(up: ProtectedUpstream, upstream: str = "up") -> UpstreamTokens:
    """Tokens for `up` obtained with lockgate's own client code (discovery, DCR, PKCE),
    the browser step walked with an HTTP client: for tests of what uses the tokens."""
    import httpx

    from lockgate.upstream import discovery, oauth, registration

    found = await discovery.discover(up.url, await discovery.probe(up.url))
    redirect_uri = f"http://127.0.0.1:9/connect/{upstream}/callback"
    client = await registration.register(found, redirect_uri=redirect_uri)
    pending = oauth.PendingConnects()
    state, challenge, record = pending.add(
        upstream=upstream, user=SUBJECT, discovery=found, client=client, redirect_uri=redirect_uri
    )
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(await oauth.authorization_url(record, state, challenge))
    location = answer.headers["location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    return await oauth.exchange_code(record, code)
