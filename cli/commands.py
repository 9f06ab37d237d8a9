"""Joins every command group into the root app, in the order `--help` lists them.

`watch` and `audit` load only when they are named (or their help is asked for): their
modules import the audit log (with the keyring) and rich at the top, which every other
command and `lockgate --help` would otherwise pay for at start-up. `LazyGroup` is the root group
that knows them by name and one-line help until then.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# name -> (module, attribute, the first paragraph of its help as `--help` lists it);
# tests/cli/test_help.py holds the help equal to the loaded command's.
LAZY: dict[str, tuple[str, str, str]] = {
    "watch": (
        "lockgate.cli.watch",
        "watch",
        "Watch the audit log live: every call with user, route, outcome and latency.",
    ),
    "audit": ("lockgate.cli.audit", "app", "Read, query and verify the audit log."),
    "redact": (
        "lockgate.cli.redact",
        "redact",
        "Redact secrets and personal data in text or JSONL, as the gateway would.",
    ),
    "tools": (
        "lockgate.cli.tools",
        "app",
        "Review tool pins: definitions changed since approval (rug pulls), new tools waiting "
        "for approval, names confusable with pinned ones.",
    ),
}

# The order `lockgate --help` lists the commands in (commands first, then groups).
ORDER = (
    "up",
    "demo",
    "connect",
    "disconnect",
    "servers",
    "doctor",
    "watch",
    "login",
    "logout",
    "whoami",
    "profile",
    "secret",
    "redact",
    "audit",
    "clients",
    "tools",
)


def register(app: typer.Typer) -> None:
    from lockgate.cli import clients, connect, doctor, login, profile, secret, servers, up
    from lockgate.cli.demo import command as demo

    app.command("up")(up.up)
    app.command("demo")(demo.demo)
    app.add_typer(profile.app, name="profile")
    app.add_typer(secret.app, name="secret")
    app.command("connect")(connect.connect)
    app.command("disconnect")(connect.disconnect)
    app.command("servers")(servers.servers)
    app.command("doctor")(doctor.doctor)
    app.add_typer(clients.app, name="clients")
    app.command("login")(login.login)
    app.command("logout")(login.logout)
    app.command("whoami")(login.whoami)


class _Pending(TyperCommand):
    """A lazy command as `--help` lists it: its name and one-line help, nothing loaded."""


def load(name: str) -> Any:
    """The click command (or group) of a lazy command, built the way typer builds the rest."""
    module, attribute, _ = LAZY[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command: Any = typer.main.get_group(target)
    else:
        command = typer.main.get_command_from_info(
            typer.models.CommandInfo(name=name, callback=target),
            pretty_exceptions_short=True,
            rich_markup_mode=typer.core.DEFAULT_MARKUP_MODE,
        )
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """The root group: lists the LAZY commands from their names and help; loads one when a
    command line names it (or anything walks the tree by name)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        given = dict(self.commands)
        ordered: dict[str, Any] = {}
        for name in ORDER:
            if name in given:
                ordered[name] = given.pop(name)
            elif name in LAZY:
                ordered[name] = _Pending(name=name, help=LAZY[name][2])
        self.commands = {**ordered, **given}
        self._listing = False

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if isinstance(command, _Pending) and not self._listing:
            command = self.commands[cmd_name] = load(cmd_name)
        return command
