"""The gateway's authorization server without mitmproxy: its state and its endpoints' decisions.

Why it exists: what the OAuth endpoints decide (which grant a token request gets, whether an
authorization request may go on, who signed in at the provider's callback) is pure logic over
the store, the code store and the identity provider. The `addons/oauth/` composite
translates flows to these calls and back; the resource server (ClientAuth) reads the same
`AuthServer` for the signing key and revoked grants, so no addon imports another.
Audit events are appended to the caller's list (a flow's `events`); none carries a token,
code, verifier or CSRF value.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from lockgate.authserver.codes import CodeStore
from lockgate.authserver.consent import PendingAuthorizations
from lockgate.authserver.keys import SigningKey, default_key_source, load_or_create_signing_key
from lockgate.authserver.requests import AuthorizeRequest, OAuthError, parse_form
from lockgate.authserver.store import Store
from lockgate.identity.browser import PendingLogins, Sessions
from lockgate.identity.claims import UserClaims, local_user
from lockgate.identity.provider import (
    OIDCError,
    Provider,
    exchange_code,
    verify_id_token,
)
from lockgate.identity.refresh import IdpClient, SessionKeeper, session_for
from lockgate.policy.access import scopes_supported
from lockgate.policy.gateway import GatewayConfig

GRANT_RECHECK = 5.0
_CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")
Events = list[dict[str, Any]]


class RedirectRefusal(Exception):
    """An authorization request refused after its redirect URI was checked: the error goes
    back to the client's registered redirect URI (RFC 6749 section 4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.fields: dict[str, Any] = {}  # the request's redirect_uri and state


class AuthServer:
    """The authorization server's state: store, codes, consents, sessions, signing key."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.codes = CodeStore()
        self.pending = PendingAuthorizations()
        self.user = UserClaims(sub=local_user())
        self._key: SigningKey | None = None
        self._store: Store | None = None
        self._grant_checks: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()
        # kind "oidc": the discovered provider (set by the gateway at start), its client
        # secret (read from the keyring at start), logins waiting for the provider's
        # callback, and the gateway's browser sessions.
        self.oidc: Provider | None = None
        self.oidc_secret: str | None = None
        self.logins = PendingLogins()
        self.sessions = Sessions()
        self._keeper: SessionKeeper | None = None  # the users' provider sessions (keyring)

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

    def close(self) -> None:
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

    def route_of_resource(self, resource: str) -> str | None:
        for name in self.config.routes:
            if resource == self.config.route_url(name):
                return name
        return None

    def as_metadata(self) -> dict[str, Any]:
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

    def pr_metadata(self, route: str) -> dict[str, Any]:
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

    def event(self, events: Events, event: str, **fields: Any) -> None:
        """An auth.* audit event; kinds other than "oidc" know only the local user."""
        profile = self.config.profile
        if profile is None or profile.identity.kind != "oidc":
            fields.setdefault("user", self.user.sub)
        fields.setdefault("outcome", "success")
        events.append({"event": event, **fields})

    # --- /oauth/authorize, /oauth/callback, /oauth/consent: the decisions ----------------

    def authorization_request(self, params: dict[str, str]) -> dict[str, Any]:
        """The consent step's fields for a valid `/oauth/authorize` request. OAuthError while
        the redirect URI is not trusted yet; RedirectRefusal (sent there) once it is."""
        request = parse_form(AuthorizeRequest, params)
        client = self.store().get_client(request.client_id)
        if client is None:
            raise OAuthError(
                "invalid_client",
                f"Client {request.client_id!r} is not registered with this gateway; "
                "let your MCP client register again.",
            )
        if request.redirect_uri not in client.redirect_uris:
            raise OAuthError(
                "invalid_request",
                "The redirect_uri is not one this client registered, so the gateway will not "
                "send anything there.",
            )
        # From here on, errors go back to the client's registered redirect URI.
        fields: dict[str, Any] = {
            "client_id": client.client_id,
            "client_name": client.client_name or client.client_id,
            "redirect_uri": request.redirect_uri,
            "state": request.state,
            "code_challenge": request.code_challenge,
            "resource": request.resource,
            "route": None,
            "scope": request.scope,
        }
        refusal = self._refusal(request)
        if isinstance(refusal, RedirectRefusal):
            refusal.fields = fields
            raise refusal
        fields["route"] = refusal
        return fields

    def _refusal(self, request: AuthorizeRequest) -> RedirectRefusal | str:
        """Why the request goes back refused, else the route it is for."""
        if request.response_type != "code":
            return RedirectRefusal("unsupported_response_type", "response_type must be code")
        if request.code_challenge_method != "S256" or not _CHALLENGE_RE.fullmatch(
            request.code_challenge
        ):
            return RedirectRefusal("invalid_request", "PKCE with S256 is required")
        if not request.resource:
            return RedirectRefusal("invalid_target", "the resource parameter is required")
        route = self.route_of_resource(request.resource)
        if route is None:
            return RedirectRefusal("invalid_target", "resource is not a route of this gateway")
        declared = self.route_scopes(route)
        unknown = [s for s in (request.scope or "").split() if s not in declared]
        if declared and unknown:
            # A route that declares scopes grants only those (a route without any: as asked).
            return RedirectRefusal(
                "invalid_scope",
                f"scope {unknown[0]!r} is not offered on route {route!r}; "
                f"it offers {' '.join(declared)}",
            )
        return route

    def remembered(self, fields: dict[str, Any], user: UserClaims, events: Events) -> str | None:
        """A code at once when the user approved this client on this route before."""
        client_id, route = fields["client_id"], fields["route"]
        identity = self.config.routes[route].identity
        if not self.store().is_approved(user.sub, client_id, route, identity):
            return None
        code = self.codes.issue(
            client_id=client_id,
            redirect_uri=fields["redirect_uri"],
            code_challenge=fields["code_challenge"],
            user=user,
            resource=fields["resource"],
            scope=fields["scope"],
        )
        self.event(
            events,
            "auth.consent",
            client=client_id,
            route=route,
            user=user.sub,
            outcome="success",
            remembered=True,
        )
        return code

    async def sign_in(self, login: Any, code: str, events: Events) -> tuple[UserClaims, str]:
        """`/oauth/callback`: the provider's code for the user, and their browser session."""
        profile = self.config.profile
        assert profile is not None
        identity = profile.identity
        provider = self.provider()
        try:
            body = await exchange_code(
                provider.metadata,
                code=code,
                redirect_uri=f"{self.issuer}/oauth/callback",
                verifier=login.verifier,
                client_id=identity.client_id or "",
                client_secret=self.oidc_secret,
            )

            user = await verify_id_token(
                provider,
                body["id_token"],
                client_id=identity.client_id or "",
                nonce=login.nonce,
                groups_claim=identity.groups_claim,
                roles_claim=identity.roles_claim,
            )
        except OIDCError as e:
            self.event(events, "auth.login", outcome="denied", reason=e.message)
            raise OAuthError("access_denied", f"{e.message}; sign in again.", 403) from None
        self.event(events, "auth.login", user=user.sub, outcome="success")
        # The provider's refresh token outlives the browser session: the gateway asks the
        # provider again before it refreshes this user's grants (the token endpoint).
        await self.keeper().put(
            session_for(provider.metadata.issuer, identity.client_id or "", user, body)
        )
        return user, self.sessions.create(user)

    def approve(self, pending: Any, events: Events) -> str:
        """The user approved the consent form: remembered, and the code to send back."""
        route = self.config.routes.get(pending.route)
        if route is None:
            raise OAuthError("invalid_target", "The route no longer exists on this gateway.", 403)
        self.store().approve_client(
            pending.user.sub, pending.client_id, pending.route, route.identity
        )
        code = self.codes.issue(
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            code_challenge=pending.code_challenge,
            user=pending.user,
            resource=pending.resource,
            scope=pending.scope,
        )
        self.event(events, "auth.consent", **pending.audit_fields(), outcome="success")
        return code
