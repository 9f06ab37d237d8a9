"""The redaction engine's quality floor on the project's labelled corpus (issue 11): the
numbers `bench/redact.py` prints may only get better. Speed is the bench's business, not a
test's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from lockgate.guardrails.detectors import TYPES, find, redact

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "redaction"


def _samples() -> list[dict[str, Any]]:
    with open(CORPUS / "samples.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


SAMPLES = _samples()


def test_the_corpus_is_what_the_issue_asks_for() -> None:
    assert len(SAMPLES) >= 400
    negatives = [s for s in SAMPLES if not s["spans"]]
    assert len(negatives) >= len(SAMPLES) / 4
    labelled = {t for s in SAMPLES for _, _, t in s["spans"]}
    assert labelled == set(TYPES)
    assert {"log", "env", "json", "stacktrace", "curl", "email", "yaml", "csv"} <= {
        s["format"] for s in SAMPLES
    }
    for s in SAMPLES:
        for a, b, t in s["spans"]:
            assert 0 <= a < b <= len(s["text"]), (s, t)
        if s["format"] == "json":
            json.loads(s["text"])


def test_the_committed_corpus_is_what_build_py_writes() -> None:
    spec = importlib.util.spec_from_file_location("redaction_corpus", CORPUS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rebuilt = module.build()
    assert [json.dumps(s, ensure_ascii=False) for s in rebuilt] == [
        json.dumps(s, ensure_ascii=False) for s in SAMPLES
    ]


@pytest.fixture(scope="module")
def scored() -> dict[str, Any]:
    per_type: dict[str, list[int]] = {t: [0, 0] for t in TYPES}
    found = hits = changed = outside = 0
    for s in SAMPLES:
        text = s["text"]
        gold = {tuple(x) for x in s["spans"]}
        got = {(x.start, x.end, x.type) for x in find(text)}
        found += len(got)
        for span in gold:
            per_type[span[2]][1] += 1
            if span in got:
                per_type[span[2]][0] += 1
                hits += 1
        pii = [False] * len(text)
        for a, b, _ in gold:
            pii[a:b] = [True] * (b - a)
        outside += pii.count(False)
        changed += sum(not pii[i] for a, b, _ in got for i in range(a, b))
    return {
        "recall": hits / sum(n for _, n in per_type.values()),
        "precision": hits / max(1, found),
        "per_type": {t: h / n for t, (h, n) in per_type.items() if n},
        "changed": changed / outside,
    }


def test_recall_overall_and_per_type(scored: dict[str, Any]) -> None:
    assert scored["recall"] >= 0.95
    assert {t: r for t, r in scored["per_type"].items() if r < 0.90} == {}


def test_precision(scored: dict[str, Any]) -> None:
    assert scored["precision"] >= 0.90


def test_changed_non_pii_characters(scored: dict[str, Any]) -> None:
    assert scored["changed"] <= 0.005


def test_negatives_come_back_untouched() -> None:
    touched = [s["text"][:80] for s in SAMPLES if not s["spans"] and redact(s["text"]) != s["text"]]
    assert len(touched) <= 0.05 * sum(not s["spans"] for s in SAMPLES), touched


def test_json_samples_stay_valid_json() -> None:
    broken = []
    for s in SAMPLES:
        if s["format"] == "json":
            try:
                json.loads(redact(s["text"]))
            except ValueError:
                broken.append(s["text"][:80])
    assert broken == []
