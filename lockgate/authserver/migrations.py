"""The schema of ``lockgate.db`` as ordered migrations, recorded in a ``_migrations`` table.

Apart from the store because the schema's history is append-only and reviewed on its own:
each step is a function registered with :func:`migration`, named once and never renamed.
:func:`migrate` applies the ones a database has not recorded, as simonw/llm does: a database
written by any earlier lockgate is brought forward, one written by a newer one is refused.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lockgate.errors import LockgateError

Clock = Callable[[], float]


@dataclass(frozen=True)
class Migration:
    """One schema step; its name is what the database records, so never rename one."""

    name: str
    apply: Callable[[sqlite3.Connection], None]


MIGRATIONS: list[Migration] = []


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """Register ``fn`` as the next migration, named after the function."""
    MIGRATIONS.append(Migration(fn.__name__, fn))
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE clients (
            client_id TEXT PRIMARY KEY,
            client_name TEXT,
            redirect_uris TEXT NOT NULL,
            grant_types TEXT NOT NULL,
            token_endpoint_auth_method TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('dcr', 'cimd')),
            created_at REAL NOT NULL,
            metadata TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE grants (
            grant_id TEXT PRIMARY KEY,
            user_sub TEXT NOT NULL,
            client_id TEXT NOT NULL REFERENCES clients (client_id),
            route TEXT NOT NULL,
            scopes TEXT NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE refresh_tokens (
            token_hash TEXT PRIMARY KEY,
            grant_id TEXT NOT NULL REFERENCES grants (grant_id),
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            used_at REAL,
            replaced_by TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE approvals (
            user_sub TEXT NOT NULL,
            client_id TEXT NOT NULL REFERENCES clients (client_id),
            route TEXT NOT NULL,
            approved_at REAL NOT NULL,
            PRIMARY KEY (user_sub, client_id, route)
        )
        """
    )


@migration
def m002_indexes(db: sqlite3.Connection) -> None:
    db.execute("CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id)")
    db.execute("CREATE INDEX grants_user_client ON grants (user_sub, client_id)")


@migration
def m003_grant_claims(db: sqlite3.Connection) -> None:
    # What the identity provider said about the user at sign-in (email, groups), so a
    # refreshed access token carries the same claims. JSON; NULL for older grants.
    db.execute("ALTER TABLE grants ADD COLUMN claims TEXT")


@migration
def m004_route_identity(db: sqlite3.Connection) -> None:
    # The route's identity (lockgate.policy.routes.route_identity) a grant or an approval was
    # given for; NULL for older rows, which match no route (consent is asked again).
    db.execute("ALTER TABLE grants ADD COLUMN route_id TEXT")
    db.execute("ALTER TABLE approvals ADD COLUMN route_id TEXT")


def _ensure_migrations_table(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )


def applied_migrations(db: sqlite3.Connection) -> list[str]:
    """The names recorded in the database, in the order they were applied."""
    _ensure_migrations_table(db)
    rows = db.execute("SELECT name FROM _migrations ORDER BY applied_at, rowid").fetchall()
    return [str(row[0]) for row in rows]


def migrate(
    db: sqlite3.Connection,
    migrations: Sequence[Migration] = MIGRATIONS,
    *,
    clock: Clock = time.time,
) -> list[str]:
    """Apply the migrations the database has not recorded, each in its own transaction.

    ``db`` must be in autocommit mode (``isolation_level=None``). ``BEGIN IMMEDIATE`` takes
    the write lock before reading the record, so two processes opening the same new file
    cannot both apply a step. Returns the names applied now.
    """
    known = {m.name for m in migrations}
    applied_now: list[str] = []
    for step in migrations:
        db.execute("BEGIN IMMEDIATE")
        try:
            done = applied_migrations(db)
            unknown = [name for name in done if name not in known]
            if unknown:
                raise LockgateError(
                    f"The lockgate database was written by a newer lockgate "
                    f"(it records migration {unknown[0]!r})",
                    "upgrade lockgate, or point LOCKGATE_HOME at another directory",
                )
            if step.name not in done:
                step.apply(db)
                db.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                    (step.name, clock()),
                )
                applied_now.append(step.name)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return applied_now
