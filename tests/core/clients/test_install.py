"""lockgate.clients.install: plan, backup, atomic write, file mode and symlinks."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lockgate.clients import install, jsonc, merge
from lockgate.clients import registry as core
from lockgate.errors import LockgateError

URL = "http://127.0.0.1:8787/mcp/notes"
NAME = "lockgate-notes"


# ------------------------------------------------------------------------------------------
# Files: plan, backup, atomic write, mode, symlinks


def test_install_creates_the_file_and_folder_private(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "mcp.json"
    plan = install.plan_install(core.get_client("cursor"), path, [(NAME, URL)])
    assert install.apply_install(plan) is None
    assert json.loads(path.read_text()) == {"mcpServers": {NAME: {"url": URL}}}
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_install_backs_up_keeps_mode_and_is_idempotent(tmp_path: Path) -> None:
    tmp_path = tmp_path / "cfg"
    tmp_path.mkdir()
    path = tmp_path / "mcp.json"
    original = '{\n  "mcpServers": {\n    "time": {"command": "uvx"}\n  }\n}\n'
    path.write_text(original)
    path.chmod(0o640)
    client = core.get_client("cursor")
    now = datetime(2026, 11, 27, 9, 30, 0, tzinfo=UTC)
    backup = install.apply_install(install.plan_install(client, path, [(NAME, URL)]), now)
    assert backup == tmp_path / "mcp.json.lockgate-backup-20261127T093000Z"
    assert backup.read_text() == original
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    second = install.plan_install(client, path, [(NAME, URL)])
    assert not second.changed and second.results == ((NAME, "unchanged"),)
    assert install.apply_install(second, now) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([backup.name, "mcp.json"])


def test_backup_names_never_collide(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    first = install.backup_path(path, now)
    first.write_text("x")
    assert install.backup_path(path, now) == tmp_path / f"{first.name}-1"


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_symlinked_config_is_written_through_the_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "mcp.json"
    real.parent.mkdir()
    real.write_text('{"mcpServers": {}}')
    link = tmp_path / "mcp.json"
    link.symlink_to(real)
    install.apply_install(install.plan_install(core.get_client("cursor"), link, [(NAME, URL)]))
    assert link.is_symlink()
    assert json.loads(real.read_text())["mcpServers"][NAME] == {"url": URL}


def test_a_file_changed_after_planning_is_left_alone(tmp_path: Path) -> None:
    tmp_path = tmp_path / "cfg"
    tmp_path.mkdir()
    path = tmp_path / "claude.json"
    path.write_text('{"numStartups": 1}')
    plan = install.plan_install(core.get_client("claude-code"), path, [(NAME, URL)])
    path.write_text('{"numStartups": 2}')  # the client rewrote it meanwhile
    with pytest.raises(LockgateError, match="changed while"):
        install.apply_install(plan)
    assert path.read_text() == '{"numStartups": 2}'
    assert [p.name for p in tmp_path.iterdir()] == ["claude.json"]


def test_conflict_names_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"servers": {NAME: {"type": "http", "url": "https://other/"}}}))
    with pytest.raises(merge.EntryConflict) as info:
        install.plan_install(core.get_client("vscode"), path, [(NAME, URL)])
    assert str(path) in str(info.value) and "--force" in str(info.value)


def test_same_url_in_another_shape_counts_as_installed(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {NAME: {"url": URL, "type": "http"}}}))
    plan = install.plan_install(core.get_client("cursor"), path, [(NAME, URL)])
    assert not plan.changed and plan.results == ((NAME, "unchanged"),)


def test_invalid_json_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{\n  "mcpServers": {\n    "a": 1,,\n  }\n}\n')
    with pytest.raises(LockgateError, match=r"not valid JSON .*line 3"):
        install.plan_install(core.get_client("cursor"), path, [(NAME, URL)])


@pytest.mark.parametrize("text", ["", "\n", "// nothing yet\n", "\ufeff{}"])
def test_empty_comment_only_and_bom_files_are_merged(tmp_path: Path, text: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(text, encoding="utf-8")
    plan = install.plan_install(core.get_client("vscode"), path, [(NAME, URL)])
    install.apply_install(plan)
    after = path.read_text(encoding="utf-8")
    assert jsonc.loads(after) == {"servers": {NAME: {"type": "http", "url": URL}}}
    assert after.startswith(text.rstrip("{}"))
