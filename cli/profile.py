"""`lockgate profile`: check a profile before IT ships it or a developer uses it."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Check lockgate profiles.\n\nExample: lockgate profile validate profiles/demo.toml",
    no_args_is_help=True,
)


@app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="The profile (TOML) to check."),
) -> None:
    """Validate a profile; exit code 2 and the file, line and key path when it is wrong.

    Example: lockgate profile validate profiles/demo.toml
    """
    from lockgate.cli.views import console  # pydantic and rich load when the command runs
    from lockgate.profile.model import load_profile

    profile = load_profile(file)
    out = console()
    out.print(f"{file}: OK")
    for name, route in sorted(profile.routes.items()):
        up = profile.upstreams[route.upstream]
        out.print(f"  route {name} -> upstream {route.upstream} ({up.url}, auth {up.auth})")
