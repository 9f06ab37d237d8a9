"""`lockgate servers`: the catalog of the active profile's routes and their credential state."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from lockgate.cli._options import ProfileOption

if TYPE_CHECKING:  # the keyring and the core load when the command runs, not for --help
    from lockgate.profile.model import Profile
    from lockgate.upstream.state import SignedIn


def user_json(profile: Profile, who: SignedIn) -> dict[str, object] | None:
    """The "user" of --json: whose upstream tokens the states are about, or null."""
    if who.user is None:
        return None
    return {"sub": who.user.sub, "email": who.user.email, "identity": profile.identity.kind}


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
    from lockgate.cli.views import console
    from lockgate.cli.views import servers as view
    from lockgate.profile.model import active_profile_path, load_profile
    from lockgate.upstream.catalog import catalog
    from lockgate.upstream.state import keyring_lookup, signed_in

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
    view.print_servers(console(), entries, view.user_line(loaded, who) if oauth else None)
