"""`lockgate up`: serve a profile's routes until Ctrl-C or SIGTERM (parsing here, serving in
`cli/serving.py`)."""

from __future__ import annotations

import typer

from lockgate.cli._options import ProfileOption
from lockgate.cli.serving import exec_serve_lines, serve


def up(
    profile: ProfileOption = None,
    listen: str | None = typer.Option(
        None, "--listen", help="host:port to listen on, overriding the profile (port 0: any free)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print events as they happen."),
) -> None:
    """Start the gateway and show each audited event as it happens: the live view of
    `lockgate watch` on a terminal (q stops), plain lines when piped.

    Example: lockgate up --profile profiles/demo.toml
    """
    from lockgate.cli import views
    from lockgate.profile.model import active_profile_path

    path = active_profile_path(profile)
    out = views.console()
    if not quiet and views.live_view_wanted(out):  # a terminal: the live view, q stops
        from lockgate.cli.views.watch_app import GatewayView  # Textual: only when shown

        view = GatewayView(out)
        view.run(lambda: serve(path, listen=listen, on_started=view.started, on_event=view.push))
        out.print("lockgate: stopped")
        return

    # Plain lines: served by a process that never imported typer (cli/serving.py says why).
    exec_serve_lines(path, listen, quiet)
