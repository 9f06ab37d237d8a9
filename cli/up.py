"""`lockgate up`: serve a profile's routes until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lockgate.cli._options import ProfileOption

if TYPE_CHECKING:  # mitmproxy takes seconds to import: only the commands that serve pay
    from lockgate.addons.master import Gateway


def serve(
    profile: Path,
    *,
    listen: str | None = None,
    on_started: Callable[[Gateway], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    audit_log: Path | None = None,
) -> None:
    """Run a gateway in this process until SIGINT/SIGTERM."""

    async def main() -> None:
        from lockgate.addons.master import Gateway

        gateway = Gateway(profile, listen=listen, on_event=on_event, audit_log=audit_log)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Windows has no signal handlers in asyncio: Ctrl-C arrives as KeyboardInterrupt.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, gateway.shutdown)
        try:
            await gateway.run(on_started)
        finally:
            await gateway.stopped()

    asyncio.run(main())


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

    def started(gw: Gateway) -> None:
        views.print_started(
            out, gw.base_url, [(name, gw.route_url(name)) for name in gw.profile.routes]
        )

    serve(
        path,
        listen=listen,
        on_started=started,
        on_event=None if quiet else lambda rec: views.print_event(out, rec),
    )
    out.print("lockgate: stopped")
