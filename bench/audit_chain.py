"""What keying the audit chain costs: unkeyed sha256 chain vs HMAC chain vs the real AuditLog.

    uv run python bench/audit_chain.py [--events 20000]

Writes N events of a typical tool.call shape to files in a temporary directory and prints
events/s and µs/event for:

- `sha256 chain (baseline)`: the old format, canonical JSON + sha256, one write per line;
- `hmac chain`: the same with HMAC-SHA256(key, prev || line), one write per line;
- `AuditLog (hmac + checkpoint)`: lockgate's writer as the gateway runs it: previews,
  HMAC, and the checkpoint file rewritten atomically after every event;
- `verify`: lockgate audit verify over the AuditLog's file (checkpoint included).

The key comes from LOCKGATE_AUDIT_KEY_SOURCE=test:... so no keyring is touched.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["LOCKGATE_AUDIT_KEY_SOURCE"] = f"test:{secrets.token_hex(32)}"

from lockgate.audit import log as audit  # the key source above is read when the first log opens
from lockgate.audit import verify as audit_verify


def _event(i: int) -> dict[str, Any]:
    return {
        "event": "tool.call",
        "ts": "2026-12-06T18:00:00.000Z",
        "route": "notes",
        "upstream": "notes",
        "user": "alice@example.com",
        "client": "claude-code",
        "method": "tools/call",
        "name": f"get_note_{i % 50}",
        "outcome": "success",
        "status": 200,
        "latency_ms": {"total": 1.5, "upstream": 1.0},
        "args": {"id": str(i)},
    }


def _raw_chain(path: Path, n: int, key: bytes | None) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    prev = audit.ZERO_HASH
    started = time.perf_counter()
    for i in range(n):
        record = {**_event(i), "seq": i + 1, "prev": prev}
        canonical = audit._canonical(record)
        if key is None:
            prev = hashlib.sha256(canonical).hexdigest()
            line = audit._line(canonical, prev, "hash")
        else:
            prev = hmac.new(key, bytes.fromhex(prev) + canonical, hashlib.sha256).hexdigest()
            line = audit._line(canonical, prev, "mac")
        os.write(fd, line + b"\n")
    elapsed = time.perf_counter() - started
    os.close(fd)
    return elapsed


def _auditlog(path: Path, n: int, checkpoints: Path) -> float:
    started = time.perf_counter()
    with audit.AuditLog(path, checkpoints=checkpoints) as log:
        for i in range(n):
            log.append(_event(i))
    return time.perf_counter() - started


def _row(name: str, n: int, seconds: float, base: float | None) -> None:
    ratio = f"{seconds / base:5.2f}x" if base else "  1.00x"
    print(f"{name:<32} {n / seconds:>10,.0f} ev/s {seconds / n * 1e6:>8.1f} µs/event  {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    n = parser.parse_args().events
    key = audit.load_key(create=False)
    assert key is not None
    with tempfile.TemporaryDirectory(prefix="lockgate-bench-audit-") as tmp:
        root = Path(tmp)
        cps = root / "checkpoints"
        base = _raw_chain(root / "sha.jsonl", n, None)
        keyed = _raw_chain(root / "hmac.jsonl", n, key)
        full = _auditlog(root / "log.jsonl", n, cps)
        started = time.perf_counter()
        result = audit_verify.verify(root / "log.jsonl", checkpoints=cps)
        verified = time.perf_counter() - started
        assert result.ok, result
    print(f"audit chain, {n} events of a tool.call (one write per line, no fsync)")
    _row("sha256 chain (baseline)", n, base, None)
    _row("hmac chain", n, keyed, base)
    _row("AuditLog (hmac + checkpoint)", n, full, base)
    _row("verify (hmac + checkpoint)", n, verified, base)


if __name__ == "__main__":
    main()
