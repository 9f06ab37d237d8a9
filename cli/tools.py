"""`lockgate tools`: review and decide tool definitions the gateway holds back (new in approve
mode, changed since approved, confusable with a pinned name); logic in
lockgate.guardrails.pinstore, views in cli/views/tools.py."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lockgate.cli._options import ProfileOption

if TYPE_CHECKING:
    from pathlib import Path

    from lockgate.guardrails.pinstore import Decided

app = typer.Typer(
    help=(
        "Review tool pins: definitions changed since approval (rug pulls), new tools waiting "
        "for approval, names confusable with pinned ones.\n\n"
        "Example: lockgate tools diff linear"
    ),
    no_args_is_help=True,
)

UpstreamArg = Annotated[str, typer.Argument(help="The upstream's name, as in the profile.")]
MaybeUpstream = Annotated[
    str | None, typer.Argument(help="Only this upstream (default: every upstream).")
]
MaybeTool = Annotated[str | None, typer.Argument(help="Only this tool.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AllOption = Annotated[bool, typer.Option("--all", help="Every held definition of UPSTREAM.")]
PinOption = Annotated[
    str | None,
    typer.Option(
        "--pin", help="Only if the held definition still has this pin (or its first digits)."
    ),
]


def _pending_json(p: Any) -> dict[str, Any]:
    doc = asdict(p)
    doc["status"] = p.reason
    return doc


@app.command("pending")
def pending(upstream: MaybeUpstream = None, as_json: JsonOption = False) -> None:
    """List the tool definitions held back until someone decides.

    New tools (approve mode), changed definitions, names confusable with a pinned one,
    rejected definitions, and definitions that differ from a pin the profile ships.

    Example: lockgate tools pending linear
    """
    from lockgate.cli.views import console
    from lockgate.cli.views import tools as view
    from lockgate.guardrails.pinstore import PinStore

    with PinStore.open() as store:
        rows = store.pending(upstream)
    if as_json:
        typer.echo(json.dumps([_pending_json(p) for p in rows], indent=2))
        return
    view.print_pending(console(), rows)


@app.command("diff")
def diff(
    upstream: MaybeUpstream = None, tool: MaybeTool = None, as_json: JsonOption = False
) -> None:
    """Show what changed: the approved definition against the one listed now.

    A coloured unified diff of canonical JSON (sorted keys, hidden characters escaped).

    Example: lockgate tools diff linear create_issue
    """
    from lockgate.cli.views import console
    from lockgate.cli.views import tools as view
    from lockgate.guardrails.pinstore import PinStore

    with PinStore.open() as store:
        rows = [p for p in store.pending(upstream) if tool is None or p.name == tool]
    if tool is not None and not rows:
        from lockgate.guardrails.pinstore import NothingPending

        raise NothingPending(
            f"Tool {tool!r} waits for no decision",
            "`lockgate tools pending` lists what does",
        )
    if as_json:
        typer.echo(json.dumps([_pending_json(p) for p in rows], indent=2))
        return
    view.print_diff(console(), rows)


def _who(profile: Path | None) -> str:
    """Who decides: the user `lockgate login` signed in (kinds none/dev: the OS user), else
    the OS user. An explicit --profile that cannot be read is an error; none installed is not."""
    import getpass

    from lockgate.errors import LockgateError, ProfileError
    from lockgate.identity.session import cli_user
    from lockgate.profile.model import active_profile_path, load_profile

    try:
        loaded = load_profile(active_profile_path(profile))
    except ProfileError:
        if profile is not None:
            raise
        loaded = None
    if loaded is not None:
        try:
            user = cli_user(loaded.identity)
        except LockgateError:  # no keyring: the OS user is still who types
            user = None
        if user is not None:
            return user.sub
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "local"


def _audit(done: list[Decided]) -> str | None:
    """Each decision into the audit log: "written", or "pending" while a gateway holds it."""
    from lockgate.audit.log import record
    from lockgate.errors import LockgateError
    from lockgate.paths import audit_log_path

    where = None
    for decided in done:
        try:
            where = record(audit_log_path(), {**decided.event(), "source": "cli"})
        except (OSError, LockgateError) as e:
            raise LockgateError(
                f"The decision is in effect but the audit log was not written ({e})",
                "fix the audit log, then check it with `lockgate audit verify`",
            ) from e
    return where


def _decide(
    verb: str, upstream: str, tool: str | None, every: bool, pin: str | None, profile: Path | None
) -> None:
    from lockgate.cli.views import console
    from lockgate.cli.views import tools as view
    from lockgate.errors import LockgateError
    from lockgate.guardrails.pinstore import PinStore

    if (tool is None) == (not every):
        raise LockgateError(
            f"Name the tool to {verb} or pass --all, not both or neither",
            f"for example `lockgate tools {verb} {upstream} TOOL`",
        )
    who = _who(profile)
    with PinStore.open() as store:
        act = store.approve if verb == "approve" else store.reject
        done = act(upstream, tool, who, pin=pin)
    where = _audit(done)
    view.print_decided(console(), done, where)


@app.command("approve")
def approve(
    upstream: UpstreamArg,
    tool: MaybeTool = None,
    every: AllOption = False,
    pin: PinOption = None,
    profile: ProfileOption = None,
) -> None:
    """Approve the held definition of TOOL (or --all of UPSTREAM).

    Its pin becomes the one the gateway lets through; the audit log records who approved.

    Example: lockgate tools approve linear create_issue --pin 3fa2c1
    """
    _decide("approve", upstream, tool, every, pin, profile)


@app.command("reject")
def reject(
    upstream: UpstreamArg,
    tool: MaybeTool = None,
    every: AllOption = False,
    pin: PinOption = None,
    profile: ProfileOption = None,
) -> None:
    """Reject the held definition of TOOL (or --all of UPSTREAM).

    It stays hidden and its calls refused until approved; a later different definition is
    held anew. The audit log records who rejected.

    Example: lockgate tools reject linear create_issue
    """
    _decide("reject", upstream, tool, every, pin, profile)


@app.command("pins")
def pins(upstream: MaybeUpstream = None, as_json: JsonOption = False) -> None:
    """List the pinned tools: pin, source, who approved, when.

    The source is tofu (pinned on first use), approved, or profile (shipped by IT).

    Example: lockgate tools pins linear --json
    """
    from lockgate.cli.views import console
    from lockgate.cli.views import tools as view
    from lockgate.guardrails.pinstore import PinStore

    with PinStore.open() as store:
        rows = store.pins(upstream)
    if as_json:
        typer.echo(json.dumps([asdict(p) for p in rows], indent=2))
        return
    view.print_pins(console(), rows)
