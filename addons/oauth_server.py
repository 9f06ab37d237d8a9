"""The gateway as OAuth 2.1 authorization server for MCP clients (`[identity] kind = "dev"`).

Answers RFC 8414 and RFC 9728 metadata, dynamic client registration (RFC 7591), the
authorization endpoint with its consent page, the token endpoint (authorization code with
PKCE S256 and a resource indicator; rotated refresh tokens) and revocation (RFC 7009).
The router leaves `/.well-known/oauth-*` and `/oauth/*` to this addon when the profile
signs users in; everything here is answered by the gateway, nothing goes upstream.

With kind "dev" the user is the local user, signed in without an identity provider: the
profile only allows it on loopback. Audit events go through `FlowState.events`; none
carries a token, code, verifier or CSRF value.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from mitmproxy import http

from lockgate.addons._flow import answer, fail_closed, guarded, state
from lockgate.addons.config import Config
from lockgate.oauth import (
    REFRESH_TOKEN_TTL,
    AuthorizeRequest,
    CodeTokenRequest,
    OAuthError,
    PendingAuthorizations,
    RefreshTokenRequest,
    RevokeRequest,
    consent_page,
    local_user,
    message_page,
    parse_form,
    parse_registration,
    single_values,
)
from lockgate.oidc import (
    LOGIN_COOKIE,
    LOGIN_TTL,
    OIDCError,
    PendingLogins,
    Provider,
    Sessions,
    cookie_value,
    exchange_code,
    fetch_keys,
    login_cookie,
    session_cookie,
    validate_id_token,
)
from lockgate.routing import route_name_of
from lockgate.store import Store, new_token
from lockgate.tokens import (
    ACCESS_TOKEN_TTL,
    CodeStore,
    SigningKey,
    TokenError,
    UserClaims,
    default_key_source,
    issue_access_token,
    load_or_create_signing_key,
)

logger = logging.getLogger(__name__)

AS_METADATA = "/.well-known/oauth-authorization-server"
PR_METADATA = "/.well-known/oauth-protected-resource"
OWN_PREFIXES = ("/.well-known/", "/oauth/")

_CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
# What a browser may do with a page of ours: nothing but show it, never inside a frame.
PAGE_HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    # same-origin, not no-referrer: with no-referrer Chromium posts the consent form with
    # `Origin: null`, which Guard refuses. The redirect to the client carries no referrer.
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    **NO_STORE,
}
# Browser-based MCP clients read metadata and call register/token/revoke cross-origin.
CORS = {"access-control-allow-origin": "*"}
PREFLIGHT = {
    **CORS,
    "access-control-allow-methods": "GET, POST, OPTIONS",
    "access-control-allow-headers": "content-type, mcp-protocol-version",
    "access-control-max-age": "600",
}


def is_own_path(path: str) -> bool:
    """Paths this addon answers when the profile signs users in."""
    return path.startswith(OWN_PREFIXES)


class OAuthServer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.codes = CodeStore()
        self.pending = PendingAuthorizations()
        self.user = UserClaims(sub=local_user())
        self._key: SigningKey | None = None
        self._store: Store | None = None
        self._lock = threading.Lock()
        # kind "oidc": the discovered provider (set by the gateway at start), its client
        # secret (read from the keyring at start), logins waiting for the provider's
        # callback, and the gateway's browser sessions.
        self.oidc: Provider | None = None
        self.oidc_secret: str | None = None
        self.logins = PendingLogins()
        self.sessions = Sessions()
        # mitmproxy dispatches to children after their parent: the callback needs an async
        # hook (it calls the provider's token endpoint without blocking the event loop).
        self.addons = [OIDCCallback(self)]

    # --- state built once, on first use -------------------------------------------------

    @property
    def issuer(self) -> str:
        return self.config.base_url

    def signing_key(self) -> SigningKey:
        """The keyring's signing key; an unreadable keyring raises, and the hook fails closed."""
        with self._lock:
            if self._key is None:
                self._key = load_or_create_signing_key(default_key_source())
            return self._key

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

    def resource_metadata_url(self, route: str) -> str:
        return f"{self.config.base_url}{PR_METADATA}/mcp/{route}"

    def _route_of_resource(self, resource: str) -> str | None:
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
        if path == "/oauth/callback" and profile.identity.kind == "oidc":
            return  # answered by OIDCCallback, the child hook that runs right after this one
        try:
            self._dispatch(flow, method, path)
        except OAuthError as e:
            page = path == "/oauth/authorize" or path == "/oauth/consent"
            if page:
                self._page(flow, e.status, message_page("lockgate: sign-in refused", e.description))
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
            "/oauth/authorize": self._authorize,
        }
        posts = {
            "/oauth/register": self._register,
            "/oauth/consent": self._consent,
            "/oauth/token": self._token,
            "/oauth/revoke": self._revoke,
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
            "client_id_metadata_document_supported": False,
        }

    def _pr_metadata(self, route: str) -> dict[str, Any]:
        return {
            "resource": self.config.route_url(route),
            "authorization_servers": [self.issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": f"lockgate route {route}",
        }

    # --- registration -------------------------------------------------------------------

    def _register(self, flow: http.HTTPFlow) -> None:
        try:
            data = json.loads(flow.request.get_content(strict=False) or b"")
        except (ValueError, UnicodeDecodeError) as e:
            raise OAuthError(
                "invalid_client_metadata", "The registration body is not a JSON object."
            ) from e
        if not isinstance(data, dict):
            raise OAuthError(
                "invalid_client_metadata", "The registration body is not a JSON object."
            )
        request = parse_registration(data)
        client = self.store().register_client(
            redirect_uris=request.redirect_uris,
            client_name=request.client_name,
            grant_types=request.grant_types,
            token_endpoint_auth_method="none",
            metadata={"scope": request.scope} if request.scope else {},
        )
        self._event(
            flow,
            "auth.client_registered",
            client=client.client_id,
            client_name=client.client_name,
            redirect_uris=list(client.redirect_uris),
        )
        body: dict[str, Any] = {
            "client_id": client.client_id,
            "client_id_issued_at": int(client.created_at),
            "redirect_uris": list(client.redirect_uris),
            "grant_types": list(client.grant_types),
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        if client.client_name is not None:
            body["client_name"] = client.client_name
        if request.scope:
            body["scope"] = request.scope
        answer(flow, 201, body, outcome="success", headers={**NO_STORE, **CORS})

    # --- authorization ------------------------------------------------------------------

    def _authorize(self, flow: http.HTTPFlow) -> None:
        query = flow.request.path.split("?", 1)[1] if "?" in flow.request.path else ""
        params = single_values(parse_qs(query, keep_blank_values=True))
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
        redirect = _Redirect(request.redirect_uri, request.state, self.issuer)
        if request.response_type != "code":
            return redirect.error(flow, "unsupported_response_type", "response_type must be code")
        if request.code_challenge_method != "S256" or not _CHALLENGE_RE.fullmatch(
            request.code_challenge
        ):
            return redirect.error(flow, "invalid_request", "PKCE with S256 is required")
        if not request.resource:
            return redirect.error(flow, "invalid_target", "the resource parameter is required")
        route = self._route_of_resource(request.resource)
        if route is None:
            return redirect.error(flow, "invalid_target", "resource is not a route of this gateway")
        fields: dict[str, Any] = {
            "client_id": client.client_id,
            "client_name": client.client_name or client.client_id,
            "redirect_uri": request.redirect_uri,
            "state": request.state,
            "code_challenge": request.code_challenge,
            "resource": request.resource,
            "route": route,
            "scope": request.scope,
        }
        profile = self.config.profile
        assert profile is not None
        if profile.identity.kind == "oidc":
            user = self.sessions.get(cookie_value(flow.request.headers.get("cookie")))
            if user is None:
                return self._to_provider(flow, fields)
        else:
            user = self.user
        self._continue(flow, fields, user)

    def _continue(self, flow: http.HTTPFlow, fields: dict[str, Any], user: UserClaims) -> None:
        """The signed-in user's next step: a remembered approval, else the consent page."""
        redirect = _Redirect(fields["redirect_uri"], fields["state"], self.issuer)
        client_id, route = fields["client_id"], fields["route"]
        if self.store().is_approved(user.sub, client_id, route):
            code = self.codes.issue(
                client_id=client_id,
                redirect_uri=fields["redirect_uri"],
                code_challenge=fields["code_challenge"],
                user=user,
                resource=fields["resource"],
                scope=fields["scope"],
            )
            self._event(
                flow,
                "auth.consent",
                client=client_id,
                route=route,
                user=user.sub,
                outcome="success",
                remembered=True,
            )
            return redirect.send(flow, {"code": code})
        request_id, pending = self.pending.add(**fields, user=user)
        self._page(flow, 200, consent_page(request_id, pending, "/oauth/consent"))

    # --- kind "oidc": the browser goes through the identity provider ---------------------

    def provider(self) -> Provider:
        if self.oidc is None:
            raise OAuthError(
                "temporarily_unavailable",
                "The gateway has not loaded its identity provider; restart it.",
                503,
            )
        return self.oidc

    def _to_provider(self, flow: http.HTTPFlow, fields: dict[str, Any]) -> None:
        profile = self.config.profile
        assert profile is not None
        identity = profile.identity
        metadata = self.provider().metadata
        login_state, login = self.logins.add(fields)
        params = {
            "response_type": "code",
            "client_id": identity.client_id or "",
            "redirect_uri": f"{self.issuer}/oauth/callback",
            "scope": " ".join(identity.scopes),
            "state": login_state,
            "nonce": login.nonce,
            "code_challenge": login.challenge,
            "code_challenge_method": "S256",
        }
        endpoint = metadata.authorization_endpoint
        sep = "&" if urlsplit(endpoint).query else "?"
        st = state(flow)
        st.local = True
        st.outcome = "success"
        flow.response = http.Response.make(
            302,
            b"",
            {
                "location": f"{endpoint}{sep}{urlencode(params)}",
                "set-cookie": login_cookie(login.browser, LOGIN_TTL, secure=self._secure),
                **NO_STORE,
            },
        )

    @property
    def _secure(self) -> bool:
        return self.issuer.startswith("https://")

    async def callback(self, flow: http.HTTPFlow) -> None:
        """`/oauth/callback`: the provider's answer; on success, the consent step."""
        if flow.request.method.upper() != "GET":
            raise OAuthError("invalid_request", "Use GET here.", 405)
        query = flow.request.path.split("?", 1)[1] if "?" in flow.request.path else ""
        params = single_values(parse_qs(query, keep_blank_values=True))
        browser = cookie_value(flow.request.headers.get("cookie"), LOGIN_COOKIE)
        login = self.logins.take(params["state"], browser) if params.get("state") else None
        if login is None:
            self._event(flow, "auth.login", outcome="denied", reason="unknown_state")
            raise OAuthError(
                "access_denied",
                "This sign-in is unknown, already finished or expired; "
                "start it again from your MCP client.",
                400,
            )
        fields = login.request
        redirect = _Redirect(fields["redirect_uri"], fields["state"], self.issuer)
        if "error" in params or not params.get("code"):
            self._event(flow, "auth.login", outcome="denied", reason="provider_refused")
            return redirect.error(flow, "access_denied", "the identity provider refused sign-in")
        profile = self.config.profile
        assert profile is not None
        identity = profile.identity
        provider = self.provider()
        try:
            body = await exchange_code(
                provider.metadata,
                code=params["code"],
                redirect_uri=f"{self.issuer}/oauth/callback",
                verifier=login.verifier,
                client_id=identity.client_id or "",
                client_secret=self.oidc_secret,
            )
            check = {
                "issuer": provider.metadata.issuer,
                "client_id": identity.client_id or "",
                "nonce": login.nonce,
                "groups_claim": identity.groups_claim,
            }
            try:
                user = validate_id_token(body["id_token"], provider.keys, **check)
            except OIDCError:
                # The provider may have rotated its keys: fetch them once, then decide.
                provider.keys = await fetch_keys(provider.metadata)
                user = validate_id_token(body["id_token"], provider.keys, **check)
        except OIDCError as e:
            self._event(flow, "auth.login", outcome="denied", reason=e.message)
            raise OAuthError("access_denied", f"{e.message}; sign in again.", 403) from None
        self._event(flow, "auth.login", user=user.sub, outcome="success")
        sid = self.sessions.create(user)
        self._continue(flow, fields, user)
        assert flow.response is not None
        flow.response.headers.set_all(
            "set-cookie",
            [
                session_cookie(sid, self.sessions.ttl, secure=self._secure),
                login_cookie("", 0, secure=self._secure),  # spent: the browser drops it
            ],
        )

    def _consent(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        own = {self.issuer.lower(), f"http://{(req.host_header or '').lower()}"}
        origin = (req.headers.get("origin") or "").rstrip("/").lower()
        fetch_site = req.headers.get("sec-fetch-site")
        if origin not in own or (fetch_site is not None and fetch_site != "same-origin"):
            raise OAuthError(
                "access_denied",
                "The consent form was not sent from this gateway's own page, so it was refused.",
                403,
            )
        try:
            form = parse_qs(
                (req.get_content(strict=False) or b"").decode("utf-8"), keep_blank_values=True
            )
        except UnicodeDecodeError as e:
            raise OAuthError("invalid_request", "The consent form is not UTF-8.", 403) from e
        fields = single_values(form)
        pending = self.pending.take(fields.get("request", ""), fields.get("csrf", ""))
        redirect = _Redirect(pending.redirect_uri, pending.state, self.issuer)
        if fields.get("decision") != "approve":
            self._event(
                flow,
                "auth.consent",
                client=pending.client_id,
                route=pending.route,
                user=pending.user.sub,
                outcome="denied",
            )
            return redirect.error(flow, "access_denied", "the user denied access")
        self.store().approve_client(pending.user.sub, pending.client_id, pending.route)
        code = self.codes.issue(
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            code_challenge=pending.code_challenge,
            user=pending.user,
            resource=pending.resource,
            scope=pending.scope,
        )
        self._event(
            flow,
            "auth.consent",
            client=pending.client_id,
            route=pending.route,
            user=pending.user.sub,
            outcome="success",
        )
        redirect.send(flow, {"code": code})

    # --- tokens -------------------------------------------------------------------------

    def _form(self, flow: http.HTTPFlow) -> dict[str, str]:
        try:
            text = (flow.request.get_content(strict=False) or b"").decode("utf-8")
        except UnicodeDecodeError as e:
            raise OAuthError("invalid_request", "The request body is not UTF-8.") from e
        return single_values(parse_qs(text, keep_blank_values=True))

    def _token(self, flow: http.HTTPFlow) -> None:
        form = self._form(flow)
        grant_type = form.get("grant_type")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise OAuthError(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token.",
            )
        client_id = form.get("client_id", "")
        if not client_id or self.store().get_client(client_id) is None:
            self._refused(flow, client_id, grant_type, "unknown_client")
            raise OAuthError(
                "invalid_client", "The client is not registered with this gateway.", 401
            )
        if grant_type == "authorization_code":
            self._code_grant(flow, parse_form(CodeTokenRequest, form))
        else:
            self._refresh_grant(flow, parse_form(RefreshTokenRequest, form))

    def _code_grant(self, flow: http.HTTPFlow, request: CodeTokenRequest) -> None:
        try:
            grant = self.codes.redeem(
                request.code,
                client_id=request.client_id,
                redirect_uri=request.redirect_uri,
                code_verifier=request.code_verifier,
            )
        except TokenError as e:
            if e.reason == "replayed_code" and e.grant_id is not None:
                self.store().revoke_grant(e.grant_id)  # OAuth 2.1 section 4.1.3
            self._refused(flow, request.client_id, "authorization_code", e.reason)
            raise OAuthError("invalid_grant", f"{e.message}.") from e
        if not request.resource:
            raise OAuthError("invalid_target", "The resource parameter is required.")
        if request.resource != grant.resource:
            self._refused(flow, request.client_id, "authorization_code", "wrong_resource")
            raise OAuthError("invalid_target", "The resource differs from the authorized one.")
        route = self._route_of_resource(grant.resource)
        if route is None:
            raise OAuthError("invalid_target", "The route no longer exists on this gateway.")
        record = self.store().create_grant(
            user_sub=grant.user.sub,
            client_id=grant.client_id,
            route=route,
            scopes=grant.scope,
            email=grant.user.email,
            groups=grant.user.groups,
        )
        self.codes.attach_grant(grant.code_id, record.grant_id)
        refresh = new_token()
        self.store().add_refresh_token(record.grant_id, refresh, REFRESH_TOKEN_TTL)
        self._tokens(
            flow, grant.user, grant.client_id, route, grant.scope, refresh, "authorization_code"
        )

    def _refresh_grant(self, flow: http.HTTPFlow, request: RefreshTokenRequest) -> None:
        result = self.store().use_refresh_token(
            request.refresh_token, client_id=request.client_id, ttl=REFRESH_TOKEN_TTL
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
        route_url = self.config.route_url(grant.route)
        if grant.route not in self.config.routes:
            raise OAuthError("invalid_target", "The route no longer exists on this gateway.")
        if request.resource and request.resource != route_url:
            raise OAuthError("invalid_target", "The resource differs from the authorized one.")
        user = UserClaims(sub=grant.user_sub, email=grant.email, groups=grant.groups)
        self._tokens(
            flow,
            user,
            grant.client_id,
            grant.route,
            grant.scopes,
            result.refresh_token,
            "refresh_token",
        )

    def _tokens(
        self,
        flow: http.HTTPFlow,
        user: UserClaims,
        client_id: str,
        route: str,
        scope: str,
        refresh: str,
        grant_type: str,
    ) -> None:
        access = issue_access_token(
            self.signing_key(),
            issuer=self.issuer,
            audience=self.config.route_url(route),
            user=user,
            client_id=client_id,
            scope=scope,
        )
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_TTL,
            "refresh_token": refresh,
        }
        if scope:
            body["scope"] = scope
        self._event(
            flow,
            "auth.token_issued",
            client=client_id,
            route=route,
            user=user.sub,
            grant_type=grant_type,
        )
        answer(flow, 200, body, outcome="success", headers={**NO_STORE, **CORS})

    def _revoke(self, flow: http.HTTPFlow) -> None:
        request = parse_form(RevokeRequest, self._form(flow))
        # Access tokens are short-lived JWTs the gateway does not track; a refresh token
        # revokes its whole grant. RFC 7009: the answer is 200 either way.
        revoked = "." not in request.token and self.store().revoke_by_refresh_token(
            request.token, client_id=request.client_id
        )
        self._event(
            flow,
            "auth.token_revoked",
            client=request.client_id,
            outcome="success" if revoked else "error",
        )
        answer(flow, 200, {}, outcome="success", headers={**NO_STORE, **CORS})

    # --- answers ------------------------------------------------------------------------

    def _refused(self, flow: http.HTTPFlow, client_id: str, grant_type: str, reason: str) -> None:
        self._event(
            flow,
            "auth.token_refused",
            client=client_id,
            grant_type=grant_type,
            outcome="denied",
            reason=reason,
        )

    def _event(self, flow: http.HTTPFlow, event: str, **fields: Any) -> None:
        profile = self.config.profile
        if profile is None or profile.identity.kind != "oidc":
            fields.setdefault("user", self.user.sub)
        fields.setdefault("outcome", "success")
        state(flow).events.append({"event": event, **fields})

    @staticmethod
    def _page(flow: http.HTTPFlow, status: int, text: str) -> None:
        st = state(flow)
        st.local = True
        st.outcome = "success" if status < 400 else "denied"
        flow.response = http.Response.make(status, text.encode("utf-8"), PAGE_HEADERS)


class _Redirect:
    """The authorization response, sent to the client's registered redirect URI."""

    def __init__(self, uri: str, client_state: str | None, issuer: str) -> None:
        self.uri = uri
        self.state = client_state
        self.issuer = issuer

    def send(self, flow: http.HTTPFlow, params: dict[str, str]) -> None:
        if self.state is not None:
            params["state"] = self.state
        params["iss"] = self.issuer  # RFC 9207
        sep = "&" if urlsplit(self.uri).query else "?"
        st = state(flow)
        st.local = True
        st.outcome = st.outcome or ("denied" if "error" in params else "success")
        flow.response = http.Response.make(
            302, b"", {"location": f"{self.uri}{sep}{urlencode(params)}", **NO_STORE}
        )

    def error(self, flow: http.HTTPFlow, error: str, description: str) -> None:
        state(flow).outcome = "denied"
        state(flow).reason = description
        self.send(flow, {"error": error, "error_description": description})


class OIDCCallback:
    """`/oauth/callback` for kind "oidc", failing closed like every other hook."""

    def __init__(self, server: OAuthServer) -> None:
        self.server = server

    async def request(self, flow: http.HTTPFlow) -> None:
        try:
            if flow.response is not None or state(flow).route is not None:
                return
            profile = self.server.config.profile
            if profile is None or profile.identity.kind != "oidc":
                return
            if flow.request.path.split("?", 1)[0] != "/oauth/callback":
                return
            try:
                await self.server.callback(flow)
            except OAuthError as e:
                OAuthServer._page(
                    flow, e.status, message_page("lockgate: sign-in refused", e.description)
                )
                state(flow).outcome = "denied"
                state(flow).reason = e.description
        except Exception as e:  # the fail-closed boundary, as in `guarded`
            logger.error(
                "lockgate: OIDCCallback.request failed (%s); the exchange was refused",
                type(e).__name__,
            )
            fail_closed(flow, "OIDCCallback.request", "request")
