"""Issue 9, item 11 (pending sign-in state): the memory anyone on the listen address can add
to by opening /oauth/authorize is bounded, in total and per client, and expires.

Why it exists: every authorization request kept a pending consent (or, for kind oidc, a
pending provider login) until it expired, with no cap, so a loop on /oauth/authorize grew
the gateway without bound. Over the per-client cap the gateway answers 429, over the total
cap 503, each with one sentence; the caps themselves are checked on the core's stores with
a clock, the 429 over real HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from lockgate.authserver.consent import MAX_PENDING_PER_CLIENT, PendingAuthorizations
from lockgate.authserver.requests import OAuthError
from lockgate.identity.browser import PendingLogins, TooManyLogins
from tests.support.doubles import pending_fields
from tests.support.oauth import DevStack, authorize_url, dev_gateway, pkce, register


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with dev_gateway(tmp_path_factory.mktemp("sec-pending")) as stack:
        yield stack


def test_one_client_cannot_pile_up_pending_consents(stack: DevStack) -> None:
    flooder = register(stack.base, name="flooder")
    url = authorize_url(stack.base, flooder, stack.gw.route_url("rec"), pkce()[1])
    answers = [httpx.get(url).status_code for _ in range(MAX_PENDING_PER_CLIENT + 2)]
    assert answers[:MAX_PENDING_PER_CLIENT] == [200] * MAX_PENDING_PER_CLIENT
    assert set(answers[MAX_PENDING_PER_CLIENT:]) == {429}, answers
    over = httpx.get(url)
    assert "too many sign-ins" in over.text
    # Another client is not held up by this one.
    other = register(stack.base, name="other")
    ok = httpx.get(authorize_url(stack.base, other, stack.gw.route_url("rec"), pkce()[1]))
    assert ok.status_code == 200


def test_pending_consents_are_capped_in_total_and_expire() -> None:
    now = [0.0]
    pending = PendingAuthorizations(ttl=300, clock=lambda: now[0], max_total=5, max_per_client=3)
    for i in range(5):
        pending.add(**pending_fields(f"c{i}"))
    with pytest.raises(OAuthError) as full:
        pending.add(**pending_fields("c9"))
    assert full.value.status == 503
    now[0] += 301  # all expired: room again
    pending.add(**pending_fields("c9"))
    assert len(pending) == 1


def test_pending_provider_logins_are_capped_in_total_and_per_client() -> None:
    now = [0.0]
    logins = PendingLogins(ttl=600, clock=lambda: now[0], max_total=4, max_per_client=2)
    logins.add({"client_id": "a"})
    logins.add({"client_id": "a"})
    with pytest.raises(TooManyLogins) as per_client:
        logins.add({"client_id": "a"})
    assert per_client.value.status == 429
    logins.add({"client_id": "b"})
    logins.add({"client_id": "c"})
    with pytest.raises(TooManyLogins) as total:
        logins.add({"client_id": "d"})
    assert total.value.status == 503
    now[0] += 601
    logins.add({"client_id": "d"})
