"""The `lockgate` command's entry point: `lockgate up` with plain options serves without
typer ever being imported; everything else goes to the typer app (`cli/main.py`).

Why: typer and its click cost ~7 MB of RSS, and a gateway would carry them for its whole
life only to have read three options. This reader accepts only the exact forms `up`
documents, each at most once: `--profile/-p FILE` (also `--profile=FILE`), `--listen
HOST:PORT` (also `--listen=`), `--quiet/-q`, and the root's `--debug` before `up`. Anything
else (`--help`, a typo, a missing value, another command) returns None and the typer app
reads the command line as always, with its usage errors. tests/cli/test_entry.py holds the
two readers to the same answer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

from lockgate.cli.boundary import guarded


class UpArgs(NamedTuple):
    profile: Path | None
    listen: str | None
    quiet: bool
    debug: bool


_VALUED = {"--profile": "profile", "-p": "profile", "--listen": "listen"}
_FLAGS = {"--quiet", "-q"}


def read_up(argv: list[str]) -> UpArgs | None:
    """`argv` (after the program name) as `lockgate up`'s options, or None to leave to typer."""
    debug = False
    if argv[:1] == ["--debug"]:
        debug, argv = True, argv[1:]
    if argv[:1] != ["up"]:
        return None
    values: dict[str, str] = {}
    quiet = False
    rest = argv[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        name, eq, inline = arg.partition("=")
        if arg in _FLAGS:
            if quiet:
                return None  # given twice: let typer say what it makes of it
            quiet = True
            i += 1
            continue
        if eq and name.startswith("--") and name in _VALUED:
            key, value, i = _VALUED[name], inline, i + 1
        elif arg in _VALUED and i + 1 < len(rest):
            key, value, i = _VALUED[arg], rest[i + 1], i + 2
        else:
            return None
        if key in values or not value or value.startswith("-"):
            return None  # twice, empty or option-like: typer's reading decides
        values[key] = value
    profile = values.get("profile")
    return UpArgs(Path(profile) if profile else None, values.get("listen"), quiet, debug)


def main() -> None:
    args = read_up(sys.argv[1:])
    if args is None:
        from lockgate.cli.main import main as typer_main

        typer_main()
        return
    if args.debug:
        os.environ["LOCKGATE_DEBUG"] = "1"
    from lockgate.cli.serving import start

    guarded(lambda: start(args.profile, args.listen, args.quiet))
