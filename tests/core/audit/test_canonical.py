"""The audit line's canonical JSON: orjson's fast bytes must be the stdlib's, always.

Why it exists: `verify` re-encodes each parsed line with `json.dumps` to check its mac, while
`AuditLog.append` encodes with orjson when it can (`lockgate.audit.log._canonical`). Any
value where the two differ (small floats, NaN, big integers, odd strings, non-str keys) must
take the stdlib's path, or a genuine log would fail verification.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

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
