"""Guardrails' slot in the pipeline: redaction, injection findings, pinning, rate limits.

None are configured by profiles yet; the addon is here so its place in the
order, and its fail-closed wrapping, are fixed before its rules arrive.
"""

from __future__ import annotations

from mitmproxy import http

from lockgate.addons._flow import guarded


class Guardrails:
    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        return None
