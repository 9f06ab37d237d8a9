"""Secret-named keys and credential-shaped strings masked in audit previews (issue 9, item 10).

Why it exists: the audit log (and `watch`, which reads it) must never hold a credential an
argument or a result carried. Unit cases for the key names and shapes the issue names, a
property that a credential embedded in any text never survives, and that the audit's
`preview` applies both.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.audit.log import AuditLog
from lockgate.audit.redact import REDACTED, is_secret_key, mask_text, preview
from lockgate.audit.verify import verify

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
CREDENTIALS = [
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2,
    "gho_" + "A1b2C3d4E5f6G7h8I9j0" * 2,
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "sk-proj-abcdefghijklmnopqrstuvwx",
    "sk-ant-api03-abcdefghijklmnopqrstuvwx",
    "xoxb-1234567890-abcdefghij",
    "xoxp-1234567890-abcdefghij",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
    "Bearer abcdefghijklmnop1234",
    PEM,
]


@pytest.mark.parametrize(
    "key",
    [
        "key",
        "pat",
        "token",
        "password",
        "secret",
        "api_key",
        "API-KEY",
        "apiKey",
        "x-api-key",
        "Authorization",
        "github_pat",
        "githubPat",
        "access_key",
        "refresh_token",
        "client.secret",
    ],
)
def test_secret_named_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["path", "monkey", "keyboard", "keyword", "title", "pattern", "maxTokens", "id", "body"]
)
def test_ordinary_keys(key: str) -> None:
    assert not is_secret_key(key)


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_credential_shapes_are_masked(credential: str) -> None:
    masked = mask_text(f"before {credential} after")
    assert credential not in masked
    assert REDACTED in masked and masked.startswith("before ")


def test_ordinary_text_is_kept() -> None:
    for text in ("Milk, eggs, coffee beans", "sk-8", "AKIA1234", "ask-me-anything", "ghp_short"):
        assert mask_text(text) == text


@given(st.text(max_size=40), st.sampled_from(CREDENTIALS), st.text(max_size=40))
def test_an_embedded_credential_never_survives(before: str, credential: str, after: str) -> None:
    masked = mask_text(f"{before} {credential} {after}")
    assert credential not in masked


@given(st.text(max_size=200))
def test_masking_never_crashes_and_is_stable(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once


def test_preview_masks_keys_and_values() -> None:
    args = {"pat": "anything", "nested": {"api_key": 1}, "body": "id AKIAIOSFODNN7EXAMPLE"}
    assert preview(args) == {
        "pat": REDACTED,
        "nested": {"api_key": REDACTED},
        "body": f"id {REDACTED}",
    }
    assert preview({"content": [{"text": PEM}]}) == {"content": [{"text": REDACTED}]}


# --- previews written to the log -----------------------------------------------------------


def test_secret_like_keys_are_redacted_in_previews(log_path: Path) -> None:
    args = {
        "query": "ok",
        "access_token": "quux-access",
        "Authorization": "Bearer quux-auth",
        "nested": [{"client_secret": "quux-s", "password": "quux-pw", "Cookie": "a=quux"}],
        "code_verifier": "quux-v",
        "X-Api-Key": "quux-k",
        "note": "use Bearer abcdefghijklmnopqrstuvwxyz123456 here",
        "jwt_like": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
    }
    out = preview(args)
    assert out == {
        "query": "ok",
        "access_token": REDACTED,
        "Authorization": REDACTED,
        "nested": [{"client_secret": REDACTED, "password": REDACTED, "Cookie": REDACTED}],
        "code_verifier": REDACTED,
        "X-Api-Key": REDACTED,
        "note": f"use {REDACTED} here",
        "jwt_like": REDACTED,
    }
    with AuditLog(log_path) as log:
        log.append({"event": "tool.call", "args": args, "result": {"refresh_token": "quux-r"}})
        log.append({"event": "auth.token", "token": "quux-raw", "user": "alice"})
    text = log_path.read_text()
    # Secrets carry "quux", which no hex hash can contain.
    assert "quux" not in text and "abcdefghijklmnop" not in text
    assert '"token":"[redacted]"' in text
    assert verify(log_path).ok


def test_preview_bounds_size_and_is_json_able() -> None:
    huge = {
        "text": "x" * 100_000,
        "items": list(range(100_000)),
        "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}},
        "blob": b"\x00" * 10,
        "big": 10**100,
        "nan": float("nan"),
        "obj": object(),
        "tuple": (1, 2),
    }
    out = preview(huge, limit=100)
    encoded = json.dumps(out, allow_nan=False)
    assert len(encoded) < 4000
    assert isinstance(out, dict)
    assert out["text"].startswith("x" * 100) and out["text"].endswith("…(+99900 chars)")
    assert out["items"][-1].startswith("… +")
    assert "object of 1 keys" in json.dumps(out["deep"])
    assert out["blob"] == "<10 bytes>" and out["big"].startswith("<int of")
    assert out["nan"] == "nan" and out["obj"] == "<object>" and out["tuple"] == [1, 2]
    assert preview("short") == "short" and preview(None) is None and preview(3) == 3
