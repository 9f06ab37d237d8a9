"""Joins every command group into the root app, in the order `--help` lists them."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from lockgate.cli import audit, connect, profile, secret, up
    from lockgate.cli.demo import command as demo

    app.command("up")(up.up)
    app.command("demo")(demo.demo)
    app.add_typer(profile.app, name="profile")
    app.add_typer(secret.app, name="secret")
    app.command("connect")(connect.connect)
    app.command("disconnect")(connect.disconnect)
    app.add_typer(audit.app, name="audit")
    from lockgate.cli import doctor, servers

    app.command("servers")(servers.servers)
    app.command("doctor")(doctor.doctor)
    from lockgate.cli import watch

    app.command("watch")(watch.watch)
    from lockgate.cli import clients

    app.add_typer(clients.app, name="clients")
    from lockgate.cli import login

    app.command("login")(login.login)
    app.command("logout")(login.logout)
    app.command("whoami")(login.whoami)
