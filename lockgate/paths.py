"""Where lockgate keeps its state; overridable so tests never touch the user's machine."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    """The per-user data directory (LOCKGATE_HOME overrides it)."""
    env = os.environ.get("LOCKGATE_HOME")
    path = Path(env) if env else Path(platformdirs.user_data_dir("lockgate", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def audit_log_path() -> Path:
    """The audit log (LOCKGATE_AUDIT_LOG overrides it)."""
    env = os.environ.get("LOCKGATE_AUDIT_LOG")
    return Path(env) if env else data_dir() / "audit.jsonl"


def mitmproxy_confdir() -> Path:
    """mitmproxy's confdir under our data dir, so nothing lands in ~/.mitmproxy."""
    path = data_dir() / "mitmproxy"
    path.mkdir(parents=True, exist_ok=True)
    return path
