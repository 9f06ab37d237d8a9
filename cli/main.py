"""The lockgate command: one typer app, one sub-app per command group, one error handler."""

from __future__ import annotations

import os
import sys

import click
import typer

from lockgate.errors import LockgateError

app = typer.Typer(
    name="lockgate",
    help="A local gateway for the Model Context Protocol.\n\nExample: lockgate demo",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
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
    """Entry point: run the app, turn LockgateError into one line and an exit code."""
    _register()
    try:
        # With standalone_mode=False click *returns* a typer.Exit's code instead of raising.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except LockgateError as e:
        if os.environ.get("LOCKGATE_DEBUG") or "--debug" in sys.argv:
            raise
        typer.echo(f"lockgate: {e}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (typer.Exit, click.exceptions.Exit) as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
