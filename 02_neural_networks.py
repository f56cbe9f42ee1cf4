"""02장. 신경망을 잘 학습시키는 기술: 활성화 함수, 배치 정규화, 드롭아웃, 초기화, 최적화, 탐색

학습 목표
- 활성화 함수(activation function) 다섯 가지와 그 도함수를 직접 구현하고, autograd 가 구한
  기울기(gradient)와 닫힌 형태(closed form)의 도함수가 같음을 확인한다.
- 같은 시드로 조건 하나만 바꾼 짧은 학습을 여러 번 돌려 비교하는 법(통제된 실험)을 익힌다:
  활성화 함수, 배치 정규화(BatchNorm)·드롭아웃(Dropout), 가중치 초기화, 최적화 기법.
- `model.train()` / `model.eval()` 이 BatchNorm 과 Dropout 의 동작을 어떻게 바꾸는지 한 배치로 본다.
- 학습률 스케줄(OneCycleLR), 학습 세트에서 떼어 낸 검증 세트(validation split)로 조기 종료
  (early stopping), 학습률 x 은닉 크기 격자 탐색(grid search)으로 최종 모델을 만든다.
- 혼동 행렬(confusion matrix)과 scikit-learn 분류 보고서(classification report)로 평가한다.

핵심 개념
- 기울기 소실(vanishing gradient): Sigmoid 의 도함수는 최대 0.25 라 층을 지날수록 기울기가 줄어든다.
- 초기화의 분산: 층마다 출력의 분산이 유지되도록 Kaiming(ReLU)·Xavier(Tanh) 초기화를 쓴다.
- 모멘텀(momentum)과 Adam: 기울기의 이동 평균으로 더 빠르고 안정적으로 내려간다.
- 시험 세트(test set)는 마지막 평가에만: 선택(조기 종료, 격자 탐색)은 모두 검증 세트로 한다.

실행 방법
    python 02_neural_networks.py                    # 기본: Fashion-MNIST, 없으면 sklearn digits 로 대체
    python 02_neural_networks.py --data offline     # 네트워크 없이 sklearn digits (기본 측정 조건)
    python 02_neural_networks.py --smoke            # 모든 단계를 배치 하나씩 (테스트용, 몇 초)
    python 02_neural_networks.py --data real --data-dir data   # data/FashionMNIST/raw/ 또는 내려받기
    python 02_neural_networks.py --no-studies       # 비교 실험(A~E) 없이 최종 모델만 학습
    python 02_neural_networks.py --resume           # Ctrl+C 로 멈춘 학습을 last.pt 에서 이어서
    python 02_neural_networks.py --predict shirt.png  # best.pt 로 한 장 분류 (모델 플래그 반복 불필요)
    GPU: python 02_neural_networks.py --device cuda --data real --study-samples 54000 --study-epochs 15
    (데이터를 통째로 GPU 에 올려 두므로 GPU 에서는 비교 실험도 전체 학습 세트로 돌릴 만합니다.
     MLP 는 작아서 혼합 정밀도(AMP) 이득이 거의 없어 --amp 는 두지 않았습니다.)

기대 결과 (아래 블록은 benchmarks/run_all.py 가 씀; 그 밖의 숫자는 조건을 밝힌 따로 잰 값)
    [results] benchmarks/run_all.py 가 results.json 에서 옮겨 씀: 중앙값 (최소–최대)
    - `--data offline` · sklearn digits (offline fallback) · cpu · seeds 42, 43, 44
      test_accuracy 0.9806 (0.975–0.9861) · wall 15.4 (14.7–15.8) s · peak 1.00 GB
    - 기계: Intel(R) Xeon(R) Processor, 2 cores (2 torch threads), GPU: none, torch 2.14.1+cu130
    [/results]
    - 스레드 수가 다르면 덧셈 순서가 달라 숫자가 조금 다릅니다 (같은 시드, OMP_NUM_THREADS=1 로 잰 값과
      기본 2스레드 값이 소수 셋째 자리에서 다를 수 있음).
    - Fashion-MNIST(real) 정확도는 측정하지 않았습니다 (이 컴퓨터에 파일도 네트워크도 없음).
      같은 크기(학습 60,000장)의 실행 시간은 표준 배치에 둔 MNIST 파일로 대신 재어 약 4분,
      최대 메모리 1.4 GB 였습니다 (다른 학습이 함께 돌던 기계에서 OMP_NUM_THREADS=1, 계약 개편 전).
"""

# %%
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import classification_report, confusion_matrix

from utils import training  # 학습 뼈대: training.resume_or_start, .save_checkpoint, .History, …
from utils import visualization as viz  # 그림은 이 장의 주제가 아니라 한 모듈에 모아 둠: viz.plot_curves(...)
from utils.data import vision  # Fashion-MNIST 불러오기·정규화 상수·이미지 읽기: vision.load_mnist_like(...)
from utils.runtime import RunConfig, pick_device, run, write_run_record

# 모양(shape) 글자: B=배치, D=입력 픽셀 수(28*28=784), H=은닉층 너비, K=클래스 수(10)
IMAGE_PIXELS = 28 * 28  # D: MLP 는 이미지를 한 줄로 펴서 받습니다
EVAL_BATCH = 1000  # 평가 때 한 번에 넣는 표본 수 (기울기를 저장하지 않아 크게 잡아도 됨)


def _float_list(text: str) -> list[float]:
    return [float(item) for item in text.split(",") if item.strip()]


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "02_neural_networks"  # 출력 폴더 outputs/<chapter>/, 체크포인트 주인 표시
    # 이어 할 때 바꿔도 되는 플래그에서 --epochs 를 뺍니다: 스케줄러의 전체 걸음 수(total_steps)가
    # --epochs 로 정해지므로, 바꿔 이어 하면 계획과 맞지 않습니다 (OneCycleLR 은 "Tried to step ... times").
    resume_free: ClassVar[frozenset[str]] = RunConfig.resume_free - {"epochs"}
    epochs: int = 30  # 최종 학습의 최대 epoch (조기 종료가 더 일찍 멈출 수 있음)
    batch_size: int = 64  # 미니배치 크기 (2 이상: BatchNorm 이 배치 통계를 씀). 작을수록 잡음 많은 기울기
    lr: float = 3e-3  # 최종 학습 Adam 의 최고 학습률 (OneCycleLR 의 max_lr)
    hidden_size: int = 256  # 최종 MLP 의 은닉층 너비 (2개 층)
    dropout: float = 0.2  # 최종 MLP 의 드롭아웃 확률 (은닉 뉴런을 지울 확률)
    schedule: Literal["onecycle", "cosine", "none"] = "onecycle"  # 최종 학습의 학습률 스케줄
    val_fraction: float = 0.1  # 학습 세트에서 떼어 낼 검증 세트 비율 (조기 종료·격자 탐색용)
    patience: int = 5  # 조기 종료: 검증 손실이 이만큼 epoch 동안 안 내려가면 멈춤
    studies: bool = True  # 비교 실험(활성화·BN/드롭아웃·초기화·최적화·격자)을 돌릴지
    study_samples: int = 5000  # 비교 실험에 쓰는 학습 표본 수 (시간 예산; digits 는 전체가 이보다 작음)
    study_epochs: int = 8  # 비교 실험 한 번의 epoch 수 (짧은 예산으로 '경향'만 봄)
    grid_lrs: str = "3e-4,1e-3,3e-3,1e-2"  # 격자 탐색의 Adam 학습률들 (쉼표로 구분)
    grid_hidden_sizes: str = "32,128,512"  # 격자 탐색의 은닉층 너비들 (쉼표로 구분)
    predict: str = ""  # 이미지 파일 경로: 학습된 best.pt 로 한 장 분류하고 끝냄

    def __post_init__(self):
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--dropout 은 0 이상 1 미만이어야 합니다 (받은 값: {self.dropout}).")
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"--val-fraction 은 0 과 0.5 사이여야 합니다 (받은 값: {self.val_fraction}).")
        if self.batch_size == 1:
            raise ValueError("--batch-size 는 2 이상이어야 합니다 (BatchNorm 은 배치의 평균·분산을 씁니다).")
        for name in ("hidden_size", "patience", "study_samples", "study_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} 는 1 이상이어야 합니다 "
                                 f"(받은 값: {getattr(self, name)}).")
        try:
            lrs, sizes = _float_list(self.grid_lrs), _float_list(self.grid_hidden_sizes)
        except ValueError:
            raise ValueError("--grid-lrs, --grid-hidden-sizes 는 '1e-3,3e-3' 처럼 쉼표로 구분한 숫자여야 "
                             "합니다.") from None
        if not lrs or not sizes or not all(map(math.isfinite, lrs)) or min(lrs) <= 0 \
                or min(sizes) < 1 or any(size != int(size) for size in sizes):
            raise ValueError("--grid-lrs 는 양수, --grid-hidden-sizes 는 1 이상의 정수 목록이어야 합니다.")


# %% [1. 데이터]
@dataclass
class Splits:
    """학습/검증/시험 텐서. x: (N, 1, 28, 28) 정규화된 float32, y: (N,) int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    name: str


def carve_validation(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int):
    """학습 세트에서 검증 세트를 떼어 냅니다. 시험 세트는 마지막 평가 전까지 보지 않습니다.

    조기 종료와 격자 탐색은 '선택'이므로, 시험 세트로 고르면 시험 점수가 낙관적으로 부풀려
    집니다. 나누는 순서는 전용 생성기(generator)로 정해, 전역 난수 상태와 무관하게 늘 같습니다.
    """
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(len(y) * fraction))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def load_data(config: Config, device: torch.device) -> Splits:
    """Fashion-MNIST(torchvision 표준 배치) 또는 오프라인 대체 sklearn digits → 장치 위 텐서."""
    images = vision.load_mnist_like("fashion", config.data, config.data_dir, config.smoke, config.seed)
    x_train, y_train, x_val, y_val = carve_validation(images.x_train, images.y_train,
                                                      config.val_fraction, config.seed)
    # 데이터가 작아서(Fashion-MNIST 전체 ≈ 220 MB) 통째로 장치에 올려 두고 인덱스로 배치를 뽑습니다.
    tensors = [t.to(device) for t in (x_train, y_train, x_val, y_val, images.x_test, images.y_test)]
    print(f"{images.name}: 학습 {len(y_train)}장, 검증 {len(y_val)}장 (학습 세트에서 떼어 냄), "
          f"시험 {len(images.y_test)}장, 클래스 {len(images.classes)}개")
    return Splits(*tensors, classes=images.classes, name=images.name)


# %% [2. 모델 (1) 활성화 함수와 그 도함수]
# 직접 쓴 함수 f(x) 와 손으로 미분한 도함수 f'(x). 아래에서 PyTorch 모듈·autograd 와 비교합니다.
LEAKY_SLOPE = 0.01  # nn.LeakyReLU 의 기본 음수 기울기


def relu(x):  # max(0, x)
    return torch.where(x > 0, x, torch.zeros_like(x))


def relu_grad(x):  # 1 (x > 0), 0 (x ≤ 0). x=0 에서는 PyTorch 처럼 0 을 씀
    return (x > 0).to(x.dtype)


def sigmoid(x):  # σ(x) = 1 / (1 + e^(-x))
    return 1 / (1 + torch.exp(-x))


def sigmoid_grad(x):  # σ'(x) = σ(x)(1 - σ(x)), 최댓값 0.25 (x=0) → 층마다 기울기가 1/4 이하로
    s = sigmoid(x)
    return s * (1 - s)


def tanh(x):  # tanh(x) = 2σ(2x) - 1 (e^x 를 직접 쓰면 큰 x 에서 넘침(overflow))
    return 2 * sigmoid(2 * x) - 1


def tanh_grad(x):  # 1 - tanh²(x), 최댓값 1 이지만 |x| 가 크면 0 으로 포화(saturation)
    return 1 - tanh(x) ** 2


def leaky_relu(x):  # x (x > 0), αx (x ≤ 0): 음수 쪽에도 작은 기울기를 남겨 '죽은 뉴런'을 막음
    return torch.where(x > 0, x, LEAKY_SLOPE * x)


def leaky_relu_grad(x):
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, LEAKY_SLOPE))


def normal_cdf(x):  # Φ(x): 표준정규분포의 누적분포함수
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def normal_pdf(x):  # φ(x) = e^(-x²/2) / √(2π)
    return torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)


def gelu(x):  # GELU(x) = x·Φ(x): 입력을 '정규분포에서 x 보다 작을 확률'만큼 통과 (Transformer 표준)
    return x * normal_cdf(x)


def gelu_grad(x):  # 곱의 미분: Φ(x) + x·φ(x)
    return normal_cdf(x) + x * normal_pdf(x)


# 이름 → (직접 쓴 f, 닫힌 형태 f', PyTorch 모듈 클래스)
ACTIVATIONS = {
    "ReLU": (relu, relu_grad, nn.ReLU),
    "Sigmoid": (sigmoid, sigmoid_grad, nn.Sigmoid),
    "Tanh": (tanh, tanh_grad, nn.Tanh),
    "LeakyReLU": (leaky_relu, leaky_relu_grad, nn.LeakyReLU),
    "GELU": (gelu, gelu_grad, nn.GELU),
}
ACTIVATION_MODULES = tuple(module for _, _, module in ACTIVATIONS.values())


def autograd_derivative(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """autograd 로 f'(x) 구하기: 원소별 함수라 sum 의 기울기가 곧 각 점의 도함수입니다."""
    x = x.clone().requires_grad_(True)
    module(x).sum().backward()
    return x.grad


def check_activations(x: torch.Tensor) -> pd.DataFrame:
    """직접 쓴 f 가 PyTorch 모듈과, 닫힌 형태 f' 이 autograd 와 같은지 확인하고 요약표를 돌려줍니다."""
    rows = []
    for name, (function, derivative, module_cls) in ACTIVATIONS.items():
        module = module_cls()
        assert torch.allclose(function(x), module(x), atol=1e-6), name
        assert torch.allclose(derivative(x), autograd_derivative(module, x), atol=1e-6), name
        rows.append({"activation": name, "max f'(x)": derivative(x).max().item(),
                     "f'(-4)": derivative(torch.tensor(-4.0)).item(),
                     "f'(4)": derivative(torch.tensor(4.0)).item()})
    return pd.DataFrame(rows).set_index("activation")


def plot_activations(x: torch.Tensor, path: Path, show: bool) -> Path:
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(11, 4))
    for name, (function, derivative, _) in ACTIVATIONS.items():
        ax_f.plot(x, function(x), label=name)
        ax_d.plot(x, derivative(x), label=name)
    for ax, title in ((ax_f, "activation f(x)"), (ax_d, "derivative f'(x)")):
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
        ax.legend()
    return viz.save_figure(fig, path, show)


def activation_lesson(out_dir: Path, show: bool) -> None:
    """다섯 활성화 함수: 직접 쓴 f = PyTorch 모듈, 닫힌 형태 f' = autograd 를 확인하고 표와 그림으로."""
    x_axis = torch.linspace(-4, 4, 801)
    print(check_activations(x_axis).round(4).to_string())
    print("직접 쓴 f = PyTorch 모듈, 닫힌 형태 f' = autograd ✓")
    plot_activations(x_axis, out_dir / "activations.png", show)


# %% [2. 모델 (2) MLP, 배치 정규화와 드롭아웃]
def build_model(hidden_size: int, depth: int = 2, activation: str = "ReLU", batch_norm: bool = False,
                dropout: float = 0.0, num_classes: int = 10) -> nn.Sequential:
    """Flatten → [Linear → (BatchNorm) → 활성화 → (Dropout)] x depth → Linear.

    BatchNorm 은 활성화 앞에 둡니다(원 논문의 위치). 그 뒤의 β(bias) 가 편향 역할을 하므로
    앞 Linear 의 편향은 빼도 됩니다. Dropout 은 활성화 뒤, 다음 층으로 가는 신호를 지웁니다.
    비교 실험의 모델도 최종 모델도 이 함수로 만들고, 최종 모델의 인자(model_args)는 체크포인트에
    저장되어 --predict 가 그것만으로 같은 모델을 다시 만듭니다.
    """
    layers: list[nn.Module] = [nn.Flatten()]  # (B, 1, 28, 28) → (B, D)
    width = IMAGE_PIXELS
    for _ in range(depth):
        layers.append(nn.Linear(width, hidden_size, bias=not batch_norm))  # (B, H)
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_size))
        layers.append(ACTIVATIONS[activation][2]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden_size
    layers.append(nn.Linear(width, num_classes))  # (B, K) 로짓(logit): softmax 는 손실 함수 안에
    return nn.Sequential(*layers)


def batch_norm_from_scratch(x: torch.Tensor, bn: nn.BatchNorm1d, training: bool) -> torch.Tensor:
    """y = γ · (x - μ) / √(σ² + ε) + β.  x: (B, H).

    학습(train) 모드: μ, σ² 는 지금 배치의 평균과 (편향) 분산 → 출력이 배치 구성에 따라 달라짐.
    평가(eval) 모드 : 학습 중 모아 둔 running_mean, running_var → 표본 하나만 넣어도 같은 결과.
    """
    if training:
        mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
    else:
        mean, var = bn.running_mean, bn.running_var
    return bn.weight * (x - mean) / torch.sqrt(var + bn.eps) + bn.bias


def check_batch_norm(x: torch.Tensor) -> None:
    """직접 쓴 BatchNorm 이 nn.BatchNorm1d 와 두 모드 모두에서 같은지, running 통계 갱신까지."""
    bn = nn.BatchNorm1d(x.shape[1])
    with torch.no_grad():  # γ=1, β=0 기본값이면 확인이 약하므로 임의의 값으로
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    bn.train()
    assert torch.allclose(bn(x), batch_norm_from_scratch(x, bn, training=True), atol=1e-5)
    # running 통계: 새 값 = (1 - momentum)·이전 값 + momentum·배치 값 (분산은 불편(unbiased) 분산)
    assert torch.allclose(bn.running_mean, bn.momentum * x.mean(dim=0), atol=1e-6)
    assert torch.allclose(bn.running_var, (1 - bn.momentum) + bn.momentum * x.var(dim=0), atol=1e-5)
    bn.eval()
    assert torch.allclose(bn(x), batch_norm_from_scratch(x, bn, training=False), atol=1e-5)


def check_dropout(x: torch.Tensor, p: float) -> float:
    """역 드롭아웃(inverted dropout): 남긴 값은 1/(1-p) 배 → 기댓값이 그대로라 eval 에선 손댈 것이 없음.

    돌려주는 값: 실제로 지워진 비율 (≈ p).
    """
    dropout = nn.Dropout(p)
    dropout.train()
    out = dropout(x)
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / (1 - p))
    dropout.eval()
    assert torch.equal(dropout(x), x)  # eval 모드는 항등 함수
    return 1 - kept.float().mean().item()


@torch.no_grad()
def train_vs_eval_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """같은 배치를 train 모드로 두 번, eval 모드로 두 번 넣어 출력 차이를 잽니다."""
    model.train()  # 주의: train 모드 forward 는 BatchNorm 의 running 통계도 바꿉니다
    train_a, train_b = model(x), model(x)
    model.eval()
    eval_a, eval_b = model(x), model(x)
    single = model(x[:1])  # eval 모드면 배치에서 하나만 넣어도 같은 답
    return {"train vs train": (train_a - train_b).abs().max().item(),
            "eval vs eval": (eval_a - eval_b).abs().max().item(),
            "train vs eval": (train_a - eval_a).abs().max().item(),
            "eval: batch vs single": (eval_a[:1] - single).abs().max().item()}


# %% [2. 모델 (3) 가중치 초기화]
# 가중치 초기화(weight initialization): 표준편차를 어떻게 정하느냐가 핵심입니다.
#   fan_in = 입력 수, fan_out = 출력 수. 층 출력의 분산 ≈ fan_in · Var(w) · Var(입력).
#   - Xavier(Glorot): Var(w) = 2 / (fan_in + fan_out)  → Tanh·Sigmoid 처럼 0 근처가 선형인 함수용
#   - Kaiming(He)   : Var(w) = 2 / fan_in              → ReLU 가 절반을 0 으로 만드는 것을 2 로 보상
#   PyTorch 의 nn.Linear 기본값은 U(-1/√fan_in, 1/√fan_in) (Var = 1/(3·fan_in)) 입니다.
INIT_SCHEMES = ("zeros", "normal(0, 0.01)", "normal(0, 1)", "xavier", "kaiming")


def init_std(scheme: str, fan_in: int, fan_out: int) -> float:
    return {"zeros": 0.0, "normal(0, 0.01)": 0.01, "normal(0, 1)": 1.0,
            "xavier": math.sqrt(2 / (fan_in + fan_out)), "kaiming": math.sqrt(2 / fan_in)}[scheme]


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str) -> nn.Module:
    """모든 Linear 층의 가중치를 scheme 대로 N(0, std²) 에서 뽑고 편향은 0 으로."""
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            fan_out, fan_in = layer.weight.shape  # 가중치 모양 (출력, 입력)
            layer.weight.normal_(0.0, init_std(scheme, fan_in, fan_out))
            if layer.bias is not None:
                layer.bias.zero_()
    return model


def check_init_against_library(seed: int) -> None:
    """직접 계산한 Kaiming·Xavier 표준편차가 nn.init 의 한 줄과 같은 가중치를 만드는지 (같은 시드)."""
    fan_out, fan_in = 256, IMAGE_PIXELS
    for scheme, library_init in (("kaiming", lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu")),
                                 ("xavier", nn.init.xavier_normal_)):
        torch.manual_seed(seed)
        ours = torch.empty(fan_out, fan_in).normal_(0.0, init_std(scheme, fan_in, fan_out))
        torch.manual_seed(seed)
        theirs = library_init(torch.empty(fan_out, fan_in))
        assert torch.allclose(ours, theirs), scheme


@torch.no_grad()
def activation_stds(model: nn.Sequential, x: torch.Tensor) -> list[float]:
    """층을 하나씩 지나며 활성화 출력의 표준편차를 잽니다. 0 으로 줄면 신호 소실, 커지면 폭주."""
    stds = []
    for layer in model:
        x = layer(x)
        if isinstance(layer, ACTIVATION_MODULES):
            stds.append(x.std().item())
    return stds


# %% [2. 모델 (4) 최종 MLP]
def final_model(config: Config, num_classes: int, device: torch.device) -> tuple[nn.Sequential, dict]:
    """최종 MLP: 은닉층 2개 + BatchNorm + Dropout + Kaiming 초기화. (모델, model_args) 를 돌려줍니다.

    초기 가중치는 시드만으로 정해집니다. model_args 는 체크포인트에 저장되어, --predict 와 시험 평가가
    build_model(**model_args) 로 같은 모델을 다시 만듭니다.
    """
    torch.manual_seed(config.seed)  # 초기 가중치: 시드만으로 정해짐
    model_args = {"hidden_size": config.hidden_size, "depth": 2, "batch_norm": True,
                  "dropout": config.dropout, "num_classes": num_classes}
    model = init_weights(build_model(**model_args), "kaiming").to(device)
    print(f"장치(device): {device} | BatchNorm + Dropout + Kaiming 초기화 MLP, "
          f"파라미터 {sum(p.numel() for p in model.parameters()):,}개")
    return model, model_args


# %% [3. 학습 (1) 학습 단계]
def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                    y: torch.Tensor, batch_size: int, generator: torch.Generator, *, scheduler=None,
                    epoch: int = 1, max_batches: int | None = None, allow_divergence: bool = False,
                    desc: str = "", step_losses: list | None = None) -> float:
    """한 epoch 학습. 평균 학습 손실을 돌려줍니다 (비교 실험에서 발산하면 nan).

    데이터가 통째로 텐서에 있어 DataLoader 대신 인덱스를 섞어 잘라 씁니다 (01장의 DataLoader 와
    같은 일을 작업자 없이, 더 빠르게). 섞는 순서는 전용 생성기(generator)에서 뽑습니다: 그 상태가
    체크포인트에 저장되므로(generators=[...]) --resume 한 epoch 도 끊지 않은 학습과 같은 순서를 봅니다.
    allow_divergence=True (비교 실험): 손실이 nan/inf 가 되면 멈추고 nan 을 기록합니다.
    step_losses 를 주면 배치마다의 손실을 덧붙입니다 (최적화 기법 비교 그림용).
    """
    model.train()  # Dropout 켜기, BatchNorm 은 배치 통계로 정규화하고 running 통계를 갱신
    order = torch.randperm(len(y), generator=generator)
    batches = [order[start:start + batch_size] for start in range(0, len(y), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:  # train 모드 BatchNorm 은 표본 2개 이상이 필요
        batches.pop()
    batches = batches[:max_batches]
    losses = []
    for step, index in enumerate(training.progress(batches, desc=desc or f"epoch {epoch}"), start=1):
        index = index.to(x.device)
        logits = model(x[index])  # (B, K)
        loss = F.cross_entropy(logits, y[index])  # log-softmax + 음의 로그 우도, 배치 평균
        if allow_divergence and not torch.isfinite(loss):
            losses.append(torch.tensor(math.nan))
            break
        training.check_finite(loss, epoch, step)
        optimizer.zero_grad()  # .grad 는 backward 마다 더해지므로(accumulate) 배치마다 비움
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()  # OneCycleLR·코사인은 배치마다 학습률을 바꿈
        losses.append(loss.detach().cpu())  # .item() 은 GPU 를 기다리게 하므로 epoch 끝에 한 번에
    losses = torch.stack(losses).tolist()
    if step_losses is not None:
        step_losses += losses
    finite = [value for value in losses if math.isfinite(value)]  # 발산한 걸음 전까지의 (아주 큰) 손실만
    return sum(finite) / len(finite) if finite and math.isfinite(losses[-1]) else math.nan


def steps_per_epoch(samples: int, batch_size: int, max_batches: int | None = None) -> int:
    """train_one_epoch 이 한 epoch 에 밟는 걸음 수: 스케줄러의 전체 걸음 수를 정할 때 씁니다."""
    steps = math.ceil(samples / batch_size)
    if steps > 1 and samples % batch_size == 1:  # 표본 하나짜리 마지막 배치는 버림 (BatchNorm)
        steps -= 1
    return steps if max_batches is None else min(steps, max_batches)


def early_stop(history: training.History, patience: int, best: float, epoch: int) -> bool:
    """조기 종료(early stopping): 검증 손실이 patience epoch 동안 최저 기록보다 내려가지 않았으면 알리고 True.

    기록(history)만으로 판단하므로 --resume 으로 이어 한 뒤에도 끊지 않은 학습과 같은 곳에서 멈춥니다.
    """
    if history.epochs_since_best("val_loss", "min") < patience:
        return False
    print(f"조기 종료(early stopping): {patience} epoch 동안 검증 손실이 최저 "
          f"{best:.4f} 보다 내려가지 않아 epoch {epoch - 1} 에서 멈춥니다.")
    return True


# %% [3. 학습 (2) 최적화 기법의 갱신식: SGD, 모멘텀, Adam]
def sgd_momentum_step(param, grad, velocity, lr: float, momentum: float):
    """PyTorch 식 모멘텀: v ← μ·v + g,  θ ← θ - lr·v (v 는 기울기의 지수 가중 합)."""
    velocity = momentum * velocity + grad
    return param - lr * velocity, velocity


def adam_step(param, grad, m, v, t: int, lr: float, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam: m ← β1·m + (1-β1)·g,  v ← β2·v + (1-β2)·g²,
    m̂ = m/(1-β1^t), v̂ = v/(1-β2^t) (0 에서 시작한 평균의 편향 보정),  θ ← θ - lr·m̂/(√v̂ + ε)."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return param - lr * m_hat / (torch.sqrt(v_hat) + eps), m, v


def check_optimizers_from_scratch(steps: int = 5) -> None:
    """직접 쓴 갱신식과 torch.optim.SGD(momentum)·Adam 을 같은 2차 손실에서 몇 걸음 비교."""
    start, target = torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.5, 0.5, 0.5])

    def grad_at(theta):  # 손실 Σ(θ - target)² 의 기울기 2(θ - target)
        return 2 * (theta - target)

    for name, make_optimizer in (("momentum", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
                                 ("adam", lambda p: torch.optim.Adam(p, lr=0.1))):
        param = start.clone().requires_grad_(True)
        optimizer = make_optimizer([param])
        ours, state_a, state_b = start.clone(), torch.zeros(3), torch.zeros(3)
        for t in range(1, steps + 1):
            optimizer.zero_grad()
            ((param - target) ** 2).sum().backward()
            optimizer.step()
            if name == "momentum":
                ours, state_a = sgd_momentum_step(ours, grad_at(ours), state_a, lr=0.1, momentum=0.9)
            else:
                ours, state_a, state_b = adam_step(ours, grad_at(ours), state_a, state_b, t, lr=0.1)
            assert torch.allclose(ours, param.detach(), atol=1e-6), name


# %% [3. 학습 (3) 학습률 스케줄]
def cosine_lr(step: int, total_steps: int, lr_max: float, lr_min: float = 0.0) -> float:
    """코사인 감쇠(cosine annealing): lr_min + (lr_max - lr_min)·(1 + cos(π·step/T))/2."""
    return lr_min + (lr_max - lr_min) * (1 + math.cos(math.pi * step / total_steps)) / 2


def make_scheduler(kind: str, optimizer: torch.optim.Optimizer, lr: float, total_steps: int):
    """배치마다 step() 하는 스케줄러. OneCycleLR: 처음 30% 동안 lr/25 → lr 로 올린 뒤(워밍업,
    warm-up) 코사인으로 lr/25/10⁴ 까지 내립니다. 큰 학습률로 빨리 탐색하고 작게 마무리."""
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return None


def lr_trace(kind: str, lr: float, total_steps: int) -> list[float]:
    """스케줄러를 빈 파라미터로 total_steps 번 돌려 학습률 변화를 기록합니다."""
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(kind, optimizer, lr, total_steps)
    trace = []
    for _ in range(total_steps):
        trace.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # 기울기가 없어 아무것도 바꾸지 않음 (스케줄러 경고를 피하려는 순서)
        if scheduler is not None:
            scheduler.step()
    return trace


def check_cosine_schedule(lr: float = 0.1, total_steps: int = 50) -> None:
    """직접 쓴 코사인 식이 CosineAnnealingLR 과 같은지."""
    ours = torch.tensor([cosine_lr(step, total_steps, lr) for step in range(total_steps)])
    theirs = torch.tensor(lr_trace("cosine", lr, total_steps))
    assert torch.allclose(ours, theirs, atol=1e-7)


def final_scheduler(config: Config, optimizer: torch.optim.Optimizer, total_steps: int, out_dir: Path):
    """최종 학습의 스케줄러(--schedule)를 만들어 돌려줍니다 (none 이면 None).

    그 전에 세 스케줄의 학습률 곡선을 한 그림(lr_schedule.png)에 그리고, 직접 쓴 코사인 식 =
    CosineAnnealingLR 을 확인합니다.
    """
    scheduler = make_scheduler(config.schedule, optimizer, config.lr, total_steps)
    check_cosine_schedule()
    viz.plot_curves({kind: lr_trace(kind, config.lr, total_steps) for kind in ("onecycle", "cosine", "none")},
                    out_dir / "lr_schedule.png", show=config.show, xlabel="step (mini-batch)",
                    ylabel="learning rate", title=f"Learning-rate schedules (used: {config.schedule})")
    print(f"학습률 스케줄: {config.schedule}, 최고 {config.lr:g}, 전체 {total_steps} 걸음 "
          f"(직접 쓴 코사인 식 = CosineAnnealingLR ✓)")
    return scheduler


# %% [4. 평가]
@torch.no_grad()
def predict_labels(model: nn.Module, x: torch.Tensor, max_batches: int | None = None) -> torch.Tensor:
    """예측한 클래스 (N,), CPU. max_batches 면 앞의 max_batches·EVAL_BATCH 개만."""
    # eval 모드: Dropout 은 아무것도 지우지 않고, BatchNorm 은 학습 중 모은 running 평균·분산을
    # 씁니다. 그래야 같은 입력에 늘 같은 출력이 나오고, 배치 구성에 따라 점수가 흔들리지 않습니다.
    model.eval()
    count = len(x) if max_batches is None else min(len(x), max_batches * EVAL_BATCH)
    return torch.cat([model(x[start:start + EVAL_BATCH]).argmax(dim=1).cpu()
                      for start in range(0, count, EVAL_BATCH)])


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, max_batches: int | None = None) -> dict:
    """{"loss": 평균 손실, "accuracy": 정확도} — 표본별 손실을 더한 뒤 N 으로 나눕니다."""
    model.eval()  # 이유는 predict_labels 의 주석: Dropout 끄기, BatchNorm 은 running 통계
    count = len(y) if max_batches is None else min(len(y), max_batches * EVAL_BATCH)
    total_loss, correct = 0.0, 0
    for start in range(0, count, EVAL_BATCH):
        logits = model(x[start:start + EVAL_BATCH])  # (B, K)
        target = y[start:start + EVAL_BATCH]
        total_loss += F.cross_entropy(logits, target, reduction="sum").item()
        correct += (logits.argmax(dim=1) == target).sum().item()
    return {"loss": total_loss / count, "accuracy": correct / count}


def report_test(model: nn.Module, data: Splits, max_batches: int | None,
                out_dir: Path) -> tuple[dict, torch.Tensor]:
    """시험 세트 평가: {"loss", "accuracy"}, 예측 (N,), scikit-learn 분류 보고서(classification_report)."""
    test = evaluate(model, data.x_test, data.y_test, max_batches)
    predictions = predict_labels(model, data.x_test, max_batches)
    report = classification_report(data.y_test[:len(predictions)].cpu(), predictions,
                                   labels=list(range(len(data.classes))), target_names=data.classes,
                                   digits=3, zero_division=0)
    (out_dir / "classification_report.txt").write_text(report, encoding="utf-8")
    print(f"시험 정확도(test accuracy) {test['accuracy']:.4f}, 시험 손실 {test['loss']:.4f}\n{report}")
    return test, predictions


def evaluate_best(config: Config, data: Splits, device: torch.device,
                  max_batches: int | None) -> tuple[dict, torch.Tensor, int]:
    """best.pt(검증 손실이 가장 낮았던 epoch)를 파일에서 새로 불러와 시험 세트로 처음이자 마지막으로 평가.

    반환값: (시험 지표 {"loss", "accuracy"}, 예측 (N,), best.pt 의 epoch)
    """
    out_dir = Path(config.out_dir)
    model, best_checkpoint = training.load_trained_model(out_dir / "best.pt", build_model, config, device,
                                                         purpose="test")
    print(f"best.pt = epoch {best_checkpoint['epoch']}")
    test, predictions = report_test(model, data, max_batches, out_dir)
    return test, predictions, best_checkpoint["epoch"]


def run_summary(history: training.History, best_epoch: int, test: dict, patience: int) -> dict:
    """실행 기록(metrics.json)에 남길 최종 학습의 숫자: 시험 점수, best.pt 의 epoch, 조기 종료 여부."""
    best_row = next(row for row in history.rows if row["epoch"] == best_epoch)
    return {"test_accuracy": round(test["accuracy"], 4), "test_loss": round(test["loss"], 4),
            "best_epoch": best_epoch, "best_val_loss": round(best_row["val_loss"], 4),
            "best_val_accuracy": round(best_row["val_accuracy"], 4),
            "epochs_trained": int(history.rows[-1]["epoch"]),
            "stopped_early": int(history.epochs_since_best("val_loss", "min") >= patience)}


# %% [5. 시각화]
def visualize_results(history_rows: list[dict], data: Splits, predictions: torch.Tensor,
                      test_acc: float, out_dir: Path, show: bool) -> None:
    """최종 학습 곡선, 시험 세트 혼동 행렬, 틀린 시험 이미지 격자."""
    viz.plot_history(history_rows, out_dir / "history.png", show=show, title=f"Final MLP on {data.name}")
    y_true = data.y_test[:len(predictions)].cpu()
    matrix = confusion_matrix(y_true, predictions, labels=list(range(len(data.classes))))
    viz.plot_confusion_matrix(matrix, data.classes, out_dir / "confusion_matrix.png", show=show,
                              title=f"Confusion matrix (test, acc {test_acc:.3f})")
    # 틀린 것 최대 8장 = 한 줄: 여러 줄이면 아랫줄 제목이 윗줄 그림에 겹칩니다 (plot_image_grid 의 칸 높이)
    wrong = (predictions != y_true).nonzero().flatten()[:8]
    if len(wrong):
        titles = [f"{data.classes[y_true[i]]}→{data.classes[predictions[i]]}" for i in wrong.tolist()]
        viz.plot_image_grid(data.x_test[wrong.to(data.x_test.device)], titles, out_dir / "misclassified.png",
                            show=show, mean=vision.MNIST_MEAN, std=vision.MNIST_STD,
                            title=f"Misclassified (true→pred), first {len(wrong)}",
                            title_colors=["red"] * len(wrong))


# %% [6. 추론]
LOW_CONFIDENCE = 0.5  # 가장 높은 확률이 이보다 낮으면 '학습 때 본 것과 다른 입력일 수 있음' 경고


def predict(config: Config, device: torch.device) -> dict:
    """학습된 best.pt 로 이미지 한 장을 분류합니다. 모델은 체크포인트의 model_args 만으로 다시 만듭니다.

    체크포인트를 먼저 읽어, best.pt 가 없거나 망가졌으면 입력과 상관없이 그것부터 알립니다.
    """
    out_dir = Path(config.out_dir)
    model, checkpoint = training.load_trained_model(out_dir / "best.pt", build_model, config, device)
    classes, data_name = checkpoint["extra"]["classes"], checkpoint["extra"]["data"]
    # Fashion-MNIST 는 물건을 상자 가운데에 둡니다(질량 중심 맞춤은 MNIST 숫자만의 방식).
    image = vision.read_image_as_mnist(config.predict, center_of_mass=not data_name.startswith("Fashion"))
    with torch.no_grad():  # load_trained_model 이 eval() 을 켜 둠: BatchNorm 은 running 통계 (한 장짜리 배치)
        probabilities = F.softmax(model(image.to(device)), dim=1)[0].cpu()  # (K,)
    top = probabilities.topk(3)
    best_index = int(top.indices[0])
    warning = None
    if top.values[0] < LOW_CONFIDENCE:
        warning = (f"가장 높은 확률이 {top.values[0]:.0%} 뿐입니다: 모델은 {data_name} 로 학습했으니 "
                   "그런 종류의 이미지(물건·숫자 하나가 가운데)인지 확인하세요.")
    result = {"input": str(config.predict), "predicted_class": best_index,
              "predicted_name": classes[best_index], "probability": round(float(top.values[0]), 4),
              "top3": {classes[i]: round(p, 4) for p, i in zip(top.values.tolist(), top.indices.tolist())},
              "warning": warning}
    print(f"{Path(config.predict).name} → "
          + ", ".join(f"{classes[i]} {p:.1%}" for p, i in zip(top.values.tolist(), top.indices.tolist())))
    if warning:
        print(f"경고: {warning}")
    (out_dir / "prediction.json").write_text(json.dumps(result, ensure_ascii=False, indent=2),
                                             encoding="utf-8")
    viz.plot_prediction(image, probabilities, classes, out_dir / "predict.png", config.show,
                        title=f", model trained on {data_name}", mean=vision.MNIST_MEAN, std=vision.MNIST_STD)
    return result


# %% [부록: 비교 실험 도구 — 같은 시드, 같은 데이터 순서, 조건 하나만 다르게]
@dataclass
class Budget:
    """비교 실험 한 번의 예산. smoke 면 1 epoch, 배치 하나."""

    epochs: int
    max_batches: int | None
    batch_size: int


def short_run(model: nn.Module, optimizer: torch.optim.Optimizer, data: Splits, budget: Budget,
              label: str, seed: int) -> dict:
    """짧게 학습하고 배치별 손실, epoch 별 평균 손실, 학습·검증 정확도를 돌려줍니다.

    섞는 순서는 seed 로 새로 만든 생성기에서: 비교하는 실험들이 모두 같은 배치 순서를 봅니다.
    """
    generator = torch.Generator().manual_seed(seed)
    step_losses, epoch_losses = [], []
    for epoch in range(1, budget.epochs + 1):
        epoch_loss = train_one_epoch(model, optimizer, data.x_train, data.y_train, budget.batch_size,
                                     generator, epoch=epoch, max_batches=budget.max_batches,
                                     allow_divergence=True, desc=f"{label} {epoch}/{budget.epochs}",
                                     step_losses=step_losses)
        if math.isnan(epoch_loss):  # 발산: 더 학습해도 의미 없음
            break
        epoch_losses.append(epoch_loss)
    diverged = math.isnan(step_losses[-1])
    train_acc = evaluate(model, data.x_train, data.y_train, budget.max_batches)["accuracy"]
    val_acc = evaluate(model, data.x_val, data.y_val, budget.max_batches)["accuracy"]
    return {"step_losses": step_losses, "epoch_losses": epoch_losses, "diverged": diverged,
            "train_loss": math.nan if diverged else epoch_losses[-1],
            "train_acc": math.nan if diverged else train_acc,
            "val_acc": math.nan if diverged else val_acc}


def study_subset(data: Splits, samples: int) -> Splits:
    """비교 실험용: 학습 표본을 앞에서 samples 개만 (carve_validation 이 이미 섞어 둠)."""
    return Splits(data.x_train[:samples], data.y_train[:samples], data.x_val, data.y_val,
                  data.x_test[:0], data.y_test[:0], data.classes, data.name)


def results_table(results: dict[str, dict], index_name: str) -> pd.DataFrame:
    table = pd.DataFrame({name: {key: r[key] for key in ("train_loss", "train_acc", "val_acc")}
                          for name, r in results.items()}).T
    table.index.name = index_name
    return table


# %% [부록: 실험 A. 활성화 함수]
def first_layer_grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """학습 전 한 배치에서 첫 Linear 층 가중치 기울기의 크기: 기울기 소실을 숫자로 봅니다."""
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    first_linear = next(layer for layer in model if isinstance(layer, nn.Linear))
    norm = first_linear.weight.grad.norm().item()
    model.zero_grad()
    return norm


def activation_study(data: Splits, budget: Budget, seed: int, out_dir: Path, show: bool) -> pd.DataFrame:
    """깊은(은닉층 4개) MLP + 모멘텀 없는 SGD: 활성화 함수의 차이가 잘 드러나는 조건."""
    depth, hidden, lr = 4, 128, 0.05  # 층이 깊을수록 도함수가 곱해져 기울기 소실이 커짐
    results, grad_norms = {}, {}
    for name in ACTIVATIONS:
        torch.manual_seed(seed)  # 같은 시드 → 같은 초기 가중치 (배치 순서는 short_run 의 생성기가 같게)
        model = build_model(hidden, depth, activation=name).to(data.x_train.device)  # PyTorch 기본 초기화
        grad_norms[name] = first_layer_grad_norm(model, data.x_train[:budget.batch_size],
                                                 data.y_train[:budget.batch_size])
        results[name] = short_run(model, torch.optim.SGD(model.parameters(), lr=lr), data, budget, name,
                                  seed)
    table = results_table(results, "activation")
    table.insert(0, "first_layer_grad_norm", pd.Series(grad_norms))
    table.to_csv(out_dir / "activation_study.csv")
    viz.plot_curves({name: r["epoch_losses"] for name, r in results.items()},
                    out_dir / "activation_study.png", show=show, ylabel="train loss",
                    title=f"Activations: depth-{depth} MLP, plain SGD (same seed)")
    return table


# %% [부록: 실험 B. 배치 정규화와 드롭아웃]
def regularization_study(data: Splits, budget: Budget, seed: int, dropout: float, out_dir: Path,
                         show: bool) -> pd.DataFrame:
    """BatchNorm·Dropout 을 켜고 끈 네 가지 MLP (Adam, 같은 시드). gap = 학습 - 검증 정확도."""
    variants = {"plain": (False, 0.0), "BatchNorm": (True, 0.0), "Dropout": (False, dropout),
                "BatchNorm+Dropout": (True, dropout)}
    results = {}
    for name, (batch_norm, p) in variants.items():
        torch.manual_seed(seed)
        model = build_model(256, 2, batch_norm=batch_norm, dropout=p).to(data.x_train.device)
        results[name] = short_run(model, torch.optim.Adam(model.parameters(), lr=1e-3), data, budget,
                                  name, seed)
    table = results_table(results, "variant")
    table["gap"] = table["train_acc"] - table["val_acc"]  # 클수록 과적합(overfitting)
    table.to_csv(out_dir / "regularization_study.csv")
    viz.plot_curves({name: r["epoch_losses"] for name, r in results.items()},
                    out_dir / "regularization_study.png", show=show, ylabel="train loss",
                    title="BatchNorm / Dropout (Adam, same seed)")
    return table


# %% [부록: 실험 C. 가중치 초기화]
def init_study(data: Splits, budget: Budget, seed: int, out_dir: Path, show: bool):
    """은닉층 6개짜리 ReLU MLP 에서 초기화 다섯 가지: 층별 활성화 통계와 첫 epoch 들의 손실."""
    depth, hidden, lr = 6, 256, 0.01
    stats, results = {}, {}
    for scheme in INIT_SCHEMES:
        torch.manual_seed(seed)
        model = init_weights(build_model(hidden, depth), scheme).to(data.x_train.device)
        stats[scheme] = activation_stds(model, data.x_train[:256])
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        results[scheme] = short_run(model, optimizer, data, budget, scheme, seed)
    stats_table = pd.DataFrame(stats, index=[f"layer {i + 1}" for i in range(depth)]).T
    stats_table.index.name = "init"
    stats_table.to_csv(out_dir / "init_activation_std.csv")
    # 로그 축이라 0(zeros 초기화)은 그릴 수 없어 아주 작은 값으로 대신합니다
    viz.plot_curves({name: [max(s, 1e-12) for s in values] for name, values in stats.items()},
                    out_dir / "init_activation_std.png", show=show, xlabel="hidden layer",
                    ylabel="activation std", logy=True,
                    title=f"Activation std per layer (ReLU, depth {depth})")
    # 발산한 실험은 손실이 10^30 을 넘어 다른 곡선을 가리므로 그림에서 빼고 제목에 적습니다
    diverged = [name for name, r in results.items() if r["diverged"]]
    viz.plot_curves({name: r["epoch_losses"] for name, r in results.items() if not r["diverged"]},
                    out_dir / "init_study.png", show=show, ylabel="train loss", logy=True,
                    title="Initialisation: first epochs (SGD + momentum)"
                    + (f"\ndiverged: {', '.join(diverged)}" if diverged else ""))
    return stats_table, results_table(results, "init")


# %% [부록: 실험 D. 최적화 기법]
def optimizer_study(data: Splits, budget: Budget, seed: int, out_dir: Path, show: bool) -> pd.DataFrame:
    """같은 MLP·같은 시드에서 SGD, SGD+모멘텀, Adam 의 배치별 손실 곡선."""
    optimizers = {
        "SGD lr=0.05": lambda p: torch.optim.SGD(p, lr=0.05),
        "SGD+momentum lr=0.05": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
        "Adam lr=1e-3": lambda p: torch.optim.Adam(p, lr=1e-3),
    }
    results = {}
    for name, make_optimizer in optimizers.items():
        torch.manual_seed(seed)
        model = build_model(128, 2).to(data.x_train.device)
        results[name] = short_run(model, make_optimizer(model.parameters()), data, budget, name, seed)
    viz.plot_curves({name: r["step_losses"] for name, r in results.items()}, out_dir / "optimizers.png",
                    show=show, xlabel="step (mini-batch)", ylabel="train loss", logy=True,
                    title="SGD vs momentum vs Adam (same seed, same batches)")
    table = results_table(results, "optimizer")
    table.to_csv(out_dir / "optimizer_study.csv")
    return table


# %% [부록: 실험 E. 하이퍼파라미터 격자 탐색]
def grid_search(data: Splits, budget: Budget, seed: int, lrs: list[float], hidden_sizes: list[int],
                out_dir: Path, show: bool) -> pd.DataFrame:
    """학습률 x 은닉층 너비의 모든 조합을 같은 예산으로 학습해 검증 정확도 표를 만듭니다."""
    table = pd.DataFrame(index=pd.Index(hidden_sizes, name="hidden_size"),
                         columns=pd.Index([f"{lr:g}" for lr in lrs], name="lr"), dtype=float)
    for hidden_size in hidden_sizes:
        for lr in lrs:
            torch.manual_seed(seed)
            model = build_model(hidden_size, 2).to(data.x_train.device)
            result = short_run(model, torch.optim.Adam(model.parameters(), lr=lr), data, budget,
                               f"grid h={hidden_size} lr={lr:g}", seed)
            table.loc[hidden_size, f"{lr:g}"] = result["val_acc"]
    table.to_csv(out_dir / "grid_search.csv")
    viz.plot_heatmap(table, out_dir / "grid_search.png", show=show, xlabel="learning rate (Adam)",
                     ylabel="hidden units", title="Validation accuracy (short budget)")
    return table


def run_studies(config: Config, data: Splits, out_dir: Path) -> dict:
    """실험 A~E 를 짧은 예산(부분집합, 몇 epoch)으로 돌리고 요약 지표를 돌려줍니다 (--no-studies 면 {}).

    학습 블록 뒤에 돕니다: 중단·이어하기가 실험을 두 번 하거나 건너뛰지 않고, 실험마다 시드를
    스스로 고정하므로(torch.manual_seed, short_run 의 생성기) 순서와 무관하게 같은 숫자가 나옵니다.
    """
    if not config.studies:
        return {}
    study_data = study_subset(data, config.study_samples)
    budget = Budget(epochs=1 if config.smoke else config.study_epochs,
                    max_batches=1 if config.smoke else None, batch_size=config.batch_size)
    print(f"\n[부록: 비교 실험] 학습 {len(study_data.y_train)}장, 검증 {len(study_data.y_val)}장, "
          f"실험마다 {budget.epochs} epoch (같은 시드)")
    section_start = time.perf_counter()

    def took() -> str:  # 실험마다 걸린 시간: 예산(--study-samples, --study-epochs)을 정할 때 참고
        nonlocal section_start
        seconds, section_start = time.perf_counter() - section_start, time.perf_counter()
        return f"({seconds:.1f}초)"

    print("\n== 실험 A. 활성화 함수 (은닉층 4개, 모멘텀 없는 SGD) ==")
    table = activation_study(study_data, budget, config.seed, out_dir, config.show)
    print(table.round(4).to_string(), took(), sep="\n")

    print("\n== 실험 B. 배치 정규화와 드롭아웃 ==")
    torch.manual_seed(config.seed)
    check_batch_norm(torch.randn(32, 8) * 3 + 1)
    dropped = check_dropout(torch.randn(1000, 100), p=0.5)
    print(f"직접 쓴 BatchNorm = nn.BatchNorm1d (train/eval, running 통계) ✓, "
          f"Dropout(p=0.5) 이 지운 비율 {dropped:.3f}, 남은 값은 2배 ✓")
    torch.manual_seed(config.seed)
    demo_model = build_model(64, 2, batch_norm=True, dropout=0.5).to(data.x_train.device)
    differences = train_vs_eval_outputs(demo_model, data.x_train[:32])
    print("한 배치의 로짓 최대 차이: " + ", ".join(f"{k} {v:.4f}" for k, v in differences.items()))
    print("→ train 모드는 같은 입력에도 매번 다른 출력(Dropout 마스크, 배치 통계), "
          "eval 모드는 결정적(deterministic)이고 배치 구성과 무관")
    regularization = regularization_study(study_data, budget, config.seed, config.dropout,
                                          out_dir, config.show)
    print(regularization.round(4).to_string(), took(), sep="\n")

    print("\n== 실험 C. 가중치 초기화 (ReLU, 은닉층 6개, SGD+모멘텀) ==")
    check_init_against_library(config.seed)
    print("직접 계산한 Kaiming·Xavier = nn.init.kaiming_normal_·xavier_normal_ ✓")
    stats_table, init_table = init_study(study_data, budget, config.seed, out_dir, config.show)
    print("층별 활성화 표준편차:\n" + stats_table.to_string(float_format="{:.2e}".format))
    print(init_table.round(4).to_string())
    print("(NaN = 발산(diverged): 손실이 inf/nan 이 되어 그 실험을 멈춤)", took())

    print("\n== 실험 D. 최적화: SGD vs 모멘텀 vs Adam ==")
    check_optimizers_from_scratch()
    print("직접 쓴 모멘텀·Adam 갱신식 = torch.optim.SGD(momentum)·Adam ✓")
    optimizer_table = optimizer_study(study_data, budget, config.seed, out_dir, config.show)
    print(optimizer_table.round(4).to_string(), took(), sep="\n")

    print("\n== 실험 E. 하이퍼파라미터 격자 탐색 (검증 정확도) ==")
    grid = grid_search(study_data, budget, config.seed, _float_list(config.grid_lrs),
                       [int(h) for h in _float_list(config.grid_hidden_sizes)], out_dir, config.show)
    print(grid.round(4).to_string(), took(), sep="\n")
    best_size, best_lr = grid.stack().idxmax()
    print(f"가장 좋은 조합: hidden_size={best_size}, lr={best_lr} (검증 {grid.loc[best_size, best_lr]:.4f}). "
          f"최종 모델은 --hidden-size {config.hidden_size} --lr {config.lr:g} 를 썼습니다 "
          "(BatchNorm·스케줄이 더해져 격자의 lr 과 1:1 로 같지는 않음).")

    def finite(value: float):  # JSON 에는 nan 대신 null
        return None if math.isnan(value) else round(value, 4)

    return {"activation_val_accuracy": {k: finite(v) for k, v in table["val_acc"].items()},
            "init_val_accuracy": {k: finite(v) for k, v in init_table["val_acc"].items()},
            "optimizer_val_accuracy": {k: finite(v) for k, v in optimizer_table["val_acc"].items()},
            "grid_best_val_accuracy": finite(grid.loc[best_size, best_lr]),
            "grid_best_hidden_size": int(best_size), "grid_best_lr": float(best_lr)}


# %% [main: 목차]
def main(config: Config) -> dict:
    started = time.perf_counter()
    device = pick_device(config.device)
    out_dir = Path(config.out_dir)
    if config.predict:
        return predict(config, device)

    print("== 1. 데이터 ==")
    data = load_data(config, device)

    print("\n== 2. 모델: 활성화 함수와 도함수, 최종 MLP ==")
    activation_lesson(out_dir, config.show)
    model, model_args = final_model(config, len(data.classes), device)  # BatchNorm + Dropout + Kaiming

    print("\n== 3. 학습: Adam + 학습률 스케줄, 검증 손실로 best.pt 와 조기 종료 ==")
    epochs = min(config.epochs, 3) if config.smoke else config.epochs
    max_batches = 1 if config.smoke else None  # --smoke: 학습·평가 모두 배치 하나
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    total_steps = epochs * steps_per_epoch(len(data.y_train), config.batch_size, max_batches)
    scheduler = final_scheduler(config, optimizer, total_steps, out_dir)  # 학습률 곡선 그림과 함께
    shuffle_generator = torch.Generator().manual_seed(config.seed)  # 학습 데이터를 섞는 순서 (저장 대상)
    history = training.History(out_dir / "history.csv")
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    extra = {"data": data.name, "classes": data.classes}  # --predict 가 모델 말고 더 필요한 것
    checkpoint = lambda epoch, best: training.make_checkpoint(
        config, model_args, state, epoch, best, extra=extra, generators=[shuffle_generator], history=history)
    # --epochs 를 바꿔 이어 하면 거절합니다: 스케줄의 전체 걸음 수가 --epochs 로 정해짐 (Config.resume_free)
    start_epoch, best = training.resume_or_start(config, checkpoint, state, generators=[shuffle_generator],
                                                 history=history, best=math.inf)
    try:
        for epoch in range(start_epoch, epochs + 1):
            if early_stop(history, config.patience, best, epoch):  # 검증 손실이 더 내려가지 않음
                break
            lr = optimizer.param_groups[0]["lr"]  # 이 epoch 을 시작할 때의 학습률 (기록용)
            train_loss = train_one_epoch(model, optimizer, data.x_train, data.y_train, config.batch_size,
                                         shuffle_generator, scheduler=scheduler, epoch=epoch,
                                         max_batches=max_batches)
            val = evaluate(model, data.x_val, data.y_val, max_batches)
            history.log(epoch=epoch, train_loss=train_loss, **{f"val_{k}": v for k, v in val.items()}, lr=lr)
            if val["loss"] < best:  # 작을수록 좋음; 같으면 먼저 도달한 epoch 을 남김
                best = val["loss"]
                training.save_checkpoint(out_dir / "best.pt", checkpoint(epoch, best))
            training.save_checkpoint(out_dir / "last.pt", checkpoint(epoch, best))
    except KeyboardInterrupt:
        print("\n중단: --resume 을 붙여 다시 실행하면 마지막으로 끝난 epoch 다음부터 이어집니다")
        raise SystemExit(130) from None

    print("\n== 4. 평가: 검증 손실이 가장 낮았던 best.pt 로 시험 세트 (처음이자 마지막으로) ==")
    test, predictions, best_epoch = evaluate_best(config, data, device, max_batches)
    metrics = run_summary(history, best_epoch, test, config.patience)

    print("== 5. 시각화 ==")
    visualize_results(history.rows, data, predictions, test["accuracy"], out_dir, config.show)

    metrics.update(run_studies(config, data, out_dir))  # 부록: 비교 실험 A~E (--no-studies 면 건너뜀)
    write_run_record(out_dir, script=config.chapter + ".py", config=config, data=data.name, device=device,
                     seconds=time.perf_counter() - started, metrics=metrics, headline="test_accuracy",
                     parameters=sum(p.numel() for p in model.parameters()))
    print(f"\n시험 정확도 {test['accuracy']:.4f} | {time.perf_counter() - started:.1f}초 | 출력 {out_dir}")
    return metrics


if __name__ == "__main__":
    run(main, Config)
