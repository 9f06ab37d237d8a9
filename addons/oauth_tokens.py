"""The token endpoint (authorization code with PKCE, rotated refresh tokens) and revocation
(RFC 7009). No token, code or verifier ever reaches an audit event or an error message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mitmproxy import http

from lockgate.addons._flow import answer
from lockgate.addons.oauth_common import CORS, NO_STORE, form_params
from lockgate.authserver.requests import (
    CodeTokenRequest,
    OAuthError,
    RefreshTokenRequest,
    RevokeRequest,
    parse_form,
)
from lockgate.authserver.store import Grant, new_token
from lockgate.authserver.tokens import (
    ACCESS_TOKEN_TTL,
    REFRESH_TOKEN_TTL,
    TokenError,
    issue_access_token,
)
from lockgate.identity.claims import UserClaims
from lockgate.identity.refresh import ProviderUnavailable, SessionEnded
from lockgate.policy.access import Principal, RouteAccess

if TYPE_CHECKING:
    from lockgate.addons.oauth_server import OAuthServer

# flow.metadata: the user's claims as the provider said them just now (kind "oidc").
FRESH_CLAIMS = "lockgate.fresh_claims"


class Tokens:
    def __init__(self, server: OAuthServer) -> None:
        self.server = server

    def token(self, flow: http.HTTPFlow) -> None:
        form = form_params(flow)
        grant_type = form.get("grant_type")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise OAuthError(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token.",
            )
        client_id = form.get("client_id", "")
        if not client_id or self.server.store().get_client(client_id) is None:
            self._refused(flow, client_id, grant_type, "unknown_client")
            raise OAuthError(
                "invalid_client", "The client is not registered with this gateway.", 401
            )
        if grant_type == "authorization_code":
            self._code_grant(flow, parse_form(CodeTokenRequest, form))
        else:
            self._refresh_grant(flow, parse_form(RefreshTokenRequest, form))

    async def provider_check(self, flow: http.HTTPFlow) -> None:
        """Kind "oidc", before a refresh_token grant rotates anything: the provider must still
        honour the user's session (asked again when the last answer is a few minutes old).
        Refused: the session and every grant of the user end. Unreachable: fail closed."""
        form = form_params(flow)
        if form.get("grant_type") != "refresh_token":
            return
        grant = self.server.store().grant_of_refresh_token(form.get("refresh_token", ""))
        if grant is None or grant.revoked or grant.client_id != form.get("client_id"):
            return  # the token endpoint refuses it with its own reason
        provider = self.server.provider()
        try:
            # Always asked (max_age 0): the refreshed token carries the provider's claims
            # of now, never the groups it named at sign-in.
            session = await self.server.keeper().fresh(provider, grant.user_sub, max_age=0)
        except SessionEnded:
            self.server.store().revoke_user_grants(grant.user_sub)
            self.server.event(
                flow,
                "auth.logout",
                user=grant.user_sub,
                outcome="success",
                reason="provider_refused",
            )
            self._refused(flow, grant.client_id, "refresh_token", "provider_refused")
            raise OAuthError(
                "invalid_grant",
                "The identity provider ended this user's session; sign in again.",
            ) from None
        except ProviderUnavailable:
            self._refused(flow, grant.client_id, "refresh_token", "provider_unreachable")
            raise OAuthError(
                "temporarily_unavailable",
                "The identity provider could not confirm the session; try again later.",
                503,
            ) from None
        if session is None:
            self._refused(flow, grant.client_id, "refresh_token", "no_provider_session")
            raise OAuthError(
                "invalid_grant",
                "The gateway holds no identity provider session for this user; sign in again.",
            )
        flow.metadata[FRESH_CLAIMS] = session.user()

    def _code_grant(self, flow: http.HTTPFlow, request: CodeTokenRequest) -> None:
        try:
            grant = self.server.codes.redeem(
                request.code,
                client_id=request.client_id,
                redirect_uri=request.redirect_uri,
                code_verifier=request.code_verifier,
            )
        except TokenError as e:
            if e.reason == "replayed_code" and e.grant_id is not None:
                self.server.store().revoke_grant(e.grant_id)  # OAuth 2.1 section 4.1.3
            self._refused(flow, request.client_id, "authorization_code", e.reason)
            raise OAuthError("invalid_grant", f"{e.message}.") from e
        if not request.resource:
            raise OAuthError("invalid_target", "The resource parameter is required.")
        if request.resource != grant.resource:
            self._refused(flow, request.client_id, "authorization_code", "wrong_resource")
            raise OAuthError("invalid_target", "The resource differs from the authorized one.")
        route = self.server.route_of_resource(grant.resource)
        if route is None:
            raise OAuthError("invalid_target", "The route no longer exists on this gateway.")
        record = self.server.store().create_grant(
            user_sub=grant.user.sub,
            client_id=grant.client_id,
            route=route,
            scopes=grant.scope,
            email=grant.user.email,
            groups=grant.user.groups,
            roles=grant.user.roles,
            route_id=self.server.config.routes[route].identity,
        )
        self.server.codes.attach_grant(grant.code_id, record.grant_id)
        refresh: str | None = None
        if self._may_refresh(request.client_id):
            refresh = new_token()
            self.server.store().add_refresh_token(record.grant_id, refresh, REFRESH_TOKEN_TTL)
        self._tokens(
            flow,
            grant.user,
            grant.client_id,
            route,
            grant.scope,
            refresh,
            "authorization_code",
            record.grant_id,
        )

    def _may_refresh(self, client_id: str) -> bool:
        """Whether the client registered the refresh_token grant (RFC 7591 grant_types)."""
        client = self.server.store().get_client(client_id)
        return client is not None and "refresh_token" in client.grant_types

    def _refresh_grant(self, flow: http.HTTPFlow, request: RefreshTokenRequest) -> None:
        # Everything that can fail this request alone is checked before the refresh token is
        # rotated: a client retrying with it must not look like a replay.
        peeked = self.server.store().grant_of_refresh_token(request.refresh_token)
        if peeked is not None and not peeked.revoked and peeked.client_id == request.client_id:
            if not self._may_refresh(request.client_id):
                self._refused(flow, request.client_id, "refresh_token", "grant_type_not_registered")
                raise OAuthError(
                    "unauthorized_client",
                    "This client did not register the refresh_token grant; sign in again.",
                )
            if peeked.route not in self.server.config.routes:
                raise OAuthError("invalid_target", "The route no longer exists on this gateway.")
            if peeked.route_id != self.server.config.routes[peeked.route].identity:
                # The route points at another upstream now (a switched profile).
                self._refused(flow, request.client_id, "refresh_token", "wrong_route")
                raise OAuthError(
                    "invalid_grant",
                    f"Route {peeked.route!r} points at another upstream than the one you "
                    "signed in for; sign in again.",
                )
            route_url = self.server.config.route_url(peeked.route)
            if request.resource and request.resource != route_url:
                self._refused(flow, request.client_id, "refresh_token", "wrong_resource")
                raise OAuthError("invalid_target", "The resource differs from the authorized one.")
            user = self._current_user(flow, peeked)
            self._check_route_access(flow, peeked, user)
        result = self.server.store().use_refresh_token(
            request.refresh_token, client_id=request.client_id, keep_expiry=True
        )
        if not result.ok or result.grant is None or result.refresh_token is None:
            self._refused(flow, request.client_id, "refresh_token", result.outcome)
            if result.outcome == "reused":
                raise OAuthError(
                    "invalid_grant",
                    "This refresh token was already used, so its grant is revoked; sign in again.",
                )
            raise OAuthError(
                "invalid_grant", f"The refresh token is {result.outcome}; sign in again."
            )
        grant = result.grant
        if peeked is None or peeked.grant_id != grant.grant_id:
            raise RuntimeError("the refresh token's grant changed while it was checked")
        self.server.store().update_grant_claims(
            grant.grant_id, email=user.email, groups=user.groups, roles=user.roles
        )
        self._tokens(
            flow,
            user,
            grant.client_id,
            grant.route,
            grant.scopes,
            result.refresh_token,
            "refresh_token",
            grant.grant_id,
        )

    def _current_user(self, flow: http.HTTPFlow, grant: Grant) -> UserClaims:
        """Who the grant's user is now: with kind "oidc" what the provider just said (the
        provider check set it; missing: fail closed), else the grant's own claims."""
        profile = self.server.config.profile
        if profile is None or profile.identity.kind != "oidc":
            return UserClaims(
                sub=grant.user_sub, email=grant.email, groups=grant.groups, roles=grant.roles
            )
        fresh = flow.metadata.get(FRESH_CLAIMS)
        if not isinstance(fresh, UserClaims) or fresh.sub != grant.user_sub:
            raise RuntimeError("the refresh grant has no fresh claims from the provider")
        return fresh

    def _check_route_access(self, flow: http.HTTPFlow, grant: Grant, user: UserClaims) -> None:
        """Re-run the route's access rules on the fresh claims; a user no longer admitted
        loses the grant (its access tokens stop working too) and gets invalid_grant. Item
        rules read the new token's groups on every request."""
        route = self.server.config.routes[grant.route]
        profile = self.server.config.profile
        provider = profile is not None and profile.identity.kind == "oidc"
        who = Principal(
            user.sub,
            user.email,
            groups=user.groups if provider else None,
            roles=user.roles if provider else None,
        )
        if RouteAccess(route.name, route.config.access, route.policy).admits_route(who):
            return
        self.server.store().revoke_grant(grant.grant_id)
        self.server.event(
            flow,
            "auth.token_refused",
            client=grant.client_id,
            route=grant.route,
            user=user.sub,
            grant_type="refresh_token",
            outcome="denied",
            reason="route_access",
        )
        raise OAuthError(
            "invalid_grant",
            f"User {user.sub!r} is no longer allowed on route {grant.route!r}; "
            "ask whoever maintains the profile for access, then sign in again.",
        )

    def _tokens(
        self,
        flow: http.HTTPFlow,
        user: UserClaims,
        client_id: str,
        route: str,
        scope: str,
        refresh: str | None,
        grant_type: str,
        grant_id: str,
    ) -> None:
        access = issue_access_token(
            self.server.signing_key(),
            issuer=self.server.issuer,
            audience=self.server.config.route_url(route),
            user=user,
            client_id=client_id,
            scope=scope,
            grant_id=grant_id,
            route_id=self.server.config.routes[route].identity,
        )
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_TTL,
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        if scope:
            body["scope"] = scope
        self.server.event(
            flow,
            "auth.token_issued",
            client=client_id,
            route=route,
            user=user.sub,
            grant_type=grant_type,
        )
        answer(flow, 200, body, outcome="success", headers={**NO_STORE, **CORS})

    def revoke(self, flow: http.HTTPFlow) -> None:
        request = parse_form(RevokeRequest, form_params(flow))
        # Access tokens are short-lived JWTs the gateway does not track; a refresh token
        # revokes its whole grant. RFC 7009: the answer is 200 either way.
        revoked = "." not in request.token and self.server.store().revoke_by_refresh_token(
            request.token, client_id=request.client_id
        )
        self.server.event(
            flow,
            "auth.token_revoked",
            client=request.client_id,
            outcome="success" if revoked else "error",
        )
        answer(flow, 200, {}, outcome="success", headers={**NO_STORE, **CORS})

    def _refused(self, flow: http.HTTPFlow, client_id: str, grant_type: str, reason: str) -> None:
        self.server.event(
            flow,
            "auth.token_refused",
            client=client_id,
            grant_type=grant_type,
            outcome="denied",
            reason=reason,
        )
