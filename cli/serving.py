"""The process that serves for `lockgate up`: run once the command line is parsed.

Why a module of its own, run as `python -m lockgate.cli.serving`: the command line's parser
(typer and its click, ~7 MB of RSS that would stay for the gateway's whole life) is needed
only to read the command line. On POSIX, `lockgate up` parses and resolves its options, then
replaces itself with this module (`os.execv`: the same PID, terminal, environment and signal
handling for whoever started it), so the serving process never imports typer. Its arguments
are the options `up` already resolved; it is not a command for users. Elsewhere (Windows has
no real exec) and under LOCKGATE_SERVE_IN_PROCESS=1 (profilers and benches that patch the
process they start) the gateway serves in the parsing process, as before.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.cli import lines
from lockgate.cli.boundary import guarded

if TYPE_CHECKING:  # mitmproxy takes seconds to import: only the commands that serve pay
    from lockgate.addons.master import Gateway

IN_PROCESS_ENV = "LOCKGATE_SERVE_IN_PROCESS"


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


def serve_lines(profile: Path, listen: str | None, quiet: bool) -> None:
    """Serve, printing where it listens and (unless quiet) one line per audited event: in
    colour through rich on a terminal, plain `print`s otherwise (a pipe: rich unloaded)."""
    on_event: Callable[[dict[str, Any]], None] | None = None
    if not quiet and sys.stdout.isatty():
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


def command(profile: Path, listen: str | None, quiet: bool) -> list[str]:
    """The command line that serves `profile` in a fresh interpreter (this module's main)."""
    flags: list[str] = []
    with contextlib.suppress(Exception):  # -X, -W and the like, as multiprocessing passes them
        import subprocess

        flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    argv = [sys.executable, *flags, "-m", __name__, "--profile", str(profile)]
    if listen is not None:
        argv += ["--listen", listen]
    return [*argv, "--quiet"] if quiet else argv


def exec_serve_lines(profile: Path, listen: str | None, quiet: bool) -> None:
    """`serve_lines` in a process that never imported the CLI: this one, replaced (POSIX)."""
    if os.name != "posix" or not sys.executable or os.environ.get(IN_PROCESS_ENV):
        serve_lines(profile, listen, quiet)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command(profile, listen, quiet))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lockgate.cli.serving", add_help=False)
    parser.add_argument("--profile", type=Path, required=True)
    parser.add_argument("--listen", default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    guarded(lambda: serve_lines(args.profile, args.listen, args.quiet))


if __name__ == "__main__":
    main()
