"""lockgate.authserver.store: migrations in the database, clients, grants, refresh rotation."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate.authserver.migrations import MIGRATIONS, Migration, migrate
from lockgate.authserver.store import Store, hash_token, new_token
from lockgate.errors import LockgateError
from lockgate.paths import data_dir

ROUTE = "notes"
REDIRECT = "http://127.0.0.1:33418/callback"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "lockgate.db"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[Store]:
    with Store.open(db_path, clock=clock) as s:
        yield s


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _grant(store: Store, user: str = "alice") -> str:
    client = store.register_client(redirect_uris=[REDIRECT], client_name="Claude Code")
    return store.create_grant(
        user_sub=user, client_id=client.client_id, route=ROUTE, scopes=["mcp"]
    ).grant_id


# --- migrations -------------------------------------------------------------------------


def test_migrations_apply_once_and_record_themselves(db_path: Path, clock: FakeClock) -> None:
    names = [m.name for m in MIGRATIONS]
    assert names[:2] == ["m001_initial", "m002_indexes"]
    with Store.open(db_path, clock=clock) as first:
        assert first.applied_migrations == names
    clock.now += 100
    with Store.open(db_path, clock=clock) as second:
        assert second.applied_migrations == []
    with _raw(db_path) as db:
        rows = db.execute("SELECT name, applied_at FROM _migrations ORDER BY rowid").fetchall()
    assert rows == [(name, 1_800_000_000.0) for name in names]


def test_database_at_migration_1_gets_migration_2(db_path: Path, clock: FakeClock) -> None:
    db_path.parent.mkdir(parents=True)
    db = _raw(db_path)
    assert migrate(db, MIGRATIONS[:1], clock=clock) == ["m001_initial"]
    indexes = "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'grants_user_client'"
    assert db.execute(indexes).fetchall() == []
    db.close()

    clock.now += 5
    with Store.open(db_path, clock=clock) as s:
        assert s.applied_migrations == [m.name for m in MIGRATIONS[1:]]
    with _raw(db_path) as db:
        assert db.execute(indexes).fetchall() == [("grants_user_client",)]
        rows = db.execute("SELECT name, applied_at FROM _migrations ORDER BY rowid").fetchall()
    assert rows[:2] == [("m001_initial", 1_800_000_000.0), ("m002_indexes", 1_800_000_005.0)]


def test_failed_migration_is_rolled_back_and_not_recorded(db_path: Path) -> None:
    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    steps = [*MIGRATIONS, Migration("m999_broken", broken)]
    with pytest.raises(RuntimeError):
        Store.open(db_path, migrations=steps)
    with _raw(db_path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM _migrations").fetchall()]
        tables = db.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchall()
    assert names == [m.name for m in MIGRATIONS]
    assert tables == []


def test_database_from_a_newer_lockgate_is_refused(db_path: Path) -> None:
    Store.open(db_path).close()
    with _raw(db_path) as db:
        db.execute("INSERT INTO _migrations (name, applied_at) VALUES ('m050_future', 0)")
    with pytest.raises(LockgateError, match="newer lockgate"):
        Store.open(db_path)


def test_default_path_is_in_the_data_dir_with_wal() -> None:
    with Store.open() as s:
        assert s.get_client("nobody") is None
    path = data_dir() / "lockgate.db"
    assert path.exists()
    assert path.stat().st_mode & 0o077 == 0
    with _raw(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_schema_has_the_documented_columns(store: Store, db_path: Path) -> None:
    def columns(table: str) -> list[str]:
        with _raw(db_path) as db:
            return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]

    assert columns("clients") == [
        "client_id",
        "client_name",
        "redirect_uris",
        "grant_types",
        "token_endpoint_auth_method",
        "kind",
        "created_at",
        "metadata",
    ]
    assert columns("grants") == [
        "grant_id",
        "user_sub",
        "client_id",
        "route",
        "scopes",
        "created_at",
        "revoked_at",
        "claims",
        "route_id",
    ]
    assert columns("refresh_tokens") == [
        "token_hash",
        "grant_id",
        "created_at",
        "expires_at",
        "used_at",
        "replaced_by",
    ]
    assert columns("approvals") == ["user_sub", "client_id", "route", "approved_at", "route_id"]


# --- clients, grants, approvals ---------------------------------------------------------


def test_register_and_get_dcr_client(store: Store) -> None:
    client = store.register_client(
        redirect_uris=[REDIRECT], client_name="Cursor", metadata={"software_id": "cursor"}
    )
    assert client.kind == "dcr"
    assert client.client_id.startswith("lg-")
    assert store.get_client(client.client_id) == client
    assert client.redirect_uris == (REDIRECT,)
    assert client.grant_types == ("authorization_code", "refresh_token")
    assert client.metadata == {"software_id": "cursor"}
    with pytest.raises(ValueError, match="already registered"):
        store.register_client(redirect_uris=[REDIRECT], client_id=client.client_id)


def test_cimd_client_is_keyed_by_url_and_refreshed(store: Store) -> None:
    url = "https://app.example.com/oauth/client.json"
    with pytest.raises(ValueError):
        store.register_client(redirect_uris=[REDIRECT], kind="cimd")
    first = store.register_client(redirect_uris=[REDIRECT], kind="cimd", client_id=url)
    again = store.register_client(
        redirect_uris=["https://app.example.com/cb"], kind="cimd", client_id=url
    )
    assert again.client_id == first.client_id == url
    assert again.redirect_uris == ("https://app.example.com/cb",)
    dcr = store.register_client(redirect_uris=[REDIRECT])
    with pytest.raises(ValueError):  # a cimd document never takes over a dcr client
        store.register_client(redirect_uris=[REDIRECT], kind="cimd", client_id=dcr.client_id)


def test_client_needs_a_redirect_uri(store: Store) -> None:
    with pytest.raises(ValueError):
        store.register_client(redirect_uris=[])


def test_grant_for_unknown_client_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown client_id"):
        store.create_grant(user_sub="alice", client_id="nope", route=ROUTE)


def test_grant_round_trip_and_revoke(store: Store) -> None:
    grant_id = _grant(store)
    grant = store.get_grant(grant_id)
    assert grant is not None and grant.scopes == "mcp" and not grant.revoked
    assert store.revoke_grant(grant_id) is True
    assert store.revoke_grant(grant_id) is False
    revoked = store.get_grant(grant_id)
    assert revoked is not None and revoked.revoked
    with pytest.raises(ValueError):
        store.add_refresh_token(grant_id, new_token(), 3600)


def test_approvals(store: Store) -> None:
    client = store.register_client(redirect_uris=[REDIRECT])
    assert not store.is_approved("alice", client.client_id, ROUTE)
    store.approve_client("alice", client.client_id, ROUTE)
    store.approve_client("alice", client.client_id, ROUTE)  # idempotent
    assert store.is_approved("alice", client.client_id, ROUTE)
    assert not store.is_approved("bob", client.client_id, ROUTE)
    assert not store.is_approved("alice", client.client_id, "other")


# --- refresh tokens ---------------------------------------------------------------------


def test_only_hashes_of_refresh_tokens_are_stored(store: Store, db_path: Path) -> None:
    token = new_token()
    store.add_refresh_token(_grant(store), token, 3600)
    files = [db_path, db_path.with_name("lockgate.db-wal")]
    raw = b"".join(f.read_bytes() for f in files if f.exists())
    assert token.encode() not in raw
    with _raw(db_path) as db:
        assert db.execute("SELECT token_hash FROM refresh_tokens").fetchall() == [
            (hash_token(token),)
        ]


def test_refresh_rotation(store: Store, clock: FakeClock, db_path: Path) -> None:
    grant_id = _grant(store)
    first = new_token()
    store.add_refresh_token(grant_id, first, 3600)
    clock.now += 60
    result = store.use_refresh_token(first)
    assert result.ok and result.outcome == "rotated"
    assert result.grant is not None and result.grant.grant_id == grant_id
    second = result.refresh_token
    assert second is not None and second != first
    assert result.expires_at == clock.now + 3600
    with _raw(db_path) as db:
        used_at, replaced_by = db.execute(
            "SELECT used_at, replaced_by FROM refresh_tokens WHERE token_hash = ?",
            (hash_token(first),),
        ).fetchone()
    assert used_at == clock.now and replaced_by == hash_token(second)

    third = store.use_refresh_token(second, ttl=10)
    assert third.ok and third.expires_at == clock.now + 10
    assert third.refresh_token is not None and third.refresh_token not in repr(third)


def test_reuse_revokes_the_whole_grant(store: Store) -> None:
    grant_id = _grant(store)
    first = new_token()
    store.add_refresh_token(grant_id, first, 3600)
    second = store.use_refresh_token(first).refresh_token
    assert second is not None
    other = new_token()  # a second, unrelated refresh token of the same grant
    store.add_refresh_token(grant_id, other, 3600)

    assert store.use_refresh_token(first).outcome == "reused"
    grant = store.get_grant(grant_id)
    assert grant is not None and grant.revoked
    # The thief's copy and the legitimate successor are both dead now.
    assert store.use_refresh_token(second).outcome == "revoked"
    assert store.use_refresh_token(other).outcome == "revoked"
    assert store.use_refresh_token(first).outcome == "revoked"


def test_reuse_leaves_other_grants_alone(store: Store) -> None:
    mine, theirs = _grant(store, "alice"), _grant(store, "bob")
    a, b = new_token(), new_token()
    store.add_refresh_token(mine, a, 3600)
    store.add_refresh_token(theirs, b, 3600)
    store.use_refresh_token(a)
    assert store.use_refresh_token(a).outcome == "reused"
    assert store.use_refresh_token(b).ok


def test_expired_refresh_is_refused(store: Store, clock: FakeClock) -> None:
    token = new_token()
    store.add_refresh_token(_grant(store), token, 3600)
    clock.now += 3600
    result = store.use_refresh_token(token)
    assert result.outcome == "expired" and not result.ok
    assert result.refresh_token is None and result.grant is None


def test_revoked_and_unknown_refresh_are_refused(store: Store) -> None:
    grant_id = _grant(store)
    token = new_token()
    store.add_refresh_token(grant_id, token, 3600)
    assert store.use_refresh_token(new_token()).outcome == "unknown"
    store.revoke_grant(grant_id)
    assert store.use_refresh_token(token).outcome == "revoked"


def test_refresh_from_another_client_is_refused_untouched(store: Store) -> None:
    grant_id = _grant(store)
    grant = store.get_grant(grant_id)
    assert grant is not None
    token = new_token()
    store.add_refresh_token(grant_id, token, 3600)
    assert store.use_refresh_token(token, client_id="someone-else").outcome == "wrong_client"
    assert store.use_refresh_token(token, client_id=grant.client_id).ok


def test_concurrent_use_rotates_exactly_once(store: Store) -> None:
    token = new_token()
    store.add_refresh_token(_grant(store), token, 3600)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def use() -> None:
        barrier.wait()
        outcomes.append(store.use_refresh_token(token).outcome)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("rotated") == 1
    assert set(outcomes) <= {"rotated", "reused", "revoked"}


def test_state_survives_reopen(db_path: Path, clock: FakeClock) -> None:
    token = new_token()
    with Store.open(db_path, clock=clock) as s:
        grant_id = _grant(s)
        s.add_refresh_token(grant_id, token, 3600)
    with Store.open(db_path, clock=clock) as s:
        assert s.use_refresh_token(token).ok


def test_revoke_user_grants_ends_only_that_users_grants(store: Store) -> None:
    """The provider refused alice's refresh: every grant of hers dies, bob's live on."""
    a1, a2, b = _grant(store, "alice"), _grant(store, "alice"), _grant(store, "bob")
    ta, tb = new_token(), new_token()
    store.add_refresh_token(a1, ta, 3600)
    store.add_refresh_token(b, tb, 3600)
    assert store.revoke_user_grants("alice") == 2
    assert store.revoke_user_grants("alice") == 0  # already revoked
    for grant_id in (a1, a2):
        grant = store.get_grant(grant_id)
        assert grant is not None and grant.revoked
    assert store.use_refresh_token(ta).outcome == "revoked"
    assert store.use_refresh_token(tb).ok


def test_grant_of_refresh_token_peeks_without_rotating(store: Store) -> None:
    grant_id = _grant(store, "alice")
    token = new_token()
    store.add_refresh_token(grant_id, token, 3600)
    grant = store.grant_of_refresh_token(token)
    assert grant is not None and grant.grant_id == grant_id and grant.user_sub == "alice"
    assert store.grant_of_refresh_token(new_token()) is None
    assert store.use_refresh_token(token).ok  # the peek left it unused
