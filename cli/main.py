"""The lockgate command: one typer app, one sub-app per command group, one error handler."""

from __future__ import annotations

import os
import sys

import typer

from lockgate.cli.boundary import guarded
from lockgate.cli.commands import LazyGroup

app = typer.Typer(
    name="lockgate",
    help="A local gateway for the Model Context Protocol.\n\nExample: lockgate demo",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=LazyGroup,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    if debug:
        os.environ["LOCKGATE_DEBUG"] = "1"


def _register() -> None:
    """Sub-apps are imported here so a broken optional module names itself clearly."""
    from lockgate.cli import commands

    commands.register(app)


def main() -> None:
    """Entry point: typer's own errors here, everything else in `boundary.guarded`.

    typer ships its own copy of click (`typer._click`), so its usage errors are
    `typer.TyperException`s, not `click.ClickException`s: catching the latter let every typo
    through as a traceback. Usage errors exit 2 (click's convention), LockgateErrors with their
    own code, anything unexpected with 1 and a hint to rerun with --debug.
    """
    _register()
    guarded(_run)


def _run() -> None:
    try:
        # With standalone_mode=False click *returns* a typer.Exit's code instead of raising.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except typer.TyperException as e:
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"lockgate: {e}", err=True)
        sys.exit(getattr(e, "exit_code", 2))
