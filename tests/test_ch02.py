"""02장: 활성화 함수의 도함수, BatchNorm/Dropout 의 train·eval 동작, 초기화·최적화·스케줄의
직접 구현, Fashion-MNIST 표준 배치(IDX) 읽기, 학습 확인(학습 전 모델 대비), 재현성, 조기 종료,
epoch 1·3 도중 Ctrl+C 뒤 이어하기(OneCycleLR), 체크포인트만으로 하는 예측, 잘못된 입력."""

import json
import math
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import load_chapter, run_script

from utils.data.vision import FASHION_CLASSES, MNIST_MEAN, MNIST_STD, load_mnist_like, read_image_as_mnist
from utils.runtime import run

SCRIPT = "02_neural_networks.py"


@pytest.fixture(scope="module")
def mod():
    return load_chapter("02")


# ---------------------------------------------------------------------------
# 활성화 함수
# ---------------------------------------------------------------------------
def test_activation_derivatives_equal_closed_forms(mod):
    x = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    for name, (function, derivative, module_cls) in mod.ACTIVATIONS.items():
        module = module_cls()
        assert torch.allclose(function(x), module(x), atol=1e-12), name
        assert torch.allclose(mod.autograd_derivative(module, x), derivative(x), atol=1e-12), name
    mod.check_activations(x.float())  # 스크립트 안의 assert 도 통과


def test_activation_derivatives_hand_values(mod):
    zero, minus_one = torch.tensor(0.0), torch.tensor(-1.0)
    acts = mod.ACTIVATIONS
    assert acts["Sigmoid"][1](zero).item() == pytest.approx(0.25)  # σ(0)(1-σ(0)) = 1/4
    assert acts["Tanh"][1](zero).item() == pytest.approx(1.0)
    assert acts["GELU"][1](zero).item() == pytest.approx(0.5)  # Φ(0) + 0·φ(0)
    assert acts["ReLU"][1](minus_one).item() == 0.0
    assert acts["LeakyReLU"][1](minus_one).item() == pytest.approx(mod.LEAKY_SLOPE)
    # GELU'(1) = Φ(1) + φ(1) = 0.841345 + 0.241971
    assert acts["GELU"][1](torch.tensor(1.0)).item() == pytest.approx(1.083316, abs=1e-5)


# ---------------------------------------------------------------------------
# BatchNorm / Dropout: train 모드와 eval 모드
# ---------------------------------------------------------------------------
def test_batch_norm_from_scratch_matches_library(mod):
    torch.manual_seed(0)
    x = torch.randn(16, 5) * 2 + 3
    x[:, 0] = 1e-3 * torch.randn(16)  # 분산(1e-6)이 eps(1e-5)보다 작은 특성: eps 의 자리가 결과를 바꿈
    mod.check_batch_norm(x)  # train/eval 출력, running 통계 갱신
    bn = nn.BatchNorm1d(5)
    for _ in range(3):  # 여러 배치 뒤에도 eval 출력 = running 통계로 정규화
        bn(torch.randn(16, 5) * 2 + 3)
    bn.eval()
    assert torch.allclose(bn(x), mod.batch_norm_from_scratch(x, bn, training=False), atol=1e-5)


def test_dropout_train_vs_eval(mod):
    torch.manual_seed(0)
    x = torch.randn(2000, 50)
    dropped = mod.check_dropout(x, p=0.3)
    assert dropped == pytest.approx(0.3, abs=0.01)
    dropout = nn.Dropout(0.3)
    dropout.eval()
    assert torch.equal(dropout(x), x)


def test_model_train_vs_eval_on_one_batch(mod):
    torch.manual_seed(0)
    model = mod.build_model(32, 2, batch_norm=True, dropout=0.5)
    x = torch.randn(8, 1, 28, 28)
    diffs = mod.train_vs_eval_outputs(model, x)
    assert diffs["train vs train"] > 1e-3  # Dropout 마스크가 매번 다름
    assert diffs["eval vs eval"] == 0.0  # eval 은 결정적
    assert diffs["train vs eval"] > 1e-3
    assert diffs["eval: batch vs single"] < 1e-5  # eval BatchNorm 은 배치 구성과 무관
    model.train()
    with pytest.raises(ValueError):  # train 모드 BatchNorm 은 표본 하나로 분산을 못 구함
        model(x[:1])


# ---------------------------------------------------------------------------
# 초기화, 최적화 갱신식, 학습률 스케줄
# ---------------------------------------------------------------------------
def test_init_optimizers_schedule_from_scratch(mod):
    mod.check_init_against_library(seed=3)
    mod.check_optimizers_from_scratch(steps=10)
    mod.check_cosine_schedule(lr=0.05, total_steps=37)
    # Adam 첫 걸음은 손으로 계산 가능: m̂/√v̂ = g/|g| → θ - lr·sign(g)
    theta, grad = torch.tensor([1.0, -2.0]), torch.tensor([0.3, -5.0])
    new_theta, _, _ = mod.adam_step(theta, grad, torch.zeros(2), torch.zeros(2), t=1, lr=0.1)
    assert torch.allclose(new_theta, torch.tensor([0.9, -1.9]), atol=1e-6)
    # 모멘텀 두 걸음(같은 기울기 g): v1 = g, v2 = μg + g → θ2 = θ - lr·(2 + μ)·g
    step1, velocity = mod.sgd_momentum_step(theta, grad, torch.zeros(2), lr=0.1, momentum=0.9)
    step2, _ = mod.sgd_momentum_step(step1, grad, velocity, lr=0.1, momentum=0.9)
    assert torch.allclose(step2, theta - 0.1 * 2.9 * grad)


def test_init_scales_activation_statistics(mod):
    torch.manual_seed(0)
    x = torch.randn(256, 1, 28, 28)
    stds = {scheme: mod.activation_stds(mod.init_weights(mod.build_model(256, 6), scheme), x)
            for scheme in ("zeros", "normal(0, 0.01)", "normal(0, 1)", "kaiming")}
    assert max(stds["zeros"]) == 0.0
    assert stds["normal(0, 0.01)"][-1] < 1e-4 < 1e2 < stds["normal(0, 1)"][-1]  # 소실 / 폭주
    assert 0.3 < stds["kaiming"][-1] < 3.0  # Kaiming 은 깊어져도 크기를 유지


# ---------------------------------------------------------------------------
# Fashion-MNIST: torchvision 표준 배치의 작은 IDX 파일
# ---------------------------------------------------------------------------
def write_idx(path, array: np.ndarray) -> None:
    """IDX 형식: 0x00 0x00 0x08(uint8) 차원수, 차원 크기(big-endian int32), 그다음 원시 바이트."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_tiny_fashion(root, n_train=60, n_test=20):
    """클래스마다 다른 밝기의 네모가 있는 28x28 이미지 (숫자가 아닌 '물건' 자리)."""
    rng = np.random.default_rng(0)
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 30, size=(n, 28, 28))
        for i, label in enumerate(labels):
            images[i, 4 + label:14 + label, 6:22] = 120 + 13 * label
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
        arrays[split] = (images, labels)
    return arrays


def test_fashion_mnist_reads_torchvision_layout(tmp_path):
    arrays = make_tiny_fashion(tmp_path)
    data = load_mnist_like("fashion", "real", str(tmp_path), smoke=False, seed=0)
    assert data.name == "Fashion-MNIST (real)"
    assert data.classes == FASHION_CLASSES
    assert data.x_train.shape == (60, 1, 28, 28) and data.x_test.shape == (20, 1, 28, 28)
    images, labels = arrays["train"]
    expected = (torch.tensor(images, dtype=torch.float32) / 255.0 - MNIST_MEAN) / MNIST_STD
    assert torch.allclose(data.x_train[:, 0], expected, atol=1e-6)
    assert torch.equal(data.y_train, torch.tensor(labels, dtype=torch.int64))
    assert torch.equal(data.y_test, torch.tensor(arrays["t10k"][1], dtype=torch.int64))


def quick(mod, out_dir, **overrides):
    """최종 학습만(비교 실험 없이) 몇 epoch, 오프라인 digits, CPU. run() 처럼 출력 폴더를 만듭니다."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    settings = dict(data="offline", device="cpu", out_dir=str(out_dir), epochs=4, batch_size=128,
                    hidden_size=64, studies=False)
    settings.update(overrides)
    return mod.Config(**settings)


def run_flags(mod, *flags):
    """명령줄과 같은 길(플래그 해석 → Config → main)을 한 프로세스 안에서."""
    return run(mod.main, mod.Config, [*flags, "--device", "cpu"])


# ---------------------------------------------------------------------------
# 추론: 체크포인트만으로 (모델 플래그를 다시 주지 않음)
# ---------------------------------------------------------------------------
def test_predict_needs_no_model_flags_after_smoke_run(mod, tmp_path):
    """--smoke --hidden-size 32 로 학습, --predict 는 --hidden-size 없이(기본 256): model_args 로."""
    run_flags(mod, "--smoke", "--data", "offline", "--no-studies", "--hidden-size", "32",
              "--out-dir", str(tmp_path))
    canvas = np.full((90, 70), 255, dtype=np.uint8)
    cv2.putText(canvas, "3", (10, 75), cv2.FONT_HERSHEY_SIMPLEX, 2.5, 0, 8)
    cv2.imwrite(str(tmp_path / "three.png"), canvas)
    result = run_flags(mod, "--predict", str(tmp_path / "three.png"), "--out-dir", str(tmp_path))
    assert json.loads((tmp_path / "prediction.json").read_text(encoding="utf-8")) == result
    # 같은 확률을 손으로: best.pt 의 가중치를 hidden_size 32 모델에 넣고 같은 전처리(digits: 질량 중심)
    checkpoint = torch.load(tmp_path / "best.pt", weights_only=True)
    assert checkpoint["model_args"]["hidden_size"] == 32
    model = mod.build_model(**checkpoint["model_args"])
    model.load_state_dict(checkpoint["model"])
    with torch.no_grad():
        probabilities = torch.softmax(model.eval()(read_image_as_mnist(tmp_path / "three.png")), dim=1)[0]
    assert result["predicted_class"] == int(probabilities.argmax())
    assert result["probability"] == pytest.approx(float(probabilities.max()), abs=1e-4)
    assert (tmp_path / "predict.png").is_file()


def test_chapter_trains_and_predicts_on_fashion_layout(mod, tmp_path):
    """같은 코드 경로: 장 전체가 표준 배치의 Fashion-MNIST 로 학습하고 --predict 까지.

    Fashion-MNIST 는 물건을 상자 가운데에 두므로 예측 전처리는 질량 중심 맞춤을 하지 않습니다.
    """
    arrays = make_tiny_fashion(tmp_path / "data")
    out_dir = tmp_path / "out"
    config = dict(data="real", data_dir=str(tmp_path / "data"), out_dir=str(out_dir), epochs=2,
                  batch_size=16, hidden_size=32)
    mod.main(quick(mod, **config))
    record = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert record["data"] == "Fashion-MNIST (real)"
    image_path = tmp_path / "item.png"
    cv2.imwrite(str(image_path), cv2.resize(arrays["t10k"][0][3].astype(np.uint8), (84, 84)))
    config.pop("hidden_size")  # 예측은 모델 플래그 없이
    result = mod.main(quick(mod, **config, predict=str(image_path)))
    model, checkpoint = mod.training.load_trained_model(out_dir / "best.pt", mod.build_model,
                                                        quick(mod, **config), "cpu")
    assert checkpoint["extra"]["classes"] == FASHION_CLASSES
    image = read_image_as_mnist(image_path, center_of_mass=False)
    with torch.no_grad():
        probabilities = torch.softmax(model(image), dim=1)[0]
    assert result["predicted_name"] == FASHION_CLASSES[int(probabilities.argmax())]
    assert result["probability"] == pytest.approx(float(probabilities.max()), abs=1e-4)


# ---------------------------------------------------------------------------
# 학습 확인, 재현성, 조기 종료, 이어하기
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(mod, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ch02_trained")
    return out_dir, mod.main(quick(mod, out_dir, epochs=6, hidden_size=128))


def test_short_offline_run_beats_untrained_model(mod, trained):
    out_dir, metrics = trained
    # 같은 시드로 만든 학습 전 모델은 우연(0.10) 근처. 6 epoch 학습한 모델은 0.90 이상
    # (측정 0.97 근처): 학습 단계·스케줄·best.pt 선택이 깨지면 여기서 떨어집니다.
    data = mod.load_data(quick(mod, out_dir), torch.device("cpu"))
    torch.manual_seed(42)
    untrained = mod.init_weights(mod.build_model(128, 2, batch_norm=True, dropout=0.2), "kaiming")
    untrained_accuracy = mod.evaluate(untrained, data.x_test, data.y_test)["accuracy"]
    assert untrained_accuracy < 0.3
    assert metrics["test_accuracy"] >= 0.90 and metrics["test_accuracy"] >= untrained_accuracy + 0.5
    report = (out_dir / "classification_report.txt").read_text(encoding="utf-8")
    assert "precision" in report and "accuracy" in report


def test_same_seed_same_metrics(mod, trained, tmp_path):
    out_dir, metrics = trained
    assert mod.main(quick(mod, tmp_path, epochs=6, hidden_size=128)) == metrics
    assert ((tmp_path / "history.csv").read_text() == (out_dir / "history.csv").read_text())


def test_early_stopping_is_decided_from_history_and_survives_resume(mod, tmp_path, capsys):
    config = dict(epochs=30, patience=1)
    metrics = mod.main(quick(mod, tmp_path, **config))
    assert metrics["stopped_early"] == 1 and metrics["epochs_trained"] < 30
    assert metrics["best_epoch"] == metrics["epochs_trained"] - 1  # patience 1: 한 번 나빠지면 멈춤
    assert f"epoch {metrics['epochs_trained']} 에서 멈춥니다" in capsys.readouterr().out
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert [row["epoch"] for row in last["history"]] == list(range(1, metrics["epochs_trained"] + 1))
    resumed = mod.main(quick(mod, tmp_path, **config, resume=True))  # 이미 멈춘 학습: 더 학습하지 않음
    assert resumed == metrics


def test_ctrl_c_inside_epochs_1_and_3_then_resume_equals_uninterrupted(mod, tmp_path, monkeypatch,
                                                                        sigint_raises):
    """진짜 SIGINT 두 번: epoch 1 의 네 번째 배치(예전에 OneCycleLR 이 "Tried to step ... times" 로
    멈추던 곳), 이어 한 실행의 epoch 3 두 번째 배치. 두 번 이어 한 결과 = 끊지 않은 학습."""
    straight = mod.main(quick(mod, tmp_path / "straight", epochs=3))
    for stop_at in ("epoch 1:3", "epoch 3:1"):
        monkeypatch.setenv("TUTORIAL_SIGINT_AT", stop_at)
        with pytest.raises(SystemExit) as exit_info:
            mod.main(quick(mod, tmp_path / "resumed", epochs=3, resume=stop_at != "epoch 1:3"))
        assert exit_info.value.code == 130
    monkeypatch.delenv("TUTORIAL_SIGINT_AT")
    assert mod.main(quick(mod, tmp_path / "resumed", epochs=3, resume=True)) == straight
    assert ((tmp_path / "resumed" / "history.csv").read_text()
            == (tmp_path / "straight" / "history.csv").read_text())


def test_resume_refuses_other_epochs_because_the_schedule_depends_on_them(mod, tmp_path, capsys):
    flags = ["--data", "offline", "--no-studies", "--batch-size", "128", "--out-dir", str(tmp_path)]
    run_flags(mod, *flags, "--epochs", "2")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_flags(mod, *flags, "--epochs", "3", "--resume")
    assert exit_info.value.code == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1 and "epochs: 2 → 3" in error_lines[0]


# ---------------------------------------------------------------------------
# 비교 실험: 스스로 시드를 고정 (학습 블록 뒤에 돌아도, 무엇이 먼저 돌았든 같은 숫자)
# ---------------------------------------------------------------------------
def test_a_study_does_not_depend_on_what_ran_before(mod, tmp_path):
    data = mod.study_subset(mod.load_data(quick(mod, tmp_path), torch.device("cpu")), 256)
    budget = mod.Budget(epochs=1, max_batches=2, batch_size=64)
    first = mod.optimizer_study(data, budget, seed=0, out_dir=tmp_path, show=False)
    torch.rand(1000)  # 앞에서 전역 난수를 더 쓴 것처럼
    torch.Generator().manual_seed(1)
    second = mod.optimizer_study(data, budget, seed=0, out_dir=tmp_path, show=False)
    assert first.equals(second)


def test_smoke_runs_every_study(mod, tmp_path):
    metrics = mod.main(quick(mod, tmp_path, smoke=True, studies=True, hidden_size=256, batch_size=64))
    for name in ("activation_study.csv", "regularization_study.csv", "init_activation_std.csv",
                 "optimizer_study.csv", "grid_search.csv", "grid_search.png", "optimizers.png",
                 "init_study.png", "classification_report.txt", "lr_schedule.png", "activations.png"):
        assert (tmp_path / name).is_file(), name
    assert set(metrics["activation_val_accuracy"]) == set(mod.ACTIVATIONS)
    assert metrics["epochs_trained"] == 3  # --smoke: 최대 3 epoch, epoch 마다 배치 하나
    assert all(v is None or math.isfinite(v) for v in metrics["init_val_accuracy"].values())


# ---------------------------------------------------------------------------
# 잘못된 입력: 한 줄, 종료 코드 2, traceback 없음
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    (["--dropout", "1.5"], "--dropout 은 0 이상 1 미만이어야 합니다"),
    (["--grid-lrs", "abc"], "쉼표로 구분한 숫자"),
    (["--grid-lrs", "1e-3,nan"], "--grid-lrs 는 양수"),
    (["--val-fraction", "0"], "--val-fraction 은 0 과 0.5 사이여야 합니다"),
    (["--hidden-size", "0"], "--hidden-size 는 1 이상이어야 합니다"),
    (["--batch-size", "1"], "--batch-size 는 2 이상이어야 합니다"),
    (["--predict", "nope.png"], "best.pt 가 없습니다"),  # 입력보다 체크포인트를 먼저 확인
])
def test_bad_flags_are_one_line_with_exit_code_2(mod, args, expected, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_flags(mod, *args, "--out-dir", str(tmp_path))
    assert exit_info.value.code == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1 and expected in error_lines[0], error_lines


def test_predict_folder_or_missing_file(mod, trained, tmp_path, capsys):
    out_dir, _ = trained
    folder = run_script(SCRIPT, "--predict", str(tmp_path), "--out-dir", str(out_dir), timeout=120)
    assert folder.returncode == 2  # 사용자처럼 새 프로세스로 한 번
    assert folder.stderr.strip().splitlines() == [
        f"오류: --predict {tmp_path} 는 폴더입니다. 이미지 파일 하나(PNG, JPG 등)의 경로를 주세요."]
    with pytest.raises(SystemExit) as exit_info:
        run_flags(mod, "--predict", str(tmp_path / "nope.png"), "--out-dir", str(out_dir))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"오류: --predict 파일 {tmp_path / 'nope.png'} 이 없습니다."]
