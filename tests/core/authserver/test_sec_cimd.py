"""Issue 9, item 11: a metadata-document refusal never says what a name resolves to.

A client_id URL is chosen by whoever registers: the gateway's answer must not turn it into
a probe of internal DNS. Every refusal about an address reads "address not allowed".
"""

from __future__ import annotations

import pytest

from lockgate.authserver.cimd import fetch_document
from lockgate.authserver.requests import OAuthError

URL = "https://docs.example.com/client.json"


def _unresolvable(host: str, port: int) -> list[str]:
    raise OSError("no such name")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "resolve", "hidden"),
    [
        (URL, lambda host, port: ["192.168.1.5"], "192.168.1.5"),
        (URL, lambda host, port: ["10.20.30.40"], "10.20.30.40"),
        (URL, lambda host, port: ["127.0.0.1"], "127.0.0.1"),
        (URL, lambda host, port: ["::ffff:10.0.0.1"], "10.0.0.1"),
        (URL, _unresolvable, "resolved"),
        ("https://10.1.2.3/client.json", None, "private"),
    ],
)
async def test_address_refusals_say_address_not_allowed(
    url: str, resolve: object, hidden: str
) -> None:
    with pytest.raises(OAuthError) as info:
        await fetch_document(url, resolve=resolve)  # type: ignore[arg-type]
    text = str(info.value)
    assert "address not allowed" in text
    assert hidden not in text
    assert "resolves" not in text
