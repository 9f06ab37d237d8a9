"""The gateway as OAuth 2.1 authorization server for MCP clients (kinds "dev" and "oidc").

Answers RFC 8414 and RFC 9728 metadata, dynamic client registration (RFC 7591), the
authorization endpoint with its consent page, the token endpoint (authorization code with
PKCE S256 and a resource indicator; rotated refresh tokens) and revocation (RFC 7009).
The router leaves `/.well-known/oauth-*` and `/oauth/*` to this addon when the profile
signs users in; everything here is answered by the gateway, nothing goes upstream.

This module holds the state (store, codes, sessions, signing key), the metadata and the
dispatch; `oauth_register`, `oauth_authorize` and `oauth_tokens` answer their endpoints.

With kind "dev" the user is the local user, signed in without an identity provider: the
profile only allows it on loopback. Audit events go through `FlowState.events`; none
carries a token, code, verifier or CSRF value.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from mitmproxy import http

from lockgate.addons._flow import answer, guarded, guarded_async, state
from lockgate.addons.oauth_authorize import Authorization
from lockgate.addons.oauth_cimd import ClientDocuments, cimd_client_id
from lockgate.addons.oauth_common import CORS, NO_STORE, PREFLIGHT, add_event, page
from lockgate.addons.oauth_register import Registration
from lockgate.addons.oauth_tokens import Tokens
from lockgate.authserver.codes import CodeStore
from lockgate.authserver.consent import PendingAuthorizations, UpstreamRow, message_page
from lockgate.authserver.keys import SigningKey, default_key_source, load_or_create_signing_key
from lockgate.authserver.requests import OAuthError
from lockgate.authserver.store import Store
from lockgate.errors import KeyringUnavailable, SecretMissing
from lockgate.identity.browser import PendingLogins, Sessions
from lockgate.identity.claims import UserClaims, local_user
from lockgate.identity.provider import Provider
from lockgate.identity.refresh import IdpClient, SessionKeeper
from lockgate.policy.access import scopes_supported
from lockgate.policy.gateway import GatewayConfig, is_own_path
from lockgate.policy.routes import route_name_of
from lockgate.upstream import secrets

if TYPE_CHECKING:
    from lockgate.addons.connect import Connect


AS_METADATA = "/.well-known/oauth-authorization-server"
PR_METADATA = "/.well-known/oauth-protected-resource"
GRANT_RECHECK = 5.0


class OAuthServer:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.codes = CodeStore()
        self.pending = PendingAuthorizations()
        self.user = UserClaims(sub=local_user())
        self._key: SigningKey | None = None
        self._store: Store | None = None
        self._grant_checks: dict[str, tuple[float, bool]] = {}
        self.connect: Connect | None = None  # set by the pipeline: the consent page's links
        self._lock = threading.Lock()
        # kind "oidc": the discovered provider (set by the gateway at start), its client
        # secret (read from the keyring at start), logins waiting for the provider's
        # callback, and the gateway's browser sessions.
        self.oidc: Provider | None = None
        self.oidc_secret: str | None = None
        self.logins = PendingLogins()
        self.sessions = Sessions()
        self._keeper: SessionKeeper | None = None  # the users' provider sessions (keyring)
        # mitmproxy dispatches to children after their parent: the callback needs an async
        # hook (it calls the provider's token endpoint without blocking the event loop).
        # Client ID metadata documents are fetched without blocking the loop: also a child.
        self.documents = ClientDocuments(self)
        self.addons = [OIDCCallback(self), self.documents]
        self.registration = Registration(self)
        self.authorization = Authorization(self)
        self.tokens = Tokens(self)

    # --- state built once, on first use -------------------------------------------------

    @property
    def issuer(self) -> str:
        return self.config.base_url

    def signing_key(self) -> SigningKey:
        """The keyring's signing key; an unreadable keyring raises, and the hook fails closed."""
        with self._lock:
            if self._key is None:
                profile = self.config.profile
                setting = profile.identity.signing_key if profile is not None else "keyring"
                self._key = load_or_create_signing_key(default_key_source(setting))
            return self._key

    def keeper(self) -> SessionKeeper:
        """The provider sessions, created once the gateway has read its client secret."""
        profile = self.config.profile
        assert profile is not None
        with self._lock:
            if self._keeper is None:
                self._keeper = SessionKeeper(IdpClient(profile.identity, self.oidc_secret))
            return self._keeper

    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = Store.open()
            return self._store

    def done(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def grant_revoked(self, grant_id: str) -> bool:
        """Whether an access token's grant is gone (revoked, or its user's provider session
        ended): the token is refused at once instead of living out its 15 minutes. A live
        grant is re-read at most every GRANT_RECHECK seconds; a revoked one stays revoked."""
        now = time.monotonic()
        hit = self._grant_checks.get(grant_id)
        if hit is not None and (hit[1] or now - hit[0] < GRANT_RECHECK):
            return hit[1]
        grant = self.store().get_grant(grant_id)
        revoked = grant is None or grant.revoked
        if len(self._grant_checks) > 10_000:
            self._grant_checks.clear()
        self._grant_checks[grant_id] = (now, revoked)
        return revoked

    def upstream_row(self, route: str, user: str, *, return_to: str | None) -> UpstreamRow | None:
        """What the consent page says about the route's upstream. A keyring read (a few ms,
        on an interactive page); a keyring that cannot be read is shown, not raised."""
        profile = self.config.profile
        section = profile.routes.get(route) if profile is not None else None
        if profile is None or section is None:
            return None
        name = section.upstream
        auth = profile.upstreams[name].auth
        if auth == "none":
            return UpstreamRow(name, "no credential needed")
        if auth == "header":
            try:
                held = secrets.has_secret(name)
            except (KeyringUnavailable, SecretMissing):
                held = False
            state_ = "secret set" if held else f"secret missing (run lockgate secret set {name})"
            return UpstreamRow(name, state_)
        if self.connect is None:
            return UpstreamRow(name, "needs connect")
        state_ = self.connect.connection_state(name, user)
        if state_ == "connected":
            return UpstreamRow(name, "connected")
        link = self.connect.connect_link(name, user, return_to)
        return UpstreamRow(name, state_, link, new_tab=return_to is None)

    def resource_metadata_url(self, route: str) -> str:
        return self.config.resource_metadata_url(route)

    def route_of_resource(self, resource: str) -> str | None:
        for name in self.config.routes:
            if resource == self.config.route_url(name):
                return name
        return None

    # --- dispatch -----------------------------------------------------------------------

    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or state(flow).route is not None:
            return
        profile = self.config.profile
        assert profile is not None
        path = flow.request.path.split("?", 1)[0]
        method = flow.request.method.upper()
        if profile.identity.kind == "none" or not is_own_path(path):
            raise RuntimeError(f"the router passed {path!r} on to the OAuth server")
        if profile.identity.kind == "oidc" and (
            path == "/oauth/callback" or PROVIDER_FIRST.get(path) == method
        ):
            return  # answered by OIDCCallback, the child hook that runs right after this one
        if cimd_client_id(flow) is not None:
            return  # ClientDocuments, an async child hook, fetches the document first
        self.answer_request(flow)

    def answer_request(self, flow: http.HTTPFlow) -> None:
        """Dispatch to the endpoint; an OAuthError becomes a page or a JSON error."""
        path = flow.request.path.split("?", 1)[0]
        try:
            self._dispatch(flow, flow.request.method.upper(), path)
        except OAuthError as e:
            self.refuse(flow, path, e)

    def refuse(self, flow: http.HTTPFlow, path: str, e: OAuthError) -> None:
        if path in ("/oauth/authorize", "/oauth/consent"):
            page(flow, e.status, message_page("lockgate: sign-in refused", e.description))
        else:
            answer(
                flow,
                e.status,
                e.body(),
                outcome="denied",
                reason=e.description,
                headers={**NO_STORE, **CORS},
            )
        state(flow).outcome = "denied"
        state(flow).reason = e.description

    def _dispatch(self, flow: http.HTTPFlow, method: str, path: str) -> None:
        gets = {
            "/oauth/authorize": self.authorization.authorize,
        }
        posts = {
            "/oauth/register": self.registration.register,
            "/oauth/consent": self.authorization.consent,
            "/oauth/token": self.tokens.token,
            "/oauth/revoke": self.tokens.revoke,
        }
        if method == "OPTIONS" and path != "/oauth/consent":
            flow.response = http.Response.make(204, b"", PREFLIGHT)
            state(flow).local = True
            state(flow).outcome = "success"
            return
        if path == AS_METADATA or path.startswith(AS_METADATA + "/"):
            self._only(method, "GET")
            if path != AS_METADATA and route_name_of(path[len(AS_METADATA) :]) is None:
                raise OAuthError("not_found", f"Nothing is served at {path!r}.", 404)
            answer(flow, 200, self._as_metadata(), outcome="success", headers=CORS)
        elif path.startswith(PR_METADATA + "/"):
            self._only(method, "GET")
            name = route_name_of(path[len(PR_METADATA) :])
            if name is None or name not in self.config.routes:
                raise OAuthError("not_found", f"There is no route behind {path!r}.", 404)
            answer(flow, 200, self._pr_metadata(name), outcome="success", headers=CORS)
        elif path in gets:
            self._only(method, "GET")
            gets[path](flow)
        elif path in posts:
            self._only(method, "POST")
            posts[path](flow)
        else:
            raise OAuthError("not_found", f"Nothing is served at {path!r}.", 404)

    @staticmethod
    def _only(method: str, allowed: str) -> None:
        if method != allowed:
            raise OAuthError("invalid_request", f"Use {allowed} here, not {method}.", 405)

    # --- metadata -----------------------------------------------------------------------

    def _as_metadata(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "registration_endpoint": f"{base}/oauth/register",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": True,
        }

    def _pr_metadata(self, route: str) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "resource": self.config.route_url(route),
            "authorization_servers": [self.issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": f"lockgate route {route}",
        }
        scopes = self.route_scopes(route)
        if scopes:
            metadata["scopes_supported"] = list(scopes)
        return metadata

    def route_scopes(self, route: str) -> tuple[str, ...]:
        """The scopes a route declares (`access.scopes` and its rules'); none: any scope."""
        profile = self.config.profile
        section = profile.routes.get(route) if profile is not None else None
        return scopes_supported(section.access) if section is not None else ()

    def provider(self) -> Provider:
        if self.oidc is None:
            raise OAuthError(
                "temporarily_unavailable",
                "The gateway has not loaded its identity provider; restart it.",
                503,
            )
        return self.oidc

    @property
    def secure(self) -> bool:
        return self.issuer.startswith("https://")

    async def callback(self, flow: http.HTTPFlow) -> None:
        await self.authorization.callback(flow)

    def event(self, flow: http.HTTPFlow, event: str, **fields: Any) -> None:
        profile = self.config.profile
        if profile is None or profile.identity.kind != "oidc":
            fields.setdefault("user", self.user.sub)
        add_event(flow, event, **fields)


# Kind "oidc": endpoints that may ask the identity provider before they answer.
PROVIDER_FIRST = {"/oauth/authorize": "GET", "/oauth/token": "POST"}


class OIDCCallback:
    """Kind "oidc": `/oauth/callback`, and the provider's word before `/oauth/authorize`
    (the user `lockgate login` signed in) and the refresh_token grant (is the user's provider
    session still alive?); failing closed like every other hook."""

    def __init__(self, server: OAuthServer) -> None:
        self.server = server

    @guarded_async
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or state(flow).route is not None:
            return
        profile = self.server.config.profile
        if profile is None or profile.identity.kind != "oidc":
            return
        path = flow.request.path.split("?", 1)[0]
        if path != "/oauth/callback":
            if PROVIDER_FIRST.get(path) != flow.request.method.upper():
                return
            try:
                if path == "/oauth/authorize":
                    await self.server.authorization.cli_session(flow)
                else:
                    await self.server.tokens.provider_check(flow)
            except OAuthError as e:
                self.server.refuse(flow, path, e)
                return
            if cimd_client_id(flow) is None:  # else ClientDocuments answers, next
                self.server.answer_request(flow)
            return
        try:
            await self.server.callback(flow)
        except OAuthError as e:
            page(flow, e.status, message_page("lockgate: sign-in refused", e.description))
            state(flow).outcome = "denied"
            state(flow).reason = e.description
