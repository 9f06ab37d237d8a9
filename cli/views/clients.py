"""How `lockgate clients` shows what it does: the snippets per route, the few lines on how to
connect each client (also under `lockgate demo` and `up`), the client table and an install's
per-entry result."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from lockgate.clients import registry as core


def print_snippets(
    out: Console, client: core.ClientApp, entries: list[tuple[str, str, str]], flags: str = ""
) -> None:
    """The exact entry (and for Claude Code the command) for each route."""
    path = core.config_path(client)
    for route, name, url in entries:
        snip = core.snippet(client, route, url, name)
        out.print(
            f"{client.name} · route {route} → {url}", style="bold", soft_wrap=True, markup=False
        )
        if snip.command:
            out.print("  Run:", soft_wrap=True)
            out.print(f"    {shlex.join(snip.command)}", soft_wrap=True, markup=False)
            out.print(f"  or merge into {path}:", soft_wrap=True, markup=False)
        else:
            out.print(f"  Merge into {path}:", soft_wrap=True, markup=False)
        for line in snip.document.splitlines():
            out.print(f"    {line}", soft_wrap=True, markup=False)
        out.print(
            f"  or let lockgate do it: lockgate clients install {client.id} --route {route}{flags}",
            soft_wrap=True,
            markup=False,
        )
        out.print()
    out.print(f"Note: {client.note}.", style="dim", soft_wrap=True)


def print_connect_help(out: Console, entries: list[tuple[str, str, str]], extra: str) -> None:
    """For each (route, server name, URL): the install command per client, Claude Code's own."""
    for r, name, url in entries:
        out.print(
            f"Connect a client to route {r} ({url}):", style="bold", soft_wrap=True, markup=False
        )
        for client in core.CLIENTS.values():
            out.print(
                f"  {client.name:<15} lockgate clients install {client.id} --route {r}{extra}",
                soft_wrap=True,
                markup=False,
            )
        code = shlex.join(core.claude_add_command(name, url))
        out.print(f"  {'or Claude Code':<15} {code}", soft_wrap=True, markup=False)
        out.print(
            f"  {'(see them all)':<15} lockgate clients show CLIENT --route {r}{extra}",
            soft_wrap=True,
            markup=False,
        )


def clients_table() -> Table:
    """One row per client lockgate can set up: id, name, how it connects, its config file."""
    table = Table(box=None, pad_edge=False)
    table.add_column("client")
    table.add_column("name")
    table.add_column("connects")
    table.add_column("config file", overflow="fold")
    table.add_column("exists")
    for client in core.CLIENTS.values():
        path = core.config_path(client)
        how = "native http" if client.native_http else "mcp-remote bridge"
        table.add_row(client.id, client.name, how, str(path), "yes" if path.exists() else "no")
    return table


def print_plan(
    out: Console,
    results: Sequence[tuple[str, str]],
    urls: dict[str, str],
    dry_run: bool,
) -> None:
    """Each entry of an install with what happens to it (added, replaced, already installed)."""
    for entry, status in results:
        style = {"added": "green", "replaced": "yellow"}.get(status, "dim")
        word: str = "already installed" if status == "unchanged" else status
        if dry_run and status != "unchanged":
            word = f"would be {status}"
        out.print(
            f"  {word:<17} {entry} → {urls[entry]}", style=style, soft_wrap=True, markup=False
        )
