"""Authorization codes and PKCE: in memory, single use, 60 s, S256 only (OAuth 2.1).

Apart from `tokens` because a code is a different credential with a different life: it is
held here by hash between the consent and the token endpoint, and redeemed once; a second
redeem is reported as a replay so that the token endpoint can revoke what it issued.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from lockgate.authserver.tokens import TokenError
from lockgate.identity.claims import UserClaims
from lockgate.net.oauth_client import s256

CODE_TTL = 60.0
# A redeemed code is remembered this long so that a second redeem reports a replay.
CODE_REPLAY_WINDOW = 600.0

Clock = Callable[[], float]

_VERIFIER_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")


# --- PKCE -------------------------------------------------------------------------------


def is_valid_verifier(verifier: str) -> bool:
    """RFC 7636: 43 to 128 characters of ``[A-Za-z0-9-._~]``."""
    return isinstance(verifier, str) and _VERIFIER_RE.fullmatch(verifier) is not None


def pkce_s256(verifier: str) -> str:
    """The S256 code challenge of a verifier; ``ValueError`` for an invalid verifier."""
    if not is_valid_verifier(verifier):
        raise ValueError("a PKCE code verifier is 43-128 characters of [A-Za-z0-9-._~]")
    return s256(verifier)


# --- authorization codes ----------------------------------------------------------------


@dataclass(frozen=True)
class CodeGrant:
    """What a redeemed authorization code carries to the token endpoint."""

    code_id: str
    client_id: str
    redirect_uri: str
    user: UserClaims
    resource: str
    scope: str
    issued_at: float


@dataclass
class _Code:
    grant: CodeGrant
    code_challenge: str
    expires_at: float
    redeemed_at: float | None = None
    grant_id: str | None = None


def _code_id(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


class CodeStore:
    """Authorization codes in memory (a gateway restart voids them: they live 60 s anyway).

    Codes are kept by hash. Every redeem of a known code consumes it, failed or not, and
    it is remembered for a while so that a second redeem is reported as a replay.
    """

    def __init__(
        self,
        *,
        ttl: float = CODE_TTL,
        replay_window: float = CODE_REPLAY_WINDOW,
        clock: Clock = time.time,
    ) -> None:
        self._ttl = ttl
        self._replay_window = replay_window
        self._clock = clock
        self._codes: dict[str, _Code] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._codes)

    def issue(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        code_challenge: str,
        user: UserClaims,
        resource: str,
        scope: str = "",
        code_challenge_method: str = "S256",
    ) -> str:
        """A new 256-bit code for a completed authorization; PKCE S256 is required."""
        if code_challenge_method != "S256" or not _CHALLENGE_RE.fullmatch(code_challenge):
            raise TokenError("invalid_request")
        code = secrets.token_urlsafe(32)
        now = self._clock()
        code_id = _code_id(code)
        entry = _Code(
            grant=CodeGrant(
                code_id=code_id,
                client_id=client_id,
                redirect_uri=redirect_uri,
                user=user,
                resource=resource,
                scope=scope,
                issued_at=now,
            ),
            code_challenge=code_challenge,
            expires_at=now + self._ttl,
        )
        with self._lock:
            self._prune(now)
            self._codes[code_id] = entry
        return code

    def redeem(
        self, code: str, *, client_id: str, redirect_uri: str, code_verifier: str
    ) -> CodeGrant:
        """Exchange a code once: same client, same redirect_uri, matching verifier, in time."""
        if not isinstance(code, str) or len(code) > 512:
            raise TokenError("invalid_grant")
        with self._lock:
            now = self._clock()
            entry = self._codes.get(_code_id(code))
            if entry is None:
                raise TokenError("invalid_grant")
            if entry.redeemed_at is not None:
                raise TokenError("replayed_code", grant_id=entry.grant_id)
            entry.redeemed_at = now
        grant = entry.grant
        if now >= entry.expires_at:
            raise TokenError("expired_code")
        if client_id != grant.client_id:
            raise TokenError("client_mismatch")
        if redirect_uri != grant.redirect_uri:
            raise TokenError("redirect_mismatch")
        if not is_valid_verifier(code_verifier) or not hmac.compare_digest(
            pkce_s256(code_verifier), entry.code_challenge
        ):
            raise TokenError("pkce_mismatch")
        return grant

    def attach_grant(self, code_id: str, grant_id: str) -> None:
        """Link the grant issued from a code, so that a replay names the grant to revoke."""
        with self._lock:
            entry = self._codes.get(code_id)
            if entry is not None:
                entry.grant_id = grant_id

    def _prune(self, now: float) -> None:
        horizon = now - self._ttl - self._replay_window
        stale = [cid for cid, c in self._codes.items() if c.grant.issued_at < horizon]
        for cid in stale:
            del self._codes[cid]
