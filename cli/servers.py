"""`lockgate servers`: the catalog of the active profile's routes and their credential state."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lockgate.cli._options import ProfileOption
from lockgate.cli.views import console
from lockgate.profile.model import Profile, active_profile_path, load_profile
from lockgate.upstream.catalog import ServerEntry, catalog
from lockgate.upstream.state import SignedIn, keyring_lookup, signed_in

_STATE_STYLE = {
    "none_needed": "green",
    "secret_set": "green",
    "connected": "green",
    "secret_missing": "red",
    "needs_connect": "yellow",
    "sign_in_first": "yellow",
    "keyring_unavailable": "red",
}


def servers_table(entries: Sequence[ServerEntry]) -> Table:
    """One row per route: route, upstream and its URL, credential state, the route's URL."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in ("route", "upstream", "upstream URL", "state", "route URL"):
        table.add_column(header, no_wrap=True, overflow="fold")
    for e in entries:
        table.add_row(
            e.route,
            e.upstream,
            e.upstream_url,
            Text(e.state.text, style=_STATE_STYLE.get(e.state.kind, "")),
            e.route_url,
        )
    return table


def server_line(entry: ServerEntry) -> str:
    """One plain line per route for pipes."""
    return (
        f"{entry.route} -> {entry.upstream} ({entry.upstream_url}) "
        f"[{entry.state.text}] {entry.route_url}"
    )


def user_line(profile: Profile, who: SignedIn) -> str:
    """Whom the oauth states are for, in one line above the list."""
    if who.problem is not None:
        return f"signed-in user unknown: {who.problem.text}"
    if profile.identity.kind != "oidc":
        return f"local user {who.shown} (identity kind {profile.identity.kind})"
    if who.user is None:
        return "nobody signed in: run `lockgate login`"
    return f"signed in as {who.shown}"


def user_json(profile: Profile, who: SignedIn) -> dict[str, object] | None:
    """The "user" of --json: whose upstream tokens the states are about, or null."""
    if who.user is None:
        return None
    return {"sub": who.user.sub, "email": who.user.email, "identity": profile.identity.kind}


def print_servers(con: Console, entries: Sequence[ServerEntry], header: str | None = None) -> None:
    """An optional header line, then a table on a terminal or plain lines when piped; then
    one fix per upstream that needs one."""
    if header is not None:
        con.print(Text(header), soft_wrap=True)
    if con.is_terminal:
        con.print(servers_table(entries))
    else:
        for entry in entries:
            con.print(Text(server_line(entry)), soft_wrap=True)
    fixes = {e.upstream: e.state for e in entries if not e.state.ready and e.state.fix}
    for upstream, state in sorted(fixes.items()):
        con.print(Text(f"{upstream}: {state.text}; fix: {state.fix}"), soft_wrap=True)


def servers(
    profile: ProfileOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list instead of a table.")
    ] = False,
) -> None:
    """List the routes of the active profile: upstream, credential state and route URL.

    The state is "no credential needed", "secret set" / "secret missing" (auth header),
    or "connected" / "needs connect" (auth oauth, for the user `lockgate login` signed in
    under kind oidc: "sign in first" when nobody is). It never shows a secret.

    Example: lockgate servers --profile profiles/demo.toml
    """
    path = active_profile_path(profile)
    loaded = load_profile(path)
    err = console(stderr=True)
    oauth = any(u.auth == "oauth" for u in loaded.upstreams.values())
    if err.is_terminal and not as_json:
        with err.status("Checking credentials in the OS keyring..."):
            who = signed_in(loaded)
            entries = catalog(loaded, keyring_lookup(loaded, user=who))
    else:
        who = signed_in(loaded)
        entries = catalog(loaded, keyring_lookup(loaded, user=who))
    if as_json:
        doc = {"user": user_json(loaded, who), "servers": [e.as_dict() for e in entries]}
        typer.echo(json.dumps(doc, indent=2))
        return
    print_servers(console(), entries, user_line(loaded, who) if oauth else None)
