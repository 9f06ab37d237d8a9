"""The plain lines `lockgate up` prints (where it listens, one per audited event), without rich:
the serving process prints them to a pipe, where rich would only cost memory (~7 MB)."""

from __future__ import annotations

from lockgate.audit.cells import clean, guardrail


def started_lines(base_url: str, routes: list[tuple[str, str]]) -> list[str]:
    """What a user (and the tests) read first: where the gateway listens, route by route."""
    return [f"lockgate: listening on {base_url}", *(f"  route {n}: {u}" for n, u in routes)]


def event_line(rec: dict[str, object]) -> str:
    """One audit record as one plain line: time, route, method, name, outcome, latency, and
    the guardrail cell when there is one. Names come from clients and upstreams: control
    characters (an escape sequence for the terminal) are replaced."""
    ts = str(rec.get("ts", ""))[11:23]
    latency = rec.get("latency_ms")
    total = latency.get("total") if isinstance(latency, dict) else None
    parts = [
        ts,
        str(rec.get("event", "")),
        str(rec.get("route") or "-"),
        str(rec.get("method") or "-"),
        str(rec.get("name") or ""),
        str(rec.get("outcome") or ""),
        f"{total:.1f}ms" if isinstance(total, (int, float)) else "",
        guardrail(rec).text,
    ]
    return clean("  ".join(p for p in parts if p))
