"""Findings (issue 11, section 2): quality on the labelled corpus and scan speed.

    uv run python bench/findings.py            # quality + speed
    uv run python bench/findings.py --misses   # also list every miss and false positive

Quality: tests/corpus/findings/{definitions,results}.jsonl, each item labelled poisoned (with
the rule ids it must raise) or benign. Recall per rule = share of the items labelled with a
rule on which that rule fired; overall recall = share of poisoned items on which at least one
of their rules fired; false positives = benign items with any finding (and, separately, with a
high-severity one, which the default policy would hide). Speed: a tools/list of 2,000
realistic tools (~1 KB each, all distinct) scanned cold (new DefinitionScanner), warm (the same
list again, served from the cache), against hashing alone and against a plain json.dumps.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lockgate.guardrails.findings import (  # noqa: E402
    RULES,
    DefinitionScanner,
    Finding,
    scan_result,
)

CORPUS = ROOT / "tests" / "corpus" / "findings"
FLOORS = {"recall": 0.95, "fp_rate": 0.025, "high_fp": 0}


def load(name: str) -> list[dict[str, Any]]:
    lines = (CORPUS / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def findings_of(item: dict[str, Any]) -> tuple[Finding, ...]:
    if "result" in item:
        return scan_result(item["result"])
    others = [{"name": n} for n in item.get("others", ())]
    return DefinitionScanner().scan_list(item["kind"], [item["definition"], *others])[0]


def score(items: list[dict[str, Any]]) -> dict[str, Any]:
    per_rule: dict[str, list[int]] = {}
    detected = poisoned = benign = fp = high_fp = 0
    misses: list[str] = []
    for item in items:
        found = findings_of(item)
        fired = {f.rule for f in found}
        if item["label"] == "poisoned":
            poisoned += 1
            detected += bool(fired & set(item["rules"]))
            for rule in item["rules"]:
                hit = per_rule.setdefault(rule, [0, 0])
                hit[1] += 1
                hit[0] += rule in fired
                if rule not in fired:
                    misses.append(f"miss {item['id']}: {rule} (fired: {sorted(fired)})")
        else:
            benign += 1
            fp += bool(found)
            high_fp += any(f.severity == "high" for f in found)
            if found:
                misses.append(f"false positive {item['id']}: {[(f.rule, f.path) for f in found]}")
    return {
        "poisoned": poisoned,
        "benign": benign,
        "recall": detected / poisoned if poisoned else 1.0,
        "fp_rate": fp / benign if benign else 0.0,
        "high_fp": high_fp,
        "per_rule": {r: (h, n) for r, (h, n) in sorted(per_rule.items())},
        "misses": misses,
    }


# --- speed ------------------------------------------------------------------------------------

WORDS = [
    "Returns",
    "the",
    "list",
    "of",
    "issues",
    "in",
    "a",
    "repository",
    "filtered",
    "by",
    "state",
    "labels",
    "assignee",
    "and",
    "milestone",
    "results",
    "are",
    "paginated",
    "use",
    "the",
    "cursor",
    "from",
    "the",
    "previous",
    "page",
    "to",
    "continue",
    "requires",
    "read",
    "access",
    "to",
    "the",
    "repository",
    "the",
    "response",
    "contains",
    "the",
    "issue",
    "number",
    "title",
    "author",
    "and",
    "state",
    "dates",
    "are",
    "ISO",
    "8601",
    "in",
    "UTC",
    "sorted",
    "by",
    "most",
    "recently",
    "updated",
    "first",
    "limits",
    "apply",
    "per",
    "token",
]


def realistic_tool(i: int) -> dict[str, Any]:
    def sentence(k: int, n: int) -> str:
        return " ".join(WORDS[(k * 7 + j * 3) % len(WORDS)] for j in range(n)).capitalize() + "."

    props = {
        f"param_{j}": {
            "type": ["string", "integer", "boolean", "array"][j % 4],
            "description": sentence(i + j, 12 + j),
            **({"enum": ["open", "closed", "all"], "default": "open"} if j == 1 else {}),
        }
        for j in range(5)
    }
    return {
        "name": f"tool_{i}_{WORDS[i % len(WORDS)]}",
        "title": f"Tool {i}",
        "description": f"Tool {i}. " + " ".join(sentence(i + k, 14) for k in range(5)),
        "inputSchema": {"type": "object", "properties": props, "required": ["param_0"]},
        "annotations": {"readOnlyHint": True},
    }


def corpus_mix(n: int) -> list[dict[str, Any]]:
    """The benign corpus definitions (near-misses included), cycled and made distinct."""
    base = [i["definition"] for i in load("definitions.jsonl") if i["label"] == "benign"]
    out = []
    for i in range(n):
        d = json.loads(json.dumps(base[i % len(base)]))
        d["name"] = f"{d.get('name', 'r')}_{i}"
        d["description"] = f"{d.get('description', '')} (copy {i})"
        out.append(d)
    return out


def timed(fn: Any, runs: int) -> float:
    """Median wall milliseconds of `runs` calls."""
    samples = []
    for _ in range(runs):
        gc.collect()
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def speed(tools: list[dict[str, Any]], runs: int = 7) -> dict[str, float]:
    n = len(tools)
    size = sum(len(json.dumps(t)) for t in tools) / n
    cold = timed(lambda: DefinitionScanner().scan_list("tool", tools), runs)
    warm_scanner = DefinitionScanner()
    warm_scanner.scan_list("tool", tools)
    warm = timed(lambda: warm_scanner.scan_list("tool", tools), runs * 3)
    hashing = timed(lambda: [DefinitionScanner.key(t) for t in tools], runs * 3)
    dumps = timed(lambda: json.dumps({"tools": tools}), runs * 3)
    text = sum(len(json.dumps(t)) for t in tools) / 1e6
    return {
        "tools": n,
        "avg_bytes": size,
        "cold_ms": cold,
        "cold_mb_s": text / (cold / 1000),
        "warm_ms": warm,
        "hash_ms": hashing,
        "warm_over_hash": warm / hashing,
        "json_dumps_ms": dumps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--misses", action="store_true", help="list misses and false positives")
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args()

    print(f"rules: {', '.join(f'{r}={s}' for r, s in RULES.items())}")
    totals: Counter[str] = Counter()
    rule_hits: dict[str, list[int]] = {r: [0, 0] for r in RULES}
    for name in ("definitions.jsonl", "results.jsonl"):
        r = score(load(name))
        totals.update(poisoned=r["poisoned"], benign=r["benign"])
        for rule, (h, n) in r["per_rule"].items():
            rule_hits[rule][0] += h
            rule_hits[rule][1] += n
        print(
            f"\n{name}: {r['poisoned']} poisoned, {r['benign']} benign\n"
            f"  recall {r['recall']:.3f} (floor {FLOORS['recall']})   false positives "
            f"{r['fp_rate']:.3f} (floor {FLOORS['fp_rate']})   high-severity on benign "
            f"{r['high_fp']} (floor 0)"
        )
        for rule, (h, n) in r["per_rule"].items():
            print(f"    {rule:24} {h:3}/{n:<3} {h / n:.2f}")
        if args.misses:
            for line in r["misses"]:
                print("   ", line)
    print("\nper rule over both corpora:")
    for rule, (h, n) in rule_hits.items():
        print(f"    {rule:24} {h:3}/{n:<3} {h / n if n else float('nan'):.2f}")
    if args.no_speed:
        return
    for label, tools in (
        ("synthetic API-doc tools", [realistic_tool(i) for i in range(2000)]),
        ("the benign corpus cycled (near-misses, long docs, CJK)", corpus_mix(2000)),
    ):
        s = speed(tools)
        print(
            f"\nspeed, {label}: tools/list of {s['tools']} tools, {s['avg_bytes']:.0f} B each"
            " (median of runs)\n"
            f"  cold scan   {s['cold_ms']:8.1f} ms  ({s['cold_mb_s']:.1f} MB/s of JSON)\n"
            f"  warm scan   {s['warm_ms']:8.2f} ms  (cached; {s['warm_over_hash']:.2f}x hashing)\n"
            f"  hashing     {s['hash_ms']:8.2f} ms  (orjson OPT_SORT_KEYS + blake2b-128 per tool)\n"
            f"  json.dumps  {s['json_dumps_ms']:8.2f} ms  (the whole list, for scale)"
        )
    results = [i["result"] for i in load("results.jsonl") if i["label"] == "benign"] * 25
    size = sum(len(json.dumps(r)) for r in results) / 1e6
    ms = timed(lambda: [scan_result(r) for r in results], 5)
    print(
        f"\nresults: {len(results)} benign results ({size:.2f} MB JSON) in {ms:.1f} ms, "
        f"{size / (ms / 1000):.1f} MB/s, {ms * 1000 / len(results):.1f} µs each"
    )


if __name__ == "__main__":
    main()
