"""01. PyTorch 기초: 텐서, 자동 미분, 사인 곡선 맞추기, 집값 회귀, MNIST 다층 퍼셉트론

학습 목표
    - 텐서(tensor)를 만들고, 모양(shape)·자료형(dtype)·장치(device)를 다루고, NumPy 와 오갈 수 있다.
    - 자동 미분(autograd)이 계산하는 기울기(gradient)를 손으로 유도한 값과 비교해 확인한다.
    - 같은 문제(사인 곡선 맞추기)를 ① 손으로 쓴 기울기 ② autograd ③ nn.Module + optim 으로
      세 번 풀고, 세 방법이 같은 답을 낸다는 것을 확인한다.
    - 회귀(regression) 결과를 평균 예측 기준선(baseline)·scikit-learn 과 나란히 보고한다.
    - 784-64-10 다층 퍼셉트론(MLP)으로 손글씨 숫자를 분류하고, 저장·불러오기·새 이미지 예측까지 한다.

핵심 개념
    텐서, 브로드캐스팅(broadcasting), view/reshape, requires_grad, backward, 기울기 누적
    (gradient accumulation), torch.no_grad, 경사 하강법(gradient descent), 학습률(learning rate),
    배치(batch)·반복(iteration)·에폭(epoch), 표준화(standardisation)는 학습 분할로만,
    교차 엔트로피(cross entropy), 혼동 행렬(confusion matrix), 체크포인트(checkpoint).

실행 방법
    python 01_pytorch_basics.py                      # 전체 (MNIST 가 없으면 sklearn digits 로 대신)
    python 01_pytorch_basics.py --data offline       # 네트워크를 쓰지 않음
    python 01_pytorch_basics.py --data real --data-dir data   # MNIST 를 data/MNIST/raw 에 받거나 읽음
    python 01_pytorch_basics.py --predict my_digit.png        # 학습된 best.pt 로 내 손글씨 예측
    python 01_pytorch_basics.py --resume --epochs 30          # last.pt 에서 이어서 더 학습
    python 01_pytorch_basics.py --smoke                       # 몇 초짜리 점검 실행
    GPU 에서는 자동으로 cuda 를 씁니다. 이 장의 모델은 작아서 GPU 이득이 작습니다; MNIST 로
    더 높은 정확도를 원하면 --hidden-size 256 --epochs 30 을 써 보세요 (측정하지 않은 설정).

기대 결과 (benchmarks/RESULTS.md 에서 옮김: 2코어 Intel Xeon CPU, GPU 없음, 3회 중앙값)
    - 오프라인(sklearn digits, 시험 360장): 시험 정확도 0.961, 11초, 최대 메모리 1.0 GB.
    - 실제 MNIST(--data real --data-dir <MNIST 가 있는 폴더>): 시험 정확도 0.9735, 35초, 1.4 GB.
    - 사인 맞추기: 2,000번 뒤 손실(Σ오차²) 10.4, 최소제곱 해 4.4. 회귀(diabetes): 선형 R² 0.455,
      scikit-learn 0.453, 평균 예측 −0.012, MLP 0.050 (작은 데이터에서 과적합).
    California housing 결과는 이 기계에 네트워크가 없어 측정하지 못했습니다.
"""

# %%
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.data.tabular import load_housing
from utils.data.vision import MNIST_MEAN, MNIST_STD, load_mnist_like, read_image_as_mnist
from utils.runtime import (
    RunConfig,
    count_parameters,
    describe_run,
    make_out_dir,
    run,
    pick_device,
    set_seed,
    write_run_record,
)
from utils.training import (
    History,
    check_finite,
    checkpoint_extra,
    load_checkpoint,
    progress,
    save_checkpoint,
    save_on_interrupt,
)
from utils.visualization import plot_confusion_matrix, plot_history, plot_image_grid, save_figure

# 모양 글자(shape letters): B=배치 크기, D=입력 특성 수, K=클래스 수(10)


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "01_pytorch_basics"  # 출력 폴더 outputs/01_pytorch_basics/, 체크포인트 주인 표시
    # --- MNIST MLP ---
    epochs: int = 30  # 전체 학습 데이터를 몇 번 볼지: digits(1,300장)는 30번쯤에서 검증 정확도가 멈춤
    batch_size: int = 100  # 강의 예시와 같은 값: 1,000개 / 100 = 에폭당 10번 반복
    lr: float = 2e-3  # Adam 기본값(1e-3)의 2배: 작은 MLP·작은 데이터에서 30 에폭 안에 수렴
    hidden_size: int = 64  # 강의의 784-64-10 구조
    val_fraction: float = 0.1  # 학습 데이터에서 떼어 둘 검증(validation) 비율: best.pt 고르기용
    # --- 사인 곡선 맞추기 ---
    sine_points: int = 1000  # 강의 노트: [-π, π] 에서 1,000개 점
    sine_steps: int = 2000  # 경사 하강 반복 횟수 (강의 노트)
    sine_lr: float = 1e-6  # 손실이 '합'이라 기울기가 점 수(1,000)만큼 커서 작은 학습률을 씀
    # --- 집값 회귀 ---
    regression_steps: int = 500  # 전체 배치(full-batch) 경사 하강 반복 횟수
    regression_lr: float = 0.05  # 표준화된 특성에서 안정적인 SGD 학습률
    # --- 추론 ---
    predict: str = ""  # 이미지 파일 경로: 주면 학습 대신 best.pt 로 그 이미지를 예측

    def __post_init__(self):
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"--val-fraction 은 0과 0.5 사이여야 합니다 (받은 값: {self.val_fraction}).")
        if self.hidden_size < 1 or self.sine_points < 4 or self.sine_steps < 1 or self.regression_steps < 1:
            raise ValueError("--hidden-size, --sine-steps, --regression-steps 는 양수, "
                             "--sine-points 는 4 이상이어야 합니다.")


# %% [1] 텐서(tensor) 기초 ------------------------------------------------------------
def tensor_basics(device: torch.device) -> None:
    """텐서 만들기, dtype, device, 브로드캐스팅, view/reshape, 인덱싱, NumPy 와 주고받기."""
    print("\n[1] 텐서 기초")
    a = torch.tensor([[1, 2, 3], [4, 5, 6]])  # 파이썬 리스트에서: 정수라 dtype=int64
    b = torch.zeros(2, 3)  # 기본 실수 자료형은 float32
    c = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    print(f"  a={a.tolist()} dtype={a.dtype} shape={tuple(a.shape)}; b.dtype={b.dtype}")
    # 정수 + 실수 → 실수(형 승격, type promotion). 자료형이 다른 연산은 결과 dtype 을 확인하는 습관을.
    print(f"  a + c → dtype {(a + c).dtype}")

    # 브로드캐스팅(broadcasting): 크기 1인 축을 늘려 모양을 맞춤. (2,3) + (3,) → (2,3)
    row = torch.tensor([10.0, 20.0, 30.0])
    print(f"  c + row (2,3)+(3,) =\n{(c + row)}")
    column = torch.tensor([[100.0], [200.0]])  # (2, 1)
    print(f"  c + column (2,3)+(2,1) → shape {tuple((c + column).shape)}")

    # view 는 메모리를 공유하는 다른 모양; 연속(contiguous)이 아니면 쓸 수 없어 reshape 가 복사함.
    flat = c.view(6)  # (6,)
    flat[0] = 99.0
    print(f"  view 는 같은 메모리: flat[0]=99 → c[0,0]={c[0, 0].item()}")
    transposed = c.t()  # (3, 2), 연속이 아님
    print(f"  c.t().is_contiguous()={transposed.is_contiguous()} → view 대신 reshape: "
          f"{tuple(transposed.reshape(6).shape)}")

    # 인덱싱(indexing): NumPy 와 같은 문법 + 불리언 마스크
    print(f"  c[:, 1]={c[:, 1].tolist()}  c[c > 3]={c[c > 3].tolist()}")

    # NumPy 와 오가기: CPU 텐서와 from_numpy 결과는 메모리를 공유합니다.
    array = np.ones(3, dtype=np.float32)
    shared = torch.from_numpy(array)
    array[0] = 7.0
    print(f"  from_numpy 는 메모리 공유: array[0]=7 → tensor[0]={shared[0].item()}; "
          f".numpy() 는 CPU 텐서에서만 (GPU 텐서는 .cpu() 먼저)")

    # 장치(device): 계산하는 텐서들은 같은 장치에 있어야 합니다.
    on_device = c.to(device)
    print(f"  c.to({device}).device = {on_device.device}")


# %% [2] 자동 미분(autograd) -----------------------------------------------------------
def autograd_basics() -> dict:
    """requires_grad, backward, 기울기 누적, no_grad, 손으로 유도한 기울기와 비교.

    반환값: {"manual": 손으로 계산한 기울기, "autograd": autograd 기울기} (테스트가 비교함)
    """
    print("\n[2] 자동 미분")
    # y = w·x + b, 손실 L = Σ (y - t)²   →   ∂L/∂w = Σ 2(y - t)·x,   ∂L/∂b = Σ 2(y - t)
    x = torch.tensor([1.0, 2.0, 3.0])
    target = torch.tensor([2.0, 4.0, 7.0])
    w = torch.tensor(0.5, requires_grad=True)  # requires_grad: 이 텐서에 대한 기울기를 기록
    b = torch.tensor(0.1, requires_grad=True)
    loss = ((w * x + b - target) ** 2).sum()
    loss.backward()  # 계산 그래프(computational graph)를 거꾸로 따라가며 w.grad, b.grad 를 채움

    with torch.no_grad():  # 기울기 기록이 필요 없는 계산: 메모리·시간 절약
        residual = w * x + b - target
        manual_w = (2 * residual * x).sum()
        manual_b = (2 * residual).sum()
    print(f"  ∂L/∂w: 손 계산 {manual_w.item():.4f}, autograd {w.grad.item():.4f}")
    print(f"  ∂L/∂b: 손 계산 {manual_b.item():.4f}, autograd {b.grad.item():.4f}")
    assert torch.allclose(w.grad, manual_w) and torch.allclose(b.grad, manual_b)

    # 기울기 누적: backward 를 두 번 부르면 .grad 에 '더해집니다'. 그래서 학습 루프마다
    # optimizer.zero_grad() 로 비웁니다. (여러 배치의 기울기를 일부러 모을 때는 이 성질을 씀)
    first = w.grad.clone()
    ((w * x + b - target) ** 2).sum().backward()
    print(f"  backward 두 번 → w.grad = {w.grad.item():.4f} (= 2 × {first.item():.4f})")
    assert torch.allclose(w.grad, 2 * first)

    with torch.no_grad():
        y_no_grad = w * x
    print(f"  no_grad 안의 결과는 requires_grad={y_no_grad.requires_grad} (평가·추론 때 씀)")
    return {"manual": torch.stack([manual_w, manual_b]),
            "autograd": torch.stack([first, b.grad / 2])}


# %% [3] 사인 곡선 맞추기: 같은 문제를 세 가지 방법으로 ------------------------------------
def make_sine_data(points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """y = sin(x), x 는 [-π, π] 에 고르게 놓인 points 개."""
    x = torch.linspace(-math.pi, math.pi, points)
    return x, torch.sin(x)


def fit_cubic_manual(x, y, start: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """① 손으로 쓴 기울기. 모델 ŷ = a + b·x + c·x² + d·x³, 손실 L = Σ (ŷ - y)².

    ∂L/∂ŷ = 2(ŷ - y) 이고 연쇄 법칙(chain rule)으로 ∂L/∂a = Σ ∂L/∂ŷ,
    ∂L/∂b = Σ ∂L/∂ŷ·x, ∂L/∂c = Σ ∂L/∂ŷ·x², ∂L/∂d = Σ ∂L/∂ŷ·x³.
    """
    a, b, c, d = start.clone()
    for _ in range(steps):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        grad_y_pred = 2.0 * (y_pred - y)
        a = a - lr * grad_y_pred.sum()
        b = b - lr * (grad_y_pred * x).sum()
        c = c - lr * (grad_y_pred * x ** 2).sum()
        d = d - lr * (grad_y_pred * x ** 3).sum()
    return torch.stack([a, b, c, d])


def fit_cubic_autograd(x, y, start: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """② autograd: 기울기 식을 쓰지 않고 loss.backward() 가 계산하게 합니다."""
    coefficients = start.clone().requires_grad_(True)  # (4,) = a, b, c, d
    powers = torch.stack([x ** 0, x, x ** 2, x ** 3], dim=1)  # (N, 4)
    for _ in range(steps):
        loss = ((powers @ coefficients - y) ** 2).sum()
        loss.backward()
        with torch.no_grad():  # 갱신 자체는 그래프에 기록하면 안 됨
            coefficients -= lr * coefficients.grad
        coefficients.grad = None  # 누적되지 않도록 비움
    return coefficients.detach()


class Cubic(nn.Module):
    """③ nn.Module: 특성 [x, x², x³] 에 nn.Linear(3, 1) 을 씌운 것 = a + b·x + c·x² + d·x³."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)  # bias = a, weight = [b, c, d]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N,) → (N,)
        features = torch.stack([x, x ** 2, x ** 3], dim=1)  # (N, 3)
        return self.linear(features).squeeze(1)


def fit_cubic_module(x, y, start: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    model = Cubic()
    with torch.no_grad():  # 세 방법을 비교하려고 같은 시작점에서 출발
        model.linear.bias.copy_(start[:1])
        model.linear.weight.copy_(start[1:].view(1, 3))
    loss_fn = nn.MSELoss(reduction="sum")  # 강의와 같은 '합' 손실
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.cat([model.linear.bias, model.linear.weight.view(3)]).detach()


def sine_fit(config: Config, out_dir: Path) -> dict:
    print("\n[3] 사인 곡선을 3차 다항식으로 맞추기")
    x, y = make_sine_data(config.sine_points)
    steps = 5 if config.smoke else config.sine_steps
    start = torch.randn(4)  # 무작위 시작 계수 a, b, c, d (set_seed 로 재현 가능)
    manual = fit_cubic_manual(x, y, start, steps, config.sine_lr)
    autograd = fit_cubic_autograd(x, y, start, steps, config.sine_lr)
    module = fit_cubic_module(x, y, start, steps, config.sine_lr)
    # 세 방법은 같은 계산이므로 부동소수점 오차 범위에서 같은 계수를 내야 합니다.
    assert torch.allclose(manual, autograd, atol=1e-4) and torch.allclose(manual, module, atol=1e-4)
    # 비교 기준: 최소제곱(least squares) 3차 다항식의 정확한 해 (NumPy)
    least_squares = np.polynomial.polynomial.polyfit(x.numpy(), y.numpy(), deg=3)  # a, b, c, d 순서

    def sse(coefficients) -> float:
        a, b, c, d = (float(v) for v in coefficients)
        return float(((a + b * x + c * x ** 2 + d * x ** 3 - y) ** 2).sum())

    print("  방법              a        b        c        d      손실(Σ오차²)")
    for name, coefficients in (("무작위 시작", start), ("① 손 기울기", manual), ("② autograd", autograd),
                               ("③ nn.Module", module), ("최소제곱 해", least_squares)):
        a, b, c, d = (float(v) for v in coefficients)
        print(f"  {name:12s} {a:8.4f} {b:8.4f} {c:8.4f} {d:8.4f}  {sse(coefficients):10.3f}")

    fig, ax = plt.subplots(figsize=(6.5, 4))
    grid = x.numpy()
    ax.plot(grid, y.numpy(), "k", lw=3, alpha=0.4, label="sin(x)")
    for name, coefficients, style in (("random start", start, ":"), ("gradient descent", manual, "-"),
                                      ("least squares", least_squares, "--")):
        a, b, c, d = (float(v) for v in coefficients)
        ax.plot(grid, a + b * grid + c * grid ** 2 + d * grid ** 3, style, label=name)
    ax.set_ylim(-2.5, 2.5)
    ax.set_title(f"Cubic fit of sin(x) after {steps} steps (lr={config.sine_lr:g})")
    ax.legend()
    save_figure(fig, out_dir / "sine_fit.png", config.show)
    return {"sine_coefficients": manual.tolist(), "sine_least_squares": least_squares.tolist(),
            "sine_sse": sse(manual), "sine_least_squares_sse": sse(least_squares)}


# %% [4] 회귀(regression): 집값 예측 -------------------------------------------------------
def regression_metrics(prediction: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """RMSE = √(평균 (ŷ - y)²),  R² = 1 - Σ(ŷ - y)² / Σ(y - ȳ)²  (평균 예측이면 0, 완벽하면 1)."""
    rmse = float(np.sqrt(np.mean((prediction - target) ** 2)))
    r2 = float(1 - np.sum((prediction - target) ** 2) / np.sum((target - target.mean()) ** 2))
    return rmse, r2


def housing_regression(config: Config, device: torch.device, out_dir: Path) -> dict:
    print("\n[4] 회귀: 집값(또는 당뇨 진행도) 예측")
    # --data real 은 이 장의 주 데이터(MNIST)에만 엄격히 적용합니다: 곁다리인 회귀 절은
    # California 를 구하지 못하면 한 줄로 알리고 diabetes 로 대신합니다.
    mode = "auto" if config.data == "real" else config.data
    table = load_housing(mode, config.data_dir, config.smoke, config.seed)
    print(f"  데이터: {table.name}, 학습 {len(table.y_train)}행 / 시험 {len(table.y_test)}행, "
          f"특성 {len(table.feature_names)}개, 목표: {table.target_name}")
    # 표준화: 평균·표준편차를 '학습 분할에서만' 계산. 시험 분할까지 넣어 계산하면 시험 데이터의
    # 정보가 학습에 새어 들어가(data leakage) 점수가 실제보다 좋게 나옵니다.
    mean, std = table.x_train.mean(axis=0), table.x_train.std(axis=0) + 1e-8
    y_mean, y_std = table.y_train.mean(), table.y_train.std()
    to_tensor = lambda array: torch.tensor(array, dtype=torch.float32, device=device)
    x_train, x_test = to_tensor((table.x_train - mean) / std), to_tensor((table.x_test - mean) / std)
    y_train = to_tensor((table.y_train - y_mean) / y_std)  # 목표도 표준화하면 학습률 고르기가 쉬움

    steps = 3 if config.smoke else config.regression_steps
    results = {}
    models = {
        "linear (SGD)": (nn.Linear(x_train.shape[1], 1), torch.optim.SGD, config.regression_lr),
        "MLP 64 (Adam)": (nn.Sequential(nn.Linear(x_train.shape[1], 64), nn.ReLU(), nn.Linear(64, 1)),
                          torch.optim.Adam, 1e-2),  # 작은 MLP: 비선형 관계까지
    }
    predictions = {}
    for name, (model, optimizer_cls, lr) in models.items():
        model.to(device)
        optimizer = optimizer_cls(model.parameters(), lr=lr)
        for step in range(steps):
            loss = F.mse_loss(model(x_train).squeeze(1), y_train)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            check_finite(loss, epoch=1, step=step)
        with torch.no_grad():
            prediction = model(x_test).squeeze(1).cpu().numpy() * y_std + y_mean  # 원래 단위로
        predictions[name] = prediction
        results[name] = regression_metrics(prediction, table.y_test)

    # 기준선 1: 학습 평균을 늘 예측 (R² ≈ 0). 기준선 2: scikit-learn 의 닫힌 해(closed form) 선형 회귀.
    from sklearn.linear_model import LinearRegression

    results["mean predictor"] = regression_metrics(np.full_like(table.y_test, y_mean), table.y_test)
    sklearn_model = LinearRegression().fit((table.x_train - mean) / std, table.y_train)
    results["sklearn LinearRegression"] = regression_metrics(
        sklearn_model.predict((table.x_test - mean) / std), table.y_test)
    print("  모델                        시험 RMSE    시험 R²")
    for name, (rmse, r2) in results.items():
        print(f"  {name:26s} {rmse:10.4f} {r2:9.4f}")
    if results["MLP 64 (Adam)"][1] < results["linear (SGD)"][1]:
        # 더 큰 모델이 늘 낫지는 않습니다: 학습 행이 적으면 MLP 는 학습 데이터의 잡음까지 외웁니다.
        print(f"  → MLP 가 선형 모델보다 나쁨: 학습 {len(table.y_train)}행에 파라미터 "
              f"{sum(p.numel() for p in models['MLP 64 (Adam)'][0].parameters())}개라 과적합(overfitting)."
              " 데이터가 많은 California housing 에서는 보통 반대입니다.")

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, prediction in predictions.items():
        ax.scatter(table.y_test, prediction, s=6, alpha=0.4, label=name)
    low, high = float(table.y_test.min()), float(table.y_test.max())
    ax.plot([low, high], [low, high], "k--", lw=1, label="perfect")
    ax.set_xlabel(f"true: {table.target_name}")
    ax.set_ylabel("predicted")
    ax.set_title(table.name)
    ax.legend()
    save_figure(fig, out_dir / "regression.png", config.show)
    key = lambda name: name.split(" (")[0].replace(" ", "_").lower()
    return {"regression_data": table.name,
            **{f"regression_{key(n)}_rmse": rmse for n, (rmse, _) in results.items()},
            **{f"regression_{key(n)}_r2": r2 for n, (_, r2) in results.items()}}


# %% [5] MNIST 다층 퍼셉트론(MLP): 데이터 → 모델 → 학습 → 평가 ---------------------------------
def build_mlp(hidden_size: int) -> nn.Sequential:
    """강의의 784-64-10 구조. 28x28 이미지를 784개 숫자로 펴서(flatten) 넣습니다."""
    return nn.Sequential(
        nn.Flatten(),  # (B, 1, 28, 28) → (B, 784)
        nn.Linear(28 * 28, hidden_size),  # (B, hidden)
        nn.ReLU(),
        nn.Linear(hidden_size, 10),  # (B, K) 로짓(logit): softmax 는 손실 함수 안에서
    )


def train_one_epoch(model, x, y, optimizer, batch_size: int, epoch: int, max_batches: int | None):
    """한 에폭: 데이터를 섞고 배치마다 zero_grad → forward → loss → backward → step."""
    model.train()
    order = torch.randperm(len(x))  # 에폭마다 새 순서 (전역 RNG: --resume 이 상태를 되살림)
    batches = order.split(batch_size)[:max_batches]
    loss_sum = torch.zeros((), device=x.device)  # .item() 은 GPU 를 기다리므로 합만 모았다가 끝에 한 번
    correct = torch.zeros((), device=x.device)
    seen = 0
    for step, index in enumerate(progress(batches, desc=f"epoch {epoch}")):
        index = index.to(x.device)
        inputs, targets = x[index], y[index]
        logits = model(inputs)
        # 교차 엔트로피(cross entropy) = -log softmax(logit)[정답]. softmax 와 log 를 함께 계산해 안정적.
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad()  # 이전 배치의 기울기가 누적되지 않게
        loss.backward()
        optimizer.step()
        check_finite(loss, epoch, step)
        loss_sum += loss.detach() * len(index)
        correct += (logits.argmax(1) == targets).sum()
        seen += len(index)
    return (loss_sum / seen).item(), (correct / seen).item()


@torch.no_grad()
def evaluate(model, x, y, batch_size: int, max_batches: int | None = None) -> dict:
    """평균 손실과 정확도. model.eval(): 이 모델엔 없지만 Dropout·BatchNorm 이 있으면
    학습 때와 다르게(결정적으로) 동작하게 하는 스위치라 평가 전에 늘 켜는 습관을 들입니다."""
    model.eval()
    loss_sum, correct, predictions = 0.0, 0, []
    for inputs, targets in list(zip(x.split(batch_size), y.split(batch_size)))[:max_batches]:
        logits = model(inputs)
        loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()  # 합한 뒤 N 으로 나눔
        predictions.append(logits.argmax(1))
        correct += (predictions[-1] == targets).sum().item()
    seen = sum(len(p) for p in predictions)
    return {"loss": loss_sum / seen, "accuracy": correct / seen, "predictions": torch.cat(predictions)}


def explain_batches(n_train: int, batch_size: int) -> None:
    """배치·반복·에폭: 강의 예시(1,000개, 배치 100 → 에폭당 10번)와 지금 데이터."""
    print(f"  강의 예시: 샘플 1,000개, 배치 100 → 에폭당 반복(iteration) {math.ceil(1000 / 100)}번")
    print(f"  지금 데이터: 샘플 {n_train:,}개, 배치 {batch_size} → 에폭당 반복 "
          f"{math.ceil(n_train / batch_size)}번 (마지막 배치는 {n_train % batch_size or batch_size}개)")


# %% [6] 추론(inference): 내 이미지 예측 -----------------------------------------------------
def predict(config: Config, device: torch.device, out_dir: Path) -> dict:
    """best.pt 를 불러와 이미지 파일 하나를 분류하고, 전처리된 28x28 입력을 그림으로 남깁니다."""
    image = read_image_as_mnist(config.predict).to(device)  # (1, 1, 28, 28)
    checkpoint = out_dir / "best.pt"
    model = build_mlp(checkpoint_extra(checkpoint)["hidden_size"]).to(device)
    state = load_checkpoint(checkpoint, model=model, device=device, restore_rng=False)
    model.eval()
    with torch.no_grad():
        probabilities = F.softmax(model(image), dim=1)[0].cpu()
    classes = state["extra"]["classes"]
    top = probabilities.topk(3)
    print(f"{config.predict}: 예측 {classes[top.indices[0]]} (확률 {top.values[0]:.1%}); 상위 3개: " +
          ", ".join(f"{classes[i]} {p:.1%}" for p, i in zip(top.values.tolist(), top.indices.tolist())))
    plot_image_grid(image.cpu(), [f"pred {classes[top.indices[0]]} ({top.values[0]:.0%})"],
                    out_dir / "predict.png", config.show, mean=[MNIST_MEAN], std=[MNIST_STD],
                    title="Input as the model sees it (28x28)")
    return {"prediction": classes[top.indices[0]], "probability": float(top.values[0])}


# %% main ---------------------------------------------------------------------------------
def main(config: Config) -> dict:
    started = time.perf_counter()
    device = pick_device(config.device)
    set_seed(config.seed)
    out_dir = make_out_dir(config, __file__)
    if config.predict:
        return predict(config, device, out_dir)

    tensor_basics(device)
    autograd_basics()
    metrics = sine_fit(config, out_dir)
    metrics.update(housing_regression(config, device, out_dir))

    print("\n[5] 손글씨 숫자 분류: 784-64-10 MLP")
    # 1. 데이터: 학습 분할에서 검증 분할을 떼어 best.pt 를 고르고, 시험 분할은 마지막에 한 번만 씀
    data = load_mnist_like("mnist", config.data, config.data_dir, config.smoke, config.seed)
    n_val = max(1, int(len(data.x_train) * config.val_fraction))
    order = torch.randperm(len(data.x_train))
    val_idx, train_idx = order[:n_val], order[n_val:]
    x_train, y_train = data.x_train[train_idx].to(device), data.y_train[train_idx].to(device)
    x_val, y_val = data.x_train[val_idx].to(device), data.y_train[val_idx].to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    explain_batches(len(x_train), config.batch_size)

    # 2. 모델과 최적화기
    model = build_mlp(config.hidden_size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    describe_run(device, model, data.name)

    # 3. 학습 (--resume 이면 last.pt 의 모델·최적화기·에폭·난수 상태에서 이어서)
    history = History(out_dir / "history.csv", resume=config.resume)
    start_epoch, best_accuracy = 1, -math.inf
    if config.resume:
        state = load_checkpoint(out_dir / "last.pt", model=model, optimizer=optimizer, device=device)
        start_epoch, best_accuracy = state["epoch"] + 1, state["best_metric"]
        history.truncate(state["epoch"])
        print(f"  last.pt 에서 이어서: epoch {start_epoch}부터")
    extra = {"hidden_size": config.hidden_size, "classes": data.classes}
    epochs = 1 if config.smoke else config.epochs
    max_batches = 1 if config.smoke else None  # --smoke: 학습·평가 모두 배치 하나
    completed = start_epoch - 1  # 끝까지 마치고 last.pt 에 저장한 마지막 epoch

    def save_last():
        save_checkpoint(out_dir / "last.pt", model=model, optimizer=optimizer, epoch=completed,
                        best_metric=best_accuracy, extra=extra)

    # Ctrl+C: 끝난 epoch 의 last.pt 가 이미 있으면 그대로 둡니다 (거기서 --resume 하면 끊지 않은
    # 학습과 똑같이 이어짐). 아직 끝난 epoch 이 없을 때만 지금 상태를 epoch 0 으로 저장합니다.
    on_interrupt = lambda: None if completed > 0 else save_last()
    with save_on_interrupt(on_interrupt, out_dir):
        for epoch in range(start_epoch, epochs + 1):
            train_loss, train_accuracy = train_one_epoch(model, x_train, y_train, optimizer,
                                                         config.batch_size, epoch, max_batches)
            val = evaluate(model, x_val, y_val, 1000, max_batches)
            history.log(epoch=epoch, train_loss=train_loss, train_acc=train_accuracy,
                        val_loss=val["loss"], val_acc=val["accuracy"])
            if val["accuracy"] >= best_accuracy:  # 같으면 더 오래 학습한 쪽
                best_accuracy = val["accuracy"]
                save_checkpoint(out_dir / "best.pt", model=model, epoch=epoch,
                                best_metric=best_accuracy, extra=extra)
            completed = epoch
            save_last()
    if not (out_dir / "best.pt").exists():  # 이어하기로 이미 끝까지 학습한 경우 등
        save_checkpoint(out_dir / "best.pt", model=model, epoch=completed, best_metric=best_accuracy,
                        extra=extra)

    # 4. 평가: 검증 정확도가 가장 좋았던 모델을 저장 파일에서 새로 불러와(저장·불러오기 확인) 시험
    reloaded = build_mlp(config.hidden_size).to(device)
    load_checkpoint(out_dir / "best.pt", model=reloaded, device=device, restore_rng=False)
    test = evaluate(reloaded, x_test, y_test, 1000, max_batches)
    print(f"  시험(test): 손실 {test['loss']:.4f}, 정확도 {test['accuracy']:.4f} "
          f"(우연 수준 {1 / len(data.classes):.2f}), best.pt = 검증 정확도 {best_accuracy:.4f}")

    # 5. 시각화: 학습 곡선, 혼동 행렬, 틀린 예
    evaluated = len(test["predictions"])
    truth, predicted = y_test[:evaluated].cpu(), test["predictions"].cpu()
    confusion = torch.zeros(len(data.classes), len(data.classes), dtype=torch.int64)
    confusion.index_put_((truth, predicted), torch.ones_like(truth), accumulate=True)  # 행=정답, 열=예측
    plot_history(history.rows, out_dir / "history.png", config.show, title=f"784-{config.hidden_size}-10 MLP")
    plot_confusion_matrix(confusion.numpy(), data.classes, out_dir / "confusion_matrix.png", config.show,
                          title=f"{data.name}: test confusion matrix")
    wrong = (truth != predicted).nonzero().flatten()
    shown = wrong[:32] if len(wrong) else torch.arange(min(8, evaluated))  # 틀린 것이 없으면 처음 8개
    plot_image_grid(x_test[:evaluated][shown].cpu(),
                    [f"true {truth[i]} / pred {predicted[i]}" for i in shown.tolist()],
                    out_dir / "misclassified.png", config.show, mean=[MNIST_MEAN], std=[MNIST_STD],
                    title=f"Misclassified test images ({len(wrong)} wrong of {evaluated})",
                    title_colors=["red" if truth[i] != predicted[i] else "green" for i in shown.tolist()])

    metrics.update({"test_accuracy": test["accuracy"], "test_loss": test["loss"],
                    "best_val_accuracy": best_accuracy, "epochs_trained": completed})
    write_run_record(out_dir, script=__file__, config=config, data=data.name, device=device,
                     seconds=time.perf_counter() - started, parameters=count_parameters(model),
                     metrics=metrics, headline="test_accuracy")
    print(f"\n완료: {time.perf_counter() - started:.1f}초, 출력 폴더 {out_dir}")
    return metrics


if __name__ == "__main__":
    run(main, Config)
