"""`lockgate clients`: connect Claude Code, Claude Desktop, Cursor and VS Code to the routes.

The logic (entries, paths, the comment-preserving merge, backup and atomic write) lives in
lockgate.clients.registry; this module only picks the profile and routes and prints.
"""

from __future__ import annotations

import difflib
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lockgate.cli._options import ProfileOption

if TYPE_CHECKING:  # pydantic and rich load when a command runs, not for --help
    from lockgate.cli.views import Console
    from lockgate.profile.model import Profile

app = typer.Typer(
    help=(
        "Connect MCP clients (Claude Code, Claude Desktop, Cursor, VS Code) to the gateway's "
        "routes. Entries hold only the route URL: clients sign in through the gateway.\n\n"
        "Example: lockgate clients install cursor --route notes"
    ),
    no_args_is_help=True,
)

CLIENT = typer.Argument(
    ..., help="claude-code, claude-desktop, cursor or vscode (`lockgate clients list`)."
)
ROUTE = typer.Option(
    None, "--route", "-r", help="Only this route (default: every route of the profile)."
)
BASE_URL = typer.Option(
    None,
    "--base-url",
    help="The gateway's URL when it is not the profile's (e.g. `up --listen`).",
)
NAME = typer.Option(
    None, "--name", help="Server name in the client (default lockgate-ROUTE; one route only)."
)


def _profile(path: Path | None) -> Profile:
    from lockgate.profile.model import active_profile_path, load_profile

    return load_profile(active_profile_path(path))


def route_entries(
    profile: Profile, route: str | None, name: str | None = None, base: str | None = None
) -> list[tuple[str, str, str]]:
    """(route, server name, URL) for the chosen routes; the one place route URLs are made.

    `base` is the gateway's base URL when it is not the profile's (`up --listen`, the demo).
    """
    from lockgate.clients import registry as core
    from lockgate.errors import LockgateError

    if route is not None and route not in profile.routes:
        known = ", ".join(sorted(profile.routes))
        raise LockgateError(f"The profile has no route {route!r}", f"use one of: {known}")
    routes = [route] if route is not None else sorted(profile.routes)
    if name is not None and len(routes) != 1:
        raise LockgateError("--name needs a single route", "add --route ROUTE")
    return [(r, name or core.entry_name(r), profile.route_url(r, base)) for r in routes]


def _flags(profile_path: Path | None, base: str | None) -> str:
    """The --profile/--base-url flags a printed command needs to reach the same gateway."""
    extra = f" --profile {shlex.quote(str(profile_path))}" if profile_path else ""
    return extra + (f" --base-url {shlex.quote(base)}" if base else "")


def connect_help(
    out: Console,
    profile: Profile,
    route: str | None = None,
    *,
    base: str | None = None,
    profile_path: Path | None = None,
) -> None:
    """How to connect each client to a route, in a few lines: for `lockgate demo` and `up`.

    `profile_path` and `base` are repeated in the printed commands when the running gateway
    uses a profile or address that `lockgate clients` would not find by itself.
    """
    from lockgate.cli.views import clients as view

    differs = base is not None and base.rstrip("/") != profile.base_url()
    extra = _flags(profile_path, base if differs else None)
    view.print_connect_help(out, route_entries(profile, route, base=base), extra)


@app.command("list")
def list_clients() -> None:
    """List the clients lockgate can set up, where their config lives here, and how.

    Example: lockgate clients list
    """
    from lockgate.cli.views import clients as view
    from lockgate.cli.views import console

    out = console()
    out.print(view.clients_table())
    if shutil.which("claude"):
        out.print("The claude command is on PATH: `clients show claude-code` prints its command.")


@app.command("show")
def show(
    client: str = CLIENT,
    route: str | None = ROUTE,
    profile: ProfileOption = None,
    name: str | None = NAME,
    base_url: str | None = BASE_URL,
) -> None:
    """Print the exact config entry (and command, where the client has one) for each route.

    Example: lockgate clients show claude-code --route notes
    """
    from lockgate.cli.views import clients as view
    from lockgate.cli.views import console
    from lockgate.clients import registry as core

    c = core.get_client(client)
    entries = route_entries(_profile(profile), route, name, base_url)
    view.print_snippets(console(), c, entries, _flags(profile, base_url))


@app.command("install")
def install(
    client: str = CLIENT,
    route: str | None = ROUTE,
    config: Path | None = typer.Option(
        None, "--config", help="The config file to merge into (default: the client's usual one)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", "-n", help="Print the change as a diff; write nothing."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace an entry of the same name that points elsewhere."
    ),
    profile: ProfileOption = None,
    name: str | None = NAME,
    base_url: str | None = BASE_URL,
) -> None:
    """Merge the route entries into the client's config file.

    A timestamped backup is made next to the file before any change.

    Every other entry and comment stays as it was; a second run changes nothing.

    Claude Code: a user-scope entry in ~/.claude.json, as `claude mcp add --scope user` makes.

    Claude Desktop: an mcp-remote bridge entry (its file has no remote-server entry).

    Example: lockgate clients install cursor --route notes --dry-run
    """
    from lockgate.cli.views import clients as view
    from lockgate.cli.views import console
    from lockgate.clients import registry as core
    from lockgate.clients.install import apply_install, plan_install

    c = core.get_client(client)
    prof = _profile(profile)
    entries = route_entries(prof, route, name, base_url)
    path = (config or core.config_path(c)).expanduser()
    plan = plan_install(c, path, [(n, url) for _, n, url in entries], force=force)
    out = console()
    out.print(f"{c.name}: {path}", style="bold", soft_wrap=True, markup=False)
    urls = {n: url for _, n, url in entries}
    view.print_plan(out, plan.results, urls, dry_run)
    if not plan.changed:
        out.print("Nothing to change: the file has these entries already.")
        return
    if dry_run:
        diff = difflib.unified_diff(
            (plan.before or "").splitlines(keepends=True),
            plan.after.splitlines(keepends=True),
            fromfile=str(path) if plan.before is not None else "/dev/null",
            tofile=str(path),
        )
        out.file.flush()
        for line in diff:  # verbatim: rich would expand the file's tabs
            typer.echo(line.rstrip("\r\n"))
        out.print("Dry run: nothing was written.")
        return
    backup = apply_install(plan)
    if backup is not None:
        out.print(f"Backup: {backup}", soft_wrap=True, markup=False)
    else:
        out.print(f"Created {path}", soft_wrap=True, markup=False)
    signin = "" if prof.identity.kind == "none" else "; it signs in through the gateway"
    out.print(f"Restart {c.name} (or reload its MCP servers){signin}.", soft_wrap=True)
    if not c.native_http:
        out.print(f"Note: {c.note}.", style="dim", soft_wrap=True)
