"""What `lockgate demo` prints: the short banner above the live view, how to sign a client
in, and each PASS/FAIL line of `demo --check`."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console


def banner(profile: Path, url: str, readonly_url: str, full_route: str) -> list[str]:
    """The banner's lines above the live view, rendered as plain text."""
    text = Console(file=io.StringIO(), width=400, color_system=None)
    print_short_help(text, profile, url, readonly_url, full_route)
    assert isinstance(text.file, io.StringIO)
    return [ln for ln in text.file.getvalue().splitlines() if ln.strip()]


def print_short_help(
    out: Console, profile: Path, url: str, readonly_url: str, full_route: str
) -> None:
    out.print(
        f"Connect: lockgate clients install claude-code --route {full_route} --profile {profile}"
        "  (or cursor, vscode, claude-desktop)"
    )
    out.print(f"  or any MCP client to {url}; the read-only view is {readonly_url}")
    out.print("  Clients sign in on a consent page in your browser: check the client, Allow.")


def print_signin_help(out: Console, url: str, readonly_url: str) -> None:
    """After the per-client install lines: the Inspector, the read-only route, signing in."""
    out.print(
        f"  {'MCP Inspector':<15} npx @modelcontextprotocol/inspector"
        f"  (Streamable HTTP, URL {url})",
        soft_wrap=True,
        markup=False,
    )
    out.print(f"The read-only view hides delete_note: {readonly_url}", soft_wrap=True)
    out.print("Signing in:", style="bold")
    out.print(
        "  The gateway asks every client to sign in (OAuth). The client opens a consent page "
        "in your browser: check the client's name and redirect URI, then click Allow. "
        "You are signed in as your local user; no password, no account.",
        soft_wrap=True,
    )
    for client, how in (
        ("Claude Code", "run /mcp, pick lockgate-notes, choose Authenticate"),
        ("MCP Inspector", "click Connect (or Open Auth Settings, then Quick OAuth Flow)"),
        ("Cursor, VS Code", "click the server's login / Auth prompt"),
    ):
        out.print(f"  {client:<15} {how}", soft_wrap=True, markup=False)
    out.print(
        "  The signing key lives in memory: after a restart, clients refresh or sign in again.",
        soft_wrap=True,
        style="dim",
    )
    out.print("Events appear below as they happen. Ctrl-C stops.", style="dim")
    out.print()
    out.file.flush()


def print_no_keyring(out: Console, path: Path) -> None:
    out.print(
        f"No usable OS keyring (`lockgate doctor` says why): this run's audit log {path} "
        f"is keyed in memory (watch it with `lockgate watch --file {path}`); "
        "`lockgate audit verify` cannot check it after the demo.",
        soft_wrap=True,
        markup=False,
        style="yellow",
    )


@dataclass
class Report:
    """`demo --check`'s steps: each printed as PASS or FAIL as it happens, then counted."""

    out: Console
    results: list[tuple[bool, str]] = field(default_factory=list)

    def step(self, ok: bool, text: str) -> None:
        self.results.append((ok, text))
        self.out.print(
            f"  {'PASS' if ok else 'FAIL'}  {text}",
            style="green" if ok else "red",
            markup=False,
            soft_wrap=True,
        )

    def summary(self) -> bool:
        passed = sum(ok for ok, _ in self.results)
        total = len(self.results)
        self.out.print(
            f"{passed}/{total} checks passed",
            style="bold green" if passed == total else "bold red",
        )
        return passed == total
