"""The one credential-state vocabulary: can this user use this upstream yet?

`CredentialState` says what the gateway holds for one upstream: `kind` for programs, `text`
for people, `fix` when something is missing. `lockgate servers` (through
`lockgate.upstream.catalog`), `lockgate doctor` and the consent page (`user_state`) all
answer with it.

`keyring_lookup` is the real lookup (the OS keyring, through `lockgate.upstream.secrets` and
`lockgate.upstream.tokens`) for the CLI's user: under kind oidc the oauth states are for the
user `lockgate login` signed in (`signed_in`, a keyring read; the provider is never asked).
`user_state` asks the same for one gateway user (the consent page's signed-in user). Nothing
here returns or shows a secret's value: only whether one is held.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from lockgate.errors import KeyringUnavailable, LockgateError
from lockgate.identity.claims import UserClaims
from lockgate.profile.model import Profile, UpstreamSection

StateKind = Literal[
    "none_needed",
    "secret_set",
    "secret_missing",
    "connected",
    "needs_connect",
    "sign_in_first",
    "keyring_unavailable",
]

# The states that let a request through; the others need the user to do something.
READY: frozenset[StateKind] = frozenset({"none_needed", "secret_set", "connected"})


@dataclass(frozen=True)
class CredentialState:
    """What the gateway holds for one upstream: `kind` for programs, `text` for people,
    and `fix` (one command or step) when the upstream cannot be used yet."""

    kind: StateKind
    text: str
    fix: str | None = None
    # Whom an oauth state is for (the signed-in user's email or sub); not part of equality.
    user: str | None = field(default=None, compare=False)

    @property
    def ready(self) -> bool:
        return self.kind in READY


StateLookup = Callable[[str, UpstreamSection], CredentialState]


def _keyring_state(e: KeyringUnavailable) -> CredentialState:
    return CredentialState("keyring_unavailable", "keyring unavailable", e.fix or e.message)


SIGN_IN_FIRST = CredentialState("sign_in_first", "sign in first", "lockgate login")


@dataclass(frozen=True)
class SignedIn:
    """Whom the oauth states are for: `user` (None: nobody signed in), or `problem` when the
    keyring could not say (then every oauth upstream shows that state)."""

    user: UserClaims | None
    problem: CredentialState | None = None

    @property
    def shown(self) -> str | None:
        """The name people see: the email when the provider gave one, else the sub."""
        return None if self.user is None else self.user.email or self.user.sub


def signed_in(
    profile: Profile, read: Callable[[Profile], UserClaims | None] | None = None
) -> SignedIn:
    """The CLI's user for this profile (`identity.session.cli_user`: a keyring read, never a
    call to the provider); a keyring that cannot be read or a damaged sign-in is a state."""
    if read is None:
        from lockgate.identity.session import cli_user

        def read(p: Profile) -> UserClaims | None:
            return cli_user(p.identity)

    try:
        return SignedIn(read(profile))
    except KeyringUnavailable as e:
        return SignedIn(None, _keyring_state(e))
    except LockgateError as e:  # a damaged session: sign in again
        return SignedIn(None, CredentialState("sign_in_first", "sign in first", e.fix))


def keyring_lookup(
    profile: Profile,
    *,
    user: SignedIn | None = None,
    has_secret: Callable[[str], bool] | None = None,
    stored: Callable[[str, str], bool] | None = None,
) -> StateLookup:
    """The real lookup: static secrets and upstream OAuth tokens in the OS keyring.

    Upstream tokens are per user: `user`, by default `signed_in(profile)` read once at the
    first oauth upstream: whoever runs lockgate for kind none/dev, the user `lockgate login`
    signed in for kind oidc; nobody signed in says "sign in first". A keyring that cannot
    be used becomes a state, not an error.
    """
    from lockgate.upstream import secrets
    from lockgate.upstream import tokens as upstream_tokens

    check_secret = has_secret or secrets.has_secret
    check_tokens = stored or upstream_tokens.stored
    known: list[SignedIn] = [] if user is None else [user]

    def who() -> SignedIn:
        if not known:
            known.append(signed_in(profile))
        return known[0]

    def lookup(name: str, upstream: UpstreamSection) -> CredentialState:
        if upstream.auth == "none":
            return CredentialState("none_needed", "no credential needed")
        try:
            if upstream.auth == "header":
                if check_secret(name):
                    return CredentialState("secret_set", "secret set")
                return CredentialState(
                    "secret_missing", "secret missing", f"lockgate secret set {name}"
                )
            return replace(_oauth_state(name, who(), check_tokens), user=who().shown)
        except KeyringUnavailable as e:
            return _keyring_state(e)
        except LockgateError as e:  # an incomplete entry: stored again by its fix
            kind: StateKind = "secret_missing" if upstream.auth == "header" else "needs_connect"
            return CredentialState(kind, "incomplete in the keyring", e.fix)

    return lookup


def _oauth_state(name: str, who: SignedIn, stored: Callable[[str, str], bool]) -> CredentialState:
    if who.problem is not None:
        return who.problem
    if who.user is None:
        return SIGN_IN_FIRST
    if stored(name, who.user.sub):
        return CredentialState("connected", "connected")
    return CredentialState("needs_connect", "needs connect", f"lockgate connect {name}")


def user_state(
    profile: Profile,
    upstream: str,
    user: str,
    *,
    has_secret: Callable[[str], bool] | None = None,
    stored: Callable[[str, str], bool] | None = None,
) -> CredentialState:
    """The state of `upstream` for the gateway user whose sub is `user` (the consent page's
    question): as `keyring_lookup`, for that user instead of the CLI's.

    Blocking (a keyring round trip): call it off the event loop. KeyError for an upstream
    the profile does not have.
    """
    lookup = keyring_lookup(
        profile, user=SignedIn(UserClaims(sub=user)), has_secret=has_secret, stored=stored
    )
    return lookup(upstream, profile.upstreams[upstream])
