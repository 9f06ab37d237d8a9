"""`lockgate up`: serve a profile's routes until Ctrl-C or SIGTERM (the options here; what
runs in `cli/serving.py`, which `cli/entry.py` also starts without typer)."""

from __future__ import annotations

import typer

from lockgate.cli._options import ProfileOption
from lockgate.cli.serving import start


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
    start(profile, listen, quiet)
