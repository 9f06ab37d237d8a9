"""Guardrails: what the gateway finds and changes in the content that crosses it (secrets and
personal data today; poisoning findings, tool pinning and rate limits to come, issue 11).
Pure: no mitmproxy, no network, testable on plain strings."""

__all__ = [
    "checks",
    "detectors",
    "exfil",
    "findings",
    "gates",
    "limits",
    "pinning",
    "pinschema",
    "pinstore",
    "policy",
    "redaction",
    "rules",
    "text",
]
