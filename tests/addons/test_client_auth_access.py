"""ClientAuth's access lists: who a route admits, by kind of identity.

Why it exists: `access.groups` is the profile's way to hand a route to a team. Only an
identity provider vouches for groups, so with kinds "none" and "dev" a group list admits
nobody (fail closed); with "oidc" the token's groups must intersect the list.
"""

from __future__ import annotations

from lockgate.addons.client_auth import ClientAuth
from lockgate.profile import AccessSection

allowed = ClientAuth._allowed


def test_no_lists_admit_everyone_signed_in() -> None:
    assert allowed(AccessSection(), "alice")
    assert not allowed(AccessSection(), None)


def test_groups_intersect_for_provider_users() -> None:
    access = AccessSection(groups=("eng", "ops"))
    assert allowed(access, "alice", "a@example.com", ("eng",))
    assert not allowed(access, "bob", None, ("finance",))
    assert not allowed(access, "carol", None, ())


def test_a_group_list_admits_nobody_when_the_kind_knows_no_groups() -> None:
    assert not allowed(AccessSection(groups=("eng",)), "alice", None, None)
    assert not allowed(AccessSection(groups=("eng",), users=("alice",)), "alice", None, None)


def test_users_match_by_sub_or_email() -> None:
    access = AccessSection(users=("a@example.com",))
    assert allowed(access, "alice", "a@example.com", ())
    assert not allowed(access, "bob", "b@example.com", ())
    assert allowed(AccessSection(users=("alice",)), "alice", None, None)
