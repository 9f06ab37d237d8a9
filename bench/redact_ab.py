"""The redaction engine against an earlier version of itself, in one process, interleaved.

Why: this VM's speed moves 1.5x within minutes, so two runs of bench/redact.py minutes apart
say little about a 1.1x change. Here both engines' `find` run on the same load of
`bench/redact.py` (its mixed text as 64 KB documents, its ~100-character JSON string values),
alternating per document or per 100 values, each round timed per engine (process time), the
best of N rounds kept; both without the phone parser's cache. Their findings on the load are
compared first (they must be equal). `phonenumbers.enable_pattern_cache` (which the later
engine turns on, a process-wide setting of the library) is turned off around each call of
the earlier engine, so that it runs as it did (right for engines before that change, c5e942d;
`--before-pattern-cache` keeps it on for a later one).

    git archive <commit> | tar -x -C /tmp/before_redact
    uv run python bench/redact_ab.py /tmp/before_redact [--rounds 7]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import phonenumbers.re_util

ROOT = Path(__file__).resolve().parents[1]
Finder = Callable[[str], list[Any]]


def _engine(root: Path) -> tuple[Finder, Any]:
    """`find` and `validators` of the `lockgate` package under `root`, imported apart: the
    modules are dropped from `sys.modules` afterwards, the functions keep their own globals."""
    for name in [m for m in sys.modules if m == "lockgate" or m.startswith("lockgate.")]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        detectors = importlib.import_module("lockgate.guardrails.detectors")
        validators = importlib.import_module("lockgate.guardrails.validators")
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == "lockgate" or m.startswith("lockgate.")]:
            del sys.modules[name]
    return detectors.find, validators


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path, help="a checkout of the earlier version")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", type=int, default=4_000_000)
    parser.add_argument(
        "--before-pattern-cache",
        action="store_true",
        help="run the earlier engine with the parser's pattern cache (one that turns it on)",
    )
    args = parser.parse_args()
    old, old_v = _engine(args.before)
    new, new_v = _engine(ROOT)
    new("call +1 415 555 2671")  # loads the parser as the later engine does
    # The library's pattern cache as each engine runs: None (off) for the earlier one.
    kept = phonenumbers.re_util._COMPILED_PATTERNS
    patterns = {"before": kept if args.before_pattern_cache else None, "after": kept}

    old_v.phone_cache(0)
    new_v.phone_cache(0)
    sys.path.insert(0, str(ROOT / "bench"))
    import redact

    builder = redact.load_builder()
    text, values = builder.mixed_text(args.size), builder.mixed_values(args.size)
    docs = [text[i : i + 65536] for i in range(0, len(text), 65536)]
    chunks = [values[i : i + 100] for i in range(0, len(values), 100)]

    def key(spans: list[Any]) -> list[tuple[int, int, str]]:
        return [(s.start, s.end, s.type) for s in spans]

    same = all(key(old(x)) == key(new(x)) for x in [*docs, *values])  # both with the cache
    print(f"same findings on the load: {same}")
    for name, groups in (("documents", [[d] for d in docs]), ("values", chunks)):
        mb = sum(len(x.encode()) for g in groups for x in g) / 1e6
        best = {"before": float("inf"), "after": float("inf")}
        for r in range(args.rounds):
            spent = {"before": 0.0, "after": 0.0}
            for i, group in enumerate(groups):
                order = (("before", old), ("after", new)) if (i + r) % 2 else (
                    ("after", new), ("before", old))  # fmt: skip
                for label, finder in order:
                    phonenumbers.re_util._COMPILED_PATTERNS = patterns[label]
                    t0 = time.process_time()
                    for x in group:
                        finder(x)
                    spent[label] += time.process_time() - t0
            for label in best:
                best[label] = min(best[label], spent[label])
        b, a = mb / best["before"], mb / best["after"]
        print(f"{name}: before {b:.1f} MB/s, after {a:.1f} MB/s, {a / b:.2f}x "
              f"(best of {args.rounds} rounds, interleaved)")  # fmt: skip


if __name__ == "__main__":
    main()
