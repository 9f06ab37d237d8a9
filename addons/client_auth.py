"""The gateway as OAuth resource server toward MCP clients.

With `[identity] kind = "none"` (loopback only, enforced when the profile is
loaded) every request is the local user's. With `kind = "dev"` every request to
a route must carry a gateway access token for that route (signature, issuer,
expiry, audience = the route's URL); a missing or refused one gets a 401 whose
`WWW-Authenticate` points at the route's protected resource metadata. Whatever
the kind, the client's `Authorization` header never travels upstream: no token
passthrough.
"""

from __future__ import annotations

from mitmproxy import http

from lockgate import jsonrpc
from lockgate.addons._flow import answer_rpc_error, guarded, state
from lockgate.addons.config import Config
from lockgate.addons.oauth_server import OAuthServer
from lockgate.oauth import local_user
from lockgate.profile import AccessSection
from lockgate.routing import Route
from lockgate.tokens import AccessClaims, TokenError, verify_access_token


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
    def __init__(self, config: Config, oauth: OAuthServer | None = None) -> None:
        self.config = config
        self.oauth = oauth
        self.local_user = _local_user()

    @guarded
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        presented = flow.request.headers.get("authorization")
        # Strip first, whatever happens next: a client token must not reach an upstream.
        flow.request.headers.pop("authorization", None)
        flow.request.headers.pop("proxy-authorization", None)
        if flow.response is not None:
            return
        profile = self.config.profile
        assert profile is not None
        kind = profile.identity.kind
        st = state(flow)
        groups: tuple[str, ...] | None = None  # None: this kind knows no groups
        email: str | None = None
        if kind == "none":
            st.user = self.local_user
        elif kind in ("dev", "oidc"):
            if st.route is None:
                return  # the gateway's own endpoints: the OAuth server decides there
            claims = self._verify(flow, st.route, presented)
            if claims is None:
                return
            st.user = claims.sub
            email = claims.email
            # Only a provider vouches for groups; kind "dev" knows none.
            groups = claims.groups if kind == "oidc" else None
        else:
            raise RuntimeError(f"identity kind {kind!r} is not available")
        route = st.route
        user = st.user
        if route is not None and not self._allowed(route.config.access, user, email, groups):
            answer_rpc_error(
                flow,
                403,
                jsonrpc.INVALID_REQUEST,
                f"User {user!r} is not allowed on route {route.name!r}; "
                "ask whoever maintains the profile to add you to its access list.",
                outcome="denied",
            )

    def _verify(
        self, flow: http.HTTPFlow, route: Route, presented: str | None
    ) -> AccessClaims | None:
        """The token's claims, or None after answering 401."""
        if self.oauth is None:
            raise RuntimeError("identity kinds 'dev' and 'oidc' need the OAuth server addon")
        challenge = f'Bearer resource_metadata="{self.oauth.resource_metadata_url(route.name)}"'
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
                keys=self.oauth.signing_key(),
                audience=self.config.route_url(route.name),
                issuer=self.oauth.issuer,
            )
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

    @staticmethod
    def _allowed(
        access: AccessSection,
        user: str | None,
        email: str | None = None,
        groups: tuple[str, ...] | None = None,
    ) -> bool:
        """No lists: everyone. Otherwise the user (by sub or email) must be on `users`, or
        one of the provider's groups on `groups`. Kinds "none" and "dev" know no groups:
        there a group list admits nobody."""
        if user is None:
            return False
        if access.users is None and access.groups is None:
            return True
        if access.groups is not None and groups is None:
            return False
        if access.users is not None and (user in access.users or email in access.users):
            return True
        return access.groups is not None and bool(set(groups or ()) & set(access.groups))
