"""The options several commands share, defined once so that their flag, default and help
read the same in every command (`--profile` is on login, logout, whoami, clients, connect,
disconnect, doctor, servers and up)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PROFILE_HELP = "The profile to use (default: $LOCKGATE_PROFILE, else the installed one)."

# Every command resolves None the same way: `lockgate.profile.model.active_profile_path`.
ProfileOption = Annotated[Path | None, typer.Option("--profile", "-p", help=PROFILE_HELP)]
