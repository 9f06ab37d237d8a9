"""A large JSON answer passes unparsed only when nothing would change it: the scrubber acts on
errors alone, so a body that names none (plainly, uncompressed) is not read for it."""

from __future__ import annotations

from mitmproxy.test import tutils

from lockgate.addons.capabilities import _passes_unparsed
from lockgate.addons.scrub import _Scrubber
from lockgate.mcp.exchange import FlowState

BIG = b'{"jsonrpc":"2.0","id":1,"result":{"tools":[' + b'{"name":"t"},' * 30000 + b"{}]}}"


def _resp(body: bytes, encoding: str | None = None) -> object:
    resp = tutils.tresp(content=body)
    if encoding:
        resp.headers["content-encoding"] = encoding
    return resp


def test_only_the_scrubber_lets_a_large_clean_answer_pass_unparsed() -> None:
    st = FlowState()
    assert _passes_unparsed(st, _resp(BIG), BIG)  # type: ignore[arg-type]
    st.transforms.append(_Scrubber("up"))
    assert _passes_unparsed(st, _resp(BIG), BIG)  # type: ignore[arg-type]
    st.transforms.append(lambda obj: obj)  # a filter or the guardrails: read it
    assert not _passes_unparsed(st, _resp(BIG), BIG)  # type: ignore[arg-type]


def test_an_error_an_escape_or_a_compressed_body_is_read_for_the_scrubber() -> None:
    st = FlowState(transforms=[_Scrubber("up")])
    for body in (BIG + b'"isError":true', BIG + b'"error"', BIG.replace(b"t", b"\\u0074", 1)):
        assert not _passes_unparsed(st, _resp(body), body)  # type: ignore[arg-type]
    assert not _passes_unparsed(st, _resp(BIG, "gzip"), BIG)  # type: ignore[arg-type]
