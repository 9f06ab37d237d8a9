"""panva's `oidc-provider` (tests/node/oidc_provider.mjs) as a process: a real OpenID provider
with the device authorization grant (RFC 8628), which oidc-provider-mock lacks.

`node_provider()` yields the issuer URL, or the caller `require(...)`s `node_provider_cmd()`
first: skipped with a reason on a laptop without Node 22 and the package, failed in CI.
`approve_device(...)` does what the user does on their phone: the user-code page, the
development login page (any login name) and the consent page, with an HTTP client.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from urllib.parse import urljoin

import httpx

from tests.support.node import NODE_DIR, NODE_MODULES, node_bin, node_env
from tests.support.process import terminate_group, watch_lines

SCRIPT = NODE_DIR / "oidc_provider.mjs"
CLIENT_ID = "lockgate-device"
INSTALL_HINT = "run tests/node/install.sh (Node 22 and oidc-provider from tests/node)"


def node_provider_cmd() -> list[str] | None:
    node = node_bin()
    if node is None or not (NODE_MODULES / "oidc-provider" / "package.json").is_file():
        return None
    return [str(node), str(SCRIPT)]


@contextmanager
def node_provider(*, startup_timeout: float = 30.0) -> Iterator[str]:
    """Run the provider on a free loopback port; yield its issuer once it says `ready`."""
    cmd = node_provider_cmd()
    if cmd is None:
        raise RuntimeError(f"Node 22 or oidc-provider missing: {INSTALL_HINT}")
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [*cmd, "0"],
            cwd=NODE_DIR,
            env=node_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        ready = watch_lines(proc.stdout, r"^ready (http://127\.0\.0\.1:\d+)")
        try:
            issuer = ready.wait(startup_timeout)
            if issuer is None:
                log.seek(0)
                raise RuntimeError(f"oidc-provider did not start: {log.read()[-2000:]!r}")
            yield issuer
        finally:
            terminate_group(proc)


_FORM_RE = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
_INPUT_RE = re.compile(r"<(?:input|button)\b([^>]*)>", re.I)
_ATTR_RE = re.compile(r'([a-zA-Z_:-]+)\s*=\s*"([^"]*)"')


def _forms(page: str) -> list[tuple[str, dict[str, str]]]:
    """(action, {name: value}) for each form of a page; submit buttons' values included."""
    out = []
    for attrs, body in _FORM_RE.findall(page):
        action = dict(_ATTR_RE.findall(attrs)).get("action", "")
        fields: dict[str, str] = {}
        for tag in _INPUT_RE.findall(body):
            a = dict(_ATTR_RE.findall(tag))
            if "name" in a:
                fields[a["name"]] = unescape(a.get("value", ""))
        out.append((unescape(action), fields))
    return out


def approve_device(verification_uri: str, user_code: str, login: str) -> str:
    """Enter the user code, sign in as `login`, consent; returns the final page's text."""
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        page = browser.get(verification_uri)
        for _ in range(8):
            assert page.status_code == 200, page.text[:500]
            forms = _forms(page.text)
            if not forms:
                return page.text
            # The page's main form (the abort link is not a form): fill what it asks.
            action, fields = forms[0]
            if "user_code" in fields:
                fields["user_code"] = user_code
            if "login" in fields:
                fields["login"] = login
                fields.setdefault("password", "any")
            if "confirm" in fields:
                fields["confirm"] = "yes"
            url = urljoin(str(page.url), action) if action else str(page.url)
            page = browser.post(url, data=fields)
        raise AssertionError(f"the device approval did not finish: {page.text[:500]}")
