"""Nothing touches the user's machine: data dir, audit log and profiles live in tmp_path."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "lockgate-home"
    home.mkdir()
    monkeypatch.setenv("LOCKGATE_HOME", str(home))
    monkeypatch.setenv("LOCKGATE_AUDIT_LOG", str(home / "audit.jsonl"))
    monkeypatch.setenv("NO_COLOR", "1")
    # The audit chain's key: one per test, shared with the test's subprocesses (never the
    # machine's keyring; tests of the keyring path unset it).
    monkeypatch.setenv("LOCKGATE_AUDIT_KEY_SOURCE", f"test:{secrets.token_hex(32)}")
    yield home
