"""How `lockgate servers` shows the catalog: a table on a terminal, one plain line per route
when piped, whom the oauth states are for, and one fix per upstream that needs one."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from lockgate.profile.model import Profile
from lockgate.upstream.catalog import ServerEntry
from lockgate.upstream.state import SignedIn

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
