"""01. PyTorch 기초: 텐서, 자동 미분, 사인 곡선 맞추기, 집값 회귀, MNIST 다층 퍼셉트론

학습 목표
    - 텐서(tensor)를 만들고, 모양(shape)·자료형(dtype)·장치(device)를 다루고, NumPy 와 오갈 수 있다.
    - 자동 미분(autograd)이 계산하는 기울기(gradient)를 손으로 유도한 값과 비교해 확인한다.
    - 같은 문제(사인 곡선 맞추기)를 ① 손으로 쓴 기울기 ② autograd ③ nn.Module + optim 으로
      세 번 풀고, 세 방법이 같은 답을 낸다는 것을 확인한다.
    - 회귀(regression) 결과를 평균 예측 기준선(baseline)·scikit-learn 과 나란히 보고한다.
    - 직접 쓴 Dataset 과 DataLoader(시드를 고정한 generator)로 데이터를 배치로 나눠 먹인다.
    - 784-64-10 다층 퍼셉트론(MLP)으로 손글씨 숫자를 분류하고, 조기 종료(early stopping),
      저장·이어하기·불러오기, 새 이미지 예측까지 한다.

핵심 개념
    텐서, 브로드캐스팅(broadcasting), view/reshape, requires_grad, backward, 기울기 누적
    (gradient accumulation), torch.no_grad, 경사 하강법(gradient descent), 학습률(learning rate),
    배치(batch)·반복(iteration)·에폭(epoch), Dataset·DataLoader·random_split, 표준화
    (standardisation)는 학습 분할로만, 교차 엔트로피(cross entropy), 검증 분할(validation split)과
    조기 종료, 혼동 행렬(confusion matrix), 체크포인트(checkpoint).

실행 방법
    python 01_pytorch_basics.py                      # 전체 (MNIST 가 없으면 sklearn digits 로 대신)
    python 01_pytorch_basics.py --data offline       # 네트워크를 쓰지 않음
    python 01_pytorch_basics.py --data real --data-dir data   # MNIST 를 data/MNIST/raw 에 받거나 읽음
    python 01_pytorch_basics.py --predict my_digit.png        # 학습된 best.pt 로 내 손글씨 예측
    python 01_pytorch_basics.py --resume                      # Ctrl+C 로 멈춘 학습을 last.pt 에서 이어서
    python 01_pytorch_basics.py --smoke                       # 몇 초짜리 점검 실행
    GPU 에서는 자동으로 cuda 를 씁니다. 이 장의 모델은 작아서 GPU 이득이 작습니다; MNIST 로
    더 높은 정확도를 원하면 --hidden-size 256 --patience 10 을 써 보세요 (측정하지 않은 설정).

기대 결과 (아래 블록은 benchmarks/run_all.py 가 씀; 그 밖의 숫자는 조건을 밝힌 따로 잰 값)
    [results] benchmarks/run_all.py 가 results.json 에서 옮겨 씀: 중앙값 (최소–최대)
    - `--data offline` · sklearn digits (offline fallback) · cpu · seeds 42, 43, 44
      test_accuracy 0.9639 (0.9528–0.9639) · wall 7.0 (7.0–7.1) s · peak 0.95 GB
    - 기계: Intel(R) Xeon(R) Processor, 2 cores (2 torch threads), GPU: none, torch 2.14.1+cu130
    [/results]
    - 실제 MNIST(--data real --data-dir <MNIST 가 있는 폴더>), 조기 종료를 넣은 뒤 1회, 여러 작업이 2코어를
      함께 쓰던 기계(OMP_NUM_THREADS=1): 시험 정확도 0.9755, epoch 13 에서 조기 종료 (best.pt = epoch 8).
      넣기 전에는 30 epoch 를 다 돌아 0.9746 이었고 검증 손실은 epoch 7 뒤로 두 배가 되었습니다.
    - 회귀(diabetes, 442행): 선형 모델 R² ≈ 0.45 = scikit-learn, MLP 는 작은 데이터에서 과적합해 더 나쁨.
    California housing 결과는 이 기계에 네트워크가 없어 측정하지 못했습니다.
"""

# %%
from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, random_split

from utils import training  # 학습 뼈대: training.resume_or_start, .save_checkpoint, .History, …
from utils import visualization as viz  # 그림은 이 장의 주제가 아니라 한 모듈에 모아 둠: viz.save_figure(...)
from utils.data import vision  # MNIST 불러오기·정규화 상수·이미지 읽기: vision.load_mnist_like(...)
from utils.data.tabular import load_housing
from utils.runtime import RunConfig, pick_device, run, write_run_record

# 모양 글자(shape letters): B=배치 크기, D=입력 특성 수, K=클래스 수(10)
IMAGE_PIXELS = 28 * 28  # MLP 는 28x28 이미지를 784개 숫자로 펴서 받습니다
EVAL_BATCH_SIZE = 1000  # 평가는 기울기를 저장하지 않아 메모리가 적게 들므로 큰 배치로 빨리


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "01_pytorch_basics"  # 출력 폴더 outputs/01_pytorch_basics/, 체크포인트 주인 표시
    # --- MNIST MLP ---
    epochs: int = 30  # 최대 에폭 수: 보통 조기 종료(--patience)가 먼저 멈춥니다
    batch_size: int = 100  # 강의 예시와 같은 값: 1,000개 / 100 = 에폭당 10번 반복
    lr: float = 2e-3  # Adam 기본값(1e-3)의 2배: 작은 MLP·작은 데이터에서 30 에폭 안에 수렴
    hidden_size: int = 64  # 강의의 784-64-10 구조
    val_fraction: float = 0.1  # 학습 데이터에서 떼어 둘 검증(validation) 비율: best.pt 고르기·조기 종료용
    patience: int = 5  # 조기 종료: 검증 정확도가 이만큼 epoch 동안 최고 기록을 넘지 못하면 멈춤
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
            raise ValueError(f"--val-fraction 은 0 과 0.5 사이여야 합니다 (받은 값: {self.val_fraction}).")
        for name in ("hidden_size", "patience", "sine_steps", "regression_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} 는 1 이상이어야 합니다 "
                                 f"(받은 값: {getattr(self, name)}).")
        if self.sine_points < 4:  # 3차 다항식의 계수 4개를 정하려면 점이 4개 이상 필요
            raise ValueError(f"--sine-points 는 4 이상이어야 합니다 (받은 값: {self.sine_points}).")


# %% 0. 기초 (1) 텐서(tensor) ----------------------------------------------------------
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


# %% 0. 기초 (2) 자동 미분(autograd) ---------------------------------------------------
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


# %% 0. 기초 (3) 사인 곡선 맞추기: 같은 문제를 세 가지 방법으로 ----------------------------
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
    # 무작위 시작 계수 a, b, c, d. 이 절만의 생성기(generator)로 뽑아, 앞에서 난수를 얼마나 썼든
    # 같은 시드면 늘 같은 시작점입니다 (전역 난수에 기대면 앞 절을 고칠 때마다 숫자가 바뀜).
    start = torch.randn(4, generator=torch.Generator().manual_seed(config.seed))
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
    ax.set_xlabel("x (radians)")
    ax.set_ylabel("y")
    ax.set_title(f"Cubic fit of sin(x) after {steps} steps (lr={config.sine_lr:g})")
    ax.legend()
    viz.save_figure(fig, out_dir / "sine_fit.png", config.show)
    return {"sine_coefficients": manual.tolist(), "sine_least_squares": least_squares.tolist(),
            "sine_sse": sse(manual), "sine_least_squares_sse": sse(least_squares)}


# %% 0. 기초 (4) 회귀(regression): 집값 예측 -----------------------------------------------
def regression_metrics(prediction: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """RMSE = √(평균 (ŷ - y)²),  R² = 1 - Σ(ŷ - y)² / Σ(y - ȳ)²  (평균 예측이면 0, 완벽하면 1)."""
    rmse = float(np.sqrt(np.mean((prediction - target) ** 2)))
    r2 = float(1 - np.sum((prediction - target) ** 2) / np.sum((target - target.mean()) ** 2))
    return rmse, r2


def housing_regression(config: Config, device: torch.device, out_dir: Path) -> dict:
    print("\n[4] 회귀: 집값(또는 당뇨 진행도) 예측")
    torch.manual_seed(config.seed)  # 두 모델의 초기 가중치: 앞 절과 무관하게 시드만으로 정해지도록
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
            training.check_finite(loss, epoch=1, step=step)
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
    viz.save_figure(fig, out_dir / "regression.png", config.show)
    key = lambda name: name.split(" (")[0].replace(" ", "_").lower()
    return {"regression_data": table.name,
            **{f"regression_{key(n)}_rmse": rmse for n, (rmse, _) in results.items()},
            **{f"regression_{key(n)}_r2": r2 for n, (_, r2) in results.items()}}


def basics(config: Config, device: torch.device, out_dir: Path) -> dict:
    """0절 전체: 텐서 → autograd → 사인 곡선 → 회귀. 지표(사인·회귀)를 돌려줍니다.

    결정적이고(절마다 스스로 시드를 고정) 몇 초뿐이라, --resume 때 다시 해도 같은 숫자가 나옵니다.
    """
    tensor_basics(device)
    autograd_basics()
    metrics = sine_fit(config, out_dir)
    metrics.update(housing_regression(config, device, out_dir))
    return metrics


# %% 1. 데이터: Dataset 과 DataLoader ------------------------------------------------------
class DigitDataset(Dataset):
    """직접 쓴 Dataset: 표본이 몇 개인지(__len__)와 i번째 표본(__getitem__) 두 가지만 알려 줍니다.

    DataLoader 는 이 둘만으로 순서를 섞고(shuffle), 표본을 배치로 묶고(collate), 원하면 여러
    프로세스로 나눠 읽습니다. 실제 프로젝트에서는 __getitem__ 이 파일을 열어 이미지를 읽고
    변환(augmentation)하는 자리입니다. 여기서는 이미 메모리에 있는 텐서에서 한 장을 꺼냅니다.
    images: (N, 1, 28, 28) 정규화된 float32, labels: (N,) int64
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if len(images) != len(labels):
            raise ValueError(f"이미지 {len(images)}장과 정답 {len(labels)}개의 수가 다릅니다.")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]  # (1, 28, 28), () — DataLoader 가 (B, ...) 로 쌓음


def make_loaders(data, config: Config, loader_generator: torch.Generator):
    """학습 분할에서 검증 분할을 떼어 내고(random_split), 세 분할의 DataLoader 를 만듭니다.

    - 검증 분할: best.pt 고르기와 조기 종료에만 씁니다. 시험 분할은 마지막에 한 번만 씁니다
      (시험 점수로 고르면 그 점수가 실제보다 낙관적으로 부풀려집니다).
    - 나누는 순서는 이 함수만의 생성기로 정해, 앞에서 전역 난수를 얼마나 썼든 늘 같습니다.
    - shuffle=True 인 학습 DataLoader 는 epoch 마다 loader_generator 에서 새 순서를 뽑습니다.
      그래서 이 생성기의 상태가 '다음 epoch 에 어떤 순서로 볼지'를 정합니다. --resume 이 끊지 않은
      학습과 같은 숫자를 내려면 모델·최적화기뿐 아니라 이 생성기의 상태도 체크포인트에 저장하고
      되살려야 합니다 (make_checkpoint/resume_or_start 의 generators=[...]). 저장하지 않으면
      이어 한 epoch 은 처음 epoch 과 같은 순서(새로 시드한 생성기)로 섞여 숫자가 달라집니다.
    - DataLoader 작업자(num_workers)는 0: 데이터가 이미 메모리에 있어 프로세스를 띄우는 비용이 더
      크고, Windows·노트북에서도 그대로 돕니다.
    """
    full_train = DigitDataset(data.x_train, data.y_train)
    n_val = max(1, int(len(full_train) * config.val_fraction))
    train_set, val_set = random_split(full_train, [len(full_train) - n_val, n_val],
                                      generator=torch.Generator().manual_seed(config.seed))
    test_set = DigitDataset(data.x_test, data.y_test)
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                              generator=loader_generator)
    val_loader = DataLoader(val_set, batch_size=EVAL_BATCH_SIZE)  # 평가는 순서가 상관없어 섞지 않음
    test_loader = DataLoader(test_set, batch_size=EVAL_BATCH_SIZE)
    return train_loader, val_loader, test_loader


def explain_batches(n_train: int, batch_size: int) -> None:
    """배치·반복·에폭: 강의 예시(1,000개, 배치 100 → 에폭당 10번)와 지금 데이터."""
    print(f"  강의 예시: 샘플 1,000개, 배치 100 → 에폭당 반복(iteration) {math.ceil(1000 / 100)}번")
    print(f"  지금 데이터: 샘플 {n_train:,}개, 배치 {batch_size} → 에폭당 반복 "
          f"{math.ceil(n_train / batch_size)}번 (마지막 배치는 {n_train % batch_size or batch_size}개)")


# %% 2. 모델: 784-64-10 다층 퍼셉트론(MLP) -------------------------------------------------
def build_model(hidden_size: int, num_classes: int = 10) -> nn.Sequential:
    """강의의 784-64-10 구조. 28x28 이미지를 784개 숫자로 펴서(flatten) 넣습니다.

    체크포인트의 model_args 가 곧 이 함수의 인자라, --predict 는 이것만으로 같은 모델을 다시 만듭니다.
    """
    return nn.Sequential(
        nn.Flatten(),  # (B, 1, 28, 28) → (B, 784)
        nn.Linear(IMAGE_PIXELS, hidden_size),  # (B, hidden)
        nn.ReLU(),
        nn.Linear(hidden_size, num_classes),  # (B, K) 로짓(logit): softmax 는 손실 함수 안에서
    )


# %% 3. 학습 -------------------------------------------------------------------------------
def train_one_epoch(model, loader, optimizer, device, epoch: int, max_batches: int | None) -> float:
    """한 에폭: 배치마다 zero_grad → forward → loss → backward → step. 평균 학습 손실을 돌려줍니다."""
    model.train()
    batches = itertools.islice(loader, max_batches)  # --smoke: 배치 하나만 (None 이면 전부)
    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    loss_sum = torch.zeros((), device=device)  # .item() 은 GPU 를 기다리므로 합만 모았다가 끝에 한 번
    seen = 0
    for step, (inputs, targets) in enumerate(training.progress(batches, desc=f"epoch {epoch}", total=total)):
        inputs, targets = inputs.to(device), targets.to(device)  # 데이터는 CPU, 배치만 장치로
        logits = model(inputs)  # (B, K)
        # 교차 엔트로피(cross entropy) = -log softmax(logit)[정답]. softmax 와 log 를 함께 계산해 안정적.
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad()  # .grad 는 backward 마다 더해지므로(누적) 배치마다 비움
        loss.backward()
        optimizer.step()
        training.check_finite(loss, epoch, step)
        loss_sum += loss.detach() * len(targets)
        seen += len(targets)
    return (loss_sum / seen).item()


def early_stop(history: training.History, patience: int, best: float, epoch: int) -> bool:
    """조기 종료(early stopping): 검증 정확도가 patience epoch 동안 최고 기록을 넘지 못했으면 알리고 True.

    기록(history)만으로 판단하므로 --resume 으로 이어 한 뒤에도 끊지 않은 학습과 같은 곳에서 멈춥니다.
    """
    if history.epochs_since_best("val_accuracy", "max") < patience:
        return False
    print(f"  조기 종료: {patience} epoch 동안 검증 정확도가 최고 {best:.4f} 를 못 넘어 "
          f"epoch {epoch - 1} 에서 멈춥니다 (--patience).")
    return True


# %% 4. 평가 -------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model, loader, device, max_batches: int | None = None) -> dict:
    """평균 손실과 정확도 {"loss", "accuracy"}. 표본별 손실을 더한 뒤 N 으로 나눕니다.

    model.eval(): 이 모델엔 없지만 Dropout·BatchNorm 이 있으면 학습 때와 다르게(결정적으로)
    동작하게 하는 스위치라, 평가 전에 늘 켜는 습관을 들입니다. @torch.no_grad: 기울기를 기록하지
    않아 메모리와 시간이 덜 듭니다.
    """
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    for inputs, targets in itertools.islice(loader, max_batches):
        inputs, targets = inputs.to(device), targets.to(device)
        logits = model(inputs)
        loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()  # 합한 뒤 N 으로 나눔
        correct += (logits.argmax(1) == targets).sum().item()
        seen += len(targets)
    return {"loss": loss_sum / seen, "accuracy": correct / seen}


@torch.no_grad()
def predict_labels(model, loader, device, max_batches: int | None = None):
    """(정답, 예측) 두 (N,) 텐서: 혼동 행렬과 틀린 예 그림용."""
    model.eval()
    truth, predicted = [], []
    for inputs, targets in itertools.islice(loader, max_batches):
        truth.append(targets)
        predicted.append(model(inputs.to(device)).argmax(1).cpu())
    return torch.cat(truth), torch.cat(predicted)


def confusion_matrix(truth: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """혼동 행렬: 행 = 정답, 열 = 예측. (정답, 예측) 칸마다 1씩 더합니다 (K, K)."""
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    matrix.index_put_((truth, predicted), torch.ones_like(truth), accumulate=True)
    return matrix


def evaluate_best(config: Config, test_loader, data, device, max_batches):
    """best.pt 를 파일에서 새로 불러와(저장·불러오기 확인) 시험 분할로 한 번만 평가합니다.

    반환값: (best.pt 의 모델, 시험 지표 {"loss", "accuracy"}, best.pt 체크포인트 dict)
    """
    model, best_checkpoint = training.load_trained_model(Path(config.out_dir) / "best.pt", build_model,
                                                         config, device, purpose="test")
    test = evaluate(model, test_loader, device, max_batches)
    print(f"  시험(test): 손실 {test['loss']:.4f}, 정확도 {test['accuracy']:.4f} "
          f"(우연 수준 {1 / len(data.classes):.2f}), best.pt = epoch {best_checkpoint['epoch']} "
          f"(검증 정확도 {best_checkpoint['best']:.4f})")
    return model, test, best_checkpoint


def summarize(test: dict, best_checkpoint: dict, history: training.History, patience: int) -> dict:
    """실행 기록(metrics.json)에 남길 MLP 의 숫자: 시험 점수, best.pt 의 epoch, 조기 종료 여부."""
    return {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
            "best_val_accuracy": best_checkpoint["best"], "best_epoch": best_checkpoint["epoch"],
            "epochs_trained": history.rows[-1]["epoch"],
            "stopped_early": int(history.epochs_since_best("val_accuracy") >= patience)}


# %% 5. 시각화 -----------------------------------------------------------------------------
def plot_misclassified(images, truth, predicted, path: Path, show: bool, limit: int = 32) -> Path:
    """틀린 시험 이미지(최대 limit 장): 칸마다 '정답→예측'. 틀린 것이 없으면 처음 8장을 초록으로.

    칸의 높이를 너비보다 넉넉히 잡아(2.2 대 1.6 인치) 아랫줄 제목이 윗줄 그림에 겹치지 않게 합니다.
    """
    wrong = (truth != predicted).nonzero().flatten()
    shown = (wrong if len(wrong) else torch.arange(min(8, len(truth))))[:limit]
    columns = max(1, min(8, len(shown)))
    rows = math.ceil(len(shown) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns + 0.8, 2.2 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, shown.tolist()):
        pixels = images[index, 0] * vision.MNIST_STD + vision.MNIST_MEAN  # 정규화를 되돌려 0~1 로
        ax.imshow(pixels.numpy(), cmap="gray", vmin=0, vmax=1)
        ok = truth[index] == predicted[index]
        ax.set_title(f"true {truth[index]} / pred {predicted[index]}", fontsize=9,
                     color="green" if ok else "red")
    fig.suptitle(f"Misclassified test images ({len(wrong)} wrong of {len(truth)})")
    return viz.save_figure(fig, path, show)


def visualize_results(history_rows, model, test_loader, data, config: Config, device, max_batches) -> None:
    """학습 곡선, 시험 분할의 혼동 행렬, 틀린 시험 이미지."""
    out_dir = Path(config.out_dir)
    truth, predicted = predict_labels(model, test_loader, device, max_batches)
    viz.plot_history(history_rows, out_dir / "history.png", config.show,
                     title=f"784-{config.hidden_size}-10 MLP on {data.name}")
    viz.plot_confusion_matrix(confusion_matrix(truth, predicted, len(data.classes)).numpy(), data.classes,
                              out_dir / "confusion_matrix.png", config.show,
                              title=f"{data.name}: test confusion matrix")
    plot_misclassified(data.x_test, truth, predicted, out_dir / "misclassified.png", config.show)


# %% 6. 추론(inference): 내 이미지 예측 -----------------------------------------------------
LOW_CONFIDENCE = 0.5  # 가장 높은 확률이 이보다 낮으면 '모델이 본 적 없는 종류의 입력일 수 있음' 경고


def predict(config: Config, device: torch.device) -> dict:
    """best.pt 로 이미지 파일 하나를 분류합니다. 모델은 체크포인트의 model_args 만으로 다시 만듭니다.

    체크포인트를 먼저 읽습니다: best.pt 가 없거나 망가졌으면 입력과 상관없이 그 사실을 먼저 알립니다.
    """
    out_dir = Path(config.out_dir)
    model, checkpoint = training.load_trained_model(out_dir / "best.pt", build_model, config, device)
    classes = checkpoint["extra"]["classes"]
    # (1, 1, 28, 28): 없는 파일·폴더·이미지가 아닌 파일 → 한 줄 오류
    image = vision.read_image_as_mnist(config.predict)
    with torch.no_grad():
        probabilities = F.softmax(model(image.to(device)), dim=1)[0].cpu()  # (K,)
    top = probabilities.topk(3)
    best = int(top.indices[0])
    warning = None
    if top.values[0] < LOW_CONFIDENCE:
        warning = (f"가장 높은 확률이 {top.values[0]:.0%} 뿐입니다: 모델은 {checkpoint['extra']['data']} 로 "
                   "학습했으니 숫자 한 개가 가운데 있는 이미지인지 확인하세요.")
    result = {"input": str(config.predict), "prediction": classes[best],
              "probability": round(float(top.values[0]), 4),
              "top3": {classes[i]: round(p, 4) for p, i in zip(top.values.tolist(), top.indices.tolist())},
              "warning": warning}
    print(f"{config.predict}: 예측 {classes[best]} (확률 {top.values[0]:.1%}); 상위 3개: "
          + ", ".join(f"{classes[i]} {p:.1%}" for p, i in zip(top.values.tolist(), top.indices.tolist())))
    if warning:
        print(f"경고: {warning}")
    (out_dir / "prediction.json").write_text(json.dumps(result, ensure_ascii=False, indent=2),
                                             encoding="utf-8")
    viz.plot_prediction(image, probabilities, classes, out_dir / "predict.png", config.show,
                        mean=vision.MNIST_MEAN, std=vision.MNIST_STD)
    return result


# %% main: 목차 --------------------------------------------------------------------------
def main(config: Config) -> dict:
    started = time.perf_counter()
    device = pick_device(config.device)
    out_dir = Path(config.out_dir)
    if config.predict:
        return predict(config, device)

    # 1. 데이터를 먼저 읽어 둡니다: --data real 인데 MNIST 가 없으면 기초 절을 돌리기 전에 한 줄로 알림
    data = vision.load_mnist_like("mnist", config.data, config.data_dir, config.smoke, config.seed)
    metrics = basics(config, device, out_dir)  # 0. 텐서, autograd, 사인 곡선, 회귀

    print("\n[5] 손글씨 숫자 분류: 784-64-10 MLP")
    loader_generator = torch.Generator().manual_seed(config.seed)  # 학습 데이터를 섞는 순서 (저장 대상)
    train_loader, val_loader, test_loader = make_loaders(data, config, loader_generator)
    explain_batches(len(train_loader.dataset), config.batch_size)

    # 2. 모델과 최적화기
    torch.manual_seed(config.seed)  # 초기 가중치: 앞 절과 무관하게 시드만으로
    model_args = {"hidden_size": config.hidden_size, "num_classes": len(data.classes)}
    model = build_model(**model_args).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    parameters = sum(p.numel() for p in model.parameters())  # 784·64 + 64 + 64·10 + 10
    print(f"  장치(device): {device} | 데이터: {data.name} | 파라미터: {parameters:,}개")

    # 3. 학습: 검증 정확도가 가장 좋은 epoch 을 best.pt 로, 매 epoch 끝에 last.pt (이어하기용)
    epochs = min(config.epochs, 3) if config.smoke else config.epochs
    max_batches = 1 if config.smoke else None  # --smoke: 학습·평가 모두 배치 하나
    history = training.History(out_dir / "history.csv")
    state = {"model": model, "optimizer": optimizer}
    extra = {"data": data.name, "classes": data.classes}  # --predict 가 모델 말고 더 필요한 것
    checkpoint = lambda epoch, best: training.make_checkpoint(
        config, model_args, state, epoch, best, extra=extra, generators=[loader_generator], history=history)
    start_epoch, best = training.resume_or_start(config, checkpoint, state, generators=[loader_generator],
                                                 history=history, best=-math.inf)
    try:
        for epoch in range(start_epoch, epochs + 1):
            if early_stop(history, config.patience, best, epoch):  # 검증 정확도가 더 나아지지 않음
                break
            train_loss = train_one_epoch(model, train_loader, optimizer, device, epoch, max_batches)
            val = evaluate(model, val_loader, device, max_batches)
            history.log(epoch=epoch, train_loss=train_loss, **{f"val_{k}": v for k, v in val.items()})
            if val["accuracy"] > best:  # 클수록 좋음; 같으면 먼저 도달한 epoch 을 남김
                best = val["accuracy"]
                training.save_checkpoint(out_dir / "best.pt", checkpoint(epoch, best))
            training.save_checkpoint(out_dir / "last.pt", checkpoint(epoch, best))
    except KeyboardInterrupt:
        print("\n중단: --resume 을 붙여 다시 실행하면 마지막으로 끝난 epoch 다음부터 이어집니다")
        raise SystemExit(130) from None

    # 4. 평가: best.pt 를 파일에서 새로 불러와(저장·불러오기 확인) 시험 분할로 한 번만
    model, test, best_checkpoint = evaluate_best(config, test_loader, data, device, max_batches)
    metrics.update(summarize(test, best_checkpoint, history, config.patience))

    # 5. 시각화: 학습 곡선, 혼동 행렬, 틀린 예 — 그리고 실행 기록(metrics.json)
    visualize_results(history.rows, model, test_loader, data, config, device, max_batches)
    write_run_record(out_dir, script=config.chapter + ".py", config=config, data=data.name, device=device,
                     seconds=time.perf_counter() - started, parameters=parameters,
                     metrics=metrics, headline="test_accuracy")
    print(f"\n완료: {time.perf_counter() - started:.1f}초, 출력 폴더 {out_dir}")
    return metrics


if __name__ == "__main__":
    run(main, Config)
