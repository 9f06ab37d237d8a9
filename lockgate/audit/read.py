"""Reading the audit log: every event, the last few from the end, or new ones as they come.

Why it exists: `audit tail`, `watch` and the tests read the log without writing it, so the
readers need neither the key nor the lock; the writer (`lockgate.audit.log`) resumes its
chain with `_reverse_lines` too.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

__all__ = ["follow", "last_events", "read_events"]

_BLOCK = 64 * 1024


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


def parse_line(raw: bytes, where: str) -> dict[str, Any]:
    """One line of the log as its event; ValueError names `where` when it is not a JSON
    object."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson refuses what the stdlib writer may emit (integers beyond 64 bits).
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
            yield parse_line(raw.rstrip(b"\n"), f"{path} line {lineno}")


def last_events(path: Path, n: int, *, end: int | None = None) -> list[dict[str, Any]]:
    """The last `n` events (of the first `end` bytes), read from the end of the file."""
    out: list[dict[str, Any]] = []
    if n <= 0:
        return out
    with open(path, "rb") as f:
        if end is None:
            end = f.seek(0, os.SEEK_END)
        for back, (raw, _terminated) in enumerate(_reverse_lines(f, end)):
            out.append(parse_line(raw, f"{path} line {back + 1} from the end"))
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
                    yield parse_line(raw, f"{path}: line before byte {f.tell() - len(buf)}")
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
                        yield parse_line(raw, f"{path} (rotated)")
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
