"""02장: 활성화 함수의 도함수, BatchNorm/Dropout 의 train·eval 동작, 초기화·최적화·스케줄의
직접 구현, Fashion-MNIST 표준 배치(IDX) 읽기, 조기 종료와 이어하기, 짧은 학습 확인, 잘못된 입력."""

import json
import math
import struct

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import load_chapter, run_script

from utils.data.vision import FASHION_CLASSES, MNIST_MEAN, MNIST_STD, load_mnist_like
from utils.training import load_checkpoint

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
    model = mod.make_mlp(32, 2, batch_norm=True, dropout=0.5)
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
    stds = {scheme: mod.activation_stds(mod.init_weights(mod.make_mlp(256, 6), scheme), x)
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


def test_chapter_trains_and_predicts_on_fashion_layout(mod, tmp_path):
    """같은 코드 경로: 장 전체가 표준 배치의 Fashion-MNIST 로 학습하고 --predict 까지."""
    arrays = make_tiny_fashion(tmp_path / "data")
    out_dir = tmp_path / "out"
    config = dict(data="real", data_dir=str(tmp_path / "data"), out_dir=str(out_dir), device="cpu",
                  epochs=2, batch_size=16, studies=False, hidden=32)
    metrics = mod.main(mod.Config(**config))
    record = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert record["data"] == "Fashion-MNIST (real)"
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    image_path = tmp_path / "item.png"
    cv2.imwrite(str(image_path), cv2.resize(arrays["t10k"][0][3].astype(np.uint8), (84, 84)))
    result = mod.main(mod.Config(**config, predict=str(image_path)))
    assert result["predicted_name"] in FASHION_CLASSES
    assert 0.0 < result["probability"] <= 1.0
    assert (out_dir / "predict.png").is_file()


# ---------------------------------------------------------------------------
# 학습: 조기 종료(+이어하기), 짧은 학습 확인, 비교 실험 출력
# ---------------------------------------------------------------------------
def test_early_stopping_state_is_saved_and_resumed(mod, tmp_path):
    config = dict(data="offline", out_dir=str(tmp_path), device="cpu", epochs=30, patience=1,
                  batch_size=128, studies=False, hidden=64)
    metrics = mod.main(mod.Config(**config))
    assert metrics["stopped_early"] == 1
    assert metrics["epochs_trained"] < 30
    assert metrics["best_epoch"] == metrics["epochs_trained"] - 1  # patience 1: 한 번 나빠지면 멈춤
    state = load_checkpoint(tmp_path / "last.pt", model=mod.make_mlp(64, 2, batch_norm=True, dropout=0.2),
                            restore_rng=False)
    assert state["extra"]["early_stopping"]["bad_epochs"] == 1
    assert state["extra"]["early_stopping"]["best"] == pytest.approx(metrics["best_val_loss"], abs=1e-4)
    resumed = mod.main(mod.Config(**config, resume=True))  # 이미 멈춘 학습: 더 학습하지 않음
    assert resumed["epochs_trained"] == metrics["epochs_trained"]
    assert resumed["test_accuracy"] == metrics["test_accuracy"]


def test_ctrl_c_then_resume_equals_uninterrupted_run(mod, tmp_path, monkeypatch):
    config = dict(data="offline", device="cpu", epochs=4, batch_size=128, studies=False, hidden=64)
    full = mod.main(mod.Config(**config, out_dir=str(tmp_path / "full")))

    real_train_one_epoch = mod.train_one_epoch

    def interrupted_in_epoch_3(*args, **kwargs):  # epoch 3 도중에 Ctrl+C 를 누른 것처럼
        if kwargs.get("epoch") == 3:
            raise KeyboardInterrupt
        return real_train_one_epoch(*args, **kwargs)

    out_dir = tmp_path / "interrupted"
    monkeypatch.setattr(mod, "train_one_epoch", interrupted_in_epoch_3)
    with pytest.raises(SystemExit) as exit_info:
        mod.main(mod.Config(**config, out_dir=str(out_dir)))
    assert exit_info.value.code == 130
    monkeypatch.setattr(mod, "train_one_epoch", real_train_one_epoch)
    resumed = mod.main(mod.Config(**config, out_dir=str(out_dir), resume=True))
    assert resumed == full
    assert (out_dir / "history.csv").read_text() == (tmp_path / "full" / "history.csv").read_text()


@pytest.mark.slow
def test_short_offline_run_beats_chance(mod, tmp_path):
    metrics = mod.main(mod.Config(data="offline", out_dir=str(tmp_path), device="cpu", epochs=6,
                                  batch_size=128, hidden=128, studies=False))
    assert metrics["test_accuracy"] >= 0.80, metrics  # 우연 수준 0.10 보다 훨씬 위
    report = (tmp_path / "classification_report.txt").read_text(encoding="utf-8")
    assert "precision" in report and "accuracy" in report
    for name in ("history.png", "confusion_matrix.png", "lr_schedule.png", "activations.png"):
        assert (tmp_path / name).is_file(), name


def test_smoke_runs_every_study(mod, tmp_path):
    metrics = mod.main(mod.Config(smoke=True, data="offline", out_dir=str(tmp_path), device="cpu"))
    for name in ("activation_study.csv", "regularization_study.csv", "init_activation_std.csv",
                 "optimizer_study.csv", "grid_search.csv", "grid_search.png", "optimizers.png",
                 "init_study.png", "classification_report.txt"):
        assert (tmp_path / name).is_file(), name
    assert set(metrics["activation_val_accuracy"]) == set(mod.ACTIVATIONS)
    assert metrics["epochs_trained"] == 1
    assert all(v is None or math.isfinite(v) for v in metrics["init_val_accuracy"].values())


# ---------------------------------------------------------------------------
# 잘못된 입력: 한 줄, 0 이 아닌 종료 코드, traceback 없음
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    (["--predict", "missing.png"], "오류: --predict 파일 missing.png 이 없습니다"),
    (["--epochs", "-1"], "--epochs 는 1 이상"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_bad_input_gives_one_clear_line(args, expected, tmp_path):
    result = run_script(SCRIPT, *args, "--device", "cpu", "--out-dir", str(tmp_path), timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr.strip().splitlines()[-1], result.stderr


@pytest.mark.parametrize("args, expected", [
    (["--dropout", "1.5"], "--dropout 은 0 이상 1 미만"),
    (["--grid-lrs", "abc"], "쉼표로 구분한 숫자"),
    (["--val-fraction", "0"], "--val-fraction 은 0 과 0.5 사이"),
])
def test_config_validation_is_a_one_line_error(mod, args, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        mod.parse_config(mod.Config, args)
    assert exit_info.value.code != 0
    assert expected in capsys.readouterr().err.strip().splitlines()[-1]


def test_same_seed_same_metrics(mod, tmp_path):
    config = dict(data="offline", device="cpu", epochs=1, studies=False, hidden=32)
    first = mod.main(mod.Config(**config, out_dir=str(tmp_path / "a")))
    second = mod.main(mod.Config(**config, out_dir=str(tmp_path / "b")))
    assert first == second
