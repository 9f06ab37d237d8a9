"""`lockgate secret`: static upstream secrets in the OS keyring (logic in
lockgate.upstream.secrets)."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    help=(
        'Store the static secrets of `auth = "header"` upstreams in the OS keyring '
        "(Keychain, Credential Manager, Secret Service); profiles never hold them.\n\n"
        "Example: lockgate secret set internal"
    ),
    no_args_is_help=True,
)

UPSTREAM = typer.Argument(..., help="The upstream's name, as in the profile's upstreams.NAME.")


def _read_secret(upstream: str) -> str:
    """A hidden prompt with confirmation on a terminal; otherwise all of stdin."""
    if sys.stdin is not None and sys.stdin.isatty():
        value: str = typer.prompt(
            f"Secret for upstream '{upstream}'",
            hide_input=True,
            confirmation_prompt=True,
        )
        return value
    value = sys.stdin.read() if sys.stdin is not None else ""
    if value.endswith("\r\n"):
        return value[:-2]
    if value.endswith("\n"):
        return value[:-1]
    return value


@app.command("set")
def set_secret(upstream: str = UPSTREAM) -> None:
    """Store UPSTREAM's secret in the OS keyring, replacing any earlier one.

    On a terminal it asks twice, hiding what you type.

    Otherwise it reads all of stdin and strips one trailing newline.

    The profile's header value uses it as {secret}.

    Example: printf %s "$TOKEN" | lockgate secret set internal
    """
    from lockgate.errors import LockgateError
    from lockgate.upstream import secrets  # the keyring loads when a command runs

    value = _read_secret(upstream)
    if not value:
        raise LockgateError(
            f"Refusing to store an empty secret for upstream '{upstream}'",
            "type the secret at the prompt or pipe it on stdin; "
            f"to remove one use `lockgate secret rm {upstream}`",
        )
    secrets.set_secret(upstream, value)
    typer.echo(f"Stored the secret for upstream '{upstream}' in the OS keyring.")


@app.command("rm")
def rm_secret(upstream: str = UPSTREAM) -> None:
    """Remove UPSTREAM's secret from the OS keyring.

    Example: lockgate secret rm internal
    """
    from lockgate.upstream import secrets

    if secrets.delete_secret(upstream):
        typer.echo(f"Removed the secret for upstream '{upstream}' from the OS keyring.")
    else:
        typer.echo(f"No secret was stored for upstream '{upstream}'; nothing to remove.")


@app.command("status")
def status(upstream: str = UPSTREAM) -> None:
    """Print "set" or "not set" for UPSTREAM's secret; never the secret itself.

    Example: lockgate secret status internal
    """
    from lockgate.upstream import secrets

    typer.echo("set" if secrets.has_secret(upstream) else "not set")
