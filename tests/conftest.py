"""Nothing touches the user's machine: data dir, audit log and profiles live in tmp_path."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

# One key for the whole run, set at import: module-scoped gateways start before any
# function-scoped fixture, and their logs must verify with the key the test reads them with.
AUDIT_TEST_KEY = f"test:{secrets.token_hex(32)}"
os.environ.setdefault("LOCKGATE_AUDIT_KEY_SOURCE", AUDIT_TEST_KEY)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "lockgate-home"
    home.mkdir()
    monkeypatch.setenv("LOCKGATE_HOME", str(home))
    monkeypatch.setenv("LOCKGATE_AUDIT_LOG", str(home / "audit.jsonl"))
    monkeypatch.setenv("NO_COLOR", "1")
    # The audit chain's key: never the machine's keyring (tests of the keyring path unset it).
    monkeypatch.setenv("LOCKGATE_AUDIT_KEY_SOURCE", AUDIT_TEST_KEY)
    yield home
