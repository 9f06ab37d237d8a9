"""The audit log: append-only JSONL, one event per line, chained with a key so tampering shows.

Each line is the canonical JSON (sorted keys, compact separators, UTF-8) of one event, with
`v` (2), `seq` (1-based, consecutive), `prev` (the previous line's `mac`; 64 zeros on the first
line) and, last on the line, `mac`: HMAC-SHA256(key, prev || canonical JSON without `mac`).
The 32-byte key lives in the OS keyring (service ``lockgate``, user ``audit:chain-key``) and is
made on first write, so nobody without it can forge, edit-and-re-chain or append a line.

A checkpoint outside the log (``<data dir>/audit-checkpoints/<log id>.json``: last seq and
mac, itself MAC'd) is rewritten after every append, in one of two slots in turn so a torn
write loses one slot only, and a cut tail shows too; the log id is the start of the first
keyed line's mac, so a copy of the log finds it as well.

Format 1 lines (before keys: `hash` = sha256 of the line without it) still read; `verify`
reports such a log as unkeyed (legacy), which proves nothing. A legacy log continued by a
keyed writer verifies: its old lines are then anchored by the first keyed line.

One writer per file: `AuditLog` takes an exclusive advisory lock (POSIX) so a second gateway
writing the same log fails at start instead of forking the chain.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import os
import re
import secrets as _random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from lockgate import keyring as keyring_store
from lockgate import paths
from lockgate.audit.masking import MASK, is_secret_key, mask_text
from lockgate.errors import LockgateError

if sys.platform != "win32":
    import fcntl

__all__ = [
    "REDACTED",
    "ZERO_HASH",
    "AuditKeyMissing",
    "AuditLog",
    "AuditLogBusy",
    "AuditLogDamaged",
    "AuditLogError",
    "AuditLogMissing",
    "VerifyResult",
    "follow",
    "is_secret_key",
    "last_events",
    "load_key",
    "preview",
    "read_events",
    "verify",
]

ZERO_HASH = "0" * 64
REDACTED = MASK
FORMAT = 2
KEY_ENTRY = "audit:chain-key"
KEY_SOURCE_ENV = "LOCKGATE_AUDIT_KEY_SOURCE"

# Keys the log itself owns; a caller passing them is a bug.
_RESERVED = frozenset({"seq", "prev", "hash", "mac", "v"})
# Keys a queued (pending) event may not set itself: the gateway stamps them at drain time.
_DRAIN_OWNED = _RESERVED | {"ts", "via", "claimed_ts"}
_CHECKPOINT_TAG = b"lockgate-audit-checkpoint\0"
# Keys whose values are caller data: bounded and redacted by `preview` on append.
_PREVIEWED = frozenset({"args", "result"})

_BLOCK = 64 * 1024
_MAX_DEPTH = 8
_HEX64 = re.compile(r"[0-9a-f]{64}")


class AuditLogError(LockgateError):
    """The audit log cannot be used as asked."""


class AuditLogMissing(AuditLogError):
    """There is no audit log at the given path."""


class AuditLogBusy(AuditLogError):
    """Another process holds the audit log open for writing."""


class AuditLogDamaged(AuditLogError):
    """A line of the audit log is not a JSON event."""


class AuditKeyMissing(AuditLogError):
    """The log is keyed but its key cannot be had: nothing about it can be proven."""


# ---------------------------------------------------------------------------- the key

_MEMORY_KEY = _random.token_bytes(32)


def load_key(*, create: bool) -> bytes | None:
    """The audit chain's 32-byte key: from the OS keyring, made and stored there on first
    write (`create`). ``LOCKGATE_AUDIT_KEY_SOURCE=memory`` keeps a per-process key (throwaway
    gateways); ``test:<64 hex>`` is for test suites only (anyone reading the environment
    could forge). Keyring failures raise KeyringUnavailable with how to fix them."""
    choice = os.environ.get(KEY_SOURCE_ENV, "keyring").strip()
    if choice.startswith("test:"):
        try:
            key = bytes.fromhex(choice[5:])
        except ValueError:
            key = b""
        if len(key) != 32:
            raise LockgateError(
                f"{KEY_SOURCE_ENV} test:... must hold 64 hex digits",
                "unset it to use the OS keyring",
            )
        return key
    if choice == "memory":
        return _MEMORY_KEY
    if choice not in ("", "keyring"):
        raise LockgateError(
            f"{KEY_SOURCE_ENV}={choice!r} is not an audit key source",
            'unset it (the OS keyring is used) or set it to "memory"',
        )
    stored = keyring_store.get_entry(KEY_ENTRY)
    if stored is None and create:
        keyring_store.set_entry(KEY_ENTRY, _random.token_hex(32))
        stored = keyring_store.get_entry(KEY_ENTRY)  # two writers settle on the one kept
        if stored is None:
            raise AuditKeyMissing(
                "The OS keyring did not keep the audit log's key",
                "check that your keyring is unlocked and writable, then try again",
            )
    if stored is None:
        return None
    try:
        key = bytes.fromhex(stored)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise AuditKeyMissing(
            "The audit log's key in the OS keyring is unreadable",
            f"restore the keyring entry service 'lockgate', user '{KEY_ENTRY}' from a backup",
        )
    return key


def _mac(key: bytes, prev: str, canonical: bytes) -> str:
    return hmac.new(key, bytes.fromhex(prev) + canonical, hashlib.sha256).hexdigest()


def checkpoint_dir() -> Path:
    """Where checkpoints live: the data dir, outside the log's own directory if it differs."""
    return paths.data_dir() / "audit-checkpoints"


def _checkpoint_path(directory: Path, log_id: str) -> Path:
    return directory / f"{log_id}.json"


def _checkpoint_mac(key: bytes, body: Mapping[str, Any]) -> str:
    return hmac.new(key, _CHECKPOINT_TAG + _canonical(body), hashlib.sha256).hexdigest()


_SLOT = 256  # bytes per checkpoint slot; a slot holds one canonical JSON object


def _parse_slot(raw: bytes, key: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    cmac = body.pop("cmac", None)
    if not isinstance(cmac, str) or not hmac.compare_digest(cmac, _checkpoint_mac(key, body)):
        return None
    if type(body.get("seq")) is not int or not isinstance(body.get("mac"), str):
        return None
    return body


def _read_checkpoint(directory: Path, log_id: str, key: bytes) -> dict[str, Any] | str | None:
    """The checkpoint of `log_id`; a reason (str) when it is damaged or forged; None if absent.

    The file has two slots written in turn (seq odd, seq even), so a write torn by a crash
    spoils one slot only: the newest slot whose mac checks wins."""
    try:
        data = _checkpoint_path(directory, log_id).read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return "the checkpoint is unreadable"
    slots = [_parse_slot(data[i : i + _SLOT], key) for i in (0, _SLOT)]
    good = [slot for slot in slots if slot is not None and slot.get("log") == log_id]
    if not good:
        return "the checkpoint's mac does not match (forged, or written with another key)"
    return max(good, key=lambda slot: int(slot["seq"]))


class _Checkpoint:
    """The open checkpoint file of one log: one slot rewritten in place per append (no
    rename: a rename per event costs ~170 µs, a seek and write a few)."""

    def __init__(self, directory: Path, log_id: str, key: bytes) -> None:
        self._key = key
        self._log_id = log_id
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        self._fd = os.open(_checkpoint_path(directory, log_id), flags, 0o600)

    def write(self, seq: int, mac: str) -> None:
        body: dict[str, Any] = {"log": self._log_id, "mac": mac, "seq": seq, "v": 1}
        body["cmac"] = _checkpoint_mac(self._key, body)
        data = _canonical(body).ljust(_SLOT - 1) + b"\n"
        os.lseek(self._fd, (seq % 2) * _SLOT, os.SEEK_SET)  # pwrite is POSIX-only
        os.write(self._fd, data)

    def close(self) -> None:
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of `verify`.

    `lines` is the number of events when `ok`, else the number of intact lines before
    `first_bad_line` (1-based, as `sed -n Lp` counts them).
    """

    ok: bool
    lines: int
    first_bad_line: int | None = None
    reason: str | None = None


# ---------------------------------------------------------------------------- previews


def preview(value: object, limit: int = 512) -> object:
    """A bounded, JSON-able, secret-free preview of `value` for the audit log.

    Strings are cut at `limit` characters, a container keeps at most `max(16, limit // 8)`
    items, and all stop once about `4 * limit` characters of content have been kept;
    nesting stops at depth 8. Values under secret-like keys and
    token-shaped strings (bearer credentials, JWTs) become "[redacted]". Never raises.
    """
    return _preview(value, limit, [4 * limit], 0)


def _room(budget: list[int], i: int, limit: int) -> bool:
    """Whether a container may keep its item `i`: total budget left, and a per-container cap."""
    return budget[0] > 0 and i < max(16, limit // 8)


def _preview(value: object, limit: int, budget: list[int], depth: int) -> object:
    budget[0] -= 1
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= 64 else f"<int of {value.bit_length()} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _preview_str(value, limit, budget)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        if depth >= _MAX_DEPTH:
            return f"{{object of {len(value)} keys}}"
        out: dict[str, object] = {}
        for i, (k, v) in enumerate(value.items()):
            if not _room(budget, i, limit):
                out["…"] = f"+{len(value) - i} more keys"
                break
            key = k if isinstance(k, str) else str(k)
            key = _preview_str(key, limit, budget) if len(key) > limit else key
            budget[0] -= len(key)
            out[key] = REDACTED if is_secret_key(key) else _preview(v, limit, budget, depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        if depth >= _MAX_DEPTH:
            return f"[list of {len(value)} items]"
        items: list[object] = []
        for i, v in enumerate(value):
            if not _room(budget, i, limit):
                items.append(f"… +{len(value) - i} more items")
                break
            items.append(_preview(v, limit, budget, depth + 1))
        return items
    return f"<{type(value).__name__}>"


def _preview_str(value: str, limit: int, budget: list[int]) -> str:
    head = mask_text(value[: limit + 1024])
    if len(value) > limit:
        head = f"{head[:limit]}…(+{len(value) - limit} chars)"
    budget[0] -= min(len(head), limit)
    return head


def _scrub(value: Any) -> Any:
    """Replace lone surrogates (not encodable as UTF-8) so a record can always be written."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


# ---------------------------------------------------------------------------- writing


def _canonical(record: Mapping[str, Any]) -> bytes:
    text = json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def _line(canonical: bytes, digest: str, field: str = "hash") -> bytes:
    """The stored line: the canonical JSON with `"mac"` (legacy: `"hash"`) as its last key."""
    return canonical[:-1] + b',"' + field.encode() + b'":"' + digest.encode("ascii") + b'"}'


def _now() -> str:
    ms = time.time_ns() // 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def latency_text(event: Mapping[str, Any]) -> str:
    """An event's total latency for a table cell ("12.3 ms"), or "-"."""
    latency = event.get("latency_ms")
    total = latency.get("total") if isinstance(latency, Mapping) else latency
    if isinstance(total, bool) or not isinstance(total, (int, float)):
        return "-"
    return f"{total:.1f} ms"


def time_text(event: Mapping[str, Any]) -> str:
    """An event's time of day (UTC, to the millisecond) for a table cell."""
    ts = str(event.get("ts", ""))
    return ts[11:23] if len(ts) >= 23 and ts[10:11] == "T" else ts


def pending_path(path: Path) -> Path:
    """Where other processes (the CLI) queue events while a gateway holds the log's lock."""
    return path.with_name(path.name + ".pending")


def record(path: Path, event: Mapping[str, Any]) -> str:
    """Append one event from a short-lived process: "written", or "pending" when a running
    gateway holds the log (one writer keeps the hash chain whole). A pending event waits in
    ``<log>.pending`` (mode 0600) and is chained by the next `AuditLog` opened on the file."""
    try:
        log = AuditLog(path)
    except AuditLogBusy:
        line = json.dumps({**event, "ts": _now()}, sort_keys=True) + "\n"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(pending_path(path), flags, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
        return "pending"
    with log:
        log.append(event)
    return "written"


class AuditLog:
    """Appends hash-chained events to a JSONL file; resumes the chain of an existing file."""

    def __init__(
        self,
        path: Path,
        *,
        preview_limit: int = 512,
        key: bytes | None = None,
        checkpoints: Path | None = None,
    ) -> None:
        self.path = path
        self._limit = preview_limit
        self._lock = threading.Lock()
        loaded = key if key is not None else load_key(create=True)
        if loaded is None:  # pragma: no cover - load_key(create=True) never returns None
            raise AuditKeyMissing("The audit log's key is missing", "check your OS keyring")
        self._key: bytes = loaded
        self._checkpoints = checkpoints if checkpoints is not None else checkpoint_dir()
        self._checkpoints.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            if sys.platform != "win32":
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise AuditLogBusy(
                        f"Another process is writing the audit log {path}.",
                        "stop the other lockgate gateway, or give this one its own audit log",
                    ) from None
                if os.fstat(fd).st_mode & 0o077:
                    os.fchmod(fd, 0o600)
            self._seq, self._prev, self._needs_newline = _resume(path)
            self._log_id = _first_mac(path)
            self._check_checkpoint()
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        self._checkpoint: _Checkpoint | None = None
        self._drain_pending()

    def _check_checkpoint(self) -> None:
        """Refuse to extend a log whose tail was cut: the next line would launder the cut."""
        if self._log_id is None:
            return
        cp = _read_checkpoint(self._checkpoints, self._log_id, self._key)
        if cp is None:
            return
        reason = cp if isinstance(cp, str) else None
        if isinstance(cp, dict) and (
            cp["seq"] > self._seq or (cp["seq"] == self._seq and cp["mac"] != self._prev)
        ):
            reason = f"it ends at seq {self._seq} but its checkpoint says {cp['seq']}"
        if reason is not None:
            raise AuditLogDamaged(
                f"The audit log {self.path} was tampered with ({reason}).",
                "keep it as evidence (lockgate audit verify shows what), move it aside "
                "and start again to begin a new log",
            )

    def _drain_pending(self) -> None:
        """Chain the events other processes queued while this file's lock was held.

        A queued line is not authenticated (any process of this user can write the file),
        so its event is marked ``"via": "pending"``, stamped with this gateway's clock, and
        keeps the time it claims only as ``claimed_ts``: it cannot backdate itself."""
        queued = pending_path(self.path)
        taken = queued.with_name(queued.name + ".draining")
        with contextlib.suppress(FileNotFoundError):
            os.replace(queued, taken)
        try:
            text = taken.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    claimed = event.get("ts")
                    queued_event = {k: v for k, v in event.items() if k not in _DRAIN_OWNED}
                    queued_event["via"] = "pending"
                    if claimed is not None:
                        queued_event["claimed_ts"] = str(claimed)[:64]
                    self.append(queued_event)
        taken.unlink(missing_ok=True)

    @property
    def seq(self) -> int:
        """The seq of the last line written (0 for an empty log)."""
        return self._seq

    @property
    def last_hash(self) -> str:
        """The mac (or legacy hash) of the last line written (64 zeros for an empty log)."""
        return self._prev

    def append(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Write one event; return the full record as written (with v, seq, prev, mac).

        None values are dropped, `args`/`result` go through `preview`, top-level keys named
        like secrets are redacted, `ts` is set unless given. Raises ValueError for reserved
        keys or NaN, TypeError for values JSON cannot represent, OSError if the write fails.
        """
        record: dict[str, Any] = {}
        for key, value in event.items():
            if value is None:
                continue
            if key in _RESERVED:
                raise ValueError(f"audit event key {key!r} is reserved for the hash chain")
            if key in _PREVIEWED:
                value = preview(value, self._limit)
            elif is_secret_key(key):
                value = REDACTED
            record[key] = value
        if "ts" not in record:
            record["ts"] = _now()
        with self._lock:
            fd = self._fd
            if fd is None:
                raise ValueError(f"audit log {self.path} is closed")
            record["v"] = FORMAT
            record["seq"] = self._seq + 1
            record["prev"] = self._prev
            try:
                canonical = _canonical(record)
            except UnicodeEncodeError:
                record = _scrub(record)
                canonical = _canonical(record)
            digest = _mac(self._key, self._prev, canonical)
            data = _line(canonical, digest, "mac") + b"\n"
            if self._needs_newline:
                data = b"\n" + data
            view = memoryview(data)
            written = 0
            try:
                while written < len(data):
                    written += os.write(fd, view[written:])
            except OSError:
                if written:  # a partial line is on disk: the next line must start afresh
                    self._needs_newline = True
                raise
            self._needs_newline = False
            self._seq += 1
            self._prev = digest
            if self._checkpoint is None:
                if self._log_id is None:
                    self._log_id = _log_id(digest)
                self._checkpoint = _Checkpoint(self._checkpoints, self._log_id, self._key)
            self._checkpoint.write(self._seq, digest)
        record["mac"] = digest
        return record

    def close(self) -> None:
        """Sync and close the file; further appends raise ValueError."""
        with self._lock:
            if self._fd is not None:
                try:
                    os.fsync(self._fd)
                finally:
                    os.close(self._fd)
                    self._fd = None
                    if self._checkpoint is not None:
                        self._checkpoint.close()
                        self._checkpoint = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chain_state(raw: bytes) -> tuple[int, str] | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    seq, digest = obj.get("seq"), obj.get("mac", obj.get("hash"))
    if type(seq) is not int or not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        return None
    return seq, digest


def _resume(path: Path) -> tuple[int, str, bool]:
    """(seq, hash) of the last line that parses, and whether the file ends mid-line."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return 0, ZERO_HASH, False
        f.seek(end - 1)
        partial = f.read(1) != b"\n"
        for raw, _terminated in _reverse_lines(f, end):
            state = _chain_state(raw)
            if state is not None:
                return state[0], state[1], partial
    return 0, ZERO_HASH, partial


def _log_id(mac: str) -> str:
    return mac[:32]


def _first_mac(path: Path) -> str | None:
    """The log id: from the first keyed line (legacy lines before it are skipped)."""
    with open(path, "rb") as f:
        for raw in f:
            if b'"mac":"' not in raw:
                continue
            with contextlib.suppress(ValueError):
                obj = json.loads(raw)
                mac = obj.get("mac") if isinstance(obj, dict) else None
                if isinstance(mac, str) and _HEX64.fullmatch(mac):
                    return _log_id(mac)
    return None


# ---------------------------------------------------------------------------- reading


def _reverse_lines(f: BinaryIO, end: int) -> Iterator[tuple[bytes, bool]]:
    """Lines of f[:end] from last to first, without "\\n", with whether one followed."""
    pos = end
    buf = b""
    at_end = True
    while pos > 0:
        size = min(_BLOCK, pos)
        pos -= size
        f.seek(pos)
        buf = f.read(size) + buf
        parts = buf.split(b"\n")
        buf = parts[0]
        for part in reversed(parts[1:]):
            if at_end:
                at_end = False
                if part:
                    yield part, False
                continue
            yield part, True
    if at_end:
        if buf:
            yield buf, False
    else:
        yield buf, True


def _parse(raw: bytes, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"{where}: not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: not a JSON object")
    return obj


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every event of the log, in order; a line that is not a JSON object raises ValueError."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            yield _parse(raw.rstrip(b"\n"), f"{path} line {lineno}")


def last_events(path: Path, n: int, *, end: int | None = None) -> list[dict[str, Any]]:
    """The last `n` events (of the first `end` bytes), read from the end of the file."""
    out: list[dict[str, Any]] = []
    if n <= 0:
        return out
    with open(path, "rb") as f:
        if end is None:
            end = f.seek(0, os.SEEK_END)
        for back, (raw, _terminated) in enumerate(_reverse_lines(f, end)):
            out.append(_parse(raw, f"{path} line {back + 1} from the end"))
            if len(out) == n:
                break
    out.reverse()
    return out


def follow(
    path: Path,
    poll: float = 0.1,
    stop: Callable[[], bool] | None = None,
    *,
    offset: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield events as they are appended, like `tail -F`.

    Starts at the end of the file (or at byte `offset`; 0 for the whole file), waits for the
    file if it does not exist yet, yields complete lines only, and starts over when the file
    is truncated or replaced (rotation). `stop` is polled while idle; when it returns True
    the iterator ends. A line that is not a JSON object raises ValueError.
    """
    f: BinaryIO | None = None
    buf = b""
    skip_first = False
    try:
        while True:
            if f is None:
                try:
                    f = open(path, "rb", buffering=0)  # noqa: SIM115 (closed in finally)
                except FileNotFoundError:
                    if stop is not None and stop():
                        return
                    time.sleep(poll)
                    offset = 0
                    continue
                size = os.fstat(f.fileno()).st_size
                start = size if offset is None or offset > size else offset
                if start > 0:
                    f.seek(start - 1)
                    skip_first = f.read(1) != b"\n"
                offset, buf = 0, b""
            chunk = f.read(_BLOCK)
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    if skip_first:
                        skip_first = False
                        continue
                    yield _parse(raw, f"{path}: line before byte {f.tell() - len(buf)}")
                continue
            if stop is not None and stop():
                return
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None:
                current = os.fstat(f.fileno())
                if (st.st_dev, st.st_ino) != (current.st_dev, current.st_ino):
                    # Rotated: finish the old file (lines written just before), then switch.
                    rest = f.read()
                    while rest:
                        buf += rest
                        rest = f.read()
                    *lines, _ = buf.split(b"\n")
                    for raw in lines[1 if skip_first else 0 :]:
                        yield _parse(raw, f"{path} (rotated)")
                    f.close()
                    f, buf, skip_first = None, b"", False
                    continue
                if st.st_size < f.tell():  # truncated in place
                    f.seek(0)
                    buf, skip_first = b"", False
                    continue
            time.sleep(poll)
    finally:
        if f is not None:
            f.close()


# ---------------------------------------------------------------------------- verifying


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
    keyed_from: int | None = None
    checkpoint: dict[str, Any] | None = None
    places = [checkpoints] if checkpoints is not None else _checkpoint_places(path)
    directory = places[0]
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                if keyed_from is None and b'"mac":"' in raw:
                    if key is None:
                        key = _verify_key()
                    keyed_from = lineno
                prev = _check_line(raw, lineno, prev, key if keyed_from is not None else None)
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
                        return VerifyResult(False, 0, None, cp)
                    checkpoint = cp
                if (
                    checkpoint is not None
                    and lineno == checkpoint["seq"]
                    and not hmac.compare_digest(prev, checkpoint["mac"])
                ):
                    raise _BadLine("the checkpoint names another line at this seq")
            except _BadLine as e:
                return VerifyResult(False, lineno - 1, lineno, str(e))
    if lineno and keyed_from is None:
        return VerifyResult(False, lineno, None, _UNKEYED)
    if checkpoint is not None and checkpoint["seq"] > lineno:
        cut = checkpoint["seq"] - lineno
        return VerifyResult(
            False,
            lineno,
            lineno + 1,
            f"tail cut: the checkpoint says {checkpoint['seq']} events were written, "
            f"the file ends at seq {lineno} ({cut} line(s) cut off the end)",
        )
    return VerifyResult(True, lineno)


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
