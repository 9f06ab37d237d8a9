"""lockgate.authserver.requests: the redirect URI rules and client registration.

Why it exists: a redirect URI is where the gateway sends an authorization code, so the rule
that accepts native apps' own schemes (RFC 8252 section 7.1) must never let through a
scheme a browser would run (`javascript:`, `data:`), a local file, plain http to another
machine, or a fragment. Property tests throw arbitrary strings and URL shapes at it.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.authserver.requests import (
    OAuthError,
    is_private_use_scheme,
    parse_registration,
    redirect_uri_problem,
)

ACCEPTED = [
    "https://client.example.com/callback",
    "https://client.example.com/cb?x=1",
    "http://127.0.0.1:33418/callback",
    "http://localhost:8080/cb",
    "http://[::1]:9/cb",
    "vscode://vscode.github-authentication/did-authenticate",
    "vscode-insiders://ms-vscode.mcp/callback",
    "cursor://anysphere.cursor-retrieval/oauth/callback",
    "claude://claude.ai/mcp/callback",
    "com.example.app:/oauth2redirect",
    "com.example.app://callback",
    "io.modelcontextprotocol.inspector:/cb",
]

REFUSED = {
    "javascript:alert(1)": "must be https",
    "JavaScript://%0aalert(1)": "must be https",
    "data:text/html,<script>alert(1)</script>": "must be https",
    "file:///etc/passwd": "must be https",
    "vbscript:msgbox": "must be https",
    "http://evil.example/cb": "must be https, or http to a loopback",
    "http://127.0.0.1.evil.example/cb": "must be https, or http to a loopback",
    "https://ok.example/cb#frag": "fragment",
    "vscode://x/cb#frag": "fragment",
    "https://user:pw@ok.example/cb": "user info",
    "https:///cb": "no host",
    "/relative/cb": "not an absolute URL",
    "https://ok.example/c b": "whitespace",
    "https://ok.example/cb\n": "whitespace",
    "myapp://callback": "must be https",
    "com.example.app:": "nothing after its scheme",
    "1.2://x": "not an absolute URL",
}


@pytest.mark.parametrize("uri", ACCEPTED)
def test_accepted_redirect_uris(uri: str) -> None:
    assert redirect_uri_problem(uri) is None


@pytest.mark.parametrize(("uri", "why"), REFUSED.items())
def test_refused_redirect_uris_say_why(uri: str, why: str) -> None:
    problem = redirect_uri_problem(uri)
    assert problem is not None and why in problem, problem


def test_registration_names_the_bad_uri() -> None:
    with pytest.raises(OAuthError) as info:
        parse_registration({"redirect_uris": ["vscode://ok/cb", "data:text/html,x"]})
    assert info.value.error == "invalid_redirect_uri"
    assert "data:text/html,x" in info.value.description
    assert parse_registration({"redirect_uris": ["cursor://a.b/cb"]}).redirect_uris == (
        "cursor://a.b/cb",
    )


# --- properties ---------------------------------------------------------------------------

DANGEROUS = ("javascript", "data", "file", "vbscript", "about", "blob", "ftp", "ws", "mailto")


@given(
    scheme=st.sampled_from(DANGEROUS),
    case=st.lists(st.booleans(), min_size=10, max_size=10),
    rest=st.text(max_size=40),
)
def test_dangerous_schemes_are_always_refused(scheme: str, case: list[bool], rest: str) -> None:
    mixed = "".join(c.upper() if up else c for c, up in zip(scheme, case, strict=False))
    assert redirect_uri_problem(f"{mixed}:{rest}") is not None


@given(st.text(max_size=80))
def test_any_string_is_judged_without_raising(uri: str) -> None:
    problem = redirect_uri_problem(uri)
    if problem is None:
        lowered = uri.lower()
        # Whatever passes is https, loopback http or a private-use scheme, never a fragment.
        assert "#" not in uri
        assert not any(c.isspace() for c in uri)
        scheme = lowered.split(":", 1)[0]
        assert scheme in ("https", "http") or is_private_use_scheme(scheme)


_host = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){1,3}", fullmatch=True)
_path = st.text(alphabet=string.ascii_letters + string.digits + "/-_.~", max_size=20)


@given(host=_host, path=_path)
def test_http_is_refused_to_any_non_loopback_name(host: str, path: str) -> None:
    if host == "localhost" or host.endswith(".localhost"):
        return
    assert redirect_uri_problem(f"http://{host}/{path}") is not None
    assert redirect_uri_problem(f"https://{host}/{path}") is None


@given(host=_host, path=_path, frag=st.text(max_size=10))
def test_a_fragment_is_refused_on_every_scheme(host: str, path: str, frag: str) -> None:
    for scheme in ("https", "vscode", "com.example.app"):
        assert redirect_uri_problem(f"{scheme}://{host}/{path}#{frag}") is not None


@given(labels=st.lists(st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), min_size=2))
def test_reverse_dns_schemes_are_accepted(labels: list[str]) -> None:
    scheme = ".".join(labels)
    assert redirect_uri_problem(f"{scheme}:/callback") is None
