"""lockgate.ops.doctor: the plan for a profile, running checks concurrently, the JSON report.

The checks themselves are tested in test_checks.py; here a real profile is planned and run.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from lockgate.ops import doctor
from lockgate.ops.checks import (
    CheckResult,
)
from lockgate.ops.doctor import Check, plan, run_checks
from lockgate.upstream.state import CredentialState
from tests.support.gateway import profile_text
from tests.support.upstreams import sdk_upstream


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# ---------------------------------------------------------------------------- plan and run


def test_run_checks_keeps_order_and_survives_a_broken_check() -> None:
    async def slow() -> CheckResult:
        await asyncio.sleep(0.05)
        return CheckResult("slow", "ok", "done")

    async def broken() -> CheckResult:
        raise RuntimeError("boom")

    async def fast() -> CheckResult:
        return CheckResult("fast", "ok", "done")

    seen: list[int] = []
    results = _run(
        run_checks(
            [Check("slow", slow), Check("broken", broken), Check("fast", fast)],
            lambda i, r: seen.append(i),
        )
    )
    assert [r.name for r in results] == ["slow", "broken", "fast"]
    assert results[1].status == "fail"
    assert results[1].detail == "the check itself failed (RuntimeError)"
    assert sorted(seen) == [0, 1, 2] and seen[-1] == 0  # the slow one finishes last


def test_plan_with_a_bad_profile_skips_what_needs_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("not = [valid")
    results = _run(run_checks(plan(bad)))
    by_name = {r.name: r for r in results}
    assert by_name["profile"].status == "fail"
    assert by_name["profile"].detail.startswith(f"{bad}:1: not valid TOML")
    for name in ("listen port", "identity provider", "upstreams"):
        assert by_name[name].status == "warn"
        assert by_name[name].detail == "skipped: needs a valid profile"


def test_plan_runs_every_check_on_real_parts(tmp_path: Path, closed_port: int) -> None:
    with sdk_upstream() as url:
        path = tmp_path / "p.toml"
        path.write_text(
            profile_text(
                {"live": url, "dead": f"http://127.0.0.1:{closed_port}/mcp"},
                {"live": "live", "dead": "dead"},
            )
        )
        results = _run(
            run_checks(
                plan(
                    path,
                    timeout=3,
                    listen=f"127.0.0.1:{closed_port}",
                    lookup=lambda n, u: CredentialState("none_needed", "no credential needed"),
                )
            )
        )
    assert [r.name for r in results] == [
        "python",
        "mitmproxy",
        "keyring",
        "profile",
        "listen port",
        "identity provider",
        "upstream dead",
        "credential dead",
        "upstream live",
        "credential live",
    ]
    by_name = {r.name: r for r in results}
    assert by_name["upstream live"].status == "ok"
    assert by_name["upstream dead"].status == "fail"
    assert by_name["listen port"].status == "ok"
    assert all(r.fix for r in results if r.status == "fail")
    doc = json.loads(doctor.report_json(results))
    assert doc["ok"] is False and len(doc["checks"]) == len(results)
