"""`lockgate login`, `lockgate logout`, `lockgate whoami`: the user's own session with the
profile's identity provider, kept in the OS keyring (logic in lockgate.identity.session)."""

from __future__ import annotations

import asyncio
import json
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lockgate.cli._options import ProfileOption

if TYPE_CHECKING:  # the OIDC client, pydantic and rich load when a command runs, not for --help
    from lockgate.cli.views import Console
    from lockgate.identity import refresh
    from lockgate.identity import session as core
    from lockgate.identity.provider import Provider
    from lockgate.profile.model import IdentitySection


def _identity(profile: Path | None) -> IdentitySection:
    from lockgate.profile.model import active_profile_path, load_profile

    return load_profile(active_profile_path(profile)).identity


def _issuer(identity: IdentitySection) -> str:
    assert identity.issuer is not None  # the profile requires it for kind "oidc"
    return identity.issuer.rstrip("/")


def _client(identity: IdentitySection) -> refresh.IdpClient:
    from lockgate.identity import refresh
    from lockgate.identity import session as core

    return refresh.IdpClient(identity=identity, secret=core.client_secret(identity))


def _audit(out: Console, event: dict[str, Any]) -> None:
    """Record an auth event; say so when it waits for a running gateway to release the log."""
    from lockgate.audit import log as audit
    from lockgate.cli.views import login as view
    from lockgate.errors import LockgateError
    from lockgate.identity import cli_login
    from lockgate.paths import audit_log_path

    try:
        where = cli_login.record_event(audit_log_path(), event)
    except (OSError, LockgateError) as e:
        view.audit_failed(out, event, e)
        return
    if where == "pending":
        view.audit_pending(out, event, audit.pending_path(audit_log_path()))


def _local(out: Console, identity: IdentitySection, verb: str) -> None:
    from lockgate.cli.views import login as view
    from lockgate.identity.claims import local_user

    view.local(out, local_user(), identity.kind, verb)


def login(
    profile: ProfileOption = None,
    device: bool = typer.Option(
        False, "--device", help="Sign in with a code on another device (RFC 8628)."
    ),
    no_browser: bool = typer.Option(
        False, "--no-browser", help="Print the sign-in URL instead of opening a browser."
    ),
) -> None:
    """Sign in with the profile's identity provider; the session is kept in the OS keyring.

    Example: lockgate login --profile ~/.config/lockgate/profile.toml
    """
    from lockgate.cli import views
    from lockgate.cli.views import login as view
    from lockgate.identity import session as core
    from lockgate.identity.provider import OIDCError, discover

    identity = _identity(profile)
    out = views.console()
    if identity.kind != "oidc":
        _local(out, identity, "sign in to")
        return
    client = _client(identity)
    method = "device" if device else "browser"

    async def run() -> core.IdpSession:
        provider = await discover(_issuer(identity))
        if device:
            return await _device(out, provider, client, no_browser)
        return await _browser(out, provider, client, no_browser)

    try:
        session = asyncio.run(run())
    except OIDCError as e:
        _audit(out, _event("auth.login", identity, outcome="denied", reason=e.message))
        raise
    core.save_session(session, make_current=True)
    _audit(out, _event("auth.login", identity, user=session.sub, method=method))
    view.signed_in(out, session)


async def _browser(
    out: Console, provider: Provider, client: refresh.IdpClient, no_browser: bool
) -> core.IdpSession:
    from lockgate.cli.views import login as view
    from lockgate.identity import cli_login

    show = view.browser_shower(out, lambda url: not no_browser and webbrowser.open(url))
    with out.status("Waiting for the sign-in to finish in the browser..."):
        return await cli_login.login_browser(provider, client, show=show)


async def _device(
    out: Console, provider: Provider, client: refresh.IdpClient, no_browser: bool
) -> core.IdpSession:
    from lockgate.cli.views import login as view
    from lockgate.identity import cli_login

    grant = await cli_login.start_device(provider, client)
    view.device_code(out, grant)
    if not no_browser:
        webbrowser.open(grant.verification_uri_complete or grant.verification_uri)
    minutes = max(1, round(grant.expires_in / 60))
    with out.status(f"Waiting for the approval (the code expires in {minutes} min)..."):
        return await cli_login.finish_device(provider, client, grant)


def _event(name: str, identity: IdentitySection, **fields: Any) -> dict[str, Any]:
    fields.setdefault("outcome", "success")
    return {"event": name, "issuer": _issuer(identity), **fields}


def logout(profile: ProfileOption = None) -> None:
    """End your session with the identity provider and forget it in the keyring.

    Example: lockgate logout
    """
    from lockgate.cli import views
    from lockgate.cli.views import login as view
    from lockgate.identity import refresh
    from lockgate.identity import session as core
    from lockgate.identity.provider import OIDCError, discover

    identity = _identity(profile)
    out = views.console()
    if identity.kind != "oidc":
        _local(out, identity, "sign out of")
        return
    issuer = _issuer(identity)
    session = core.current_session(issuer)
    if session is None:
        out.print(f"Not signed in to {issuer}.")
        return
    client = _client(identity)

    async def revoke() -> bool:
        try:
            provider = await discover(issuer)
        except OIDCError:
            return False
        return await refresh.revoke_session(provider, client, session)

    revoked = asyncio.run(revoke())
    core.delete_session(issuer, session.sub)
    _audit(out, _event("auth.logout", identity, user=session.sub, reason="user"))
    view.signed_out(out, session.sub, issuer, revoked)


def whoami(
    profile: ProfileOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show who you are signed in as, and whether the provider still honours the session.

    Example: lockgate whoami --json
    """
    from lockgate.cli import views
    from lockgate.cli.views import login as view
    from lockgate.identity import session as core
    from lockgate.identity.claims import local_user

    identity = _identity(profile)
    out = views.console()
    if identity.kind != "oidc":
        info: dict[str, Any] = {"kind": identity.kind, "sub": local_user(), "alive": True}
        if as_json:
            typer.echo(json.dumps(info))
        else:
            _local(out, identity, "check")
        return
    issuer = _issuer(identity)
    session = core.current_session(issuer)
    if session is None:
        if as_json:
            typer.echo(json.dumps({"kind": "oidc", "issuer": issuer, "signed_in": False}))
        else:
            out.print(f"Not signed in to {issuer}: run `lockgate login`.")
        raise typer.Exit(1)
    status, session = _check(identity, session)
    info = {
        "kind": "oidc",
        "issuer": issuer,
        "signed_in": status != "ended",
        "sub": session.sub,
        "email": session.email,
        "groups": list(session.groups),
        "alive": {"alive": True, "ended": False}.get(status),
        "status": status,
        "refreshed_at": session.refreshed_at,
    }
    if as_json:
        typer.echo(json.dumps(info))
    else:
        view.whoami(out, session, issuer, status)
    if status == "ended":
        raise typer.Exit(1)


def _check(identity: IdentitySection, session: core.IdpSession) -> tuple[str, core.IdpSession]:
    """Ask the provider now (a refresh): whoami is the user's explicit check."""
    from lockgate.identity import refresh
    from lockgate.identity.provider import OIDCError, discover

    client = _client(identity)

    async def run() -> core.IdpSession:
        provider = await discover(_issuer(identity))
        return await refresh.refresh_stored(provider, client, session, max_age=0)

    try:
        return "alive", asyncio.run(run())
    except refresh.SessionEnded:
        return "ended", session
    except OIDCError:
        return "unknown", session
