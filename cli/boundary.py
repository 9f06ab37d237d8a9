"""The CLI's one error boundary, without typer: the serving process (`cli/serving.py`) never
imports typer, and its failures must read exactly like every other command's."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from lockgate.errors import LockgateError


def debug() -> bool:
    """`--debug` (the root option sets LOCKGATE_DEBUG, which an exec'd server inherits)."""
    return bool(os.environ.get("LOCKGATE_DEBUG")) or "--debug" in sys.argv


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def guarded(body: Callable[[], None]) -> None:
    """Run `body`: a LockgateError is one line and its exit code, Ctrl-C exits 130, anything
    unexpected is one line with a hint to rerun with --debug (which shows the traceback)."""
    try:
        body()
    except LockgateError as e:
        if debug():
            raise
        say(f"lockgate: {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # the last resort: a bug, not a usage error; never a bare traceback
        if debug():
            raise
        what = str(e).splitlines()[0] if str(e) else type(e).__name__
        say(
            f"lockgate: unexpected error ({type(e).__name__}: {what}); "
            "rerun with --debug for the traceback and report it."
        )
        sys.exit(1)
