"""`lockgate login`, `lockgate logout`, `lockgate whoami`: the user's own session with the
profile's identity provider, kept in the OS keyring (logic in lockgate.identity.session)."""

from __future__ import annotations

import asyncio
import json
import time
import webbrowser
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from lockgate.audit import log as audit
from lockgate.cli import views
from lockgate.cli._options import ProfileOption
from lockgate.errors import LockgateError
from lockgate.identity import cli_login, refresh
from lockgate.identity import session as core
from lockgate.identity.claims import local_user
from lockgate.identity.provider import OIDCError, Provider, discover
from lockgate.paths import audit_log_path
from lockgate.profile.model import IdentitySection, active_profile_path, load_profile


def _identity(profile: Path | None) -> IdentitySection:
    return load_profile(active_profile_path(profile)).identity


def _issuer(identity: IdentitySection) -> str:
    assert identity.issuer is not None  # the profile requires it for kind "oidc"
    return identity.issuer.rstrip("/")


def _client(identity: IdentitySection) -> refresh.IdpClient:
    return refresh.IdpClient(identity=identity, secret=core.client_secret(identity))


def _audit(out: Console, event: dict[str, Any]) -> None:
    """Record an auth event; say so when it waits for a running gateway to release the log."""
    try:
        where = cli_login.record_event(audit_log_path(), event)
    except (OSError, LockgateError) as e:
        out.print(f"[yellow]The audit log could not record {event['event']} ({e}).[/]")
        return
    if where == "pending":
        out.print(
            f"[dim]{event['event']} waits in {audit.pending_path(audit_log_path())} "
            "until the running gateway's log is next opened.[/]"
        )


def _local(out: Console, identity: IdentitySection, verb: str) -> None:
    out.print(
        f"This profile signs in as the local user [bold]{local_user()}[/] ([identity] kind = "
        f'"{identity.kind}"); there is nothing to {verb}.'
    )


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
    who = f"{session.sub} ({session.email})" if session.email else session.sub
    out.print(f"[green]Signed in[/] as [bold]{who}[/] at {session.issuer}.")
    if session.refresh_token is None:
        out.print(
            "[yellow]The provider gave no refresh token, so this session ends when its ID "
            'token expires; add "offline_access" to [identity] scopes to keep it.[/]'
        )


async def _browser(
    out: Console, provider: Provider, client: refresh.IdpClient, no_browser: bool
) -> core.IdpSession:
    def show(url: str) -> None:
        if no_browser or not webbrowser.open(url):
            out.print("Open this URL in your browser to sign in:")
            out.print(url, soft_wrap=True, markup=False, highlight=False)
        else:
            out.print("Your browser was opened to sign in; if it did not, open:")
            out.print(url, soft_wrap=True, markup=False, highlight=False)

    with out.status("Waiting for the sign-in to finish in the browser..."):
        return await cli_login.login_browser(provider, client, show=show)


async def _device(
    out: Console, provider: Provider, client: refresh.IdpClient, no_browser: bool
) -> core.IdpSession:
    grant = await cli_login.start_device(provider, client)
    out.print("To sign in, open:")
    out.print(grant.verification_uri, soft_wrap=True, markup=False, highlight=False)
    out.print(f"and enter the code [bold]{grant.user_code}[/]")
    out.print(f"user_code: {grant.user_code}", markup=False, highlight=False)
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
    told = "the provider revoked its refresh token" if revoked else "the provider was not told"
    out.print(f"Signed out [bold]{session.sub}[/] from {issuer} ({told}).")


def whoami(
    profile: ProfileOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show who you are signed in as, and whether the provider still honours the session.

    Example: lockgate whoami --json
    """
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
        out.print(f"[bold]{session.sub}[/]" + (f" <{session.email}>" if session.email else ""))
        out.print(f"  issuer:  {issuer}")
        out.print(f"  groups:  {', '.join(session.groups) or '(none)'}")
        ago = int(time.time() - session.refreshed_at)
        label = {
            "alive": "[green]alive[/]",
            "ended": "[red]ended by the provider: run `lockgate login`[/]",
            "unknown": "[yellow]unknown (the provider could not be reached)[/]",
        }[status]
        out.print(f"  session: {label} (last checked {ago} s ago)")
    if status == "ended":
        raise typer.Exit(1)


def _check(identity: IdentitySection, session: core.IdpSession) -> tuple[str, core.IdpSession]:
    """Ask the provider now (a refresh): whoami is the user's explicit check."""
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
