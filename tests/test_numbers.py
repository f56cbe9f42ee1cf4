"""문서의 숫자 = 측정한 숫자: docstring 의 [results] 블록과 README 의 결과 표는
benchmarks/results.json 에서 다시 만든 것과 글자 하나까지 같아야 합니다.

고치는 법: 숫자를 손으로 고치지 말고 `python benchmarks/run_all.py` (측정) 또는
`python benchmarks/run_all.py --docs-only` (이미 잰 결과로 문서만 다시 쓰기).
"""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import CHAPTERS, ROOT

RESULTS = ROOT / "benchmarks" / "results.json"


def load_run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def test_results_file_has_seeds_and_spread(results):
    assert results, "benchmarks/results.json 이 비어 있습니다"
    for key, entry in results.items():
        assert entry["seeds"] and len(entry["runs"]) == len(entry["seeds"]), key
        headline = entry["metrics"][entry["headline"]]
        assert headline["min"] <= headline["median"] <= headline["max"], key
        values = sorted(run["metrics"][entry["headline"]] for run in entry["runs"])
        assert (values[0], values[-1]) == (headline["min"], headline["max"]), key


@pytest.mark.parametrize("document", [*CHAPTERS, ROOT / "README.md"], ids=lambda p: p.name)
def test_documents_quote_the_measured_numbers(document, results):
    run_all = load_run_all()
    rendered = run_all.rendered_documents(results)
    measured = any(entry["script"] == document.name for entry in results.values())
    if document.name != "README.md" and not measured:
        pytest.skip(f"{document.name}: results.json 에 아직 측정이 없습니다")
    text = document.read_text(encoding="utf-8")
    begin = run_all.README_BEGIN if document.name == "README.md" else run_all.BLOCK_BEGIN
    assert begin in text, f"{document.name} 에 결과 블록 {begin} 이 없습니다"
    assert rendered[document] == text, (f"{document.name} 의 숫자가 benchmarks/results.json 과 다릅니다: "
                                        "python benchmarks/run_all.py --docs-only")
