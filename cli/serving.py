"""What `lockgate up` runs once its options are read: the gateway, with the live view on a
terminal, else one plain line per audited event.

Why apart from `cli/up.py`: `lockgate up` with plain options (the way every launcher, service
file and client config starts it) is read by `cli/entry.py` without typer, and serves from
here; typer and click (~7 MB of RSS for the gateway's whole life) are imported only when the
typer app reads the command line. Likewise rich is imported only when something may be
shown in colour (a terminal), not for lines printed to a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.cli import lines

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


def start(profile: Path | None, listen: str | None, quiet: bool) -> None:
    """`lockgate up`: the live view of `lockgate watch` on a terminal (q stops), else lines."""
    from lockgate.profile.model import active_profile_path

    path = active_profile_path(profile)
    if not quiet and sys.stdin.isatty():  # a live view needs both ends on a terminal
        from lockgate.cli import views

        out = views.console()
        if views.live_view_wanted(out):
            from lockgate.cli.views.watch_app import GatewayView  # Textual: only when shown

            view = GatewayView(out)
            view.run(
                lambda: serve(path, listen=listen, on_started=view.started, on_event=view.push)
            )
            out.print("lockgate: stopped")
            return
    serve_lines(path, listen, quiet)


def _maybe_colour() -> bool:
    """Whether rich might colour stdout (it decides): a terminal, or colour forced by env."""
    env = os.environ
    return sys.stdout.isatty() or "FORCE_COLOR" in env or env.get("TTY_COMPATIBLE") == "1"


def serve_lines(profile: Path, listen: str | None, quiet: bool) -> None:
    """Serve, printing where it listens and (unless quiet) one line per audited event."""
    on_event: Callable[[dict[str, Any]], None] | None = None
    if not quiet and _maybe_colour():
        from lockgate.cli import views

        out = views.console()
        on_event = lambda rec: views.print_event(out, rec)  # noqa: E731
    elif not quiet:
        on_event = lambda rec: print(lines.event_line(rec), flush=True)  # noqa: E731

    def started(gw: Gateway) -> None:
        routes = [(name, gw.route_url(name)) for name in gw.profile.routes]
        print("\n".join(lines.started_lines(gw.base_url, routes)), flush=True)

    serve(profile, listen=listen, on_started=started, on_event=on_event)
    print("lockgate: stopped", flush=True)
