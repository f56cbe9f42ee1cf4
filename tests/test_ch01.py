"""01장: 손 기울기 = autograd, 세 가지 사인 맞추기의 일치, 학습 확인, 재현성, 이어하기, 예측, 잘못된 입력."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import load_chapter, run_script

ch01 = load_chapter("01")
SCRIPT = "01_pytorch_basics.py"


def quick_config(tmp_path, **overrides):
    """사인·회귀 절은 짧게, MLP 는 진짜로 몇 에폭 (오프라인 digits)."""
    settings = dict(data="offline", device="cpu", out_dir=str(tmp_path), epochs=4,
                    sine_steps=20, regression_steps=20)
    settings.update(overrides)
    return ch01.Config(**settings)


def test_hand_derived_gradient_equals_autograd():
    result = ch01.autograd_basics()
    assert torch.allclose(result["manual"], result["autograd"])


def test_three_sine_fits_agree_and_approach_least_squares():
    torch.manual_seed(0)
    x, y = ch01.make_sine_data(1000)
    start = torch.randn(4)
    manual = ch01.fit_cubic_manual(x, y, start, steps=2000, lr=1e-6)
    autograd = ch01.fit_cubic_autograd(x, y, start, steps=2000, lr=1e-6)
    module = ch01.fit_cubic_module(x, y, start, steps=2000, lr=1e-6)
    assert torch.allclose(manual, autograd, atol=1e-4) and torch.allclose(manual, module, atol=1e-4)
    least_squares = torch.tensor(np.polynomial.polynomial.polyfit(x.numpy(), y.numpy(), 3))

    def sse(c):
        return float(((c[0] + c[1] * x + c[2] * x ** 2 + c[3] * x ** 3 - y) ** 2).sum())

    # 2,000번이면 손실이 시작점의 1/1000 아래로 내려오고(최소제곱 해가 가능한 최솟값),
    # 가장 빨리 수렴하는 3차 계수 d 는 최소제곱 해(-0.093) 근처에 옴
    assert sse(least_squares) <= sse(manual) < 1e-3 * sse(start)
    assert abs(manual[3] - least_squares[3]) < 0.03


def test_regression_metrics_by_hand():
    rmse, r2 = ch01.regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert rmse == pytest.approx(np.sqrt(4 / 3))
    assert r2 == pytest.approx(1 - 4 / (((np.array([1, 2, 5]) - 8 / 3) ** 2).sum()))


def test_mlp_shapes():
    model = ch01.build_mlp(64)
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    assert sum(p.numel() for p in model.parameters()) == 784 * 64 + 64 + 64 * 10 + 10


def test_short_offline_run_beats_chance_and_is_reproducible(tmp_path):
    first = ch01.main(quick_config(tmp_path / "a"))
    second = ch01.main(quick_config(tmp_path / "b"))
    assert first["test_accuracy"] >= 0.85, "4 에폭이면 우연 수준(0.10)을 크게 넘어야 합니다"
    assert first["regression_linear_r2"] > first["regression_mean_predictor_r2"] + 0.2
    # 같은 시드, 같은 장치(CPU) → 실행 기록의 지표가 모두 같음 (걸린 시간만 다름)
    records = [json.loads((tmp_path / d / "metrics.json").read_text(encoding="utf-8")) for d in "ab"]
    assert records[0]["metrics"] == records[1]["metrics"] and first == second


def test_resume_matches_uninterrupted_run(tmp_path):
    straight = ch01.main(quick_config(tmp_path / "straight", epochs=4))
    ch01.main(quick_config(tmp_path / "resumed", epochs=2))
    resumed = ch01.main(quick_config(tmp_path / "resumed", epochs=4, resume=True))
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    assert resumed["test_loss"] == straight["test_loss"]
    history = (tmp_path / "resumed" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 4  # 머리줄 + 4 에폭, 중복 없음


def test_predict_own_image(tmp_path):
    ch01.main(quick_config(tmp_path, epochs=2))
    canvas = np.full((120, 90), 255, dtype=np.uint8)
    cv2.putText(canvas, "1", (20, 100), cv2.FONT_HERSHEY_SIMPLEX, 3.5, 0, 10)
    cv2.imwrite(str(tmp_path / "one.png"), canvas)
    result = ch01.main(quick_config(tmp_path, predict=str(tmp_path / "one.png")))
    assert result["prediction"] in [str(d) for d in range(10)] and 0.1 <= result["probability"] <= 1
    assert (tmp_path / "predict.png").is_file()


@pytest.mark.parametrize("args, expected", [
    (["--predict", "missing.png"], "없습니다"),
    (["--epochs", "-1"], "--epochs"),
    (["--no-such-flag"], "unrecognized arguments"),
    (["--val-fraction", "0.9"], "--val-fraction"),
])
def test_bad_input_is_one_clear_line(args, expected, tmp_path):
    result = run_script(SCRIPT, *args, "--out-dir", str(tmp_path), timeout=120)
    assert result.returncode != 0
    assert expected in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="GPU 가 있는 기계")
def test_cuda_request_without_gpu(tmp_path):
    result = run_script(SCRIPT, "--device", "cuda", "--out-dir", str(tmp_path), timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("오류: --device cuda") and "Traceback" not in result.stderr
