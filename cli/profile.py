"""`lockgate profile`: check a profile before IT ships it or a developer uses it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from lockgate.guardrails.policy import GuardrailsSection

app = typer.Typer(
    help="Check lockgate profiles.\n\nExample: lockgate profile validate profiles/demo.toml",
    no_args_is_help=True,
)


@app.command("check", hidden=True)
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
        out.print(f"    {_guardrails(profile.guardrails_for(name))}", highlight=False)


def _guardrails(section: GuardrailsSection) -> str:
    """One line: what the route's guardrails do, as resolved from defaults and override."""
    if not section.enabled:
        return "guardrails off"
    limits = section.limits
    rates = [
        f"{scope} {rate}"
        for scope, rate in (("route", limits.route), ("user", limits.user), ("tool", limits.tool))
        if rate is not None and rate != "off"
    ]
    custom = [d.name for d in section.detectors]
    return (
        f"guardrails on: pins {section.pinning.mode}, results {section.findings.results}"
        + (f", custom detectors {', '.join(custom)}" if custom else "")
        + (f", limits {', '.join(rates)}" if rates else ", no rate limits")
    )
