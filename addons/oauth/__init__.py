"""The gateway as OAuth 2.1 authorization server for MCP clients (kinds "dev" and "oidc").

Answers RFC 8414 and RFC 9728 metadata, dynamic client registration (RFC 7591), the
authorization endpoint with its consent page, the token endpoint (authorization code with
PKCE S256 and a resource indicator; rotated refresh tokens) and revocation (RFC 7009).
The router leaves `/.well-known/oauth-*` and `/oauth/*` to this addon when the profile
signs users in; everything here is answered by the gateway, nothing goes upstream.

One composite addon: `OAuthServer` dispatches, its children answer one concern each
(`register`, `authorize`, `token`; `documents` and `OIDCCallback` are async child hooks).
The state and the decisions are the core's (`lockgate.authserver.endpoints.AuthServer`,
`lockgate.authserver.grants`); each child gets an `OAuthContext`, never this parent.

With kind "dev" the user is the local user, signed in without an identity provider: the
profile only allows it on loopback. Audit events go through `FlowState.events`; none
carries a token, code, verifier or CSRF value.
"""

from __future__ import annotations

from collections.abc import Callable

from mitmproxy import http

from lockgate.addons._flow import answer, guarded, guarded_async, state
from lockgate.addons.oauth._http import CORS, PREFLIGHT, OAuthContext, page, refuse
from lockgate.addons.oauth.authorize import Authorization
from lockgate.addons.oauth.documents import ClientDocuments, cimd_client_id
from lockgate.addons.oauth.register import Registration
from lockgate.addons.oauth.token import Tokens
from lockgate.authserver.consent import message_page
from lockgate.authserver.endpoints import AuthServer
from lockgate.authserver.requests import OAuthError
from lockgate.policy.gateway import PR_METADATA, GatewayConfig, is_own_path
from lockgate.policy.routes import route_name_of

AS_METADATA = "/.well-known/oauth-authorization-server"
# Kind "oidc": endpoints that may ask the identity provider before they answer.
PROVIDER_FIRST = {"/oauth/authorize": "GET", "/oauth/token": "POST"}


class OAuthServer:
    def __init__(
        self,
        config: GatewayConfig,
        auth: AuthServer | None = None,
        *,
        connect_link: Callable[[str, str, str | None], str] | None = None,
    ) -> None:
        self.config = config
        self.auth = auth or AuthServer(config)
        ctx = OAuthContext(self.auth, config, self.answer_request, connect_link)
        self.registration = Registration(ctx)
        self.authorization = Authorization(ctx)
        self.tokens = Tokens(ctx)
        # mitmproxy dispatches to children after their parent: the callback needs an async
        # hook (it calls the provider's token endpoint without blocking the event loop).
        # Client ID metadata documents are fetched without blocking the loop: also a child.
        self.documents = ClientDocuments(ctx)
        self.addons = [OIDCCallback(self.config, self.authorization, self.tokens), self.documents]

    def done(self) -> None:
        self.auth.close()

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
            refuse(flow, path, e)

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
            answer(flow, 200, self.auth.as_metadata(), outcome="success", headers=CORS)
        elif path.startswith(PR_METADATA + "/"):
            self._only(method, "GET")
            name = route_name_of(path[len(PR_METADATA) :])
            if name is None or name not in self.config.routes:
                raise OAuthError("not_found", f"There is no route behind {path!r}.", 404)
            answer(flow, 200, self.auth.pr_metadata(name), outcome="success", headers=CORS)
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


class OIDCCallback:
    """Kind "oidc": `/oauth/callback`, and the provider's word before `/oauth/authorize`
    (the user `lockgate login` signed in) and the refresh_token grant (is the user's provider
    session still alive?); failing closed like every other hook."""

    def __init__(
        self,
        config: GatewayConfig,
        authorization: Authorization,
        tokens: Tokens,
    ) -> None:
        self.config = config
        self.authorization = authorization
        self.tokens = tokens

    @guarded_async
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or state(flow).route is not None:
            return
        profile = self.config.profile
        if profile is None or profile.identity.kind != "oidc":
            return
        path = flow.request.path.split("?", 1)[0]
        if path != "/oauth/callback":
            if PROVIDER_FIRST.get(path) != flow.request.method.upper():
                return
            try:
                if path == "/oauth/authorize":
                    await self.authorization.cli_session(flow)
                else:
                    await self.tokens.provider_check(flow)
            except OAuthError as e:
                refuse(flow, path, e)
                return
            if cimd_client_id(flow) is None:  # else ClientDocuments answers, next
                self.authorization.ctx.answer_request(flow)
            return
        try:
            await self.authorization.callback(flow)
        except OAuthError as e:
            page(flow, e.status, message_page("lockgate: sign-in refused", e.description))
            state(flow).outcome = "denied"
            state(flow).reason = e.description
