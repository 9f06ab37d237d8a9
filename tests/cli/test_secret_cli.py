"""`lockgate secret` through typer's CliRunner, against the real keyring."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lockgate.cli.secret import app
from lockgate.errors import KeyringUnavailable, LockgateError
from lockgate.upstream import secrets

runner = CliRunner()
SECRET = "tok-1234567890-never-printed"


def test_set_from_stdin_then_status_then_rm(upstream: str) -> None:
    result = runner.invoke(app, ["status", upstream])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "not set"

    result = runner.invoke(app, ["set", upstream], input=SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert secrets.get_secret(upstream) == SECRET  # exactly one trailing newline stripped

    result = runner.invoke(app, ["status", upstream])
    assert result.exit_code == 0
    assert result.output.strip() == "set"
    assert SECRET not in result.output

    result = runner.invoke(app, ["rm", upstream])
    assert result.exit_code == 0
    assert "Removed" in result.output
    assert runner.invoke(app, ["status", upstream]).output.strip() == "not set"
    assert "nothing to remove" in runner.invoke(app, ["rm", upstream]).output


def test_set_keeps_inner_and_extra_newlines(upstream: str) -> None:
    result = runner.invoke(app, ["set", upstream], input="line1\nline2\n\n")
    assert result.exit_code == 0, result.output
    assert secrets.get_secret(upstream) == "line1\nline2\n"


def test_set_long_secret_from_stdin(upstream: str) -> None:
    value = "k" * 10_000
    result = runner.invoke(app, ["set", upstream], input=value)
    assert result.exit_code == 0, result.output
    assert secrets.get_secret(upstream) == value


@pytest.mark.parametrize("stdin", ["", "\n"])
def test_empty_secret_is_refused(upstream: str, stdin: str) -> None:
    result = runner.invoke(app, ["set", upstream], input=stdin)
    assert isinstance(result.exception, LockgateError)
    assert "empty secret" in str(result.exception)
    assert secrets.get_secret(upstream) is None


@pytest.mark.parametrize("args", [["status", "internal"], ["rm", "internal"], ["set", "internal"]])
def test_no_keyring_is_a_clear_error(no_keyring: None, args: list[str]) -> None:
    result = runner.invoke(app, args, input=SECRET)
    assert isinstance(result.exception, KeyringUnavailable)
    assert "No OS keyring is available" in str(result.exception)
    assert SECRET not in str(result.exception)
    assert SECRET not in result.output


@pytest.mark.parametrize("command", ["set", "rm", "status"])
def test_help_shows_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example: " in result.output
    assert f"lockgate secret {command}" in result.output


def test_group_help_without_args() -> None:
    result = runner.invoke(app, [])
    assert "Example: lockgate secret set" in result.output
