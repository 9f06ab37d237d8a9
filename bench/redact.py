"""Quality and speed of the redaction engine (`lockgate.guardrails.detectors`), issue 11.

Quality on the labelled corpus `tests/corpus/redaction/samples.jsonl` (built by its
`build.py`): entity recall overall and per type, precision (a found span counts when start,
end and type are exactly a labelled one), changed non-PII characters (characters outside the
labelled spans that `redact` altered, of all such characters) and JSON samples still valid
after `redact`. Speed on one core (this process, single thread): MB/s of `find` over the
mixed load of `build.mixed_text` (logs, JSON API responses, code and prose, about one entity
per KB), as whole 64 KB documents and as the string values a JSON walker hands over
(`build.mixed_values`: each string leaf of the JSON responses, each other chunk whole).
Speed is measured twice: without the phone parser's cache (`validators.phone_cache(0)`,
the honest figure: each round is new text to it) and with it as shipped, where every round
after the first finds the load's numbers cached, as a session that sees the same contacts
again would, and which this load, repeated, flatters.

    uv run python bench/redact.py            # table
    uv run python bench/redact.py --json     # one JSON object
    uv run python bench/redact.py --misses   # also print what was missed / found wrongly

Targets (issue 11): recall >= 0.95 overall and >= 0.90 per type, precision >= 0.90, changed
non-PII characters <= 0.5 %, JSON 100 % valid, >= 20 MB/s.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

from lockgate.guardrails import validators
from lockgate.guardrails.detectors import TYPES, find, redact

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus" / "redaction"


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("redaction_corpus", CORPUS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def samples() -> list[dict[str, Any]]:
    with open(CORPUS / "samples.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def quality(corpus: list[dict[str, Any]], misses: bool = False) -> dict[str, Any]:
    tp: Counter[str] = Counter()
    labelled: Counter[str] = Counter()
    found_n = 0
    changed = outside = 0
    json_total = json_ok = 0
    for s in corpus:
        text = s["text"]
        gold = {(a, b, t) for a, b, t in s["spans"]}
        got = {(x.start, x.end, x.type) for x in find(text)}
        found_n += len(got)
        for a, b, t in gold:
            labelled[t] += 1
            tp[t] += (a, b, t) in got
        if misses:
            for item in sorted(gold - got):
                print(f"MISS {item[2]}: {text[item[0] : item[1]]!r} in {s['format']}")
            for item in sorted(got - gold):
                print(f"WRONG {item[2]}: {text[item[0] : item[1]]!r} in {s['format']}")
        pii = bytearray(len(text))
        for a, b, _ in gold:
            pii[a:b] = b"\1" * (b - a)
        touched = bytearray(len(text))
        for a, b, _ in got:
            touched[a:b] = b"\1" * (b - a)
        outside += pii.count(0)
        changed += sum(1 for i in range(len(text)) if touched[i] and not pii[i])
        out = redact(text)
        if s["format"] == "json":
            json_total += 1
            try:
                json.loads(out)
                json_ok += 1
            except ValueError:
                if misses:
                    print(f"BROKEN JSON: {out[:200]!r}")
    total_tp = sum(tp.values())
    return {
        "samples": len(corpus),
        "negatives": sum(not s["spans"] for s in corpus),
        "entities": sum(labelled.values()),
        "recall": total_tp / max(1, sum(labelled.values())),
        "precision": total_tp / max(1, found_n),
        "recall_per_type": {t: tp[t] / labelled[t] for t in TYPES if labelled[t]},
        "types_missing_from_corpus": [t for t in TYPES if not labelled[t]],
        "changed_non_pii_pct": 100 * changed / max(1, outside),
        "json_valid_pct": 100 * json_ok / max(1, json_total),
        "json_samples": json_total,
    }


def speed(text: str, values: list[str], rounds: int = 5) -> dict[str, float]:
    docs = [text[i : i + 65536] for i in range(0, len(text), 65536)]
    out = {}
    for name, items in (("documents_mb_s", docs), ("values_mb_s", values)):
        mb = sum(len(x.encode()) for x in items) / 1e6
        best = float("inf")
        for _ in range(rounds):
            t0 = time.process_time()
            for item in items:
                find(item)
            best = min(best, time.process_time() - t0)
        out[name] = mb / best
    out["mb"] = len(text.encode()) / 1e6
    out["values"] = len(values)
    out["value_mean_chars"] = sum(map(len, values)) / max(1, len(values))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--misses", action="store_true", help="print misses and wrong finds")
    parser.add_argument("--size", type=int, default=4_000_000, help="characters of mixed load")
    args = parser.parse_args()
    result = quality(samples(), args.misses)
    builder = load_builder()
    text, values = builder.mixed_text(args.size), builder.mixed_values(args.size)
    validators.phone_cache(0)
    result["speed_no_phone_cache"] = speed(text, values)
    validators.phone_cache(validators.PHONE_CACHE)  # empty again: quality() filled it
    result["speed"] = speed(text, values)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    print(f"corpus: {result['samples']} samples ({result['negatives']} negatives), "
          f"{result['entities']} entities")  # fmt: skip
    print(f"recall     {result['recall']:.3f}   (target >= 0.95)")
    print(f"precision  {result['precision']:.3f}   (target >= 0.90)")
    print(f"changed non-PII characters {result['changed_non_pii_pct']:.3f} %   (target <= 0.5 %)")
    print(f"JSON still valid {result['json_valid_pct']:.1f} % of {result['json_samples']}")
    print("recall per type (target >= 0.90):")
    for t, r in result["recall_per_type"].items():
        print(f"  {t:16} {r:.3f}")
    if result["types_missing_from_corpus"]:
        print("types missing from the corpus:", ", ".join(result["types_missing_from_corpus"]))
    sp, cold = result["speed"], result["speed_no_phone_cache"]
    print(f"speed (one core, {sp['mb']:.1f} MB mixed text), without the phone cache: "
          f"{cold['documents_mb_s']:.1f} MB/s as 64 KB documents, {cold['values_mb_s']:.1f} MB/s "
          f"as its {sp['values']} string values (mean {sp['value_mean_chars']:.0f} characters); "
          f"with it (the load repeated): {sp['documents_mb_s']:.1f} and "
          f"{sp['values_mb_s']:.1f} MB/s")  # fmt: skip


if __name__ == "__main__":
    main()
