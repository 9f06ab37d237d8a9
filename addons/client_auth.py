"""The gateway as OAuth resource server toward MCP clients.

With `[identity] kind = "none"` (loopback only, enforced when the profile is
loaded) every request is the local user's. With `kind = "dev"` every request to
a route must carry a gateway access token for that route (signature, issuer,
expiry, audience = the route's URL); a missing or refused one gets a 401 whose
`WWW-Authenticate` points at the route's protected resource metadata. Whatever
the kind, the client's `Authorization` header never travels upstream: no token
passthrough.

Access decisions (lockgate/policy/access.py): the route's `access` lists admit the user or answer
403; a token lacking the route's `access.scopes` gets 403 `insufficient_scope` with the
scopes to ask for; the user's view of the route (what their item rules hide) is attached to
the flow for the capabilities addon, which filters lists and refuses calls with it.
"""

from __future__ import annotations

import hmac

from mitmproxy import http

from lockgate.addons._flow import answer_rpc_error, drop_headers, guarded, refuse_scope, state
from lockgate.authserver.endpoints import AuthServer
from lockgate.authserver.tokens import AccessClaims, TokenError, verify_access_token
from lockgate.identity.claims import local_user
from lockgate.mcp import jsonrpc
from lockgate.mcp.exchange import FlowAccess
from lockgate.policy.access import Principal, RouteAccess, missing_scopes
from lockgate.policy.gateway import GatewayConfig
from lockgate.policy.routes import Route


def _local_user() -> str:
    return local_user()


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


class ClientAuth:
    def __init__(self, config: GatewayConfig, auth: AuthServer | None = None) -> None:
        self.config = config
        self.auth = auth
        self.local_user = _local_user()
        # Per route: its compiled access rules, rebuilt when the profile's route changes.
        self._access: dict[str, tuple[Route, RouteAccess]] = {}

    def route_access(self, route: Route) -> RouteAccess:
        cached = self._access.get(route.name)
        if cached is not None and cached[0] is route:
            return cached[1]
        built = RouteAccess(route.name, route.config.access, route.policy)
        self._access[route.name] = (route, built)
        return built

    @guarded
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        presented = flow.request.headers.get("authorization")
        # Strip first, whatever happens next: a client token must not reach an upstream.
        drop_headers(flow.request.headers, ("authorization", "proxy-authorization"))
        if flow.response is not None:
            return
        profile = self.config.profile
        assert profile is not None
        kind = profile.identity.kind
        st = state(flow)
        if kind == "none":
            st.user = self.local_user
            # No token, no provider: no groups, no roles, no scopes.
            who = Principal(self.local_user)
        elif kind in ("dev", "oidc"):
            if st.route is None:
                return  # the gateway's own endpoints: the OAuth server decides there
            claims = self._verify(flow, st.route, presented)
            if claims is None:
                return
            st.user = claims.sub
            # Only a provider vouches for groups and roles; kind "dev" knows none.
            provider = kind == "oidc"
            who = Principal(
                claims.sub,
                claims.email,
                groups=claims.groups if provider else None,
                roles=claims.roles if provider else None,
                scopes=frozenset(claims.scope.split()),
            )
        else:
            raise RuntimeError(f"identity kind {kind!r} is not available")
        route = st.route
        if route is None:
            return
        access = self.route_access(route)
        if not access.admits_route(who):
            answer_rpc_error(
                flow,
                403,
                jsonrpc.INVALID_REQUEST,
                f"User {who.user!r} is not allowed on route {route.name!r}; "
                "ask whoever maintains the profile to add you to its access list.",
                outcome="denied",
            )
            return
        fa = FlowAccess(
            who,
            access,
            access.policy_for(who),
            None if kind == "none" or self.auth is None else self._metadata_url(route),
        )
        st.access = fa
        missing = missing_scopes(access.scopes, who)
        if missing:
            refuse_scope(flow, fa, access.scopes, f"Route {route.name!r}")

    def _metadata_url(self, route: Route) -> str:
        return self.config.resource_metadata_url(route.name)

    def _verify(
        self, flow: http.HTTPFlow, route: Route, presented: str | None
    ) -> AccessClaims | None:
        """The token's claims, or None after answering 401."""
        if self.auth is None:
            raise RuntimeError("identity kinds 'dev' and 'oidc' need the authorization server")
        challenge = f'Bearer resource_metadata="{self.config.resource_metadata_url(route.name)}"'
        scopes = self.route_access(route).scopes
        if scopes:
            # MCP scope selection: a client asks for what the challenge names.
            challenge += f', scope="{" ".join(scopes)}"'
        if presented is None:
            self._refuse(
                flow,
                route,
                challenge,
                "missing",
                "This route needs a gateway "
                "access token; let your MCP client sign in (it discovers how from this "
                "answer).",
            )
            return None
        token = bearer_token(presented)
        try:
            if token is None:
                raise TokenError("malformed")
            claims = verify_access_token(
                token,
                keys=self.auth.signing_key(),
                audience=self.config.route_url(route.name),
                issuer=self.auth.issuer,
            )
            if claims.rid is None or not hmac.compare_digest(claims.rid, route.identity):
                raise TokenError("wrong_route")  # the route points elsewhere now
            if claims.gid is not None and self.auth.grant_revoked(claims.gid):
                raise TokenError("grant_revoked")
        except TokenError as e:
            self._refuse(
                flow,
                route,
                f'{challenge}, error="invalid_token", '
                f'error_description="{e.message.replace(chr(34), chr(39))}"',
                e.reason,
                f"{e.message}; let your MCP client sign in again.",
            )
            return None
        st = state(flow)
        st.client = claims.client_id
        return claims

    @staticmethod
    def _refuse(
        flow: http.HTTPFlow, route: Route, challenge: str, reason: str, message: str
    ) -> None:
        st = state(flow)
        st.events.append(
            {
                "event": "auth.token_refused",
                "route": route.name,
                "outcome": "denied",
                "reason": reason,
            }
        )
        answer_rpc_error(
            flow,
            401,
            jsonrpc.INVALID_REQUEST,
            message,
            outcome="denied",
            headers={"www-authenticate": challenge},
        )
