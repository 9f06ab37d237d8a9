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

This module writes the chain (the key, checkpoints, `AuditLog`, `record`); reading it is
`lockgate.audit.read`, proving it `lockgate.audit.verify`, bounding and masking what it keeps
`lockgate.audit.redact`.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import json
import os
import re
import secrets as _random
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import orjson

from lockgate import keyring as keyring_store
from lockgate import paths
from lockgate.audit.read import _reverse_lines
from lockgate.audit.redact import REDACTED, _scrub, bound_findings, is_secret_key, preview
from lockgate.errors import LockgateError, StoreUnwritable

if sys.platform != "win32":
    import fcntl

__all__ = [
    "ZERO_HASH",
    "AuditKeyMissing",
    "AuditLog",
    "AuditLogBusy",
    "AuditLogDamaged",
    "AuditLogError",
    "AuditLogMissing",
    "AuditWriteFailed",
    "check_writable",
    "load_key",
    "pending_path",
    "record",
]

ZERO_HASH = "0" * 64
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
# Tool pins (sha256 hex of a definition, `pin.*` events) are named like a PIN but are
# digests: kept when they are one, redacted like any secret-named key when not.
_DIGEST_KEYS = frozenset({"old_pin", "new_pin"})

_HEX64 = re.compile(r"[0-9a-f]{64}")


class AuditLogError(LockgateError):
    """The audit log cannot be used as asked."""


class AuditLogMissing(AuditLogError):
    """There is no audit log at the given path."""


class AuditLogBusy(AuditLogError):
    """Another process holds the audit log open for writing."""


class AuditLogDamaged(AuditLogError):
    """A line of the audit log is not a JSON event."""


class AuditWriteFailed(AuditLogError, StoreUnwritable, OSError):
    """An event could not be written (full disk, read-only or vanished directory, file size
    limit): the gateway answers 503 with this rather than serve anything unrecorded. An
    OSError too, so callers that catch write failures still catch it."""

    @classmethod
    def of(cls, path: Path, e: OSError, what: str = "audit log") -> AuditWriteFailed:
        why = e.strerror or type(e).__name__
        return cls(
            f"The gateway cannot write its {what} {path} ({why}), so it serves nothing.",
            _fix(e),
        )


_FULL = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})


def _fix(e: OSError) -> str:
    """How to fix a failed audit write, by its errno."""
    if e.errno in _FULL:
        return "free disk space (or raise the file size limit), then retry the request"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            "make the audit directory writable for the gateway's user "
            "(or set LOCKGATE_AUDIT_LOG to a writable path), then restart it"
        )
    return "check the audit log's disk and directory, then retry the request"


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
    return hmac.digest(key, bytes.fromhex(prev) + canonical, "sha256").hex()


class _Keyed:
    """HMAC-SHA256 under one key, keyed once: each MAC copies the keyed state instead of
    hashing the padded key again and looking the digest up by name, as `hmac.digest` does
    (inside the gateway, with caches cold between requests, ~54 µs against ~37 for a 1.5 KB
    line; an append takes two MACs, its line's and its checkpoint's)."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes) -> None:
        self._base = hmac.new(key, digestmod="sha256")

    def hex(self, *parts: bytes) -> str:
        h = self._base.copy()
        for part in parts:
            h.update(part)
        return h.hexdigest()


def checkpoint_dir() -> Path:
    """Where checkpoints live: the data dir, outside the log's own directory if it differs."""
    return paths.data_dir() / "audit-checkpoints"


def _checkpoint_path(directory: Path, log_id: str) -> Path:
    return directory / f"{log_id}.json"


def _checkpoint_mac(key: bytes, body: Mapping[str, Any]) -> str:
    return _checkpoint_mac_of(key, _canonical(body))


def _checkpoint_mac_of(key: bytes, canonical: bytes) -> str:
    return hmac.digest(key, _CHECKPOINT_TAG + canonical, "sha256").hex()


_SLOT = 256  # bytes per checkpoint slot; a slot holds one canonical JSON object
_pwrite = getattr(os, "pwrite", None)


def _json_object(raw: bytes | str) -> dict[str, Any] | None:
    """The JSON object `raw` holds; None when it is not JSON or not an object."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _parse_slot(raw: bytes, key: bytes) -> dict[str, Any] | None:
    body = _json_object(raw)
    if body is None:
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

    def __init__(self, directory: Path, log_id: str, keyed: _Keyed) -> None:
        self._keyed = keyed
        self._log_id = log_id
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        self._fd = os.open(_checkpoint_path(directory, log_id), flags, 0o600)

    def write(self, seq: int, mac: str) -> None:
        # The canonical JSON of {"log", "mac", "seq", "v": 1} and then with its "cmac", spelled
        # out: both ids are hex, and one append writes this once (tests compare the bytes).
        tail = f'"log":"{self._log_id}","mac":"{mac}","seq":{seq},"v":1}}'.encode("ascii")
        cmac = self._keyed.hex(_CHECKPOINT_TAG, b"{", tail)
        data = (b'{"cmac":"' + cmac.encode("ascii") + b'",' + tail).ljust(_SLOT - 1) + b"\n"
        if _pwrite is not None:
            _pwrite(self._fd, data, (seq % 2) * _SLOT)  # one system call instead of two
        else:  # Windows has no pwrite
            os.lseek(self._fd, (seq % 2) * _SLOT, os.SEEK_SET)
            os.write(self._fd, data)

    def close(self) -> None:
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)


# ---------------------------------------------------------------------------- writing


def _canonical(record: Mapping[str, Any]) -> bytes:
    """The record's canonical JSON: sorted keys, compact, UTF-8, exactly as `json.dumps`
    writes it (`verify` re-encodes each parsed line that way to check its mac).

    orjson first, because the stdlib encoder cost ~30 µs of the ~100 µs an append takes; its
    bytes are the stdlib's but for floats under 1e-4 (`0.00001` against `1e-05`, `1e-7`
    against `1e-07`) and NaN/Infinity (null, where the stdlib refuses). Output holding any of
    those shapes, and what orjson refuses (non-str keys, ints over 64 bits, lone surrogates,
    subclasses, datetimes), goes through the stdlib. tests/core/audit compares the two."""
    try:
        fast = orjson.dumps(record, option=_ORJSON_OPTIONS)
    except TypeError:
        fast = None
    if fast is not None and not _may_differ(fast):
        return fast
    return _canonical_stdlib(record)


def _may_differ(data: bytes) -> bool:
    """Whether orjson's bytes may not be the stdlib's: a negative exponent, a float under
    1e-4 in fixed notation, or null (NaN, or a None the stdlib writes the same way). Inside a
    string these only cost the stdlib's encoding. Substring searches, not a regex: `re` takes
    ~15 µs for a class-first pattern over a line, these ~1."""
    if b"null" in data:
        return True
    for needle, before in ((b"e-", b"0123456789"), (b"0.0000", b":,[-")):
        i = data.find(needle)
        while i > 0:
            if data[i - 1] in before:
                return True
            i = data.find(needle, i + 1)
    return False


_ORJSON_OPTIONS: Final = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _canonical_stdlib(record: Mapping[str, Any]) -> bytes:
    text = json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def _line(canonical: bytes, digest: str, field: str = "hash") -> bytes:
    """The stored line: the canonical JSON with `"mac"` (legacy: `"hash"`) as its last key."""
    return canonical[:-1] + b',"' + field.encode() + b'":"' + digest.encode("ascii") + b'"}'


def _now() -> str:
    global _SECOND
    ms = time.time_ns() // 1_000_000
    sec = ms // 1000
    held = _SECOND  # read once: another thread may replace it meanwhile
    if held[0] != sec:  # strftime once a second: ~30 µs per event inside the gateway
        held = _SECOND = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{held[1]}.{ms % 1000:03d}Z"


# The second `_now` last formatted, and its text.
_SECOND: tuple[int, str] = (-1, "")


def check_writable(path: Path, checkpoints: Path | None = None) -> None:
    """Refuse to start a gateway whose audit log or checkpoint directory cannot be written
    (read-only disk, a path under a regular file, no permission): raises AuditLogError with
    the path and how to fix it, before any traffic could flow unrecorded. Creates what is
    missing, as the first append would."""
    directory = checkpoints if checkpoints is not None else checkpoint_dir()
    for target, what in ((path, "audit log"), (directory / ".probe", "audit checkpoint dir")):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            os.close(os.open(target, flags, 0o600))
            if target.name == ".probe":
                target.unlink()
        except OSError as e:
            shown = target if what == "audit log" else directory
            why = e.strerror or type(e).__name__
            if isinstance(e, FileExistsError):  # mkdir met a regular file on the way
                why = "part of the path is a file, not a directory"
            raise AuditLogError(
                f"The gateway cannot write its {what} {shown} ({why}), so it will not start.",
                "make that directory writable for the gateway's user (or set "
                "LOCKGATE_AUDIT_LOG to a writable path)",
            ) from None


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
        _enqueue(pending_path(path), line.encode("utf-8"))
        return "pending"
    with log:
        log.append(event)
    return "written"


def _enqueue(queued: Path, data: bytes) -> None:
    """Append one line to the pending queue, never to a queue file a drainer already read.

    The drainer renames the queue away, then takes its flock before reading it; a writer
    takes the flock before writing and writes only if its file is still the one at the
    queue's path (else it was renamed away meanwhile: open the new one). Without this a line
    written between the drainer's rename and its read was lost."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    while True:
        fd = os.open(queued, flags, 0o600)
        try:
            if sys.platform != "win32":
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(queued).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    current = False
                if not current:
                    continue
            os.write(fd, data)
            return
        finally:
            os.close(fd)  # and with it the flock


# Written before the next exchange once the log can be written again after a failed write:
# events of the exchanges refused in between are missing, and this says so (and why).
AUDIT_RESUMED = "audit.resumed"

# Below this much free space on the log's disk, exchanges are refused before they go
# upstream (their events need room; a completion event is a few KB at most).
MIN_FREE_BYTES = 1024 * 1024


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
        self._keyed = _Keyed(loaded)
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
        self._draining = False
        self._drained_at = time.monotonic()
        # The last write's failure, until a write succeeds again (see `check_ready`).
        self._failed: AuditWriteFailed | None = None
        self._space_checked = 0.0
        self._drain_pending()

    def check_ready(self) -> None:
        """Raise AuditWriteFailed when the log could not record what an exchange is about to
        do: its last write failed and it still cannot write (it tries an `audit.resumed`
        event, which records the gap when it succeeds), or its disk has less than
        MIN_FREE_BYTES left (looked up at most once a second). Called before a request goes
        upstream, so that no request reaches an upstream while its events cannot be written."""
        failed = self._failed
        if failed is not None:
            # The gap in the log is itself recorded; if that cannot be written either, the
            # write's own (fresh) AuditWriteFailed refuses the exchange.
            self.append({"event": AUDIT_RESUMED, "reason": failed.message})
            return
        now = time.monotonic()
        if now - self._space_checked < 1.0:
            return
        self._space_checked = now
        try:
            fs = os.statvfs(self.path.parent)
        except (OSError, AttributeError):  # no statvfs (Windows): the write itself tells
            return
        if fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES:
            full = OSError(errno.ENOSPC, f"less than {MIN_FREE_BYTES} bytes free")
            raise AuditWriteFailed.of(self.path, full)

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
        if self._draining:
            return
        self._draining = True
        try:
            self._drain_queue()
        finally:
            self._draining = False

    def _drain_queue(self) -> None:
        queued = pending_path(self.path)
        taken = queued.with_name(queued.name + ".draining")
        if not taken.exists():  # else a drain cut short left it: drain that first
            with contextlib.suppress(FileNotFoundError):
                os.replace(queued, taken)
        try:
            fd = os.open(taken, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return
        try:
            if sys.platform != "win32":
                fcntl.flock(fd, fcntl.LOCK_EX)  # a writer still writing to it finishes first
            with os.fdopen(os.dup(fd), "rb") as f:
                text = f.read().decode("utf-8", "replace")
        finally:
            os.close(fd)
        for line in text.splitlines():
            event = _json_object(line)
            if event is not None:
                claimed = event.get("ts")
                queued_event = {k: v for k, v in event.items() if k not in _DRAIN_OWNED}
                queued_event["via"] = "pending"
                if claimed is not None:
                    queued_event["claimed_ts"] = str(claimed)[:64]
                with contextlib.suppress(ValueError):  # one the log refuses (NaN, a reserved key)
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

        None values are dropped, `args`/`result` go through `preview`, `findings` through
        `bound_findings` (whole items, the contract's keys only; none: no key), top-level
        keys named like secrets are redacted (pins too, unless a sha256 hex digest), `ts` is
        set unless given. Raises ValueError for reserved
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
            elif key == "findings":
                value = bound_findings(value)
                if not value:  # no findings: no key, as for a None value
                    continue
            elif key in _DIGEST_KEYS and isinstance(value, str) and _HEX64.fullmatch(value):
                pass
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
            digest = self._keyed.hex(bytes.fromhex(self._prev), canonical)
            data = _line(canonical, digest, "mac") + b"\n"
            if self._needs_newline:
                data = b"\n" + data
            view = memoryview(data)
            written = 0
            try:
                while written < len(data):
                    written += os.write(fd, view[written:])
            except OSError as e:
                if written:  # a partial line is on disk: the next line must start afresh
                    self._needs_newline = data[written - 1 : written] != b"\n"
                self._failed = AuditWriteFailed.of(self.path, e)
                raise self._failed from e
            self._needs_newline = False
            self._seq += 1
            self._prev = digest
            try:
                if self._checkpoint is None:
                    if self._log_id is None:
                        self._log_id = _log_id(digest)
                    self._checkpoint = _Checkpoint(self._checkpoints, self._log_id, self._keyed)
                self._checkpoint.write(self._seq, digest)
            except OSError as e:  # the line is written; its checkpoint is not: still refuse
                self._failed = AuditWriteFailed.of(self._checkpoints, e, "audit checkpoint dir")
                raise self._failed from e
            self._failed = None
        record["mac"] = digest
        self._maybe_drain()
        return record

    def poll(self) -> None:
        """Drain what other processes queued when no event has come for a second: the gateway
        calls it on a timer, so `lockgate tools approve`'s event is chained even when no
        traffic follows it."""
        if self._fd is not None:
            self._maybe_drain()

    def _maybe_drain(self) -> None:
        """While a gateway holds the log, what other processes queued (`lockgate tools
        approve`'s pin.approved) is chained within about a second of the next event, not only
        when the log is next opened. One clock read per event; a stat at most once a second."""
        now = time.monotonic()
        if self._draining or now - self._drained_at < 1.0:
            return
        self._drained_at = now
        if pending_path(self.path).exists():
            self._drain_pending()

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
    obj = _json_object(raw)
    if obj is None:
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
            obj = _json_object(raw)
            mac = obj.get("mac") if obj is not None else None
            if isinstance(mac, str) and _HEX64.fullmatch(mac):
                return _log_id(mac)
    return None
