"""addons/oauth/documents.py in-process: the hand-over from OAuthServer, refusals, failing closed.

Why it exists: a metadata-document client's request is left unanswered by the synchronous
OAuthServer hook and answered by the async ClientDocuments child. If that child raised, the
request must not go on unanswered (mitmproxy would forward it): it fails closed. The e2e test
(tests/e2e/test_cimd.py) covers the fetch itself over real HTTPS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from mitmproxy import http

from lockgate.addons._flow import state
from lockgate.addons.oauth.documents import cimd_client_id
from lockgate.authserver.ratelimit import RateLimiter
from tests.addons.test_oauth_server import Env, _env


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Env]:
    yield from _env(tmp_path, "dev")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def authorize_path(client_id: str) -> str:
    params = {"client_id": client_id, "redirect_uri": "http://127.0.0.1:9/cb"}
    return f"/oauth/authorize?{urlencode(params)}"


def test_document_clients_are_left_to_the_async_child(dev: Env) -> None:
    f = dev.send(authorize_path("https://app.example.com/client.json"), method="GET")
    assert f.response is None
    assert cimd_client_id(f) == "https://app.example.com/client.json"
    registered = dev.send(authorize_path("lg-someone"), method="GET")
    assert registered.response is not None  # answered by the parent: an unknown client
    body = urlencode({"grant_type": "refresh_token", "client_id": "https://a.example/c"})
    token = dev.send("/oauth/token", body=body.encode())
    assert token.response is None and cimd_client_id(token) == "https://a.example/c"


@pytest.mark.anyio
async def test_an_http_client_id_gets_a_denied_page_and_an_event(dev: Env) -> None:
    f = dev.send(authorize_path("http://app.example.com/client.json"), method="GET")
    await dev.oauth.documents.request(f)
    assert f.response is not None and f.response.status_code == 400
    assert b"must be an https URL" in (f.response.content or b"")
    [event] = [e for e in state(f).events if e["event"] == "auth.authorize_refused"]
    assert event["outcome"] == "denied" and event["kind"] == "cimd"


@pytest.mark.anyio
async def test_a_crash_while_resolving_fails_closed(
    dev: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(flow: http.HTTPFlow, url: str) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(dev.oauth.documents, "resolve", boom)
    f = dev.send(authorize_path("https://app.example.com/client.json"), method="GET")
    await dev.oauth.documents.request(f)
    assert f.response is not None and f.response.status_code == 500
    assert state(f).outcome == "error"


@pytest.mark.anyio
async def test_document_fetches_are_rate_limited_per_address(dev: Env) -> None:
    dev.oauth.documents.limiter = RateLimiter(0, 60.0)  # every fetch is over the budget
    f = dev.send(authorize_path("https://app.example.com/client.json"), method="GET")
    await dev.oauth.documents.request(f)
    assert f.response is not None and f.response.status_code == 429
    assert 1 <= int(f.response.headers["retry-after"]) <= 60
    assert b"Too many client metadata documents" in (f.response.content or b"")
    [event] = [e for e in state(f).events if e["event"] == "auth.authorize_refused"]
    assert event["outcome"] == "denied"
