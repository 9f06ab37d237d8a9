"""The catalog of a profile's routes: upstream, credential state and the URL a client uses.

`catalog` is pure: it takes a Profile and a lookup that says, per upstream, what state its
credential is in (`lockgate.upstream.state.keyring_lookup` is the real one). `lockgate
servers` prints it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lockgate.profile.model import Profile
from lockgate.upstream.state import CredentialState, StateLookup


@dataclass(frozen=True)
class ServerEntry:
    """One route of the catalog."""

    route: str
    upstream: str
    upstream_url: str
    auth: str
    state: CredentialState
    route_url: str
    description: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.kind
        out["state_text"] = self.state.text
        out["fix"] = self.state.fix
        out["ready"] = self.state.ready
        return out


def catalog(
    profile: Profile, lookup: StateLookup, base_url: str | None = None
) -> list[ServerEntry]:
    """Every route of the profile, sorted by name; `lookup` runs once per upstream used."""
    states: dict[str, CredentialState] = {}
    entries: list[ServerEntry] = []
    for name in sorted(profile.routes):
        route = profile.routes[name]
        upstream = profile.upstreams[route.upstream]
        if route.upstream not in states:
            states[route.upstream] = lookup(route.upstream, upstream)
        entries.append(
            ServerEntry(
                route=name,
                upstream=route.upstream,
                upstream_url=upstream.url,
                auth=upstream.auth,
                state=states[route.upstream],
                route_url=profile.route_url(name, base_url),
                description=route.description,
            )
        )
    return entries
