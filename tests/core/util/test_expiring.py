"""lockgate.util.expiring: the one map behind consents, logins, connects, tickets, sessions.

Why it exists: every one of those maps holds secrets that anyone reaching the gateway can
ask it to create. A model-based property test drives adds, clock steps, gets and takes in
any order and checks the map against a plain dict: a key works once, nothing outlives its
TTL, the caps hold, and a refused ``check`` leaves the entry in place.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from lockgate.util.expiring import Expired, ExpiringMap, MapFull

TTL = 10.0
MAX_TOTAL = 6
MAX_PER_GROUP = 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Refused(Exception):
    pass


class MapMachine(RuleBasedStateMachine):
    keys = Bundle("keys")

    @initialize()
    def start(self) -> None:
        self.clock = Clock()
        self.map: ExpiringMap[tuple[str, int]] = ExpiringMap(
            ttl=TTL,
            clock=self.clock,
            max_total=MAX_TOTAL,
            max_per_group=MAX_PER_GROUP,
            group=lambda v: v[0],
            key_bytes=16,
        )
        # The model: key -> (value, expires_at)
        self.model: dict[str, tuple[tuple[str, int], float]] = {}
        self.serial = 0

    def _prune(self) -> None:
        now = self.clock.now
        self.model = {k: e for k, e in self.model.items() if e[1] > now}

    @rule(target=keys, group=st.sampled_from("abc"))
    def add(self, group: str) -> str:
        self.serial += 1
        value = (group, self.serial)
        self._prune()
        mine = sum(1 for v, _ in self.model.values() if v[0] == group)
        if len(self.model) >= MAX_TOTAL:
            with pytest.raises(MapFull) as info:
                self.map.add(value)
            assert info.value.scope == "total"
            return "never-issued-" + str(self.serial)
        if mine >= MAX_PER_GROUP:
            with pytest.raises(MapFull) as info:
                self.map.add(value)
            assert info.value.scope == "group"
            return "never-issued-" + str(self.serial)
        key = self.map.add(value)
        assert key not in self.model
        self.model[key] = (value, self.clock.now + TTL)
        return key

    @rule(dt=st.floats(min_value=0, max_value=TTL * 1.5))
    def advance(self, dt: float) -> None:
        self.clock.now += dt

    @rule(key=keys)
    def get(self, key: str) -> None:
        entry = self.model.get(key)
        want = entry[0] if entry is not None and self.clock.now < entry[1] else None
        assert self.map.get(key) == want

    @rule(key=consumes(keys), report=st.booleans())
    def take(self, key: str, report: bool) -> None:
        entry = self.model.pop(key, None)
        live = entry is not None and self.clock.now < entry[1]
        if entry is not None and not live and report:
            with pytest.raises(Expired) as info:
                self.map.take(key, report_expired=True)
            assert info.value.value == entry[0]
        else:
            assert self.map.take(key, report_expired=report) == (entry[0] if live else None)
        assert self.map.take(key) is None  # once only

    @rule(key=keys)
    def refused_check_keeps_the_entry(self, key: str) -> None:
        def refuse(value: tuple[str, int]) -> None:
            raise Refused

        if key in self.model:
            with pytest.raises(Refused):
                self.map.take(key, refuse)
        else:
            assert self.map.take(key, refuse) is None

    @rule(guess=st.text(min_size=0, max_size=30))
    def guessed_keys_find_nothing(self, guess: str) -> None:
        if guess not in self.model:
            assert self.map.get(guess) is None

    @invariant()
    def bounded(self) -> None:
        assert len(self.map) == len(self.model)
        assert len(self.map) <= MAX_TOTAL
        for group in "abc":
            assert sum(1 for v, _ in self.model.values() if v[0] == group) <= MAX_PER_GROUP


TestExpiringMap = MapMachine.TestCase
TestExpiringMap.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


@given(st.lists(st.sampled_from("xyz"), min_size=1, max_size=30))
def test_keys_are_fresh_and_each_works_once(groups: list[str]) -> None:
    m: ExpiringMap[str] = ExpiringMap(ttl=60, max_total=None)
    keys = [m.add(g) for g in groups]
    assert len(set(keys)) == len(keys)
    assert [m.take(k) for k in keys] == groups
    assert all(m.take(k) is None for k in keys)
    assert len(m) == 0


def test_the_map_holds_digests_not_keys() -> None:
    m: ExpiringMap[str] = ExpiringMap(ttl=60)
    key = m.add("v")
    assert all(key not in repr(d) for d in m._slots)


def test_get_leaves_the_value_until_it_expires() -> None:
    clock = Clock()
    m: ExpiringMap[str] = ExpiringMap(ttl=5, clock=clock)
    key = m.add("session")
    assert m.get(key) == "session" and m.get(key) == "session"
    assert m.get(None) is None and m.get("") is None
    clock.now += 5
    assert m.get(key) is None


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        ExpiringMap(ttl=0)
    with pytest.raises(ValueError):
        ExpiringMap(ttl=1, key_bytes=8)
