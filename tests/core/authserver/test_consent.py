"""lockgate.authserver.consent: the consent page and the single-use pending authorization."""

from __future__ import annotations

import pytest

from lockgate.authserver.consent import ConsentRefused, Pending, PendingAuthorizations, consent_page
from lockgate.identity.claims import UserClaims
from tests.support.doubles import pending_fields

# --- the consent page ----------------------------------------------------------------------


def _pending(client_id: str, redirect_uri: str, name: str = "Some <b>client</b>") -> Pending:
    return Pending(
        client_id=client_id,
        client_name=name,
        redirect_uri=redirect_uri,
        state=None,
        code_challenge="x" * 43,
        resource="http://127.0.0.1:8787/mcp/notes",
        route="notes",
        scope="",
        user=UserClaims(sub="alice"),
        csrf="c",
        expires_at=0.0,
    )


def test_consent_page_shows_a_custom_scheme_and_a_metadata_document_host() -> None:
    page = consent_page(
        "r",
        _pending("https://apps.example.com/mcp/client.json", "vscode://vs.mcp/cb"),
        "/oauth/consent",
    )
    assert "described by <strong>apps.example.com</strong>" in page
    assert "Opens the app registered for &quot;vscode:&quot;" in page
    assert "Some &lt;b&gt;client&lt;/b&gt;" in page and "<b>client" not in page
    plain = consent_page("r", _pending("lg-abc", "https://c.example/cb"), "/oauth/consent")
    assert "described by" not in plain and "Opens the app" not in plain


def test_a_consent_form_is_taken_once_by_its_own_browser_and_csrf() -> None:
    """A refused form (forged CSRF, another browser) stays for the browser that holds the
    cookie; the right one takes it once; an expired one says so (with whose it was)."""
    now = [1000.0]
    pending = PendingAuthorizations(ttl=300, clock=lambda: now[0])
    request_id, record, browser = pending.add(**pending_fields())
    for csrf, cookie, reason in (
        ("forged", browser, "unknown_form"),
        (record.csrf, "another-browser", "browser_mismatch"),
        (record.csrf, None, "browser_mismatch"),
    ):
        with pytest.raises(ConsentRefused) as info:
            pending.take(request_id, csrf, cookie)
        assert info.value.reason == reason
    assert pending.take(request_id, record.csrf, browser) == record
    with pytest.raises(ConsentRefused) as info:
        pending.take(request_id, record.csrf, browser)
    assert info.value.reason == "unknown_form"

    request_id, record, browser = pending.add(**pending_fields())
    now[0] += 300
    with pytest.raises(ConsentRefused) as info:
        pending.take(request_id, record.csrf, browser)
    assert info.value.reason == "expired" and info.value.pending == record
    with pytest.raises(ConsentRefused) as info:
        pending.take(request_id, record.csrf, browser)
    assert info.value.reason == "unknown_form"
