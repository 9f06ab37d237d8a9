"""Secret-named keys and credential-shaped strings masked in audit previews (issue 9, item 10).

Why it exists: the audit log (and `watch`, which reads it) must never hold a credential an
argument or a result carried. Unit cases for the key names and shapes the issue names, a
property that a credential embedded in any text never survives, and that the audit's
`preview` applies both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lockgate.audit import redact as redact_module
from lockgate.audit.log import AuditLog
from lockgate.audit.redact import (
    FINDING_KEYS,
    MAX_FINDINGS,
    REDACTED,
    TRUNCATED,
    bound_findings,
    is_secret_key,
    mask_text,
    preview,
)
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


# --- guardrail findings ----------------------------------------------------------------------

MASKED = {
    "kind": "redaction",
    "rule": "GITHUB_TOKEN",
    "path": "params.arguments.token",
    "count": 1,
    "action": "mask",
    "direction": "up",
}
HIDDEN = {
    "kind": "finding",
    "rule": "HIDDEN_INSTRUCTIONS",
    "severity": "high",
    "target": "tool:send_email",
    "path": "inputSchema.properties.body.description",
    "action": "hide",
}
LIMIT = {"kind": "limit", "rule": "RATE_LIMIT", "scope": "user_tool", "action": "block"}


def test_findings_of_the_contract_are_kept_as_they_are() -> None:
    items = [MASKED, HIDDEN, LIMIT, {"kind": "pin", "rule": "PIN_CHANGED", "action": "hide"}]
    assert bound_findings(items) == items
    assert bound_findings(tuple(items)) == items
    assert bound_findings(MASKED) == [MASKED]  # one object: a list of one
    assert bound_findings(bound_findings(items)) == items  # written twice, the same


def test_a_long_findings_list_is_never_cut_into_pieces() -> None:
    """`preview` would cut a list of 300 findings to 64 items and its objects to stubs; the
    log keeps every item whole up to MAX_FINDINGS, then says how many more there were."""
    items = [{**HIDDEN, "target": f"tool:t{i}"} for i in range(MAX_FINDINGS + 44)]
    out = bound_findings(items)
    assert out[:MAX_FINDINGS] == items[:MAX_FINDINGS]
    assert out[-1] == {"kind": TRUNCATED, "count": 44} and len(out) == MAX_FINDINGS + 1
    assert all(set(item) == set(HIDDEN) for item in out[:-1])


def test_findings_keep_only_their_keys_and_mask_credentials_in_names() -> None:
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2
    out = bound_findings(
        [
            {**MASKED, "match": token, "value": "4111111111111111", "preview": "x"},
            {**HIDDEN, "target": f"tool:{token}", "path": f"properties.{token}.description"},
            {"kind": "redaction", "count": -1},
            {"kind": "redaction", "count": True},
            {"kind": "redaction", "count": "3"},
            "not an item",
            None,
            {"unrelated": 1},
            {"rule": ""},
        ]
    )
    assert out[0] == MASKED  # keys outside the contract never reach the log
    assert out[1]["target"] == f"tool:{REDACTED}"
    assert out[1]["path"] == f"properties.{REDACTED}.description"
    assert out[2:] == [{"kind": "redaction"}] * 3  # no count unless a non-negative integer
    assert token not in json.dumps(out) and "4111" not in json.dumps(out)
    assert bound_findings("text") == bound_findings(None) == bound_findings(7) == []


def test_long_names_keep_their_head_and_leaf_and_no_half_credential() -> None:
    path = "params.arguments." + "nested." * 60 + "token"
    (item,) = bound_findings([{**MASKED, "path": path}])
    assert len(item["path"]) == FINDING_KEYS["path"]
    assert item["path"].startswith("params.arguments.nested.") and item["path"].endswith(".token")
    assert "…" in item["path"]
    # A credential across the cut is masked before cutting, so no part of it survives.
    secret = "ghp_" + "Zq9" * 200
    (cut,) = bound_findings([{**HIDDEN, "target": "tool:" + secret}])
    assert "Zq9" not in cut["target"]
    (huge,) = bound_findings([{**HIDDEN, "path": "x" * 100_000}])
    assert huge["path"] == "<path of 100000 chars>"
    (rule,) = bound_findings([{**HIDDEN, "rule": "R" * 500}])
    assert len(rule["rule"]) == FINDING_KEYS["rule"] and rule["rule"].endswith("…")


finding_items = st.lists(
    st.one_of(
        st.dictionaries(
            st.sampled_from([*FINDING_KEYS, "match", "value", "detail"]),
            st.one_of(st.text(max_size=300), st.integers(), st.none(), st.booleans()),
            max_size=10,
        ),
        st.text(max_size=5),
        st.none(),
    ),
    max_size=20,
)


@given(finding_items)
def test_bound_findings_never_raises_and_writes_json_of_whole_items(items: list[Any]) -> None:
    out = bound_findings(items)
    json.dumps(out, allow_nan=False)
    assert bound_findings(out) == out
    for item in out:
        assert item and set(item) <= set(FINDING_KEYS)
        for key, value in item.items():
            if key == "count":
                assert isinstance(value, int) and not isinstance(value, bool) and value >= 0
            else:
                assert isinstance(value, str) and len(value) <= FINDING_KEYS[key]


def test_findings_are_written_whole_and_the_log_verifies(log_path: Path) -> None:
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2
    many = [{**HIDDEN, "target": f"tool:t{i}"} for i in range(100)]
    with AuditLog(log_path) as log:
        log.append({"event": "tool.call", "findings": [MASKED, {**LIMIT, "match": token}]})
        log.append({"event": "capability.list", "method": "tools/list", "findings": many})
        log.append({"event": "tool.call", "findings": []})
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert records[0]["findings"] == [MASKED, LIMIT]
    assert records[1]["findings"] == many  # a preview would have cut these
    assert "findings" not in records[2]  # none: no key
    assert token not in log_path.read_text()
    assert verify(log_path).ok


# Pieces of every `_SECRET_VALUE` branch, so generated text often comes near a match.
_PIECES = st.sampled_from(
    ["bearer ", "BeArEr\t", "eyJ", "eyJhbGciOi.", "AKIA", "ASIA", "ghp_", "gh", "github_pat_",
     "sk-", "sk-proj-", "xoxb-", "xox", "-----BEGIN RSA PRIVATE KEY-----", "PRIVATE KEY-----",
     "-----END PRIVATE KEY-----", "A1b2C3d4E5f6G7h8", "0123456789ABCDEF", ".", "_", "-", " ",
     "\n", "é", "\ud800", "\u017f", "\u212a"]
)  # fmt: skip


@given(st.lists(st.one_of(_PIECES, st.text(max_size=8)), max_size=24).map("".join))
def test_text_the_hint_rules_out_holds_no_credential_shape(text: str) -> None:
    """`mask_text` skips the costly regex when RE2's hint pass finds none of its literals:
    that must never skip a credential shape the regex would mask."""
    if not redact_module._SECRET_HINT(text.encode("utf-8", "surrogatepass")):
        assert redact_module._SECRET_VALUE.search(text) is None


_ENTITIES = st.sampled_from(
    ["alice@acme.io", "4111 1111 1111 1111", "+1 415 555 2671", "078-05-1120", "10.1.2.3",
     "password: hunter2", "api_key=abc123", "DE89 3704 0044 0532 0130 00", "fe80::1"]
)  # fmt: skip


@settings(max_examples=800, deadline=None)
@given(st.lists(st.one_of(_PIECES, _ENTITIES, st.text(max_size=8)), max_size=24).map("".join))
@example("bearer A1b2C3d4E5f6G7h8")  # no detector's anchor in it: the "bearer" test holds it
def test_the_one_pass_that_skips_masking_changes_no_answer(text: str) -> None:
    """`mask_text` returns clean ASCII text after one RE2 pass (the detectors' anchors, and
    "bearer"): the full path must have found nothing to mask in it either."""
    assert redact_module.mask_text(text) == redact_module._masked_in_full(text)
