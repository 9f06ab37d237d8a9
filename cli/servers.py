"""`lockgate servers`: the catalog of the active profile's routes and their credential state."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lockgate.cli.views import console
from lockgate.profile import load_profile
from lockgate.servers import ServerEntry, active_profile_path, catalog, keyring_lookup

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


def print_servers(con: Console, entries: Sequence[ServerEntry]) -> None:
    """A table on a terminal, plain lines when piped; then one fix per upstream that needs one."""
    if con.is_terminal:
        con.print(servers_table(entries))
    else:
        for entry in entries:
            con.print(Text(server_line(entry)), soft_wrap=True)
    fixes = {e.upstream: e.state for e in entries if not e.state.ready and e.state.fix}
    for upstream, state in sorted(fixes.items()):
        con.print(Text(f"{upstream}: {state.text}; fix: {state.fix}"), soft_wrap=True)


def servers(
    profile: Annotated[
        Path | None,
        typer.Option(
            "--profile", "-p", help="The profile to list (default: the one `lockgate up` serves)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list instead of a table.")
    ] = False,
) -> None:
    """List the routes of the active profile: upstream, credential state and route URL.

    The state is "no credential needed", "secret set" / "secret missing" (auth header),
    or "connected" / "needs connect" (auth oauth). It never shows a secret.

    Example: lockgate servers --profile profiles/demo.toml
    """
    path = active_profile_path(profile)
    loaded = load_profile(path)
    err = console(stderr=True)
    lookup = keyring_lookup(loaded)
    if err.is_terminal and not as_json:
        with err.status("Checking credentials in the OS keyring..."):
            entries = catalog(loaded, lookup)
    else:
        entries = catalog(loaded, lookup)
    if as_json:
        typer.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    print_servers(console(), entries)
