"""모든 장을 `--smoke --data offline` 으로 실행: 종료 코드 0, 실행 기록, 그림, 체크포인트.

새 장(`NN_*.py`)은 이 파일을 고치지 않아도 자동으로 포함됩니다.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import CHAPTERS

from utils.training import CHECKPOINT_KEYS


def test_chapters_exist():
    assert CHAPTERS, "저장소 루트에 NN_*.py 장이 하나도 없습니다"


@pytest.mark.parametrize("script", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_smoke_run(script, smoke_run):
    result, out_dir = smoke_run(script)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr

    record = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert record["script"] == script.name
    assert record["device"] == "cpu"
    assert "offline" in record["data"] or "synthetic" in record["data"] or "procedural" in record["data"] \
        or "sklearn" in record["data"] or "matplotlib" in record["data"], record["data"]
    assert record["parameters"] > 0
    assert record["config"]["smoke"] is True
    assert record["headline"]["name"] in record["metrics"]
    assert {"torch", "python"} <= set(record["versions"])

    # 체크포인트: 이어하기·best·예측이 모두 같은 형식 (DESIGN: Checkpoints)
    for name in ("last.pt", "best.pt"):
        checkpoint = torch.load(out_dir / name, map_location="cpu", weights_only=True)
        assert set(CHECKPOINT_KEYS) <= set(checkpoint), f"{name}: {sorted(checkpoint)}"
        assert checkpoint["chapter"] == script.stem
        assert checkpoint["extra"].get("data") == record["data"]
    last = torch.load(out_dir / "last.pt", map_location="cpu", weights_only=True)
    assert last["epoch"] == len(last["history"]) >= 1  # 마지막 epoch 까지의 기록이 체크포인트에

    history_lines = (out_dir / "history.csv").read_text(encoding="utf-8").strip().splitlines()
    assert len(history_lines) == 1 + last["epoch"]  # 머리줄 + epoch 마다 한 줄
    figures = list(out_dir.glob("*.png"))
    assert figures, "그림(PNG)이 하나도 없습니다"
    leftovers = list(out_dir.rglob("*.tmp"))
    assert not leftovers, f"임시 파일이 남았습니다: {leftovers}"
