"""cli/entry.py: the typer-free reader of `lockgate up`'s options agrees with the typer app
wherever it answers, and leaves everything else to it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.cli import up
from lockgate.cli.entry import UpArgs, read_up
from lockgate.cli.main import _register, app

_register()

TOKENS = [
    "up", "--profile", "-p", "--listen", "--quiet", "-q", "--debug", "a.toml", "b c.toml",
    "127.0.0.1:0", "--profile=a.toml", "--listen=127.0.0.1:9", "--profile=", "-qp", "-p=a",
    "--help", "--", "-x", "--listen-x", "audit",
]  # fmt: skip


def typer_reading(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> UpArgs | None:
    """What the typer app makes of `argv`: `up`'s arguments, or None (an error, help, ...)."""
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(up, "start", lambda *args: seen.append(args))
    monkeypatch.setenv("LOCKGATE_DEBUG", "")  # --debug sets it: undone after the test
    try:
        app(argv, standalone_mode=False)
    except BaseException:  # usage errors, --help's exit: not a reading
        return None
    if not seen:
        return None
    profile, listen, quiet = seen[0]
    return UpArgs(profile, listen, quiet, bool(os.environ.get("LOCKGATE_DEBUG")))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=6))
def test_where_the_fast_reader_answers_typer_reads_the_same(argv: list[str]) -> None:
    fast = read_up(argv)
    if fast is None:
        return
    with pytest.MonkeyPatch.context() as mp:
        assert typer_reading(argv, mp) == fast, argv


@settings(max_examples=200, deadline=None)
@given(
    st.booleans(),
    st.sampled_from([None, "a.toml", "dir/p q.toml"]),
    st.sampled_from([None, "127.0.0.1:0", "localhost:8080"]),
    st.sampled_from([None, "-q", "--quiet"]),
    st.booleans(),
    st.permutations(range(3)),
)
def test_the_documented_forms_are_read_without_typer(
    debug: bool,
    profile: str | None,
    listen: str | None,
    quiet: str | None,
    inline: bool,
    order: list[int],
) -> None:
    parts: list[list[str]] = [[], [], []]
    if profile is not None:
        parts[0] = [f"--profile={profile}"] if inline else ["-p", profile]
    if listen is not None:
        parts[1] = [f"--listen={listen}"] if inline else ["--listen", listen]
    if quiet is not None:
        parts[2] = [quiet]
    argv = (["--debug"] if debug else []) + ["up"] + [t for i in order for t in parts[i]]
    expected = UpArgs(Path(profile) if profile else None, listen, quiet is not None, debug)
    assert read_up(argv) == expected
    with pytest.MonkeyPatch.context() as mp:
        assert typer_reading(argv, mp) == expected


def test_everything_else_goes_to_typer() -> None:
    for argv in (
        [],
        ["up", "--help"],
        ["up", "--listen"],
        ["up", "-q", "-q"],
        ["up", "--profile", "a", "--profile", "b"],
        ["up", "--listen", "--quiet"],
        ["up", "extra"],
        ["audit", "tail"],
        ["up", "--debug"],
    ):
        assert read_up(argv) is None, argv
