"""What RE2's lazily built DFA states cost under hostile text, per guardrail pattern.

    uv run python bench/dfa_memory.py [--seconds 10] [--kinds rand,alpha,tok,b64,utf8]

RE2 builds a pattern's DFA states as text needs them, up to its `max_mem` (`quiet.GATE_MAX_MEM`,
`superset.UNION_MAX_MEM` and `SET_MAX_MEM`), and keeps the memory. Benign
text needs few states; text that keeps many partial matches alive needs many. For each
pattern the gateway runs, in a fresh process: RSS growth after feeding it fresh 1 KB hostile
texts for N seconds, the hostile text's scan cost, and a benign 1 KB text's cost before and
after. The kinds: random printable ASCII (`rand`), random text over the pattern's own
characters (`alpha`), a salad of token prefixes and word characters (`tok`), base64 (`b64`),
and random Latin, Cyrillic and CJK (`utf8`). Also one 1 MB token salad through the
scanner's family set, the slowest case found (it once built 60 MB of states in 1.1 s).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENIGN = (
    "Quarterly planning notes: the team reviewed the roadmap, agreed on the release train and "
    "moved the search rewrite to the next cycle; action items are tracked in the usual board. " * 8
)[:1000].encode()
PREFIXES = [
    "ghp_", "gho_", "ghs_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "sk-", "sk-ant-",
    "sk_live_", "rk_live_", "AKIA", "ASIA", "eyJ", "AIza", "SG.", "npm_", "key=", "token:",
    "@", "::", ".1.", "+1 ", "(", "-",
]  # fmt: skip
ALNUM = string.ascii_letters + string.digits
NAMES = ("quiet.UP", "quiet.DOWN", "findings.RESULT_ANY", "gates.ANY_FAMILY", "scan.FAMILIES")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


def _pattern(name: str) -> tuple[Callable[[bytes], object], str]:
    """The gateway's own compiled object (not a copy), and the text it was built from."""
    from lockgate.guardrails import findings, gates, quiet, scan
    from lockgate.guardrails.superset import yes_no

    if name == "quiet.UP":
        return quiet.UP, scan.ANCHORS_BODY
    if name == "quiet.DOWN":
        return quiet.DOWN, scan.ANCHORS_BODY + findings.RESULT_ANY_BODY
    if name == "findings.RESULT_ANY":
        return findings._RESULT_ANY, findings.RESULT_ANY_BODY
    if name == "gates.ANY_FAMILY":
        return yes_no(gates._ANY_FAMILY), gates._ANY_FAMILY.pattern
    if name == "scan.FAMILIES":
        return scan._families, scan.ANCHORS_BODY
    raise SystemExit(f"unknown pattern {name}")


def _hostile(kind: str, body: str, rnd: random.Random) -> Callable[[], bytes]:
    if kind == "b64":
        return lambda: base64.b64encode(rnd.randbytes(750))
    if kind == "tok":

        def salad() -> bytes:
            out, n = [], 0
            while n < 1000:
                if rnd.random() < 0.4:
                    piece = rnd.choice(PREFIXES)
                else:
                    piece = "".join(rnd.choices(ALNUM, k=rnd.randint(1, 12)))
                out.append(piece)
                n += len(piece)
            return "".join(out)[:1000].encode()

        return salad
    if kind == "rand":
        alphabet = [chr(c) for c in range(32, 127)]
    elif kind == "alpha":
        own = {c for c in body if c.isascii() and c.isprintable() and c != "\\"}
        alphabet = sorted(own | {c.lower() for c in own} | {c.upper() for c in own})
    elif kind == "utf8":
        alphabet = [chr(c) for c in (*range(32, 127), *range(0x400, 0x500), *range(0x4E00, 0x4F00))]
    else:
        raise SystemExit(f"unknown kind {kind}")
    return lambda: "".join(rnd.choices(alphabet, k=1000)).encode()


def _timed(fn: Callable[[bytes], object], text: bytes, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn(text)
    return (time.perf_counter() - t) / n * 1e6


def one(name: str, kind: str, seconds: float) -> dict[str, object]:
    fn, body = _pattern(name)
    for _ in range(200):
        fn(BENIGN)
    before = _timed(fn, BENIGN, 2000)
    make = _hostile(kind, body, random.Random(7))
    r0 = _rss_mb()
    end = time.monotonic() + seconds
    spent, count = 0.0, 0
    while time.monotonic() < end:
        text = make()
        t = time.perf_counter()
        fn(text)
        spent += time.perf_counter() - t
        count += 1
    return {
        "pattern": name,
        "kind": kind,
        "rss_growth_mb": round(_rss_mb() - r0, 1),
        "hostile_us_per_kb": round(spent / count * 1e6, 1),
        "texts": count,
        "benign_us_before": round(before, 1),
        "benign_us_after": round(_timed(fn, BENIGN, 2000), 1),
    }


def salad_mb() -> dict[str, object]:
    """One 1 MB token salad through the scanner's family set, in one call."""
    from lockgate.guardrails import scan

    rnd = random.Random(7)
    out, n = [], 0
    while n < 1 << 20:
        piece = rnd.choice(PREFIXES) if rnd.random() < 0.4 else "".join(rnd.choices(ALNUM, k=8))
        out.append(piece)
        n += len(piece)
    text = "".join(out)[: 1 << 20].encode()
    r0 = _rss_mb()
    t = time.perf_counter()
    scan._families(text)
    return {
        "pattern": "scan.FAMILIES",
        "kind": "1 MB salad, one call",
        "ms": round((time.perf_counter() - t) * 1e3),
        "rss_growth_mb": round(_rss_mb() - r0, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--kinds", default="rand,alpha,tok,b64,utf8")
    ap.add_argument("--one", nargs=2, metavar=("PATTERN", "KIND"), help=argparse.SUPPRESS)
    ap.add_argument("--salad", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.seconds)))
        return 0
    if args.salad:
        print(json.dumps(salad_mb()))
        return 0
    from lockgate.guardrails import quiet, superset

    budgets = [
        getattr(quiet, "GATE_MAX_MEM", 64 << 20),
        getattr(superset, "UNION_MAX_MEM", 64 << 20),
        getattr(superset, "SET_MAX_MEM", 64 << 20),
    ]
    print(f"max_mem: gates {budgets[0] >> 20} MB, unions {budgets[1] >> 20} MB, sets "
          f"{budgets[2] >> 20} MB; fresh 1 KB texts for {args.seconds:g} s per row, one "
          "process per row")  # fmt: skip
    print(f"{'pattern':20} {'kind':6} {'RSS +MB':>8} {'hostile us/KB':>14} {'benign us/KB':>16}")
    worst: dict[str, float] = {}
    for name in NAMES:
        for kind in args.kinds.split(","):
            cmd = [sys.executable, __file__, "--one", name, kind, "--seconds", str(args.seconds)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            oom = done.stderr.count("DFA out of memory")
            worst[name] = max(worst.get(name, 0.0), float(row["rss_growth_mb"]))
            print(f"{name:20} {kind:6} {row['rss_growth_mb']:8.1f} "
                  f"{row['hostile_us_per_kb']:14.1f} "
                  f"{row['benign_us_before']:7.1f} -> {row['benign_us_after']:5.1f}"
                  + (f"  ({oom} 'DFA out of memory' lines)" if oom else ""))  # fmt: skip
    cmd = [sys.executable, __file__, "--salad"]
    salad = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    print(f"scan.FAMILIES, one 1 MB token salad: {salad['ms']} ms, "
          f"RSS +{salad['rss_growth_mb']} MB")  # fmt: skip
    print(f"worst growth summed over the patterns: {sum(worst.values()):.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
