"""The official MCP conformance suite, run directly against our SDK-built fixture upstream.

This is the baseline the gateway is held to (DESIGN.md: the suite run through the gateway
must score what it scores directly against the same upstream). With
`@modelcontextprotocol/conformance` 0.1.16 at spec version 2025-11-25, suite "all", the
fixture (tests/fixtures/conformance_server.py) passes every scenario: 32 of 32 (30 active,
2 pending), with no FAILURE and no WARNING check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import require
from tests.support.conformance import (
    conformance_upstream,
    failure_details,
    list_scenarios,
    run_conformance,
)
from tests.support.node import INSTALL_HINT, conformance_cmd, package_version

pytestmark = pytest.mark.node

EXPECTED_SCENARIOS = 32  # conformance 0.1.16, --suite all --spec-version 2025-11-25


def test_fixture_passes_every_conformance_scenario(tmp_path: Path) -> None:
    require(
        conformance_cmd() is not None, f"Node >= 22 / conformance suite missing: {INSTALL_HINT}"
    )
    out_dir = tmp_path / "conformance"

    with conformance_upstream() as url:
        statuses = run_conformance(url, out_dir)

    listed = list_scenarios()
    assert set(listed) <= set(statuses), (
        f"scenarios without a status: {set(listed) - set(statuses)}"
    )
    not_passed = {name: status for name, status in statuses.items() if status != "passed"}
    passed = len(statuses) - len(not_passed)
    version = package_version("@modelcontextprotocol/conformance")
    assert not not_passed, (
        f"conformance {version} direct: {passed}/{len(statuses)} passed; not passed: {not_passed}\n"
        f"{failure_details(out_dir, list(not_passed))}\n(see {out_dir}/conformance.log)"
    )
    if version == "0.1.16":
        assert len(statuses) == EXPECTED_SCENARIOS
