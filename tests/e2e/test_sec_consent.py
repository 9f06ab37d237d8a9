"""Issue 9, item 4: consent is tied to the browser that opened the consent page.

Why it exists: `Origin` is a header any local process sets itself, so a pending
authorization whose request id and CSRF token leaked (or were read off another user's
screen, history or a log) could be approved by a script. The consent page now sets an
HttpOnly, SameSite=Strict cookie bound to that one pending authorization; the Allow/Deny
form is refused without it, or with the cookie of another pending authorization. Real
gateway over real HTTP; httpx clients play the browser (their cookie jar is the browser's).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from http.cookies import SimpleCookie

import httpx
import pytest

from tests.support.oauth import (
    DevStack,
    authorize_url,
    dev_gateway,
    exchange,
    hidden_fields,
    pkce,
    redirect_params,
    register,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with dev_gateway(tmp_path_factory.mktemp("sec-consent"), notes=True) as stack:
        yield stack


def open_consent(stack: DevStack, name: str = "Cookie test") -> tuple[httpx.Client, httpx.Response]:
    """A fresh browser on a fresh authorization request: the consent page it got."""
    client_id = register(stack.base, name=name)
    browser = httpx.Client()
    page = browser.get(authorize_url(stack.base, client_id, stack.gw.route_url("rec"), pkce()[1]))
    assert page.status_code == 200 and "/oauth/consent" in page.text, page.text[:300]
    return browser, page


def consent_events(stack: DevStack) -> list[dict[str, object]]:
    return [e for e in stack.gw.events() if e.get("event") == "auth.consent"]


def test_a_cookieless_post_with_the_right_origin_and_form_is_refused(stack: DevStack) -> None:
    browser, page = open_consent(stack)
    with closing(browser):
        fields = hidden_fields(page.text)
        before = len(consent_events(stack))
        # A script that read the form (request id and CSRF token) and sets Origin itself.
        r = httpx.post(
            f"{stack.base}/oauth/consent",
            data={**fields, "decision": "approve"},
            headers={"Origin": stack.base},
        )
        assert r.status_code == 403, r.text[:300]
        assert "location" not in r.headers
        assert "browser" in r.text
        refused = stack.gw.wait_for_events(
            lambda evs: len([e for e in evs if e.get("event") == "auth.consent"]) > before
        )
        last = [e for e in refused if e.get("event") == "auth.consent"][-1]
        assert last["outcome"] == "denied" and last["reason"] == "browser_mismatch"
        # The refusal did not use up the form: the browser that opened it still can.
        ok = browser.post(
            f"{stack.base}/oauth/consent",
            data={**fields, "decision": "approve"},
            headers={"Origin": stack.base},
        )
        assert "code" in redirect_params(ok)


def test_the_cookie_of_another_pending_authorization_is_refused(stack: DevStack) -> None:
    mine, my_page = open_consent(stack, "Mine")
    other, other_page = open_consent(stack, "Other")
    with closing(mine), closing(other):
        # The attacker's own consent cookie, sent with the victim's form.
        r = other.post(
            f"{stack.base}/oauth/consent",
            data={**hidden_fields(my_page.text), "decision": "approve"},
            headers={"Origin": stack.base},
        )
        assert r.status_code == 403 and "location" not in r.headers
        # Even under the victim's cookie name, the other cookie's value does not fit.
        [mine_cookie] = [c for c in mine.cookies.jar if c.name.startswith("lockgate_consent")]
        [other_cookie] = [c for c in other.cookies.jar if c.name.startswith("lockgate_consent")]
        forged = httpx.post(
            f"{stack.base}/oauth/consent",
            data={**hidden_fields(my_page.text), "decision": "approve"},
            headers={"Origin": stack.base, "Cookie": f"{mine_cookie.name}={other_cookie.value}"},
        )
        assert forged.status_code == 403
        assert "code" in redirect_params(
            other.post(
                f"{stack.base}/oauth/consent",
                data={**hidden_fields(other_page.text), "decision": "approve"},
                headers={"Origin": stack.base},
            )
        )


def test_the_consent_cookie_is_httponly_samesite_strict_and_path_scoped(stack: DevStack) -> None:
    browser, page = open_consent(stack)
    with closing(browser):
        [header] = [h for h in page.headers.get_list("set-cookie") if "lockgate_consent" in h]
        morsel = next(iter(SimpleCookie(header).values()))
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Strict"
        assert morsel["path"] == "/oauth/consent"
        assert 0 < int(morsel["max-age"]) <= 300
        assert morsel.value and morsel.value not in page.text  # never in the page itself
        # Answered, the cookie is dropped.
        answer = browser.post(
            f"{stack.base}/oauth/consent",
            data={**hidden_fields(page.text), "decision": "deny"},
            headers={"Origin": stack.base},
        )
        assert answer.status_code == 302
        dropped = [h for h in answer.headers.get_list("set-cookie") if morsel.key in h]
        assert dropped and "Max-Age=0" in dropped[0]


def test_the_browser_that_opened_the_page_gets_its_code_and_token(stack: DevStack) -> None:
    client_id = register(stack.base, name="Happy path")
    verifier, challenge = pkce()
    resource = stack.gw.route_url("notes")
    with httpx.Client() as browser:
        page = browser.get(authorize_url(stack.base, client_id, resource, challenge))
        assert page.status_code == 200
        answer = browser.post(
            f"{stack.base}/oauth/consent",
            data={**hidden_fields(page.text), "decision": "approve"},
            headers={"Origin": stack.base},
        )
    code = redirect_params(answer)["code"]
    assert exchange(stack.base, client_id, code, verifier, resource).status_code == 200
