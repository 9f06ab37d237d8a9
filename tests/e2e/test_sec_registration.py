"""Issue 9, item 8: dynamic client registration cannot fill the disk.

Why it exists: a 4 MB redirect URI was stored (database and audit log), and the rate limit
keyed on the exact source address, so every 127.x.y.z got a fresh allowance. Now every
field is bounded, the limit keys on the address block (/24, /64), registrations are capped
in total, and never-used ones expire. Real gateway, real HTTP, real source addresses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lockgate.authserver.store import Store
from tests.support.gateway import GatewayProcess as Gateway
from tests.support.gateway import profile_text, running_gateway
from tests.support.oauth import CALLBACK, ENV
from tests.support.upstreams import sdk_upstream


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with sdk_upstream() as notes:
        profile = profile_text({"notes": notes}, {"notes": "notes"}, kind="dev")
        with running_gateway(profile, tmp_path_factory.mktemp("sec-reg"), env=ENV) as gateway:
            yield gateway


def register_from(gw: Gateway, source: str, body: dict[str, object]) -> httpx.Response:
    """A registration sent from the loopback address `source` (127.0.0.0/8 is all ours)."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, trust_env=False, timeout=30) as client:
        return client.post(f"{gw.base_url}/oauth/register", json=body)


def test_a_long_redirect_uri_is_refused_and_not_stored(gw: Gateway) -> None:
    long_uri = "http://127.0.0.1:9/cb?" + "a" * 4000
    r = register_from(gw, "127.0.0.1", {"client_name": "long", "redirect_uris": [long_uri]})
    assert r.status_code == 400, r.text[:200]
    assert r.json()["error"] == "invalid_client_metadata"
    assert "2048" in r.json()["error_description"]
    assert long_uri not in r.text
    time.sleep(0.3)
    assert "a" * 3000 not in gw.audit_path.read_text()


def test_too_many_redirect_uris_and_long_fields_are_refused(gw: Gateway) -> None:
    many = [f"http://127.0.0.1:{9000 + i}/cb" for i in range(11)]
    r = register_from(gw, "127.0.0.1", {"redirect_uris": many})
    assert r.status_code == 400 and r.json()["error"] == "invalid_client_metadata"
    r = register_from(gw, "127.0.0.1", {"redirect_uris": [CALLBACK], "client_name": "n" * 201})
    assert r.status_code == 400 and r.json()["error"] == "invalid_client_metadata"
    r = register_from(
        gw, "127.0.0.1", {"redirect_uris": [CALLBACK], "grant_types": ["authorization_code"] * 50}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_client_metadata"


def test_the_rate_limit_covers_the_whole_address_block(gw: Gateway) -> None:
    body = {"client_name": "flood", "redirect_uris": [CALLBACK]}
    # A fresh /24 of its own (127.0.5.0/24): the other tests register from 127.0.0.1.
    answers = [register_from(gw, f"127.0.5.{i + 1}", body).status_code for i in range(25)]
    assert answers[:20] == [201] * 20
    assert set(answers[20:]) == {429}, answers
    refused = register_from(gw, "127.0.5.200", body)
    assert refused.status_code == 429 and refused.headers["retry-after"]
    assert refused.json()["error_description"].endswith(".")
    # Another block still gets its own allowance.
    assert register_from(gw, "127.0.6.1", body).status_code == 201


def test_unused_registrations_expire_and_the_total_is_capped(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = Store.open(tmp_path / "state.db", clock=lambda: now[0])
    with store:
        old = store.register_client(redirect_uris=[CALLBACK], client_name="old")
        used = store.register_client(redirect_uris=[CALLBACK], client_name="used")
        store.approve_client("alice", used.client_id, "notes")
        now[0] += 25 * 3600
        fresh = store.register_client(redirect_uris=[CALLBACK], client_name="fresh")
        assert store.get_client(old.client_id) is None  # never used within 24 h: gone
        assert store.get_client(used.client_id) is not None
        assert store.get_client(fresh.client_id) is not None
        store.max_clients = 3
        store.register_client(redirect_uris=[CALLBACK])
        with pytest.raises(ValueError, match="too many"):
            store.register_client(redirect_uris=[CALLBACK])
