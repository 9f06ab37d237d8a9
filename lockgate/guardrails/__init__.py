"""Guardrails: what the gateway finds, changes and refuses in the content that crosses it:
secrets and personal data (redaction), poisoning and injection findings, tool pins, rate
limits; `stage` applies one route's policy to MCP messages. Pure: no mitmproxy, no network."""

__all__ = [
    "checks",
    "confusables",
    "detectors",
    "exfil",
    "findings",
    "gates",
    "limits",
    "patterns",
    "pinning",
    "pinschema",
    "pinstore",
    "policy",
    "redaction",
    "rules",
    "scan",
    "stage",
    "text",
    "validators",
]
