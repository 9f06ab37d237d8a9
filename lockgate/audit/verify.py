"""Verifying the audit log: every line's mac, seq and prev link, and the end against its checkpoint.

Why it exists: `lockgate audit verify` (and the demo's check) prove a log was not edited,
forged, re-chained or cut; this reads only, with the key from the OS keyring, and says at
which line and why the chain breaks. The chain itself is written by `lockgate.audit.log`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lockgate.audit.log import (
    _HEX64,
    KEY_ENTRY,
    ZERO_HASH,
    AuditKeyMissing,
    _canonical,
    _checkpoint_path,
    _line,
    _log_id,
    _mac,
    _read_checkpoint,
    checkpoint_dir,
    load_key,
)

__all__ = ["VerifyResult", "verify"]


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of `verify`.

    `lines` is the number of events when `ok`, else the number of intact events before
    `first_bad_line` (1-based, as `sed -n Lp` counts them). `torn` holds the line numbers of
    torn lines skipped: a write cut short by a crash or a full disk, which the next intact
    line chains past (so it held no event the chain vouches for).
    """

    ok: bool
    lines: int
    first_bad_line: int | None = None
    reason: str | None = None
    torn: tuple[int, ...] = ()


class _BadLine(Exception):
    """Why one line breaks the chain (internal to `verify`)."""


_UNKEYED = (
    "unkeyed (legacy), cannot prove integrity: the chain links up, but anyone can "
    "recompute it; a gateway of this version keys every line it appends"
)


def verify(
    path: Path, *, key: bytes | None = None, checkpoints: Path | None = None
) -> VerifyResult:
    """Check every line's mac, seq and prev link and the file's end against its checkpoint.

    Not ok at the first bad line (and why), when the tail was cut, and for a log with no keyed
    line (legacy, proves nothing). The key is read from the OS keyring on the first keyed line;
    raises AuditKeyMissing when it is not there.
    """
    prev = ZERO_HASH
    lineno = 0
    seq = 0  # intact events so far: torn lines hold none
    torn: list[int] = []
    keyed_from: int | None = None
    checkpoint: dict[str, Any] | None = None
    places = [checkpoints] if checkpoints is not None else _checkpoint_places(path)
    directory = places[0]
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.endswith(b"\n") and _is_complete(raw):
                raw += b"\n"  # the whole last line, only its newline missing: the writer
                # resumes from it (and starts the next line afresh), so it is an event
            if _is_torn(raw):
                torn.append(lineno)  # skipped; the next intact line must chain past it
                continue
            seq += 1
            try:
                if keyed_from is None and b'"mac":"' in raw:
                    if key is None:
                        key = _verify_key()
                    keyed_from = lineno
                prev = _check_line(raw, seq, prev, key if keyed_from is not None else None)
                if keyed_from == lineno:
                    directory = next(
                        (d for d in places if _checkpoint_path(d, _log_id(prev)).exists()),
                        places[0],
                    )
                    cp = _read_checkpoint(directory, _log_id(prev), key)  # type: ignore[arg-type]
                    if cp is None:
                        return VerifyResult(
                            False,
                            0,
                            None,
                            f"no checkpoint for this log in {directory}: a cut tail cannot "
                            "be ruled out (a copy, or the checkpoint was deleted)",
                        )
                    if isinstance(cp, str):
                        return VerifyResult(False, 0, None, cp, tuple(torn))
                    checkpoint = cp
                if (
                    checkpoint is not None
                    and seq == checkpoint["seq"]
                    and not hmac.compare_digest(prev, checkpoint["mac"])
                ):
                    raise _BadLine("the checkpoint names another line at this seq")
            except _BadLine as e:
                return VerifyResult(False, seq - 1, lineno, str(e), tuple(torn))
    if seq and keyed_from is None:
        return VerifyResult(False, seq, None, _UNKEYED, tuple(torn))
    if checkpoint is not None and checkpoint["seq"] > seq:
        cut = checkpoint["seq"] - seq
        return VerifyResult(
            False,
            seq,
            lineno + 1,
            f"tail cut: the checkpoint says {checkpoint['seq']} events were written, "
            f"the file ends at seq {seq} ({cut} line(s) cut off the end)",
            tuple(torn),
        )
    return VerifyResult(True, seq, torn=tuple(torn))


def _is_complete(raw: bytes) -> bool:
    """Whether `raw` (a last line without its newline) is a whole JSON object."""
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


def _is_torn(raw: bytes) -> bool:
    """A write cut short: the start of a line the writer writes (`{`), not a whole JSON
    value. Anything else that does not parse (an empty line, other text) is reported as
    damage; a torn line whose neighbours do not chain to each other is damage too, since
    the line after it is then checked against the line before it."""
    if not raw.startswith(b"{"):
        return False
    try:
        json.loads(raw)
    except ValueError:
        return True
    return False


def _checkpoint_places(path: Path) -> list[Path]:
    """Where a log's checkpoint may be: this user's data dir, else the one the log sits in
    (another home's log, e.g. `audit verify --file` on a gateway started with LOCKGATE_HOME);
    a checkpoint is MAC'd, so where it is found does not make it trusted."""
    mine = checkpoint_dir()
    beside = path.resolve().parent / mine.name
    return [mine] if beside == mine.resolve() else [mine, beside]


def _verify_key() -> bytes:
    key = load_key(create=False)
    if key is None:
        raise AuditKeyMissing(
            "The audit log is keyed but its key is not in this OS keyring "
            f"(service 'lockgate', user '{KEY_ENTRY}')",
            "run `lockgate audit verify` as the OS user that runs the gateway, "
            "in a session where that user's keyring is unlocked",
        )
    return key


def _check_line(raw: bytes, expected_seq: int, prev: str, key: bytes | None) -> str:
    """The line's mac (legacy: hash) when it is intact and chains on to `prev`; raises
    _BadLine if not. With a key, only keyed lines are accepted."""
    if not raw.endswith(b"\n"):
        raise _BadLine("truncated last line (no trailing newline)")
    line = raw[:-1]
    if not line:
        raise _BadLine("empty line")
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise _BadLine(f"not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise _BadLine("not a JSON object")
    field = "mac" if key is not None else "hash"
    if key is not None and "mac" not in obj:
        raise _BadLine("unkeyed line after keyed ones: forged or inserted (no mac)")
    digest = obj.pop(field, None)
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise _BadLine(f"missing {field} (or not a sha256 hex digest)")
    try:
        canonical = _canonical(obj)
    except ValueError:
        raise _BadLine(
            f"{field} mismatch: values canonical JSON cannot hold (line edited)"
        ) from None
    if key is not None:
        prev_field = obj.get("prev")
        if not isinstance(prev_field, str) or not _HEX64.fullmatch(prev_field):
            raise _BadLine("missing prev")
        if not hmac.compare_digest(_mac(key, prev_field, canonical), digest):
            raise _BadLine(
                "mac mismatch: the line was edited, forged or re-chained (or written with "
                "another key)"
            )
    elif hashlib.sha256(canonical).hexdigest() != digest:
        raise _BadLine("hash mismatch: the line was edited")
    if line != _line(canonical, digest, field):
        raise _BadLine(f"{field} matches but the line is not in canonical form (line edited)")
    seq = obj.get("seq")
    if type(seq) is not int:
        raise _BadLine("missing seq")
    if seq > expected_seq:
        gap = seq - expected_seq
        raise _BadLine(f"seq gap: expected seq {expected_seq}, found {seq} ({gap} line(s) deleted)")
    if seq < expected_seq:
        raise _BadLine(
            f"seq out of order: expected seq {expected_seq}, found {seq} (line repeated)"
        )
    if obj.get("prev") != prev:
        raise _BadLine("prev mismatch: the line does not chain to the line before it")
    return digest
