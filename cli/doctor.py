"""`lockgate doctor`: check this machine and the active profile, one line and one fix per check."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from lockgate.cli._options import ProfileOption

# lockgate.ops.checks.DEFAULT_TIMEOUT, repeated so `--help` need not import the checks (httpx,
# the keyring); tests/cli/test_doctor_cli.py holds the two equal.
DEFAULT_TIMEOUT = 5.0


def doctor(
    profile: ProfileOption = None,
    listen: Annotated[
        str | None,
        typer.Option("--listen", help="Check this host:port instead of the profile's listen."),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, help="Seconds to wait for each network check."),
    ] = DEFAULT_TIMEOUT,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON instead of lines.")
    ] = False,
) -> None:
    """Check Python, mitmproxy, the keyring, the profile, the listen port, the identity
    provider, the gateway's signing key and the provider's client secret (kinds dev and
    oidc), and every upstream with its credential (for the user `lockgate login` signed
    in, under kind oidc); one line per check and a fix for each failure.

    Checks run concurrently. Exit code 0 when all pass, 1 otherwise.

    Example: lockgate doctor --profile profiles/demo.toml
    """
    from lockgate.cli.views import console
    from lockgate.cli.views import doctor as view
    from lockgate.ops import doctor as core

    checks = core.plan(profile, timeout=timeout, listen=listen)
    if as_json:
        results = asyncio.run(core.run_checks(checks))
        typer.echo(core.report_json(results))
    else:
        out = console()
        results = view.run_with_display(out, checks)
        for result in results:
            out.print(view.result_text(result), soft_wrap=True)
        out.print(view.summary_text(results))
    if not all(r.passed for r in results):
        raise typer.Exit(1)
