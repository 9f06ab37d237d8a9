"""The token endpoint's grants without mitmproxy: authorization code with PKCE, rotated refresh
tokens, and revocation (RFC 7009).

Why it exists: which tokens a request gets, and why one is refused, is the authorization
server's most security-relevant logic; `addons/oauth/token.py` only reads the form and sends
the answer. No token, code or verifier ever reaches an audit event or an error message.
"""

from __future__ import annotations

from typing import Any

from lockgate.authserver.endpoints import AuthServer
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


class TokenGrants:
    """The token endpoint (authorization code with PKCE, rotated refresh tokens) and
    revocation (RFC 7009). No token, code or verifier reaches an event or an error message."""

    def __init__(self, auth: AuthServer) -> None:
        self.auth = auth

    def token(
        self, form: dict[str, str], events: list[dict[str, Any]], fresh: UserClaims | None
    ) -> dict[str, Any]:
        """The token endpoint's answer body; OAuthError when refused (audited in `events`).
        `fresh`: with kind "oidc", the user's claims the provider check just read."""
        grant_type = form.get("grant_type")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise OAuthError(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token.",
            )
        client_id = form.get("client_id", "")
        if not client_id or self.auth.store().get_client(client_id) is None:
            self._refused(events, client_id, grant_type, "unknown_client")
            raise OAuthError(
                "invalid_client", "The client is not registered with this gateway.", 401
            )
        if grant_type == "authorization_code":
            return self._code_grant(events, parse_form(CodeTokenRequest, form))
        else:
            return self._refresh_grant(events, parse_form(RefreshTokenRequest, form), fresh)

    async def provider_check(
        self, form: dict[str, str], events: list[dict[str, Any]]
    ) -> UserClaims | None:
        """Kind "oidc", before a refresh_token grant rotates anything: the provider must still
        honour the user's session (asked again when the last answer is a few minutes old).
        Refused: the session and every grant of the user end. Unreachable: fail closed."""
        if form.get("grant_type") != "refresh_token":
            return None
        grant = self.auth.store().grant_of_refresh_token(form.get("refresh_token", ""))
        if grant is None or grant.revoked or grant.client_id != form.get("client_id"):
            return None  # the token endpoint refuses it with its own reason
        provider = self.auth.provider()
        try:
            # Always asked (max_age 0): the refreshed token carries the provider's claims
            # of now, never the groups it named at sign-in.
            session = await self.auth.keeper().fresh(provider, grant.user_sub, max_age=0)
        except SessionEnded:
            self.auth.store().revoke_user_grants(grant.user_sub)
            self.auth.event(
                events,
                "auth.logout",
                user=grant.user_sub,
                outcome="success",
                reason="provider_refused",
            )
            self._refused(events, grant.client_id, "refresh_token", "provider_refused")
            raise OAuthError(
                "invalid_grant",
                "The identity provider ended this user's session; sign in again.",
            ) from None
        except ProviderUnavailable:
            self._refused(events, grant.client_id, "refresh_token", "provider_unreachable")
            raise OAuthError(
                "temporarily_unavailable",
                "The identity provider could not confirm the session; try again later.",
                503,
            ) from None
        if session is None:
            self._refused(events, grant.client_id, "refresh_token", "no_provider_session")
            raise OAuthError(
                "invalid_grant",
                "The gateway holds no identity provider session for this user; sign in again.",
            )
        return session.user()

    def _code_grant(
        self, events: list[dict[str, Any]], request: CodeTokenRequest
    ) -> dict[str, Any]:
        try:
            grant = self.auth.codes.redeem(
                request.code,
                client_id=request.client_id,
                redirect_uri=request.redirect_uri,
                code_verifier=request.code_verifier,
            )
        except TokenError as e:
            if e.reason == "replayed_code" and e.grant_id is not None:
                self.auth.store().revoke_grant(e.grant_id)  # OAuth 2.1 section 4.1.3
            self._refused(events, request.client_id, "authorization_code", e.reason)
            raise OAuthError("invalid_grant", f"{e.message}.") from e
        if not request.resource:
            raise OAuthError("invalid_target", "The resource parameter is required.")
        if request.resource != grant.resource:
            self._refused(events, request.client_id, "authorization_code", "wrong_resource")
            raise OAuthError("invalid_target", "The resource differs from the authorized one.")
        route = self.auth.route_of_resource(grant.resource)
        if route is None:
            raise OAuthError("invalid_target", "The route no longer exists on this gateway.")
        record = self.auth.store().create_grant(
            user_sub=grant.user.sub,
            client_id=grant.client_id,
            route=route,
            scopes=grant.scope,
            email=grant.user.email,
            groups=grant.user.groups,
            roles=grant.user.roles,
            route_id=self.auth.config.routes[route].identity,
        )
        self.auth.codes.attach_grant(grant.code_id, record.grant_id)
        refresh: str | None = None
        if self._may_refresh(request.client_id):
            refresh = new_token()
            self.auth.store().add_refresh_token(record.grant_id, refresh, REFRESH_TOKEN_TTL)
        return self._tokens(
            events,
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
        client = self.auth.store().get_client(client_id)
        return client is not None and "refresh_token" in client.grant_types

    def _refresh_grant(
        self,
        events: list[dict[str, Any]],
        request: RefreshTokenRequest,
        fresh: UserClaims | None,
    ) -> dict[str, Any]:
        # Everything that can fail this request alone is checked before the refresh token is
        # rotated: a client retrying with it must not look like a replay.
        peeked = self.auth.store().grant_of_refresh_token(request.refresh_token)
        if peeked is not None and not peeked.revoked and peeked.client_id == request.client_id:
            if not self._may_refresh(request.client_id):
                self._refused(
                    events, request.client_id, "refresh_token", "grant_type_not_registered"
                )
                raise OAuthError(
                    "unauthorized_client",
                    "This client did not register the refresh_token grant; sign in again.",
                )
            if peeked.route not in self.auth.config.routes:
                raise OAuthError("invalid_target", "The route no longer exists on this gateway.")
            if peeked.route_id != self.auth.config.routes[peeked.route].identity:
                # The route points at another upstream now (a switched profile).
                self._refused(events, request.client_id, "refresh_token", "wrong_route")
                raise OAuthError(
                    "invalid_grant",
                    f"Route {peeked.route!r} points at another upstream than the one you "
                    "signed in for; sign in again.",
                )
            route_url = self.auth.config.route_url(peeked.route)
            if request.resource and request.resource != route_url:
                self._refused(events, request.client_id, "refresh_token", "wrong_resource")
                raise OAuthError("invalid_target", "The resource differs from the authorized one.")
            user = self._current_user(fresh, peeked)
            self._check_route_access(events, peeked, user)
        result = self.auth.store().use_refresh_token(
            request.refresh_token, client_id=request.client_id, keep_expiry=True
        )
        if not result.ok or result.grant is None or result.refresh_token is None:
            self._refused(events, request.client_id, "refresh_token", result.outcome)
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
        self.auth.store().update_grant_claims(
            grant.grant_id, email=user.email, groups=user.groups, roles=user.roles
        )
        return self._tokens(
            events,
            user,
            grant.client_id,
            grant.route,
            grant.scopes,
            result.refresh_token,
            "refresh_token",
            grant.grant_id,
        )

    def _current_user(self, fresh: UserClaims | None, grant: Grant) -> UserClaims:
        """Who the grant's user is now: with kind "oidc" what the provider just said (the
        provider check set it; missing: fail closed), else the grant's own claims."""
        profile = self.auth.config.profile
        if profile is None or profile.identity.kind != "oidc":
            return UserClaims(
                sub=grant.user_sub, email=grant.email, groups=grant.groups, roles=grant.roles
            )
        if not isinstance(fresh, UserClaims) or fresh.sub != grant.user_sub:
            raise RuntimeError("the refresh grant has no fresh claims from the provider")
        return fresh

    def _check_route_access(
        self, events: list[dict[str, Any]], grant: Grant, user: UserClaims
    ) -> None:
        """Re-run the route's access rules on the fresh claims; a user no longer admitted
        loses the grant (its access tokens stop working too) and gets invalid_grant. Item
        rules read the new token's groups on every request."""
        route = self.auth.config.routes[grant.route]
        profile = self.auth.config.profile
        provider = profile is not None and profile.identity.kind == "oidc"
        who = Principal(
            user.sub,
            user.email,
            groups=user.groups if provider else None,
            roles=user.roles if provider else None,
        )
        if RouteAccess(route.name, route.config.access, route.policy).admits_route(who):
            return
        self.auth.store().revoke_grant(grant.grant_id)
        self.auth.event(
            events,
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
        events: list[dict[str, Any]],
        user: UserClaims,
        client_id: str,
        route: str,
        scope: str,
        refresh: str | None,
        grant_type: str,
        grant_id: str,
    ) -> dict[str, Any]:
        access = issue_access_token(
            self.auth.signing_key(),
            issuer=self.auth.issuer,
            audience=self.auth.config.route_url(route),
            user=user,
            client_id=client_id,
            scope=scope,
            grant_id=grant_id,
            route_id=self.auth.config.routes[route].identity,
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
        self.auth.event(
            events,
            "auth.token_issued",
            client=client_id,
            route=route,
            user=user.sub,
            grant_type=grant_type,
        )
        return body

    def revoke(self, form: dict[str, str], events: list[dict[str, Any]]) -> None:
        request = parse_form(RevokeRequest, form)
        # Access tokens are short-lived JWTs the gateway does not track; a refresh token
        # revokes its whole grant. RFC 7009: the answer is 200 either way.
        revoked = "." not in request.token and self.auth.store().revoke_by_refresh_token(
            request.token, client_id=request.client_id
        )
        self.auth.event(
            events,
            "auth.token_revoked",
            client=request.client_id,
            outcome="success" if revoked else "error",
        )

    def _refused(
        self, events: list[dict[str, Any]], client_id: str, grant_type: str, reason: str
    ) -> None:
        self.auth.event(
            events,
            "auth.token_refused",
            client=client_id,
            grant_type=grant_type,
            outcome="denied",
            reason=reason,
        )
