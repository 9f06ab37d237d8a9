"""The audit line's canonical JSON: orjson's fast bytes must be the stdlib's, always.

Why it exists: `verify` re-encodes each parsed line with `json.dumps` to check its mac, while
`AuditLog.append` encodes with orjson when it can (`lockgate.audit.log._canonical`). Any
value where the two differ (small floats, NaN, big integers, odd strings, non-str keys) must
take the stdlib's path, or a genuine log would fail verification. The writer's keyed MAC
(`_Keyed`, keyed once) and its clock (`_now`, formatted once a second) are held to the
stdlib's `hmac.digest` and `time.strftime` the same way.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import lockgate.audit.log as log_module
from lockgate.audit.log import _canonical, _canonical_stdlib

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e-3, max_value=1e-3),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=12),
    st.sampled_from(["claude-code", "1e-5", "0.00001", "null", "e-", ":0.0000"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers(0, 3)), inner, max_size=4),
    ),
    max_leaves=12,
)


def _outcome(fn: Any, value: Any) -> bytes | type[BaseException]:
    try:
        return fn(value)
    except (TypeError, ValueError) as e:  # UnicodeEncodeError is a ValueError
        return type(e) if not isinstance(e, UnicodeEncodeError) else UnicodeEncodeError


@settings(max_examples=400)
@given(st.dictionaries(st.text(max_size=6), _VALUES, max_size=6))
@example({"total": 1e-05, "upstream": 2.5e-07})
@example({"x": float("nan")})
@example({"big": 2**65})
@example({"s": "\ud800"})
@example({"k": {1: "one"}})
def test_fast_canonical_is_the_stdlibs(record: dict[str, Any]) -> None:
    fast, slow = _outcome(_canonical, record), _outcome(_canonical_stdlib, record)
    assert fast == slow
    if isinstance(fast, bytes):  # what verify does: parse, re-encode, compare
        assert _canonical_stdlib(json.loads(fast)) == fast


@pytest.mark.parametrize("value", [1e-05, 2.5e-07, -3.1e-9, 1.5e-5, 1e16, 1e-300, 0.0001, -0.0])
def test_floats_orjson_writes_otherwise_still_encode_as_the_stdlib_does(value: float) -> None:
    assert _canonical({"v": value}) == _canonical_stdlib({"v": value})


# --- the writer's keyed MAC and clock, against the stdlib's spelling of each ---------------


@given(st.binary(min_size=1, max_size=64), st.lists(st.binary(max_size=300), max_size=4))
def test_the_keyed_mac_is_hmac_sha256_of_the_parts_joined(key: bytes, parts: list[bytes]) -> None:
    keyed = log_module._Keyed(key)
    assert keyed.hex(*parts) == hmac.digest(key, b"".join(parts), "sha256").hex()
    assert keyed.hex(*parts) == keyed.hex(*parts)  # the keyed state is copied, never consumed


@given(st.integers(min_value=0, max_value=4102444800_000))  # up to 2100
def test_the_timestamp_is_the_strftime_spelling_of_the_millisecond(ms: int) -> None:
    expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
    real = time.time_ns
    try:
        time.time_ns = lambda: ms * 1_000_000 + 999_999  # type: ignore[assignment]
        assert log_module._now() == expected
        assert log_module._now() == expected  # and again from the second it remembered
    finally:
        time.time_ns = real  # type: ignore[assignment]
