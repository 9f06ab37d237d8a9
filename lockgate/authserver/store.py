"""The gateway's local state as an authorization server: clients, grants, refresh tokens, approvals.

One SQLite file (``lockgate.db`` in the data dir), migrated on open (the schema's steps
live in `migrations`).

Only SHA-256 hashes of refresh tokens are stored, so the file never holds a usable
credential. Refresh tokens rotate on every use; presenting a used one again is treated as
theft and revokes the whole grant (OAuth 2.1 section 4.3.1).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from lockgate.authserver.migrations import MIGRATIONS, Migration, migrate
from lockgate.paths import data_dir

DB_NAME = "lockgate.db"

Clock = Callable[[], float]

ClientKind = Literal["dcr", "cimd"]
RefreshOutcome = Literal["rotated", "reused", "expired", "revoked", "unknown", "wrong_client"]


# --- records ----------------------------------------------------------------------------


class RegisteredClient(BaseModel):
    """A registered MCP client: dynamic registration (dcr) or a metadata document URL (cimd)."""

    model_config = ConfigDict(frozen=True)

    client_id: str = Field(min_length=1)
    client_name: str | None = None
    redirect_uris: tuple[str, ...] = Field(min_length=1)
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    token_endpoint_auth_method: str = "none"
    kind: ClientKind
    created_at: float
    metadata: dict[str, Any] = Field(default_factory=dict)


class Grant(BaseModel):
    """One user's consent for one client on one route; refresh tokens hang off it."""

    model_config = ConfigDict(frozen=True)

    grant_id: str
    user_sub: str = Field(min_length=1)
    client_id: str
    route: str
    scopes: str
    created_at: float
    revoked_at: float | None = None
    email: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    route_id: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class RefreshResult(BaseModel):
    """What presenting a refresh token did; only ``rotated`` carries a grant and a new token.

    ``reused`` means the token had been used before: the grant is now revoked, and the
    caller should audit it as a likely token theft.
    """

    model_config = ConfigDict(frozen=True)

    outcome: RefreshOutcome
    grant: Grant | None = None
    refresh_token: str | None = Field(default=None, repr=False)
    expires_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "rotated"


def hash_token(token: str) -> str:
    """The stored form of a refresh token: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh opaque credential: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def default_path() -> Path:
    return data_dir() / DB_NAME


def _create_private(path: Path) -> None:
    """Create the file owner-only before SQLite does (its -wal/-shm files copy the mode)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


# --- the store --------------------------------------------------------------------------


# Registrations are rows anyone on the listen address can add: at most this many, and the
# dynamically registered ones that no user approved nor got a grant for expire after a day.
MAX_CLIENTS = 1000
UNUSED_CLIENT_TTL = 24 * 3600.0


class StoreFull(ValueError):
    """No room for another client registration."""


class Store:
    """Thread-safe access to ``lockgate.db``: one connection, one lock, WAL journal."""

    def __init__(self, db: sqlite3.Connection, *, clock: Clock = time.time) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._clock = clock
        self.applied_migrations: list[str] = []
        self.max_clients = MAX_CLIENTS

    @classmethod
    def open(
        cls,
        path: Path | str | None = None,
        *,
        clock: Clock = time.time,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> Self:
        """Open (creating if needed) and migrate the database; ``path`` defaults to the data dir."""
        target = Path(path) if path is not None else default_path()
        _create_private(target)
        db = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=10.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=10000")
            store = cls(db, clock=clock)
            store.applied_migrations = migrate(db, migrations, clock=clock)
            store.prune_unused_clients()
        except BaseException:
            db.close()
            raise
        return store

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock; rolled back on any exception."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())

    # --- clients ------------------------------------------------------------------------

    def register_client(
        self,
        *,
        redirect_uris: Sequence[str],
        kind: ClientKind = "dcr",
        client_id: str | None = None,
        client_name: str | None = None,
        grant_types: Sequence[str] = ("authorization_code", "refresh_token"),
        token_endpoint_auth_method: str = "none",
        metadata: dict[str, Any] | None = None,
    ) -> RegisteredClient:
        """Record a client. A dcr client gets a random id; a cimd client's id is its metadata
        URL, and registering it again refreshes the stored metadata."""
        if kind == "cimd" and not client_id:
            raise ValueError("a cimd client's client_id is its metadata document URL")
        client = RegisteredClient(
            client_id=client_id or f"lg-{secrets.token_urlsafe(18)}",
            client_name=client_name,
            redirect_uris=tuple(redirect_uris),
            grant_types=tuple(grant_types),
            token_endpoint_auth_method=token_endpoint_auth_method,
            kind=kind,
            created_at=self._clock(),
            metadata=dict(metadata or {}),
        )
        row = (
            client.client_id,
            client.client_name,
            json.dumps(list(client.redirect_uris)),
            json.dumps(list(client.grant_types)),
            client.token_endpoint_auth_method,
            client.kind,
            client.created_at,
            json.dumps(client.metadata),
        )
        columns = (
            "INTO clients (client_id, client_name, redirect_uris, grant_types,"
            " token_endpoint_auth_method, kind, created_at, metadata)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        if kind == "cimd":
            # A metadata document may change: refresh it, but never turn a dcr client into one.
            sql = (
                f"INSERT {columns} ON CONFLICT (client_id) DO UPDATE SET"
                " client_name = excluded.client_name, redirect_uris = excluded.redirect_uris,"
                " grant_types = excluded.grant_types,"
                " token_endpoint_auth_method = excluded.token_endpoint_auth_method,"
                " metadata = excluded.metadata WHERE clients.kind = 'cimd'"
            )
        else:
            sql = f"INSERT {columns}"
        self.prune_unused_clients()
        try:
            with self._tx() as db:
                (count,) = db.execute("SELECT COUNT(*) FROM clients").fetchone()
                if count >= self.max_clients:
                    known = db.execute(
                        "SELECT 1 FROM clients WHERE client_id = ?", (client.client_id,)
                    ).fetchone()
                    if known is None:
                        raise StoreFull(f"too many registered clients ({count})")
                inserted = db.execute(sql, row).rowcount == 1
        except sqlite3.IntegrityError:
            inserted = False
        if not inserted:
            raise ValueError(f"client_id {client.client_id!r} is already registered")
        stored = self.get_client(client.client_id)
        assert stored is not None
        return stored

    def prune_unused_clients(self) -> int:
        """Forget dynamically registered clients never used (no approval, no grant) within
        a day of registering; returns how many."""
        cutoff = self._clock() - UNUSED_CLIENT_TTL
        with self._tx() as db:
            return db.execute(
                "DELETE FROM clients WHERE kind = 'dcr' AND created_at < ?"
                " AND client_id NOT IN (SELECT client_id FROM approvals)"
                " AND client_id NOT IN (SELECT client_id FROM grants)",
                (cutoff,),
            ).rowcount

    def get_client(self, client_id: str) -> RegisteredClient | None:
        rows = self._read(
            "SELECT client_id, client_name, redirect_uris, grant_types,"
            " token_endpoint_auth_method, kind, created_at, metadata"
            " FROM clients WHERE client_id = ?",
            (client_id,),
        )
        if not rows:
            return None
        cid, name, uris, grant_types, method, kind, created, metadata = rows[0]
        return RegisteredClient(
            client_id=cid,
            client_name=name,
            redirect_uris=tuple(json.loads(uris)),
            grant_types=tuple(json.loads(grant_types)),
            token_endpoint_auth_method=method,
            kind=kind,
            created_at=created,
            metadata=json.loads(metadata),
        )

    # --- grants -------------------------------------------------------------------------

    def create_grant(
        self,
        *,
        user_sub: str,
        client_id: str,
        route: str,
        scopes: str | Sequence[str] = "",
        email: str | None = None,
        groups: Sequence[str] = (),
        roles: Sequence[str] = (),
        route_id: str | None = None,
    ) -> Grant:
        """A new grant, for the route's identity ``route_id``; the client must be registered."""
        grant = Grant(
            grant_id=secrets.token_urlsafe(16),
            user_sub=user_sub,
            client_id=client_id,
            route=route,
            scopes=scopes if isinstance(scopes, str) else " ".join(scopes),
            created_at=self._clock(),
            email=email,
            groups=tuple(groups),
            roles=tuple(roles),
            route_id=route_id,
        )
        # Roles ride in the same JSON column as groups (m003): no schema change needed.
        claims = json.dumps({"email": email, "groups": list(groups), "roles": list(roles)})
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO grants (grant_id, user_sub, client_id, route, scopes,"
                    " created_at, claims, route_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        grant.grant_id,
                        grant.user_sub,
                        grant.client_id,
                        grant.route,
                        grant.scopes,
                        grant.created_at,
                        claims,
                        route_id,
                    ),
                )
        except sqlite3.IntegrityError as e:
            raise ValueError(f"unknown client_id {client_id!r}") from e
        return grant

    def update_grant_claims(
        self,
        grant_id: str,
        *,
        email: str | None,
        groups: Sequence[str] = (),
        roles: Sequence[str] = (),
    ) -> None:
        """What the identity provider says about the user now (at a refresh), so the grant
        never vouches for groups the user has lost."""
        claims = json.dumps({"email": email, "groups": list(groups), "roles": list(roles)})
        with self._tx() as db:
            db.execute("UPDATE grants SET claims = ? WHERE grant_id = ?", (claims, grant_id))

    def get_grant(self, grant_id: str) -> Grant | None:
        rows = self._read(
            "SELECT grant_id, user_sub, client_id, route, scopes, created_at, revoked_at,"
            " claims, route_id FROM grants WHERE grant_id = ?",
            (grant_id,),
        )
        return _grant(rows[0]) if rows else None

    def revoke_grant(self, grant_id: str) -> bool:
        """Revoke a grant and with it every refresh token issued under it; False if unknown
        or already revoked."""
        with self._tx() as db:
            return self._revoke(db, grant_id, self._clock())

    def revoke_user_grants(self, user_sub: str) -> int:
        """Revoke every live grant of one user (their provider session ended); how many."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE grants SET revoked_at = ? WHERE user_sub = ? AND revoked_at IS NULL",
                (self._clock(), user_sub),
            )
            return cursor.rowcount

    def grant_of_refresh_token(self, token: str) -> Grant | None:
        """The grant a refresh token belongs to, without using the token: the token endpoint
        asks the identity provider about the user before it rotates anything."""
        rows = self._read(
            "SELECT g.grant_id, g.user_sub, g.client_id, g.route, g.scopes, g.created_at,"
            " g.revoked_at, g.claims, g.route_id FROM refresh_tokens t JOIN grants g"
            " ON g.grant_id = t.grant_id WHERE t.token_hash = ?",
            (hash_token(token),),
        )
        return _grant(rows[0]) if rows else None

    @staticmethod
    def _revoke(db: sqlite3.Connection, grant_id: str, now: float) -> bool:
        cursor = db.execute(
            "UPDATE grants SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL",
            (now, grant_id),
        )
        return cursor.rowcount == 1

    # --- refresh tokens -----------------------------------------------------------------

    def add_refresh_token(self, grant_id: str, token: str, ttl: float) -> float:
        """Record a refresh token (its hash) for a live grant; returns its expiry time."""
        now = self._clock()
        expires_at = now + ttl
        with self._tx() as db:
            live = db.execute(
                "SELECT 1 FROM grants WHERE grant_id = ? AND revoked_at IS NULL", (grant_id,)
            ).fetchone()
            if live is None:
                raise ValueError("refresh tokens can only be added to a live grant")
            db.execute(
                "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (hash_token(token), grant_id, now, expires_at),
            )
        return expires_at

    def use_refresh_token(
        self,
        token: str,
        *,
        client_id: str | None = None,
        ttl: float | None = None,
        keep_expiry: bool = False,
    ) -> RefreshResult:
        """Rotate a refresh token: a valid unused one is marked used and replaced by a new one
        (living ``ttl`` seconds, by default as long as the old one did; with ``keep_expiry``
        expiring when the old one would have, so rotation never extends a grant's life).

        A used one revokes its grant (``reused``); one of a revoked grant (``revoked``), an
        expired one (``expired``) and an unknown one are refused. With ``client_id``, a token
        presented by another client is refused (``wrong_client``) and left untouched.
        """
        token_hash = hash_token(token)
        with self._tx() as db:
            now = self._clock()
            row = db.execute(
                "SELECT t.created_at, t.expires_at, t.used_at, g.grant_id, g.user_sub,"
                " g.client_id, g.route, g.scopes, g.created_at, g.revoked_at, g.claims,"
                " g.route_id"
                " FROM refresh_tokens t JOIN grants g ON g.grant_id = t.grant_id"
                " WHERE t.token_hash = ?",
                (token_hash,),
            ).fetchone()
            if row is None:
                return RefreshResult(outcome="unknown")
            created_at, expires_at, used_at = row[0], row[1], row[2]
            grant = _grant(row[3:])
            if client_id is not None and client_id != grant.client_id:
                return RefreshResult(outcome="wrong_client")
            if grant.revoked:
                return RefreshResult(outcome="revoked")
            if used_at is not None:
                self._revoke(db, grant.grant_id, now)
                return RefreshResult(outcome="reused")
            if now >= expires_at:
                return RefreshResult(outcome="expired")
            successor = new_token()
            successor_hash = hash_token(successor)
            if keep_expiry:
                new_expiry = expires_at
            else:
                new_expiry = now + (ttl if ttl is not None else expires_at - created_at)
            db.execute(
                "UPDATE refresh_tokens SET used_at = ?, replaced_by = ? WHERE token_hash = ?",
                (now, successor_hash, token_hash),
            )
            db.execute(
                "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (successor_hash, grant.grant_id, now, new_expiry),
            )
        return RefreshResult(
            outcome="rotated", grant=grant, refresh_token=successor, expires_at=new_expiry
        )

    def revoke_by_refresh_token(self, token: str, *, client_id: str | None = None) -> bool:
        """RFC 7009: revoke the grant a refresh token belongs to (with all its tokens); False
        when the token is unknown, belongs to another client, or its grant is already revoked."""
        with self._tx() as db:
            row = db.execute(
                "SELECT g.grant_id, g.client_id FROM refresh_tokens t"
                " JOIN grants g ON g.grant_id = t.grant_id WHERE t.token_hash = ?",
                (hash_token(token),),
            ).fetchone()
            if row is None or (client_id is not None and row[1] != client_id):
                return False
            return self._revoke(db, row[0], self._clock())

    # --- approvals ----------------------------------------------------------------------

    def approve_client(
        self, user_sub: str, client_id: str, route: str, route_id: str | None = None
    ) -> None:
        """Remember that the user approved this client on this route, as the route is now
        (``route_id``, its identity): consent is asked once per definition of the route."""
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO approvals (user_sub, client_id, route, approved_at, route_id)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_sub, client_id, route)"
                    " DO UPDATE SET approved_at = excluded.approved_at,"
                    " route_id = excluded.route_id",
                    (user_sub, client_id, route, self._clock(), route_id),
                )
        except sqlite3.IntegrityError as e:
            raise ValueError(f"unknown client_id {client_id!r}") from e

    def is_approved(
        self, user_sub: str, client_id: str, route: str, route_id: str | None = None
    ) -> bool:
        """Whether the approval exists and was given for the route's identity ``route_id``
        (an approval for another definition of the route, or from before identities were
        stored, counts as none)."""
        rows = self._read(
            "SELECT route_id FROM approvals WHERE user_sub = ? AND client_id = ? AND route = ?",
            (user_sub, client_id, route),
        )
        return bool(rows) and rows[0][0] == route_id


def _grant(row: Sequence[Any]) -> Grant:
    grant_id, user_sub, client_id, route, scopes, created_at, revoked_at, claims, route_id = row
    extra = json.loads(claims) if claims else {}
    return Grant(
        email=extra.get("email"),
        groups=tuple(extra.get("groups") or ()),
        roles=tuple(extra.get("roles") or ()),
        grant_id=grant_id,
        user_sub=user_sub,
        client_id=client_id,
        route=route,
        scopes=scopes,
        created_at=created_at,
        revoked_at=revoked_at,
        route_id=route_id,
    )
