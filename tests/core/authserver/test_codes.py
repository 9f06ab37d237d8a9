"""lockgate.authserver.codes: PKCE and the single-use authorization codes."""

from __future__ import annotations

import base64

import pytest

from lockgate.authserver.codes import CodeStore, is_valid_verifier, pkce_s256
from lockgate.authserver.tokens import TokenError
from tests.core.authserver.issuing import AUDIENCE, NOW, USER

# RFC 7636 appendix B.
RFC7636_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC7636_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


# --- PKCE -------------------------------------------------------------------------------


def test_pkce_rfc7636_vector() -> None:
    assert pkce_s256(RFC7636_VERIFIER) == RFC7636_CHALLENGE


def test_verifier_validation() -> None:
    assert is_valid_verifier("a" * 43) and is_valid_verifier("Az09-._~" * 16)
    for bad in ["a" * 42, "a" * 129, "a" * 42 + "+", "a" * 42 + "/", "ä" * 43, ""]:
        assert not is_valid_verifier(bad)
        with pytest.raises(ValueError):
            pkce_s256(bad)


# --- authorization codes ----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


REDIRECT = "http://127.0.0.1:33418/callback"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def codes(clock: FakeClock) -> CodeStore:
    return CodeStore(clock=clock)


def _issue(codes: CodeStore, challenge: str = RFC7636_CHALLENGE, **overrides: str) -> str:
    kwargs = {
        "client_id": "client-1",
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "resource": AUDIENCE,
        "scope": "mcp",
    }
    kwargs.update(overrides)
    return codes.issue(user=USER, **kwargs)


def _redeem(codes: CodeStore, code: str, **overrides: str) -> object:
    kwargs = {"client_id": "client-1", "redirect_uri": REDIRECT, "code_verifier": RFC7636_VERIFIER}
    kwargs.update(overrides)
    return codes.redeem(code, **kwargs)


def _code_reason(codes: CodeStore, code: str, **overrides: str) -> str:
    with pytest.raises(TokenError) as info:
        _redeem(codes, code, **overrides)
    return info.value.reason


def test_code_redeems_once(codes: CodeStore) -> None:
    code = _issue(codes)
    assert len(base64.urlsafe_b64decode(code + "=")) == 32  # 256 bits
    grant = codes.redeem(
        code, client_id="client-1", redirect_uri=REDIRECT, code_verifier=RFC7636_VERIFIER
    )
    assert grant.user == USER and grant.resource == AUDIENCE and grant.scope == "mcp"
    assert grant.client_id == "client-1" and grant.redirect_uri == REDIRECT
    assert code not in repr(grant)
    assert _code_reason(codes, code) == "replayed_code"


def test_replay_names_the_grant_to_revoke(codes: CodeStore) -> None:
    code = _issue(codes)
    grant = codes.redeem(
        code, client_id="client-1", redirect_uri=REDIRECT, code_verifier=RFC7636_VERIFIER
    )
    codes.attach_grant(grant.code_id, "grant-42")
    with pytest.raises(TokenError) as info:
        _redeem(codes, code)
    assert info.value.reason == "replayed_code" and info.value.grant_id == "grant-42"


def test_code_expires_after_60_seconds(codes: CodeStore, clock: FakeClock) -> None:
    fresh, stale = _issue(codes), _issue(codes)
    clock.now += 59.9
    assert _redeem(codes, fresh)
    clock.now += 0.1
    assert _code_reason(codes, stale) == "expired_code"


def test_unknown_code(codes: CodeStore) -> None:
    assert _code_reason(codes, "no-such-code") == "invalid_grant"
    assert _code_reason(codes, "x" * 10_000) == "invalid_grant"


def test_pkce_mismatch(codes: CodeStore) -> None:
    assert _code_reason(codes, _issue(codes), code_verifier="b" * 43) == "pkce_mismatch"
    assert _code_reason(codes, _issue(codes), code_verifier="short") == "pkce_mismatch"
    challenge = pkce_s256("c" * 64)
    assert _code_reason(codes, _issue(codes, challenge), code_verifier=challenge) == (
        "pkce_mismatch"  # the challenge itself is no verifier (no "plain" fallback)
    )


def test_redirect_mismatch(codes: CodeStore) -> None:
    for other in [REDIRECT + "/", REDIRECT.upper(), "http://127.0.0.1:33419/callback"]:
        assert _code_reason(codes, _issue(codes), redirect_uri=other) == "redirect_mismatch"


def test_client_mismatch(codes: CodeStore) -> None:
    assert _code_reason(codes, _issue(codes), client_id="client-2") == "client_mismatch"


def test_a_failed_redeem_consumes_the_code(codes: CodeStore) -> None:
    code = _issue(codes)
    assert _code_reason(codes, code, code_verifier="b" * 43) == "pkce_mismatch"
    assert _code_reason(codes, code) == "replayed_code"


def test_plain_and_malformed_challenges_are_refused(codes: CodeStore) -> None:
    for kwargs in [
        {"code_challenge_method": "plain", "challenge": RFC7636_VERIFIER},
        {"challenge": "too-short"},
        {"challenge": RFC7636_CHALLENGE + "="},
    ]:
        challenge = kwargs.pop("challenge")
        with pytest.raises(TokenError) as info:
            _issue(codes, challenge, **kwargs)
        assert info.value.reason == "invalid_request"
    assert len(codes) == 0


def test_old_codes_are_pruned(codes: CodeStore, clock: FakeClock) -> None:
    old = _issue(codes)
    clock.now += 60 + 600 + 1
    _issue(codes)
    assert len(codes) == 1
    assert _code_reason(codes, old) == "invalid_grant"
