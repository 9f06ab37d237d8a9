"""Fixtures of the audit tests: where a test's log lives."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "audit.jsonl"
