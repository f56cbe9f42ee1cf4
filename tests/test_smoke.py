"""모든 장을 `--smoke --data offline` 으로 실행: 종료 코드 0, 실행 기록, 그림, 체크포인트.

새 장(`NN_*.py`)은 이 파일을 고치지 않아도 자동으로 포함됩니다.
"""

from __future__ import annotations

import json

import pytest
from conftest import CHAPTERS, run_script


def test_chapters_exist():
    assert CHAPTERS, "저장소 루트에 NN_*.py 장이 하나도 없습니다"


@pytest.mark.parametrize("script", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_smoke_run(script, tmp_path):
    result = run_script(script, "--smoke", "--data", "offline", "--device", "cpu",
                        "--out-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr

    record = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert record["script"] == script.name
    assert record["device"] == "cpu"
    assert record["data"]
    assert record["parameters"] > 0
    assert record["config"]["smoke"] is True
    assert record["metrics"], "최종 지표가 비어 있습니다"
    assert record["headline"]["name"] in record["metrics"]
    assert {"torch", "python"} <= set(record["versions"])

    for name in ("history.csv", "last.pt", "best.pt"):
        assert (tmp_path / name).is_file(), f"{name} 이 없습니다"
    figures = list(tmp_path.glob("*.png"))
    assert figures, "그림(PNG)이 하나도 없습니다"
    assert all(f.stat().st_size > 1000 for f in figures)
    # 출력은 --out-dir 안에만: 저장소에 outputs/ 가 새로 생기면 안 됩니다
    leftovers = [p for p in tmp_path.rglob("*.tmp")]
    assert not leftovers, f"임시 파일이 남았습니다: {leftovers}"
