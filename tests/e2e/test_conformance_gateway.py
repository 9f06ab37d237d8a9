"""The conformance suite through the gateway scores what it scores directly (DESIGN: coverage).

Both runs use the same fixture upstream in one test, so a difference is the gateway's. The
suite cannot send credentials: the route uses `[identity] kind = "none"`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import require
from tests.support.conformance import (
    conformance_upstream,
    failure_details,
    run_conformance,
)
from tests.support.gateway import profile_text, running_gateway
from tests.support.node import INSTALL_HINT, conformance_cmd

pytestmark = pytest.mark.node


def test_gateway_scores_what_the_upstream_scores_directly(tmp_path: Path) -> None:
    require(
        conformance_cmd() is not None, f"Node >= 22 / conformance suite missing: {INSTALL_HINT}"
    )
    with conformance_upstream() as url:
        direct = run_conformance(url, tmp_path / "direct")
        profile = profile_text({"fixture": url}, {"conformance": "fixture"})
        with running_gateway(profile, tmp_path / "gw") as gw:
            through = run_conformance(gw.route_url("conformance"), tmp_path / "through")

    differ = sorted(
        name for name in set(direct) | set(through) if direct.get(name) != through.get(name)
    )
    passed_direct = sum(s == "passed" for s in direct.values())
    passed_through = sum(s == "passed" for s in through.values())
    assert not differ and passed_through == passed_direct, (
        f"direct {passed_direct}/{len(direct)}, through the gateway "
        f"{passed_through}/{len(through)}; scenarios that differ: "
        + ", ".join(f"{n} ({direct.get(n)} -> {through.get(n)})" for n in differ)
        + "\n"
        + failure_details(tmp_path / "through", differ)
    )
    assert passed_direct >= 30, f"the fixture itself regressed: {passed_direct}/{len(direct)}"
