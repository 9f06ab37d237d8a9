"""lockgate.identity.browser: the gateway's pending browser sign-ins and browser sessions.

Why it exists: a pending login is the only link between the provider's callback and the
MCP client's request: it must be single use, expire, and come back from the browser that
started it (no login CSRF); a browser session must expire, and its cookie be HttpOnly and
SameSite.
"""

from __future__ import annotations

from lockgate.identity.browser import PendingLogins, Sessions, cookie_value, session_cookie
from lockgate.identity.claims import UserClaims


def test_logins_are_single_use_and_expire() -> None:
    now = [1000.0]
    logins = PendingLogins(ttl=60, clock=lambda: now[0])
    state, login = logins.add({"client_id": "c"})
    assert login.nonce and login.verifier and len(login.challenge) == 43
    assert logins.take(state, login.browser) is not None
    assert logins.take(state, login.browser) is None
    state, login = logins.add({"client_id": "c"})
    assert logins.take(state, "another-browser") is None  # login CSRF
    assert logins.take(state, login.browser) is None  # and the state is spent
    state, login = logins.add({"client_id": "c"})
    now[0] += 61
    assert logins.take(state, login.browser) is None


def test_sessions_expire_and_the_cookie_is_locked_down() -> None:
    now = [1000.0]
    sessions = Sessions(ttl=60, clock=lambda: now[0])
    sid = sessions.create(UserClaims(sub="alice"))
    cookie = session_cookie(sid, 60)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/oauth" in cookie
    assert cookie_value(f"other=1; {cookie.split(';')[0]}") == sid
    assert sessions.get(sid) is not None
    assert sessions.get("forged") is None
    now[0] += 61
    assert sessions.get(sid) is None
