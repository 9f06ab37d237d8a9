"""Installing route entries into a client's config file: plan (merge and self-check), then
write (backup first, atomic replace, the file's mode kept).

Fails closed: the merged text must parse to the old value plus the new entries only, with
every comment kept, or nothing is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lockgate.clients.jsonc import JsoncError, comment_texts, loads
from lockgate.clients.merge import EntryConflict, Status, merge_entry
from lockgate.clients.registry import ClientApp, check_route_url
from lockgate.errors import LockgateError


@dataclass(frozen=True)
class Planned:
    """What install would do to one file: the text before and after, and each entry's fate."""

    path: Path
    before: str | None  # None: the file does not exist yet
    after: str
    results: tuple[tuple[str, Status], ...]

    @property
    def changed(self) -> bool:
        return self.before != self.after


def read_config(path: Path) -> str | None:
    """The file's text exactly (newlines kept), None when it does not exist."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError as e:
        raise LockgateError(f"{path} is a directory", "pass the config file with --config") from e
    except (OSError, UnicodeDecodeError) as e:
        raise LockgateError(
            f"Cannot read {path} ({type(e).__name__})", "check its permissions"
        ) from e


def _points_to(client: ClientApp, url: str) -> Callable[[object], bool]:
    def same(entry: object) -> bool:
        return client.target(entry) == url

    return same


def plan_install(
    client: ClientApp,
    path: Path,
    entries: list[tuple[str, str]],
    *,
    force: bool = False,
) -> Planned:
    """Merge (name, url) entries into the client's config text; writes nothing."""
    before = read_config(path)
    text = before or ""
    results: list[tuple[str, Status]] = []
    try:
        for name, url in entries:
            check_route_url(url)
            merged = merge_entry(
                text,
                client.container,
                name,
                client.entry(url),
                same=_points_to(client, url),
                force=force,
            )
            results.append((name, merged.status))
            text = merged.text
    except JsoncError as e:
        raise LockgateError(
            f"{path} is not valid JSON ({e})",
            "fix the file at that line, or pass --config to use another file",
        ) from e
    except EntryConflict as e:
        raise EntryConflict(f"{path}: {e.message}", e.fix) from e
    if before is not None:
        _self_check(
            client,
            before,
            text,
            [n for n, s in results if s != "unchanged"],
            {s for _, s in results},
        )
    return Planned(path, before, text, tuple(results))


def _comments_kept(before: list[str], after: list[str], *, exact: bool) -> bool:
    """Every comment survives; a forced replace may drop only those inside the old value."""
    if exact:
        return before == after
    rest = iter(before)
    return all(any(c == b for b in rest) for c in after)


def _self_check(
    client: ClientApp, before: str, after: str, names: list[str], statuses: set[str]
) -> None:
    """Fail closed: the new text must parse to the old value plus the new entries only."""
    old, new = loads(before), loads(after)
    old = {} if old is None else old  # an empty (or comments-only) file
    if isinstance(old, dict) and isinstance(new, dict):
        old_box = old.get(client.container)
        new_box = new.get(client.container)
        rest_same = {k: v for k, v in old.items() if k != client.container} == {
            k: v for k, v in new.items() if k != client.container
        }
        old_servers = old_box if isinstance(old_box, dict) else {}
        if (
            rest_same
            and isinstance(new_box, dict)
            and {k: v for k, v in new_box.items() if k not in names}
            == {k: v for k, v in old_servers.items() if k not in names}
            and _comments_kept(
                comment_texts(before), comment_texts(after), exact="replaced" not in statuses
            )
        ):
            return
    raise LockgateError(
        "The merged config did not check out, so nothing was written",
        "report this with the file's layout (not its secrets); use `lockgate clients show` "
        "and edit the file by hand meanwhile",
    )


def backup_path(path: Path, now: datetime) -> Path:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.lockgate-backup-{stamp}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.lockgate-backup-{stamp}-{n}")
        n += 1
    return candidate


def apply_install(plan: Planned, now: datetime | None = None) -> Path | None:
    """Write the plan: backup first, then an atomic replace keeping the file's mode.

    Returns the backup's path (None when the file was created or nothing changed). A file
    that changed since it was read (the client rewrote it) is left alone.
    """
    if not plan.changed:
        return None
    real = plan.path.resolve() if plan.path.is_symlink() else plan.path
    if read_config(real) != plan.before:
        raise LockgateError(
            f"{plan.path} changed while lockgate was merging into it, so nothing was written",
            "run the command again (quit the client first if it keeps rewriting the file)",
        )
    backup: Path | None = None
    if plan.before is not None:
        mode = real.stat().st_mode & 0o7777
        backup = backup_path(real, now or datetime.now(UTC))
        shutil.copy2(real, backup)
    else:
        mode = 0o600
        real.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(plan.after)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup
