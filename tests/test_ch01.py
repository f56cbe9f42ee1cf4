"""01장: 손 기울기 = autograd, 세 가지 사인 맞추기의 일치, Dataset/DataLoader 와 저장하는 생성기,
혼동 행렬, 학습 확인(우연·학습 전 모델 대비), 재현성, 조기 종료, 중간 Ctrl+C 뒤 이어하기,
체크포인트만으로 하는 예측, 잘못된 입력."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import load_chapter, run_script
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from utils.data.vision import MNIST_MEAN, MNIST_STD, sklearn_digits_28
from utils.runtime import run

ch01 = load_chapter("01")
SCRIPT = "01_pytorch_basics.py"


def quick_config(out_dir, **overrides):
    """사인·회귀 절은 짧게, MLP 는 진짜로 몇 에폭 (오프라인 digits, CPU). run() 처럼 폴더를 만듦."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    settings = dict(data="offline", device="cpu", out_dir=str(out_dir), epochs=4,
                    sine_steps=20, regression_steps=20)
    settings.update(overrides)
    return ch01.Config(**settings)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """--hidden-size 32 로 4 에폭 학습한 출력 폴더와 그 지표 (여러 테스트가 함께 씀)."""
    out_dir = tmp_path_factory.mktemp("ch01_trained")
    return out_dir, ch01.main(quick_config(out_dir, hidden_size=32))


# --- 기초: 기울기, 사인, 회귀 ----------------------------------------------------------------
def test_hand_derived_gradient_equals_autograd():
    result = ch01.autograd_basics()
    assert torch.allclose(result["manual"], result["autograd"])


def test_three_sine_fits_agree_and_approach_least_squares():
    x, y = ch01.make_sine_data(1000)
    start = torch.randn(4, generator=torch.Generator().manual_seed(0))
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


# --- 데이터: Dataset, DataLoader, 생성기 -----------------------------------------------------
def test_dataset_and_seeded_loader():
    images, labels = torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10)
    dataset = ch01.DigitDataset(images, labels)
    assert len(dataset) == 10
    image, label = dataset[7]
    assert image.shape == (1, 1, 1) and label == 7 and image.item() == 7.0
    with pytest.raises(ValueError):
        ch01.DigitDataset(images, labels[:9])

    def epoch_order(loader):
        return torch.cat([batch_labels for _, batch_labels in loader]).tolist()

    generator = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True, generator=generator)
    first = epoch_order(loader)
    assert sorted(first) == list(range(10))  # 섞였지만 빠짐·중복 없음
    saved = generator.get_state()  # 체크포인트가 저장하는 것
    second = epoch_order(loader)
    assert second != first  # epoch 마다 새 순서
    generator.set_state(saved)  # --resume 이 되살리는 것
    assert epoch_order(loader) == second  # 되살린 생성기 → 끊지 않은 학습의 다음 epoch 과 같은 순서


def test_validation_split_is_fixed_by_the_seed_alone():
    data = sklearn_digits_28(seed=0)
    config = ch01.Config(data="offline")

    def val_indices():
        _, val_loader, _ = ch01.make_loaders(data, config, torch.Generator().manual_seed(0))
        return list(val_loader.dataset.indices)

    first = val_indices()
    torch.rand(1000)  # 전역 난수를 얼마나 썼든
    assert val_indices() == first
    assert len(first) == int(len(data.y_train) * config.val_fraction)


def test_confusion_matrix_matches_sklearn():
    generator = torch.Generator().manual_seed(0)
    truth, predicted = torch.randint(0, 10, (500,), generator=generator), torch.randint(0, 10, (500,),
                                                                                        generator=generator)
    ours = ch01.confusion_matrix(truth, predicted, 10)
    assert np.array_equal(ours.numpy(), sklearn_confusion_matrix(truth, predicted, labels=range(10)))


def test_mlp_shapes():
    model = ch01.build_model(64)
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    assert sum(p.numel() for p in model.parameters()) == 784 * 64 + 64 + 64 * 10 + 10


# --- 학습 확인, 재현성, 조기 종료, 이어하기 ----------------------------------------------------
def test_short_run_learns_and_same_seed_gives_same_metrics(trained, tmp_path):
    out_dir, metrics = trained
    # 우연 수준은 0.10. 학습 전 모델(같은 시드의 초기 가중치)은 그 근처이고, 4 에폭 학습한
    # 모델은 0.85 이상 (측정: 0.92 근처) — 학습이 깨지면(부호, 빠진 step) 여기서 떨어집니다.
    data = sklearn_digits_28(seed=42)
    torch.manual_seed(42)
    untrained = ch01.evaluate(ch01.build_model(32), torch.utils.data.DataLoader(
        ch01.DigitDataset(data.x_test, data.y_test), batch_size=1000), torch.device("cpu"))
    assert untrained["accuracy"] < 0.3
    assert metrics["test_accuracy"] >= 0.85 and metrics["test_accuracy"] >= untrained["accuracy"] + 0.5
    assert metrics["regression_linear_r2"] > metrics["regression_mean_predictor_r2"] + 0.2
    # 같은 시드, 같은 장치(CPU) → 실행 기록의 지표가 모두 같음 (걸린 시간만 다름)
    again = ch01.main(quick_config(tmp_path, hidden_size=32))
    records = [json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["metrics"]
               for folder in (out_dir, tmp_path)]
    assert again == metrics and records[0] == records[1]


def test_early_stopping_stops_and_says_so(tmp_path, capsys):
    metrics = ch01.main(quick_config(tmp_path, epochs=30, patience=1))
    assert metrics["stopped_early"] == 1 and metrics["epochs_trained"] < 30
    # patience 1: 검증 정확도가 최고를 한 번 못 넘으면 멈춤 → 마지막 epoch 바로 앞이 best
    assert metrics["best_epoch"] == metrics["epochs_trained"] - 1
    assert f"epoch {metrics['epochs_trained']} 에서 멈춥니다" in capsys.readouterr().out
    # 이미 멈춘 학습을 이어 해도 더 학습하지 않고 같은 숫자
    assert ch01.main(quick_config(tmp_path, epochs=30, patience=1, resume=True)) == metrics


def test_ctrl_c_in_the_middle_of_an_epoch_then_resume(tmp_path, monkeypatch, sigint_raises):
    """진짜 SIGINT 를 epoch 3 의 두 번째 배치에서: 섞는 순서(DataLoader 생성기)까지 되살아나야 같은 숫자."""
    straight = ch01.main(quick_config(tmp_path / "straight"))
    monkeypatch.setenv("TUTORIAL_SIGINT_AT", "epoch 3:2")
    with pytest.raises(SystemExit) as exit_info:
        ch01.main(quick_config(tmp_path / "resumed"))
    assert exit_info.value.code == 130
    monkeypatch.delenv("TUTORIAL_SIGINT_AT")
    resumed = ch01.main(quick_config(tmp_path / "resumed", resume=True))
    assert resumed == straight
    assert ((tmp_path / "resumed" / "history.csv").read_text()
            == (tmp_path / "straight" / "history.csv").read_text())


# --- 추론: 체크포인트만으로 -----------------------------------------------------------------
def test_predict_rebuilds_from_checkpoint_and_reads_real_digits(trained, tmp_path):
    """--hidden-size 32 로 학습, 기본값(64) 그대로 --predict: 모델은 체크포인트의 model_args 로.

    시험 분할의 진짜 손글씨 숫자 10장을 사진처럼(밝은 종이, 84x84) 저장해 넣으면 우연(10 %)보다
    훨씬 많이 맞혀야 합니다. 파일 → MNIST 모양 전처리(자르기·크기·질량 중심)가 digits 의 모양을
    조금 바꿔 메모리 속 텐서(5/5 정답)보다는 낮습니다 (측정: 10장 중 7장). 반전·정규화·클래스
    순서가 어긋나면 우연 수준으로 떨어집니다.
    """
    out_dir, _ = trained
    data = sklearn_digits_28(seed=42)
    correct = 0
    for index in range(10):
        pixels = (data.x_test[index, 0] * MNIST_STD + MNIST_MEAN).clamp(0, 1).numpy()
        paper = (255 * (1 - pixels)).astype(np.uint8)  # 흰 종이에 검은 글씨
        path = tmp_path / f"digit_{index}.png"
        cv2.imwrite(str(path), cv2.resize(paper, (84, 84), interpolation=cv2.INTER_NEAREST))
        config = quick_config(out_dir, predict=str(path))
        assert config.hidden_size == 64  # 학습 때(32)와 다른 기본값
        result = ch01.main(config)
        assert json.loads((out_dir / "prediction.json").read_text(encoding="utf-8")) == result
        correct += result["prediction"] == str(int(data.y_test[index]))
    assert correct >= 6, f"10장 중 {correct}장만 맞힘"
    assert (out_dir / "predict.png").is_file()


# --- 잘못된 입력: 한 줄, 종료 코드 2 --------------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    (["--val-fraction", "0.9"], "--val-fraction 은 0 과 0.5 사이여야 합니다"),
    (["--patience", "0"], "--patience 는 1 이상이어야 합니다"),
    (["--sine-points", "3"], "--sine-points 는 4 이상이어야 합니다"),
    (["--predict", "."], "는 폴더입니다"),
    (["--predict", "missing.png"], "없습니다"),
])
def test_bad_input_is_one_clear_line(args, expected, trained, capsys):
    out_dir, _ = trained
    with pytest.raises(SystemExit) as exit_info:
        run(ch01.main, ch01.Config, [*args, "--device", "cpu", "--out-dir", str(out_dir)])
    assert exit_info.value.code == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1 and expected in error_lines[0], error_lines


def test_bad_input_as_a_real_process(tmp_path):
    """사용자처럼 새 프로세스로: --predict 에 best.pt 가 없으면 입력보다 그것을 먼저, 한 줄로."""
    result = run_script(SCRIPT, "--predict", "missing.png", "--out-dir", str(tmp_path), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"오류: 체크포인트 {tmp_path / 'best.pt'} 가 없습니다. "
                                                  "먼저 --predict 없이 학습하세요 (같은 --out-dir)."]
