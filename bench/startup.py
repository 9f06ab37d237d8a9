"""How long `lockgate` takes to start: the median wall time of N runs per command.

Every non-serving command should start in well under a second (issue 10, item 4): a user
types `lockgate --help` or `lockgate servers` and waits for nothing but the answer. Each run
is a fresh `python -m lockgate.cli` process (the installed entry point does the same), so the
numbers include the interpreter's own start (shown as `python -c pass`).

    uv run python bench/startup.py            # 7 runs per command
    uv run python bench/startup.py -n 3       # quicker
    uv run python bench/startup.py --json     # one JSON object: command -> wall, cpu

`servers --json` runs on the shipped demo profile with an in-memory keyring key source, so it
needs no OS keyring. To see what a command pays for: `python -X importtime -m lockgate.cli
servers --help 2>&1 | sort -t'|' -k2 -n | tail`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "profiles" / "demo.toml"

COMMANDS: list[list[str]] = [
    ["--help"],
    ["up", "--help"],
    ["demo", "--help"],
    ["profile", "--help"],
    ["secret", "--help"],
    ["connect", "--help"],
    ["disconnect", "--help"],
    ["audit", "--help"],
    ["audit", "query", "--help"],
    ["servers", "--help"],
    ["doctor", "--help"],
    ["watch", "--help"],
    ["clients", "--help"],
    ["clients", "list"],
    ["login", "--help"],
    ["logout", "--help"],
    ["whoami", "--help"],
    ["profile", "validate", str(DEMO)],
    ["servers", "--json", "--profile", str(DEMO)],
]


def _once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run; CPU time barely moves when other
    processes load the machine, wall time does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=False, timeout=60)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(runs: int) -> dict[str, tuple[float, float]]:
    """The median wall and CPU seconds per command (and of a bare interpreter, the floor).
    The commands take turns, round after round, so background load hits them alike."""
    with tempfile.TemporaryDirectory(prefix="lockgate-startup-") as home:
        env = {
            **os.environ,
            "HOME": home,
            "XDG_CONFIG_HOME": f"{home}/config",
            "XDG_DATA_HOME": f"{home}/data",
            "XDG_STATE_HOME": f"{home}/state",
            "NO_COLOR": "1",
            "LOCKGATE_SIGNING_KEY_SOURCE": "memory",
        }
        results = {"python -c pass": [sys.executable, "-c", "pass"]}
        for args in COMMANDS:
            shown = " ".join(a if a != str(DEMO) else "profiles/demo.toml" for a in args)
            results[f"lockgate {shown}"] = [sys.executable, "-m", "lockgate.cli", *args]
        _once(results["lockgate --help"], env)  # warm the file cache and .pyc files
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in results}
        for _ in range(runs):
            for name, argv in results.items():
                times[name].append(_once(argv, env))
        return {
            name: (
                statistics.median(w for w, _ in runs_),
                statistics.median(c for _, c in runs_),
            )
            for name, runs_ in times.items()
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=7, help="runs per command (1-50)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    medians = measure(max(1, min(args.runs, 50)))
    if args.json:
        doc = {k: {"wall": round(w, 3), "cpu": round(c, 3)} for k, (w, c) in medians.items()}
        print(json.dumps(doc, indent=2))
        return
    width = max(map(len, medians))
    print(f"median of {args.runs} runs each: wall and CPU (user + system) seconds")
    for name, (wall, cpu) in medians.items():
        print(f"  {name:<{width}}  {wall:6.3f}  {cpu:6.3f}")


if __name__ == "__main__":
    main()
