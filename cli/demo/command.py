"""`lockgate demo`: the bundled notes upstream behind a gateway on profiles/demo.toml.

`--check` runs the same set-up headless, drives the official MCP client through
it (a tokenless request refused with 401, OAuth sign-in with the consent page approved
headlessly, list, call, a hidden call refused, the audit chain verified) and exits 0 or 1.
It also shows four attacks refused the way a new user would try them: a consent form
posted by a process without the page's cookie, a denied resource read by percent-encoding
its URI, one route's session id presented on another, and a copy of the audit log with its
last line cut off. On the lab route (a second bundled server that misbehaves) it shows the
guardrails: a leaked token masked, a poisoned tool hidden, a changed tool (a rug pull) blocked.

The demo must run on any machine, also one without a usable OS keyring: there the audit
chain's key is kept in memory and each run writes a fresh log of its own, and it says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # mitmproxy, the SDK and rich take seconds to import: only when the demo runs
    from lockgate.addons.master import Gateway
    from lockgate.audit.verify import VerifyResult
    from lockgate.cli.demo.headless_oauth import MemoryStorage
    from lockgate.cli.views import Console
    from lockgate.cli.views.demo import Report

FULL, READONLY, LAB = "notes", "notes-readonly", "lab"


def demo_profile(upstream_url: str, lab_url: str | None = None) -> Path:
    """The shipped demo profile, pointed at the demo upstreams that were just started."""
    from lockgate.paths import data_dir
    from lockgate.profile.model import demo_profile_path

    text = demo_profile_path().read_text(encoding="utf-8")
    for name, url in (("notes", upstream_url), ("lab", lab_url)):
        if url is None:
            continue
        text, count = re.subn(
            rf'(?m)^(\[upstreams\.{name}\][^\n]*\nurl\s*=\s*)"[^"]*"', rf'\1"{url}"', text
        )
        if count != 1:
            raise RuntimeError(f"the shipped demo profile has no [upstreams.{name}] url to point")
    path = data_dir() / "demo-profile.toml"
    path.write_text(text, encoding="utf-8")
    return path


def demo_audit_log(out: Console) -> Path | None:
    """None (the usual log, keyed from the OS keyring) when the keyring can hold the audit
    key; else a fresh log for this run, keyed in memory, which `audit verify` cannot check
    once the demo stops: a memory key must never continue a log another key began."""
    from lockgate.audit import log as audit_core
    from lockgate.cli.views import demo as view
    from lockgate.errors import KeyringUnavailable
    from lockgate.paths import data_dir

    try:
        audit_core.load_key(create=True)
        return None
    except KeyringUnavailable:
        os.environ[audit_core.KEY_SOURCE_ENV] = "memory"
        path = data_dir() / "demo-audit" / f"audit-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        view.print_no_keyring(out, path)
        return path


def connect_help(out: Console, gw: Gateway, profile: Path) -> None:
    """How to connect and sign in, printed above the event lines."""
    from lockgate.cli import clients
    from lockgate.cli.views import demo as view

    out.print()
    clients.connect_help(out, gw.profile, FULL, base=gw.base_url, profile_path=profile)
    view.print_signin_help(out, gw.route_url(FULL), gw.route_url(READONLY))


def demo(
    check: bool = typer.Option(
        False,
        "--check",
        help="Drive a real MCP client through the demo, print a summary, exit 0/1.",
    ),
    listen: str | None = typer.Option(
        None,
        "--listen",
        help="host:port for the gateway (default 127.0.0.1:8787; --check: any free port).",
    ),
) -> None:
    """Run the bundled demo: a notes MCP server behind the gateway, two curated routes.

    Example: lockgate demo            (then connect a client to the printed URL)
    Example: lockgate demo --check    (a self-test that exits 0 or 1)
    """
    from lockgate.cli import views
    from lockgate.cli.demo.lab import BackgroundLab
    from lockgate.cli.demo.server import BackgroundServer, build_app  # the SDK: only for the demo
    from lockgate.cli.views import demo as view

    out = views.console()
    with BackgroundServer(build_app()) as upstream, BackgroundLab() as lab:
        profile = demo_profile(f"{upstream.url}/mcp", lab.mcp_url)
        audit_log = demo_audit_log(out)
        if check:
            ok = asyncio.run(_check(profile, listen or "127.0.0.1:0", out, audit_log))
            raise typer.Exit(0 if ok else 1)

        from lockgate.cli.serving import serve

        if views.live_view_wanted(out):  # a terminal: the live view under a short banner
            from lockgate.cli.views.watch_app import GatewayView  # Textual: only when shown

            live = GatewayView(out)

            def started_view(gw: Gateway) -> None:
                live.started(gw)
                live.set_banner(
                    view.banner(profile, gw.route_url(FULL), gw.route_url(READONLY), FULL)
                )

            live.run(
                lambda: serve(
                    profile,
                    listen=listen,
                    on_started=started_view,
                    on_event=live.push,
                    audit_log=audit_log,
                )
            )
            out.print("lockgate: stopped")
            return

        def started(gw: Gateway) -> None:
            views.print_started(out, gw.base_url, [(n, gw.route_url(n)) for n in gw.profile.routes])
            connect_help(out, gw, profile)

        serve(
            profile,
            listen=listen,
            on_started=started,
            on_event=lambda r: views.print_event(out, r),
            audit_log=audit_log,
        )
    out.print("lockgate: stopped")


async def _check(profile: Path, listen: str, out: Console, audit_log: Path | None) -> bool:
    from lockgate.addons.master import Gateway
    from lockgate.audit import verify as audit_verify
    from lockgate.cli.views.demo import Report

    started = asyncio.Event()
    events: list[dict[str, Any]] = []
    gw = Gateway(profile, listen=listen, on_event=events.append, audit_log=audit_log)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
            loop.add_signal_handler(sig, gw.shutdown)
    task = asyncio.create_task(gw.run(lambda _: started.set()))
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        await task  # raises the GatewayError
        return False
    report = Report(out)
    out.print(f"lockgate demo --check: gateway on {gw.base_url}", soft_wrap=True)
    try:
        await _drive(gw, report)
    except Exception as e:  # the check reports every failure as a failed step
        report.step(False, f"the MCP client failed: {type(e).__name__}: {e}")
    finally:
        gw.shutdown()
        await task
        await gw.stopped()
    result = audit_verify.verify(gw.audit_log)
    report.step(
        result.ok and len(events) > 0,
        f"audit log: {len(events)} events written, hash chain "
        f"{'intact' if result.ok else f'BROKEN at line {result.first_bad_line}'}",
    )
    cut = _verify_cut_copy(gw.audit_log)
    report.step(
        not cut.ok and "cut" in (cut.reason or ""),
        f"audit log: a copy with its last line cut off is refused ({cut.reason})",
    )
    return report.summary()


def _verify_cut_copy(log: Path) -> VerifyResult:
    """What `audit verify` says of a copy of the log without its last line: the checkpoint
    outside the file, found by the log's id, knows how long it was."""
    from lockgate.audit import verify as audit_verify

    lines = log.read_bytes().splitlines(keepends=True)
    with tempfile.TemporaryDirectory(prefix="lockgate-demo-") as tmp:
        copy = Path(tmp) / "audit-cut.jsonl"
        copy.write_bytes(b"".join(lines[:-1]))
        return audit_verify.verify(copy)


async def _drive(gw: Gateway, report: Report) -> None:
    import httpx

    from lockgate.cli.demo.headless_oauth import MemoryStorage, approve_consent, signed_in_client

    async def cookieless_post(url: str, form: dict[str, str]) -> None:
        """Another local process submits the form it read, with the right Origin: no cookie."""
        origin = gw.base_url
        async with httpx.AsyncClient(trust_env=False, timeout=10) as script:
            forged = await script.post(url, data=form, headers={"Origin": origin})
        report.step(
            forged.status_code == 403,
            f"consent: Allow posted by a process without the consent page's cookie "
            f"refused (HTTP {forged.status_code})",
        )

    async def approve_after_probe(authorization_url: str) -> dict[str, str]:
        return await approve_consent(authorization_url, probe=cookieless_post)

    # Without a token, the gateway answers 401 and names its protected resource metadata.
    async with httpx.AsyncClient(trust_env=False, timeout=10) as raw:
        bare = await raw.post(
            gw.route_url(FULL),
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"accept": "application/json, text/event-stream"},
        )
    challenge = bare.headers.get("www-authenticate", "")
    report.step(
        bare.status_code == 401 and "resource_metadata=" in challenge,
        f"no token: HTTP {bare.status_code}, WWW-Authenticate names resource_metadata",
    )
    # The official SDK client with its OAuth provider: discovery, registration, consent
    # (pressed headlessly), PKCE and the token exchange, once per route.
    storage = MemoryStorage()
    async with signed_in_client(
        gw.route_url(READONLY),
        approve_after_probe,
        client_name="lockgate demo --check",
        storage=storage,
        read_timeout_seconds=10,
    ) as client:
        report.step(
            storage.tokens is not None and storage.client_info is not None,
            "signed in: the SDK client registered, got consent and a token (OAuth, PKCE)",
        )
        tools = {t.name for t in (await client.list_tools()).tools}
        report.step(
            "list_notes" in tools and "delete_note" not in tools and "add_note" not in tools,
            f"read-only route lists {len(tools)} tools, delete_note and add_note hidden",
        )
        listed = await client.call_tool("list_notes", {})
        report.step(not listed.is_error, "read-only route: list_notes called")
        refused = await _refusal(client.call_tool("delete_note", {"id": "1"}))
        report.step(
            refused is not None and "-32601" in refused,
            f"read-only route: delete_note refused by the gateway ({refused})",
        )
        note1 = await _refusal(client.read_resource("notes://note/1"))
        hidden = await _refusal(client.read_resource("notes://note/%32"))
        report.step(
            note1 is None and hidden is not None,
            f"read-only route: notes://note/1 read, the denied notes://note/2 spelled "
            f"notes://note/%32 refused ({hidden})",
        )
    full = MemoryStorage()
    async with signed_in_client(
        gw.route_url(FULL),
        client_name="lockgate demo --check",
        storage=full,
        read_timeout_seconds=10,
    ) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        report.step(
            "delete_note" in tools, f"full route lists {len(tools)} tools, delete_note included"
        )
        added = await client.call_tool("add_note", {"title": "from --check", "body": "hello"})
        report.step(not added.is_error, "full route: add_note called")
    await _session_elsewhere(gw, full, storage, report)
    await _guardrails(gw, report)


async def _guardrails(gw: Gateway, report: Report) -> None:
    """The lab route: a leaked token masked, a poisoned tool hidden, a rug pull blocked."""
    from lockgate.cli.demo import lab
    from lockgate.cli.demo.headless_oauth import MemoryStorage, signed_in_client

    async with signed_in_client(
        gw.route_url(LAB),
        client_name="lockgate demo --check",
        storage=MemoryStorage(),
        read_timeout_seconds=10,
    ) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        poisoned = await _refusal(client.call_tool(lab.POISONED, {"city": "Oslo"}))
        report.step(
            lab.POISONED not in tools and poisoned is not None,
            f"guardrails: the poisoned {lab.POISONED} is not listed and its call is refused "
            f"({poisoned})",
        )
        leaked = await client.call_tool(lab.LEAKY, {})
        text = " ".join(getattr(b, "text", "") for b in leaked.content)
        report.step(
            "GITHUB_TOKEN=[REDACTED:GITHUB_TOKEN]" in text and "ghp_" not in text,
            f"guardrails: the token in {lab.LEAKY}'s answer reached the client masked",
        )
        before = await _refusal(client.call_tool(lab.RUG_PULL, {"url": "https://example.com"}))
        await client.call_tool(lab.UPDATE, {})
        after = {t.name for t in (await client.list_tools()).tools}
        pulled = await _refusal(client.call_tool(lab.RUG_PULL, {"url": "https://example.com"}))
        report.step(
            before is None and lab.RUG_PULL not in after and pulled is not None,
            f"guardrails: {lab.RUG_PULL} changed after it was pinned (a rug pull): hidden and "
            f"its call refused ({pulled})",
        )


async def _session_elsewhere(
    gw: Gateway, full: MemoryStorage, readonly: MemoryStorage, report: Report
) -> None:
    """A session opened on the full route, presented on the read-only one: the gateway binds
    each session to the user, client and route that opened it."""
    import httpx

    from lockgate.mcp import jsonrpc

    def headers(storage: MemoryStorage, sid: str | None = None) -> dict[str, str]:
        assert storage.tokens is not None  # both clients signed in above
        h = {
            "accept": "application/json, text/event-stream",
            "authorization": f"Bearer {storage.tokens.access_token}",
            "mcp-protocol-version": jsonrpc.PROTOCOL_VERSION,
        }
        return h | ({"mcp-session-id": sid} if sid else {})

    init = jsonrpc.initialize_request("lockgate demo --check", version="1")
    ready = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with httpx.AsyncClient(trust_env=False, timeout=10) as raw:
        opened = await raw.post(gw.route_url(FULL), json=init, headers=headers(full))
        sid = opened.headers.get("mcp-session-id", "")
        own = await raw.post(gw.route_url(FULL), json=ready, headers=headers(full, sid))
        other = await raw.post(gw.route_url(READONLY), json=listing, headers=headers(readonly, sid))
    report.step(
        bool(sid) and own.status_code == 202 and other.status_code == 404,
        f"session: the full route's Mcp-Session-Id used on its own route (HTTP "
        f"{own.status_code}), presented on the read-only route refused (HTTP "
        f"{other.status_code})",
    )


async def _refusal(call: Any) -> str | None:
    """The JSON-RPC error code and message of a call that must fail, or None if it succeeded."""
    try:
        result = await call
    except Exception as e:  # the SDK raises its own error type for JSON-RPC errors
        err = getattr(e, "error", None)
        code = getattr(err, "code", None)
        return (
            f"{code} {getattr(err, 'message', e)}"
            if code is not None
            else f"{type(e).__name__}: {e}"
        )
    return None if not getattr(result, "is_error", False) else "tool error (not a gateway refusal)"
