"""How `lockgate login`, `logout` and `whoami` talk to the user: the sign-in URL or code, the
result, the session's state, and the audit log's note when it could not record an event."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from lockgate.identity import cli_login
from lockgate.identity import session as core


def audit_failed(out: Console, event: dict[str, Any], error: Exception) -> None:
    out.print(f"[yellow]The audit log could not record {event['event']} ({error}).[/]")


def audit_pending(out: Console, event: dict[str, Any], pending: Path) -> None:
    out.print(
        f"[dim]{event['event']} waits in {pending} "
        "until the running gateway's log is next opened.[/]"
    )


def local(out: Console, user: str, kind: str, verb: str) -> None:
    out.print(
        f"This profile signs in as the local user [bold]{user}[/] ([identity] kind = "
        f'"{kind}"); there is nothing to {verb}.'
    )


def signed_in(out: Console, session: core.IdpSession) -> None:
    who = f"{session.sub} ({session.email})" if session.email else session.sub
    out.print(f"[green]Signed in[/] as [bold]{who}[/] at {session.issuer}.")
    if session.refresh_token is None:
        out.print(
            "[yellow]The provider gave no refresh token, so this session ends when its ID "
            'token expires; add "offline_access" to [identity] scopes to keep it.[/]'
        )


def browser_shower(out: Console, opened: Callable[[str], bool]) -> Callable[[str], None]:
    """What login_browser calls with the sign-in URL: open it (unless `opened` says no) and
    print it either way."""

    def show(url: str) -> None:
        if not opened(url):
            out.print("Open this URL in your browser to sign in:")
        else:
            out.print("Your browser was opened to sign in; if it did not, open:")
        out.print(url, soft_wrap=True, markup=False, highlight=False)

    return show


def device_code(out: Console, grant: cli_login.DeviceAuthorization) -> None:
    out.print("To sign in, open:")
    out.print(grant.verification_uri, soft_wrap=True, markup=False, highlight=False)
    out.print(f"and enter the code [bold]{grant.user_code}[/]")
    out.print(f"user_code: {grant.user_code}", markup=False, highlight=False)


def signed_out(out: Console, sub: str, issuer: str, revoked: bool) -> None:
    told = "the provider revoked its refresh token" if revoked else "the provider was not told"
    out.print(f"Signed out [bold]{sub}[/] from {issuer} ({told}).")


def whoami(out: Console, session: core.IdpSession, issuer: str, status: str) -> None:
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
