"""Shared test support: real components, found or skipped (failed in CI) with a visible reason."""

from __future__ import annotations

import os

import pytest


def require(available: bool, reason: str) -> None:
    """Skip with a visible reason on a laptop; fail when CI asks for every component."""
    if available:
        return
    if os.environ.get("LOCKGATE_REQUIRE_ALL") == "1":
        pytest.fail(f"missing component (LOCKGATE_REQUIRE_ALL=1): {reason}")
    pytest.skip(reason)
