"""lockgate/mcp/sessions.py: who opened each MCP session; bounded, forgetting, never the raw id."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.mcp.sessions import Owner, SessionTable, is_session_hash, session_hash

ALICE = Owner("alice", "client-1", "notes")


def test_the_owner_passes_everyone_else_is_told_why_not() -> None:
    table = SessionTable()
    assert table.bind("s1", ALICE)
    assert table.check("s1", ALICE) is None
    assert table.check("s1", Owner("bob", "client-1", "notes")) == "other_user"
    assert table.check("s1", Owner("alice", "client-2", "notes")) == "other_client"
    assert table.check("s1", Owner("alice", "client-1", "notes-too")) == "other_route"
    # Another route is named first, whoever asks.
    assert table.check("s1", Owner("bob", "client-2", "notes-too")) == "other_route"
    assert table.check("s2", ALICE) == "unknown"


def test_a_second_owner_cannot_take_a_bound_session() -> None:
    table = SessionTable()
    assert table.bind("s1", ALICE)
    assert not table.bind("s1", Owner("bob", None, "notes"))
    assert table.bind("s1", ALICE)  # the same owner again is fine
    assert table.check("s1", ALICE) is None


def test_forget_ends_the_binding() -> None:
    table = SessionTable()
    table.bind("s1", ALICE)
    assert table.forget("s1")
    assert not table.forget("s1")
    assert table.check("s1", ALICE) == "unknown"
    assert len(table) == 0


def test_bounded_in_total_least_recently_used_goes_first() -> None:
    table = SessionTable(max_sessions=3)
    owners = [Owner(f"u{i}", None, "notes") for i in range(4)]
    for i, owner in enumerate(owners[:3]):
        table.bind(f"s{i}", owner)
    assert table.check("s0", owners[0]) is None  # s0 used: s1 is now the oldest
    table.bind("s3", owners[3])
    assert len(table) == 3
    assert table.check("s1", owners[1]) == "unknown"
    assert table.check("s0", owners[0]) is None


def test_one_owner_cannot_evict_the_others() -> None:
    table = SessionTable(max_sessions=100, max_per_owner=5)
    table.bind("bobs", Owner("bob", None, "notes"))
    for i in range(50):
        table.bind(f"a{i}", ALICE)
    assert len(table) == 6
    assert table.check("bobs", Owner("bob", None, "notes")) is None
    assert table.check("a49", ALICE) is None and table.check("a0", ALICE) == "unknown"


def test_idle_sessions_are_forgotten() -> None:
    now = [0.0]
    table = SessionTable(idle_ttl=10, clock=lambda: now[0])
    table.bind("s1", ALICE)
    table.bind("s2", ALICE)
    now[0] = 8
    assert table.check("s1", ALICE) is None
    now[0] = 15
    assert table.check("s2", ALICE) == "unknown"
    assert table.check("s1", ALICE) is None


def test_the_table_keeps_no_raw_id() -> None:
    table = SessionTable()
    table.bind("secret-session-id", ALICE)
    assert "secret-session-id" not in repr(vars(table)) and b"secret" not in b"".join(
        table._entries
    )


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SessionTable(max_sessions=0)


def test_threads_binding_and_checking_at_once_stay_consistent() -> None:
    table = SessionTable(max_sessions=500, max_per_owner=50)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            owner = Owner(f"u{n}", None, "notes")
            for i in range(300):
                table.bind(f"{n}-{i}", owner)
                assert table.check(f"{n}-{i}", owner) in (None, "unknown")
                assert table.check(f"{n}-{i}", Owner("x", None, "notes")) != None  # noqa: E711
        except BaseException as e:  # collected for the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(table) <= 500


@given(st.text(st.characters(codec=None), max_size=200) | st.just("\udc80\ud800"))
def test_session_hash_is_short_stable_hex_and_not_the_id(sid: str) -> None:
    h = session_hash(sid)
    assert is_session_hash(h) and h == session_hash(sid)
    assert len(h) == 12
    if len(sid) >= 4:
        assert sid not in h or sid == h


def test_is_session_hash() -> None:
    assert is_session_hash(session_hash("x"))
    assert not is_session_hash("0123456789AB")
    assert not is_session_hash("a" * 32)
    assert not is_session_hash(None)


def test_watch_shows_a_hash_even_for_old_events_holding_the_id() -> None:
    from lockgate.audit.cells import detail

    hashed = dict(detail({"event": "tool.call", "session": session_hash("abc")}).fields)
    assert hashed["session"] == session_hash("abc")
    old = dict(detail({"event": "tool.call", "session": "raw-session-id-1"}).fields)
    assert old["session"] == session_hash("raw-session-id-1")
