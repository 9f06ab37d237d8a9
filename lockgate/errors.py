"""One error base class: every error a user can hit says what happened and how to fix it."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pydantic import ValidationError


class LockgateError(Exception):
    """An error meant for the user: one sentence of what went wrong, one of how to fix it."""

    exit_code: int = 1

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message.rstrip('.')}: {self.fix}"
        return self.message


class ProfileError(LockgateError):
    """A profile that cannot be loaded; exit code 2 as DESIGN asks."""

    exit_code = 2


class KeyringUnavailable(LockgateError):
    """No usable OS keyring: no backend, locked, or no D-Bus session."""


class SecretMissing(LockgateError):
    """The keyring holds no secret for an upstream that needs one."""


class StoreUnwritable(LockgateError):
    """The gateway cannot record what it must (the audit log, the pins store): a full disk,
    a read-only directory. The exchange is refused with this sentence (HTTP 503), never
    served unrecorded."""


class GatewayError(LockgateError):
    """The gateway could not start (busy port, bad listen address)."""


class FieldProblem(NamedTuple):
    """The first thing pydantic refused, in the words an error message needs."""

    where: str  # the dotted field location, or the caller's name for the whole input
    message: str  # pydantic's message, without the "Value error, " it adds to validators'
    kind: str  # pydantic's error type: "missing", "string_too_long", ...


def first_validation_error(error: ValidationError, whole: str = "input") -> FieldProblem:
    """The first error of a pydantic ``ValidationError``; ``whole`` names the input when the
    error is about all of it (no field location)."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or whole
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return FieldProblem(where, message, str(first.get("type", "")))
