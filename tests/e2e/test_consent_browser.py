"""The consent page in a real browser: Debian's headless Chromium, driven over DevTools.

Why it exists: the consent page's defences are promises about what a browser does. Here
Chromium proves them against a running `[identity] kind = "dev"` gateway:

- the page renders, naming the client, its redirect URI and the route; a real mouse click
  on Allow sends the form (Chromium adds Origin and Sec-Fetch-Site itself) and the browser
  lands on the client's loopback redirect URI with a code;
- a page on another loopback port that posts the same form (valid csrf and all) is refused
  with 403: any loopback origin is "this machine" for Guard, but consent wants the
  gateway's own origin;
- a page that frames the consent URL gets nothing: Chromium honours X-Frame-Options/CSP
  frame-ancestors and shows its own error document in the frame;
- a page on http://localhost:<port> (the MCP Inspector's kind of origin) can call a route
  with fetch(): the preflight passes, and it reads the answer and `Mcp-Session-Id`.
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest

from tests.support import require
from tests.support.browser import Browser, PageServer, Tab, chromium, serve_pages
from tests.support.oauth import DevStack, dev_gateway, hidden_fields, pkce, sign_in

CLIENT_NAME = "Browser <b>test</b> client"


@dataclass
class World:
    stack: DevStack
    browser: Browser
    callback: PageServer  # the client's redirect URI lives here
    other: PageServer  # another loopback "site"

    @property
    def redirect_uri(self) -> str:
        return self.callback.url("/callback")

    def authorize_url(self, client_id: str, route: str = "rec", state: str = "st-browser") -> str:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": self.redirect_uri,
            "state": state,
            "code_challenge": pkce()[1],
            "code_challenge_method": "S256",
            "resource": self.stack.gw.route_url(route),
        }
        return f"{self.stack.base}/oauth/authorize?{urlencode(params)}"

    def register(self) -> str:
        r = httpx.post(
            f"{self.stack.base}/oauth/register",
            json={"client_name": CLIENT_NAME, "redirect_uris": [self.redirect_uri]},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["client_id"])

    def tab(self) -> Tab:
        return self.browser.new_tab()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require(
        shutil.which("chromium") is not None,
        "Debian chromium missing: apt-get install chromium (.ci/run does)",
    )
    with ExitStack() as es:
        tmp = tmp_path_factory.mktemp("consent-browser")
        stack = es.enter_context(dev_gateway(tmp / "gw"))
        callback = es.enter_context(serve_pages())
        other = es.enter_context(serve_pages(host="localhost"))
        browser = es.enter_context(chromium(tmp / "browser"))
        yield World(stack, browser, callback, other)


# The page is served with `Referrer-Policy: same-origin`: with `no-referrer` Chromium posts
# the form with `Origin: null`, which Guard refuses, and Allow could never work in a browser.
def test_the_consent_page_renders_and_allow_redirects_with_a_code(world: World) -> None:
    client_id = world.register()
    tab = world.tab()
    tab.navigate(world.authorize_url(client_id))
    assert tab.evaluate("document.title") == "lockgate: allow access?"
    text = tab.evaluate("document.body.innerText")
    assert CLIENT_NAME in text  # shown as text, not markup
    assert tab.evaluate("document.querySelectorAll('b').length") == 0
    assert world.redirect_uri in text
    assert world.stack.gw.route_url("rec") in text
    [page] = tab.responses("/oauth/authorize")
    assert page["status"] == 200

    tab.click("button[value=approve]")
    hit = world.callback.wait_for("/callback")
    assert hit.query["state"] == "st-browser" and hit.query["code"]
    assert hit.query["iss"] == world.stack.base
    # The browser got there by the gateway's redirect from the consent form's POST.
    hop = tab.event(
        "Network.requestWillBeSent",
        lambda p: p["request"]["url"].startswith(world.redirect_uri + "?"),
    )
    assert hop["redirectResponse"]["status"] == 302
    assert "/oauth/consent" in hop["redirectResponse"]["url"]
    tab.wait_until(f"location.href.startsWith({json.dumps(world.redirect_uri + '?')})")


def test_a_form_posted_from_another_loopback_port_is_refused(world: World) -> None:
    client_id = world.register()
    # The real form's fields, as if the other page had them: only the origin is wrong.
    # Its own state: a code for this request would come back with it (the callback server
    # is shared, and an earlier test's redirect may still be landing there).
    page = httpx.get(world.authorize_url(client_id, state="st-other-port"))
    assert page.status_code == 200
    fields = hidden_fields(page.text)
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in {**fields, "decision": "approve"}.items()
    )
    world.other.pages["/attack"] = (
        "<!doctype html><title>attack</title>"
        f'<form id="f" method="post" action="{world.stack.base}/oauth/consent">{inputs}'
        '<button id="go" type="submit">go</button></form>'
    )
    tab = world.tab()
    tab.navigate(world.other.url("/attack"))
    tab.click("#go")
    answer = tab.response("/oauth/consent")
    assert answer["status"] == 403
    assert "location" not in {k.lower() for k in answer["headers"]}
    # The browser shows the gateway's refusal page.
    tab.wait_until(
        "document.body !== null && document.body.innerText.includes('not sent from this gateway')"
    )
    # No code for this request went anywhere.
    assert not [h for h in world.callback.hits if h.query.get("state") == "st-other-port"]
    # The form itself is still good from the gateway's own origin.
    ok = httpx.post(
        f"{world.stack.base}/oauth/consent",
        data={**fields, "decision": "approve"},
        headers={"Origin": world.stack.base},
        cookies=page.cookies,  # the consent cookie the page set, as the browser keeps it
    )
    assert ok.status_code == 302


def test_a_page_that_frames_the_consent_page_gets_nothing(world: World) -> None:
    client_id = world.register()
    target = world.authorize_url(client_id)
    world.other.pages["/frame"] = (
        "<!doctype html><title>framer</title>"
        f'<iframe id="f" src="{html.escape(target)}" width="600" height="400"></iframe>'
    )
    tab = world.tab()
    tab.navigate(world.other.url("/frame"))
    # The gateway did send the page; Chromium refused to show it in the frame.
    [page] = tab.responses("/oauth/authorize")
    assert page["status"] == 200
    headers = {k.lower(): v for k, v in page["headers"].items()}
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    tab.event("Network.loadingFailed")
    assert tab.failures("/oauth/authorize") == ["net::ERR_BLOCKED_BY_RESPONSE"]
    # The frame (an out-of-process iframe target) holds Chromium's error document, not the
    # consent page: look inside it over its own DevTools session.
    targets = world.browser.send("Target.getTargets")["targetInfos"]
    [frame] = [t for t in targets if t["type"] == "iframe" and t["url"] == target]
    session = world.browser.send(
        "Target.attachToTarget", {"targetId": frame["targetId"], "flatten": True}
    )["sessionId"]
    inside = Tab(world.browser, session).evaluate(
        "JSON.stringify([document.title, document.querySelectorAll('form, button').length,"
        " location.href, document.body ? document.body.innerText : ''])"
    )
    title, controls, href, text = json.loads(inside)
    assert title != "lockgate: allow access?" and controls == 0, inside
    assert href.startswith("chrome-error://"), inside
    assert CLIENT_NAME not in text
    # The framing page itself cannot see into the frame either (it never could: another
    # origin), and it is still its own page.
    assert tab.evaluate("document.title") == "framer"


def test_a_localhost_page_calls_a_route_with_fetch(world: World) -> None:
    token = sign_in(world.stack, "rec")["access_token"]
    world.stack.recorder.clear()
    tab = world.tab()
    tab.navigate(world.other.url("/inspector"))
    assert world.other.origin.startswith("http://localhost:")
    script = f"""
    (async () => {{
      const r = await fetch({json.dumps(world.stack.gw.route_url("rec"))}, {{
        method: "POST",
        headers: {{
          "content-type": "application/json",
          "accept": "application/json, text/event-stream",
          "authorization": "Bearer " + {json.dumps(token)},
          "mcp-protocol-version": "2025-11-25",
        }},
        body: JSON.stringify({{jsonrpc: "2.0", id: 7, method: "tools/list"}}),
      }});
      return JSON.stringify({{status: r.status, body: await r.json(),
                             session: r.headers.get("mcp-session-id")}});
    }})()
    """
    result = tab.send(
        "Runtime.evaluate", {"expression": script, "awaitPromise": True, "returnByValue": True}
    )
    assert "exceptionDetails" not in result, result
    answer = json.loads(result["result"]["value"])
    assert answer["status"] == 200 and answer["body"]["id"] == 7
    assert {t["name"] for t in answer["body"]["result"]["tools"]}
    # The preflight never reached the upstream: only the POST did.
    assert [r.method for r in world.stack.recorder.seen()] == ["POST"]
    # And a 401 is readable too, with its WWW-Authenticate challenge.
    script401 = f"""
    (async () => {{
      const r = await fetch({json.dumps(world.stack.gw.route_url("rec"))}, {{
        method: "POST", headers: {{"content-type": "application/json"}},
        body: JSON.stringify({{jsonrpc: "2.0", id: 8, method: "tools/list"}}),
      }});
      return JSON.stringify([r.status, r.headers.get("www-authenticate")]);
    }})()
    """
    result = tab.send(
        "Runtime.evaluate", {"expression": script401, "awaitPromise": True, "returnByValue": True}
    )
    status, challenge = json.loads(result["result"]["value"])
    assert status == 401 and challenge.startswith("Bearer resource_metadata=")
