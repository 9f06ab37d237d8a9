"""Every command's `--help` shows an example (issue 4, item 6), walked from the real app so a
new command without one fails here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from lockgate.cli.main import _register, app


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    # typer carries its own copy of click: walk the tree by duck typing.
    ctx = type(group).context_class(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if hasattr(command, "list_commands"):
            yield from _commands(command, (*prefix, name))
        elif command is not None:
            yield (*prefix, name)


def test_every_command_has_an_example_in_its_help() -> None:
    _register()
    root = typer.main.get_command(app)
    paths = list(_commands(root))
    assert len(paths) >= 20, paths  # the walk found the command tree
    runner = CliRunner()
    missing = []
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        if "Example" not in result.output:
            missing.append(" ".join(path))
    assert missing == [], f"--help without an example: {missing}"


def test_lazy_commands_are_listed_with_their_own_help() -> None:
    """`lockgate --help` lists watch and audit without importing them: the one-line help it
    shows must be the loaded command's first paragraph."""
    from lockgate.cli import commands

    _register()
    root = typer.main.get_command(app)
    for name, (_, _, listed) in commands.LAZY.items():
        loaded = commands.load(name)
        assert (loaded.help or "").split("\n\n")[0].strip() == listed, name
        assert name in root.list_commands(type(root).context_class(root))
