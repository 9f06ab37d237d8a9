"""The schema of ``pins.db`` as ordered migrations, and how rows hold names and definitions.

Apart from the store because the schema's history is append-only and reviewed on its own (as
`lockgate.authserver.migrations` is for ``lockgate.db``, whose runner it reuses): each step
is named once and never renamed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from lockgate.authserver.migrations import Migration
from lockgate.paths import data_dir

__all__ = ["DB_NAME", "MIGRATIONS", "create_private", "default_path", "key", "stored", "unkey"]

DB_NAME: Final = "pins.db"


def m001_initial(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE pins (
            upstream TEXT NOT NULL,
            name TEXT NOT NULL,
            pin TEXT NOT NULL,
            definition TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('tofu', 'approved', 'profile')),
            approved_by TEXT,
            at REAL NOT NULL,
            PRIMARY KEY (upstream, name)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE held (
            upstream TEXT NOT NULL,
            name TEXT NOT NULL,
            pin TEXT NOT NULL,
            definition TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('pending', 'changed', 'spoofing')),
            old_pin TEXT,
            fields TEXT NOT NULL,
            similar TEXT,
            source TEXT NOT NULL CHECK (source IN ('store', 'profile')),
            seen_at REAL NOT NULL,
            rejected_by TEXT,
            rejected_at REAL,
            PRIMARY KEY (upstream, name)
        )
        """
    )


MIGRATIONS: Final = (Migration("m001_initial", m001_initial),)


def default_path() -> Path:
    return data_dir() / DB_NAME


def create_private(path: Path) -> None:
    """Create the file owner-only before SQLite does (its -wal/-shm files copy the mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def key(name: str) -> str:
    """A tool name as SQLite can store it: itself, or an escaped form (NUL + its JSON) for a
    name SQLite cannot hold (lone surrogates) and for one that starts with NUL itself, so
    that no name can pose as another's escaped form."""
    if name.startswith("\x00"):
        return "\x00" + json.dumps(name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "\x00" + json.dumps(name)
    return name


def unkey(key: str) -> str:
    return str(json.loads(key[1:])) if key.startswith("\x00") else key


def stored(definition: Mapping[str, Any]) -> str:
    body = {k: v for k, v in definition.items() if k != "_meta"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))  # ASCII: always storable
