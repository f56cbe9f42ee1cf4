"""03장. 합성곱 신경망(CNN)으로 컬러 이미지 분류하기: VGG 스타일 블록, ResNet, 데이터 증강, 전이 학습.

학습 목표
    - 합성곱(convolution)과 풀링(pooling)을 손으로 계산하고 PyTorch 결과와 맞춰 본다.
    - 같은 이미지에서 MLP 와 CNN 의 파라미터 수와 정확도를 비교해 CNN 이 왜 이미지에 맞는지 본다.
    - VGG 스타일 블록(Conv→BN→ReLU→Conv→BN→ReLU→MaxPool) 세 개로 CIFAR-10 분류기를 만든다.
    - 잔차 블록(residual block) f(x) + x 를 만들고, 건너뛰는 연결(skip connection)이 없으면
      깊은 망이 왜 더 못 배우는지 실험으로 확인한다.
    - 데이터 증강(data augmentation)을 텐서 배치 단위로 장치 위에서 한다.
    - 전이 학습(transfer learning): ImageNet 으로 학습된 ResNet-18 의 몸통을 얼리고 머리만 새로 학습한다.
    - 첫 층 필터와 실제 사진의 특징 맵(feature map)을 그려 본다.

핵심 개념
    출력 크기 = ⌊(입력 + 2·패딩 − 커널) / 스트라이드⌋ + 1, 파라미터 공유(weight sharing),
    국소 연결(local connectivity), 배치 정규화(BatchNorm), 잔차 연결, 1x1 합성곱 지름길(shortcut),
    채널별 평균·표준편차 정규화, 무작위 자르기(random crop)와 좌우 뒤집기(horizontal flip),
    얼리기(freezing, requires_grad=False)와 미세 조정(fine-tuning), 혼동 행렬(confusion matrix).

실행 방법
    python 03_cnn_image_classification.py                      # 기본: CIFAR-10, 없으면 오프라인 도형 데이터
    python 03_cnn_image_classification.py --data offline       # 네트워크 없이 절차적 도형 10종
    python 03_cnn_image_classification.py --model resnet       # ResNet 변형
    python 03_cnn_image_classification.py --smoke              # 배치 하나로 전체 흐름만 확인 (몇 초)
    python 03_cnn_image_classification.py --data real          # CIFAR-10 만 (data/cifar-10-batches-py)
    python 03_cnn_image_classification.py --data-dir my_images/   # 내 사진: my_images/<클래스>/*.jpg
                                                              # (또는 my_images/train/, my_images/test/)
    python 03_cnn_image_classification.py --pretrained         # + ResNet-18 ImageNet 가중치로 전이 학습
    python 03_cnn_image_classification.py --predict cat.jpg    # 학습한 best.pt 로 사진 한 장 분류
    python 03_cnn_image_classification.py --resume             # 중단된 학습 이어하기 (Ctrl+C 는 last.pt 저장)
    OMP_NUM_THREADS=1 python 03_cnn_image_classification.py    # CPU 가 다른 작업으로 바쁠 때 (아래 참고)
    GPU 에서 실제 CIFAR-10 (권장):
    python 03_cnn_image_classification.py --data real --device cuda --amp --model resnet \\
        --width 64 --blocks-per-stage 2 --epochs 30 --batch-size 256 --lr 0.1

기대 결과
    benchmarks/RESULTS.md 에서 옮김 (2코어 Intel Xeon CPU, GPU 없음):
    오프라인 도형 데이터, 기본 설정 (VGG 스타일, 8 epoch; 3회 중앙값):
        CNN 시험 정확도 0.996, MLP 기준선 0.461 (53점 차), 학습 약 1,690 images/s,
        전체 177초 (MLP 기준선·깊이 실험 포함), 최대 메모리 1.5 GB.
    `--model resnet` 오프라인 (1회): 시험 정확도 0.998, MLP 0.498, 약 1,120 images/s, 전체 225초,
        최대 메모리 1.5 GB.
    깊이 실험 (150 배치 뒤 학습 손실): 평범한 8층 1.93, 평범한 32층 2.27, 잔차 32층 2.15 →
        깊기만 한 망이 가장 나쁘고, 건너뛰기 연결(skip)이 그 차이의 일부를 되찾습니다.
    실제 CIFAR-10 은 이 환경에 네트워크가 없어 측정하지 못했습니다. 위 GPU 설정(폭 64, 단계마다
    블록 2개 = ResNet-18 배치, 30 epoch, AMP)이면 같은 계열 모델의 흔한 수치로 93~94% 정도가
    기대되지만, 이 스크립트로 GPU 에서 돌린 측정값은 아직 없습니다(미측정). 기본 설정(폭 16)으로
    CPU 에서 CIFAR-10 을 돌린 결과도 미측정입니다.
    CPU 를 다른 프로그램과 나눠 쓰는 중이면 스레드끼리 기다리느라 크게 느려질 수 있습니다. 다른 학습
    4개가 함께 돌던 이 기계에서는 OMP_NUM_THREADS=1 이 2스레드보다 약 6배 빨랐습니다
    (814 대 126 images/s, 측정값).
"""

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

from utils.data.color_images import ColorImages, load_color_images, read_predict_image
from utils.data.common import try_download
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
    autocast,
    check_finite,
    checkpoint_extra,
    load_checkpoint,
    progress,
    save_checkpoint,
    save_on_interrupt,
)
from utils.visualization import plot_confusion_matrix, plot_curves, plot_history, plot_image_grid, save_figure

# 모양 글자: B=배치, C=채널, H=높이, W=너비, K=클래스 수, F=특징(펼친 값) 수


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "03_cnn_image_classification"  # 출력 폴더 outputs/03_cnn_image_classification/, 체크포인트 주인 표시
    model: Literal["vgg", "resnet"] = "vgg"  # vgg: 강의의 3블록 CNN, resnet: 잔차 블록 변형
    epochs: int = 8  # 도형 데이터는 8 epoch 이면 95% 를 넘김 (CPU 시간 예산 안)
    batch_size: int = 128  # CPU 에서 빠르고 BatchNorm 통계가 안정적인 크기
    lr: float = 0.05  # SGD 최대 학습률 (OneCycle 스케줄의 꼭대기)
    momentum: float = 0.9  # SGD 모멘텀: 표준값
    weight_decay: float = 5e-4  # L2 규제: CIFAR 계열에서 흔한 값
    width: int = 16  # 첫 블록의 채널 수. 블록마다 두 배 (16→32→64). GPU 에서는 64 권장
    blocks_per_stage: int = 1  # resnet 단계마다 잔차 블록 수 (2 면 ResNet-18 과 같은 배치)
    hidden: int = 256  # vgg 분류기(FC) 첫 은닉층 크기
    dropout: float = 0.2  # 분류기 FC 사이 드롭아웃 비율
    augment: bool = True  # 무작위 자르기(패딩 4) + 좌우 뒤집기
    mlp_epochs: int = 8  # MLP 기준선 학습 epoch (CNN 과 같은 수)
    mlp_hidden: int = 512  # MLP 기준선 은닉층 크기
    depth_layers: int = 32  # 깊이 실험의 '깊은' 망 층 수 (얕은 망은 8층)
    depth_steps: int = 150  # 깊이 실험에서 망마다 학습할 배치 수 (0 이면 실험 생략)
    pretrained: bool = False  # ResNet-18 ImageNet 가중치로 전이 학습 (가중치를 받을 수 있을 때)
    transfer_epochs: int = 2  # 전이 학습: 몸통을 얼리고 머리만 학습하는 epoch
    fine_tune_epochs: int = 1  # 전이 학습: 그 뒤 전체를 작은 학습률로 미세 조정하는 epoch (0 이면 생략)
    transfer_size: int = 64  # 전이 학습 입력 크기: 32x32 를 키움 (ResNet-18 은 1/32 로 줄이므로)
    amp: bool = False  # GPU 혼합 정밀도 (CUDA float16). CPU 에서는 이득이 없어 꺼 둠
    val_fraction: float = 0.1  # 학습 분할에서 떼어 best.pt 고르기에 쓰는 검증 비율
    predict: str = ""  # 이미지 파일 경로: 학습한 best.pt 로 분류만 하고 끝냄

    def __post_init__(self):
        if self.width < 1 or self.hidden < 1 or self.mlp_hidden < 1:
            raise ValueError("--width, --hidden, --mlp-hidden 은 1 이상이어야 합니다.")
        if self.blocks_per_stage < 1:
            raise ValueError("--blocks-per-stage 는 1 이상이어야 합니다.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout 은 0 이상 1 미만이어야 합니다 (받은 값: {self.dropout}).")
        if self.depth_layers < 10 or self.depth_layers % 2:
            raise ValueError("--depth-layers 는 10 이상의 짝수여야 합니다 "
                             "(줄기 1층 + 2층짜리 블록들 + 출력 1층).")
        if min(self.mlp_epochs, self.depth_steps, self.transfer_epochs, self.fine_tune_epochs) < 0:
            raise ValueError("--mlp-epochs, --depth-steps, --transfer-epochs, --fine-tune-epochs 는 "
                             "0 이상이어야 합니다.")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"--val-fraction 은 0과 0.5 사이여야 합니다 (받은 값: {self.val_fraction}).")
        if self.transfer_size < 32:
            raise ValueError("--transfer-size 는 32 이상이어야 합니다.")


# %% [markdown]
# ## 0. 합성곱과 풀링을 손으로
# 합성곱(실제로는 교차 상관, cross-correlation): 커널을 입력 위에서 밀며 겹친 칸끼리 곱해 더합니다.
#     y[i, j] = Σ_a Σ_b x[i·s + a, j·s + b] · k[a, b]
# 출력 크기: ⌊(n + 2p − k) / s⌋ + 1   (n=입력, p=패딩, k=커널, s=스트라이드)

# %%
CONV_INPUT = torch.tensor([[1, 1, 1, 0, 0],
                           [0, 1, 1, 1, 0],
                           [0, 0, 1, 1, 1],
                           [0, 0, 1, 1, 0],
                           [0, 1, 1, 0, 0]], dtype=torch.float32)  # 강의의 5x5 입력
CONV_KERNEL = torch.tensor([[1, 0, 1],
                            [0, 1, 0],
                            [1, 0, 1]], dtype=torch.float32)  # 3x3 커널 ('X' 모양)
POOL_INPUT = torch.tensor([[2, 2, 7, 3],
                           [9, 4, 6, 1],
                           [8, 5, 2, 4],
                           [3, 1, 2, 6]], dtype=torch.float32)  # 강의의 풀링 예제


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """출력 크기 = ⌊(입력 + 2·패딩 − 커널) / 스트라이드⌋ + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def conv2d_by_hand(image: torch.Tensor, kernel: torch.Tensor, stride: int = 1,
                   padding: int = 0) -> torch.Tensor:
    """2차원 합성곱을 이중 반복문으로. image: (H, W), kernel: (k, k) → (H', W')."""
    image = F.pad(image, (padding, padding, padding, padding))  # 사방에 0 을 padding 줄씩
    k = kernel.shape[0]
    out_h = conv_output_size(image.shape[0], k, stride)
    out_w = conv_output_size(image.shape[1], k, stride)
    out = torch.zeros(out_h, out_w)
    for i in range(out_h):
        for j in range(out_w):
            window = image[i * stride:i * stride + k, j * stride:j * stride + k]
            out[i, j] = (window * kernel).sum()
    return out


def pool2d_by_hand(image: torch.Tensor, size: int = 2, kind: str = "max") -> torch.Tensor:
    """겹치지 않는 size x size 창마다 최댓값(max) 또는 평균(avg). image: (H, W) → (H/size, W/size)."""
    h, w = image.shape
    windows = image.reshape(h // size, size, w // size, size)  # (H', size, W', size)
    return windows.amax(dim=(1, 3)) if kind == "max" else windows.mean(dim=(1, 3))


def convolution_lesson() -> dict:
    """손 계산 ↔ PyTorch 를 맞춰 보고 결과를 출력합니다."""
    print("\n[합성곱] 손 계산과 PyTorch 비교")
    as_batch = lambda t: t.view(1, 1, *t.shape)  # F.conv2d 는 (B, C, H, W) 를 받음
    results = {}
    for stride, expected_size in ((1, 3), (2, 2)):
        by_hand = conv2d_by_hand(CONV_INPUT, CONV_KERNEL, stride=stride)
        library = F.conv2d(as_batch(CONV_INPUT), as_batch(CONV_KERNEL), stride=stride)[0, 0]
        assert torch.allclose(by_hand, library)
        assert by_hand.shape[0] == conv_output_size(5, 3, stride) == expected_size
        print(f"  5x5 * 3x3, stride {stride} → {tuple(by_hand.shape)}: {by_hand.int().tolist()}")
        results[f"stride{stride}"] = by_hand
    print(f"  출력 크기 공식: 32x32, 3x3, 패딩 1, stride 1 → {conv_output_size(32, 3, 1, 1)} (크기 유지), "
          f"stride 2 → {conv_output_size(32, 3, 2, 1)}")

    # 패딩 방식: 가장자리 바깥을 무엇으로 채울지. constant 는 0, reflect 는 가장자리를 빼고
    # 거울처럼, replicate 는 가장자리 값을 복사
    small = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    for mode in ("constant", "reflect", "replicate"):
        padded = F.pad(small, (1, 1, 1, 1), mode=mode)[0, 0]
        print(f"  패딩 {mode:9s}: {padded.int().tolist()}")
    results["pad_reflect"] = F.pad(small, (1, 1, 1, 1), mode="reflect")[0, 0]

    max_pooled = pool2d_by_hand(POOL_INPUT, 2, "max")
    avg_pooled = pool2d_by_hand(POOL_INPUT, 2, "avg")
    assert torch.allclose(max_pooled, F.max_pool2d(as_batch(POOL_INPUT), 2)[0, 0])
    assert torch.allclose(avg_pooled, F.avg_pool2d(as_batch(POOL_INPUT), 2)[0, 0])
    print(f"  최대 풀링 {max_pooled.tolist()}, 평균 풀링 {avg_pooled.tolist()}  "
          "(F.max_pool2d / F.avg_pool2d 와 일치)")
    results.update(max_pool=max_pooled, avg_pool=avg_pooled)
    return results


# %% [markdown]
# ## 1. 데이터: 채널별 정규화와 배치 단위 증강

# %%
def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """학습 세트의 채널별 평균·표준편차. images: (N, 3, H, W) uint8 → mean, std: (3,), 0~1 단위.

    시험 세트로 계산하면 시험 정보가 학습에 새어 들어갑니다(data leakage). 그래서 학습 세트로만.
    큰 데이터도 메모리를 적게 쓰도록 조각(chunk)마다 합과 제곱합을 더해 갑니다.
    """
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].double() / 255
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean ** 2).clamp_min(1e-12).sqrt()  # Var = E[x²] − E[x]²
    return mean.float(), std.float()


def to_model_input(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                   device: torch.device) -> torch.Tensor:
    """uint8 (B, 3, H, W) → 장치 위의 정규화된 float (B, 3, H, W), channels-last 메모리 배치.

    channels-last(NHWC): 픽셀 하나의 채널 값들이 메모리에 붙어 있어 CPU·GPU 합성곱이 더 빠릅니다.
    """
    x = images.to(device).float().div_(255)
    x = (x - mean.to(device).view(1, 3, 1, 1)) / std.to(device).view(1, 3, 1, 1)
    return x.contiguous(memory_format=torch.channels_last)


def augment_batch(x: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """배치 전체에 무작위 자르기(random crop) + 좌우 뒤집기(horizontal flip)를 한 번에. (B, C, H, W).

    이미지마다 파이썬 반복문을 돌지 않고 인덱스 텐서로 한꺼번에 잘라 냅니다(장치 위에서).
    정규화한 뒤에 0 으로 패딩하므로 채운 칸은 '평균 색'입니다. 라벨은 바뀌지 않습니다:
    잘린 위치나 좌우가 달라도 같은 물체이기 때문입니다 (그래서 위아래 뒤집기는 하지 않음).
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    top = torch.randint(0, 2 * padding + 1, (b,), device=x.device)
    left = torch.randint(0, 2 * padding + 1, (b,), device=x.device)
    rows = (top.view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1)  # (B, 1, H, 1)
    cols = (left.view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w)  # (B, 1, 1, W)
    batch_index = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    channel_index = torch.arange(c, device=x.device).view(1, c, 1, 1)
    cropped = padded[batch_index, channel_index, rows, cols]  # (B, C, H, W)
    flip = torch.rand(b, device=x.device) < 0.5
    cropped = torch.where(flip.view(b, 1, 1, 1), cropped.flip(3), cropped)
    return cropped.contiguous(memory_format=torch.channels_last)


# %% [markdown]
# ## 2. 모델: MLP 기준선, VGG 스타일 CNN, 잔차 블록(ResNet)

# %%
def linear_parameters(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs  # 가중치 행렬 + 편향


def conv_parameters(in_channels: int, out_channels: int, kernel: int) -> int:
    return in_channels * out_channels * kernel * kernel + out_channels  # 필터 크기는 입력 크기와 무관


def mlp_vs_cnn_parameters() -> dict:
    """강의의 예: 256x256 컬러 이미지 = 196,608 개 입력. 첫 층만 비교해도 차이가 큽니다."""
    inputs = 256 * 256 * 3
    # 공식이 nn 모듈의 실제 개수와 같은지 작은 층으로 확인 (큰 층은 메모리만 차지하므로 공식으로)
    assert linear_parameters(48, 10) == count_parameters(nn.Linear(48, 10))
    assert conv_parameters(3, 64, 3) == count_parameters(nn.Conv2d(3, 64, 3))
    mlp_first = linear_parameters(inputs, 1000)
    cnn_first = conv_parameters(3, 64, 3)
    print(f"\n[MLP vs CNN] 256x256x3 = {inputs:,}개 입력: 완전 연결층(은닉 1,000) {mlp_first:,}개 vs "
          f"3x3 합성곱 64채널 {cnn_first:,}개 파라미터")
    print("  합성곱은 작은 필터 하나를 모든 위치에서 같이 씀(가중치 공유, weight sharing)"
          " → 위치가 바뀌어도 같은 특징을 찾음")
    return {"mlp_first_layer": mlp_first, "cnn_first_layer": cnn_first}


class MLP(nn.Module):
    """기준선: 픽셀을 한 줄로 펴서(3·32·32 = 3,072) 완전 연결층 두 개. 위치 정보를 구조로 쓰지 못합니다."""

    def __init__(self, num_classes: int, hidden: int = 512, image_size: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),  # (B, 3, 32, 32) → (B, 3072)
            nn.Linear(3 * image_size * image_size, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden // 2), nn.ReLU(),
            nn.Linear(hidden // 2, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """강의의 기본 블록 Conv→ReLU→Conv→ReLU→MaxPool 에 배치 정규화(BatchNorm)를 더한 것.

    BatchNorm: 채널마다 배치의 평균 0, 분산 1 로 맞춘 뒤 학습되는 γ, β 로 다시 늘이고 옮깁니다.
        y = γ · (x − μ_B) / √(σ²_B + ε) + β
    층 입력의 분포가 학습 중에 덜 흔들려 큰 학습률로도 안정적으로 빨리 배웁니다. 바로 뒤에
    BatchNorm 이 평균을 빼므로 합성곱의 편향(bias)은 쓸모가 없어 bias=False.
    3x3 패딩 1 은 크기를 유지하고(⌊(n+2−3)/1⌋+1 = n), MaxPool 2 가 가로세로를 절반으로 줄입니다.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class VGGNet(nn.Module):
    """강의의 CIFAR-10 망: 블록 3개(32→16→8→4) → Flatten → FC → ReLU → FC → ReLU → FC."""

    def __init__(self, num_classes: int, width: int = 16, hidden: int = 256, dropout: float = 0.2):
        super().__init__()
        channels = [width, width * 2, width * 4]
        self.features = nn.Sequential(
            conv_block(3, channels[0]),  # (B, w, 16, 16)
            conv_block(channels[0], channels[1]),  # (B, 2w, 8, 8)
            conv_block(channels[1], channels[2]),  # (B, 4w, 4, 4)
        )
        flat = channels[2] * 4 * 4  # 32 → 16 → 8 → 4: 풀링 세 번 뒤 4x4
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, 4w·4·4)
            nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden // 2), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden // 2, num_classes),  # (B, K) 로짓(logit)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ResidualBlock(nn.Module):
    """잔차 블록: 출력 = ReLU(f(x) + shortcut(x)),  f = Conv→BN→ReLU→Conv→BN.

    층이 '전체 변환' 대신 '입력과의 차이(잔차) f(x)' 만 배우면 됩니다. 더할 수 있으려면 모양이
    같아야 하므로, 채널 수나 stride 가 바뀔 때는 지름길(shortcut)을 1x1 합성곱(+BN)으로 맞춥니다
    (다운샘플 지름길, downsample shortcut). 역전파 때 기울기는 + 를 지나 지름길로 그대로 흘러
    깊은 망에서도 기울기 소실(vanishing gradient)이 덜합니다.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, skip: bool = True,
                 batch_norm: bool = True):
        super().__init__()
        norm = nn.BatchNorm2d if batch_norm else lambda channels: nn.Identity()
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=not batch_norm),
            norm(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=not batch_norm),
            norm(out_channels),
        )
        # 아래 두 스위치는 깊이 실험용: skip=False 면 같은 층을 지름길 없이 쌓은 '평범한(plain)' 블록,
        # batch_norm=False 면 BatchNorm 의 도움 없이 깊이와 지름길의 효과만 봅니다.
        self.skip = skip
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                norm(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual(x)  # (B, out, H/stride, W/stride)
        if self.skip:
            out = out + self.shortcut(x)
        return F.relu(out)


class ResNet(nn.Module):
    """작은 ResNet: 줄기(stem) 3x3 합성곱 → 단계 3개(32x32, 16x16, 8x8) → 전역 평균 풀링 → FC."""

    def __init__(self, num_classes: int, width: int = 16, blocks_per_stage: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        layers, channels = [], width
        for stage, out_channels in enumerate([width, width * 2, width * 4]):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1  # 단계가 바뀔 때 크기 절반, 채널 두 배
                layers.append(ResidualBlock(channels, out_channels, stride))
                channels = out_channels
        self.stages = nn.Sequential(*layers)  # (B, 4w, 8, 8)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))  # 전역 평균 풀링(global average pooling): (B, 4w)


class DeepNet(nn.Module):
    """깊이 실험용: 줄기(stride 2, 32→16) + 같은 모양의 블록 여러 개 + 출력층. skip 으로 지름길을 켜고 끔.

    층 수 = 줄기 1 + 블록 수 × 2 + 출력 FC 1. He et al.(2015)의 실험처럼 BatchNorm 을 쓰고도
    평범한 망은 깊을수록 학습 손실이 높습니다. 폭(width)은 실험을 빨리 끝내려고 작게 둡니다.
    """

    def __init__(self, num_classes: int, layers: int, skip: bool, width: int = 8, batch_norm: bool = True):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=not batch_norm),
                                  nn.BatchNorm2d(width) if batch_norm else nn.Identity(),
                                  nn.ReLU(inplace=True))
        blocks = (layers - 2) // 2
        self.blocks = nn.Sequential(*[ResidualBlock(width, width, skip=skip, batch_norm=batch_norm)
                                      for _ in range(blocks)])  # (B, width, 16, 16)
        self.head = nn.Linear(width, num_classes)
        # 합성곱은 ReLU 에 맞춘 He 초기화(분산 2/fan_in: 층을 지나도 신호 분산이 유지되도록).
        # 잔차 망은 가지의 마지막 BN 의 γ 를 0 으로 둬서 처음엔 블록이 항등 함수 x 가 되게 합니다
        # (zero-init residual; Goyal et al., 2017). 그래야 블록을 쌓아도 분산이 불어나지 않습니다.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if skip:
            for block in self.blocks:
                nn.init.zeros_(block.residual[-1].weight)  # 마지막 BN 의 γ 또는 마지막 합성곱

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def build_model(name: str, num_classes: int, config: Config) -> nn.Module:
    if name == "vgg":
        return VGGNet(num_classes, config.width, config.hidden, config.dropout)
    return ResNet(num_classes, config.width, config.blocks_per_stage)


# %% [markdown]
# ## 3. 학습과 평가

# %%
def train_one_epoch(model, data: ColorImages, optimizer, scheduler, scaler, *, mean, std, device,
                    batch_size: int, augment: bool, amp: bool, epoch: int, max_batches: int | None = None,
                    desc: str = "train") -> tuple[float, float]:
    """학습 세트를 한 번 돕니다. 반환: (평균 손실, 학습 정확도). 손실은 배치 평균 × 배치 크기로 합산."""
    model.train()  # Dropout 켜기, BatchNorm 은 배치 통계로 정규화하고 이동 평균을 갱신
    order = torch.randperm(len(data.y_train))  # 전역 RNG: 같은 seed 면 같은 순서, 이어하기 때도 복원
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)][:max_batches]
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for step, index in enumerate(progress(batches, desc=f"{desc} {epoch}"), start=1):
        x = to_model_input(data.x_train[index], mean, std, device)  # (B, 3, H, W)
        y = data.y_train[index].to(device)  # (B,)
        if augment:
            x = augment_batch(x)
        optimizer.zero_grad(set_to_none=True)  # 기울기는 .grad 에 누적되므로 배치마다 비움
        with autocast(device, amp):
            logits = model(x)  # (B, K)
            loss = F.cross_entropy(logits, y)
        scaler.scale(loss).backward()  # float16 이면 손실을 키워 작은 기울기가 0 이 되는 것을 막음
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()  # OneCycle 은 배치마다 학습률을 바꿈
        check_finite(loss, epoch, step)
        total_loss += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
    seen = sum(len(b) for b in batches)
    return total_loss.item() / seen, correct.item() / seen


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, *, mean, std, device,
             batch_size: int = 512, amp: bool = False, max_batches: int | None = None):
    """정확도와 평균 손실, 예측. 반환: (loss, accuracy, predictions (N,), labels (N,)).

    model.eval(): Dropout 을 끄고 BatchNorm 이 배치 통계 대신 학습 중 모은 이동 평균을 쓰게 합니다.
    그래야 배치 구성과 상관없이 같은 이미지에 같은 답을 냅니다.
    """
    model.eval()
    count = len(labels) if max_batches is None else min(len(labels), max_batches * batch_size)
    total_loss, predictions = 0.0, []
    for start in range(0, count, batch_size):
        x = to_model_input(images[start:min(start + batch_size, count)], mean, std, device)
        y = labels[start:min(start + batch_size, count)].to(device)
        with autocast(device, amp):
            logits = model(x).float()
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()  # 합한 뒤 N 으로 나눔
        predictions.append(logits.argmax(1).cpu())
    predictions = torch.cat(predictions)
    truth = labels[:count]
    return total_loss / count, (predictions == truth).float().mean().item(), predictions, truth


def confusion_matrix(predictions: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """행 = 정답, 열 = 예측. (K, K) 개수. bincount 한 번으로: 칸 번호 = 정답·K + 예측."""
    return torch.bincount(truth * num_classes + predictions, minlength=num_classes ** 2).view(num_classes, -1)


def fit_quick(model, data, *, mean, std, device, epochs: int, batch_size: int, lr: float,
              max_batches: int | None, desc: str) -> list[float]:
    """기준선·실험용 짧은 학습 (Adam, 증강 없음). 반환: 배치마다의 손실 목록."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(data.y_train))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)][:max_batches]
        for step, index in enumerate(progress(batches, desc=f"{desc} {epoch}"), start=1):
            x = to_model_input(data.x_train[index], mean, std, device)
            y = data.y_train[index].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            check_finite(loss, epoch, step)
            losses.append(loss.detach())  # 곡선용. .item() 은 GPU 를 기다리므로 끝에서 한 번에
        if max_batches is not None:
            max_batches -= len(batches)
            if max_batches <= 0:
                break
    return torch.stack(losses).tolist()


# %% [markdown]
# ## 4. 깊이 실험: 지름길이 없으면 깊은 망이 더 못 배운다

# %%
def depth_experiment(data, *, mean, std, device, config: Config, smoke: bool) -> dict:
    """얕은 평범한 망(8층), 깊은 평범한 망, 깊은 잔차 망을 같은 배치 수만큼 학습해 비교합니다.

    2-core CPU 측정값(150 배치): 학습 손실 plain-8 ≈ 1.97, plain-32 ≈ 2.27, residual-32 ≈ 2.09.

    평범한(plain) 망은 층을 쌓을수록 학습 손실이 오히려 높아집니다(성능 저하 문제, degradation
    problem; He et al., 2015). 과적합이 아니라 최적화가 어려워서입니다. 지름길이 있으면 같은
    깊이에서도 잘 배웁니다.
    """
    steps = 1 if smoke else config.depth_steps
    runs = {"plain-8": (8, False), f"plain-{config.depth_layers}": (config.depth_layers, False),
            f"residual-{config.depth_layers}": (config.depth_layers, True)}
    curves, table = {}, {}
    print(f"\n[깊이 실험]: 망마다 {steps} 배치 학습")
    for name, (layers, skip) in runs.items():
        set_seed(config.seed)  # 모든 망이 같은 초기화 난수·같은 배치 순서로 공정하게
        model = DeepNet(len(data.classes), layers, skip).to(device, memory_format=torch.channels_last)
        losses = fit_quick(model, data, mean=mean, std=std, device=device, epochs=math.ceil(
            steps * config.batch_size / len(data.y_train)), batch_size=config.batch_size, lr=2e-3,
            max_batches=steps, desc=name)
        _, accuracy, _, _ = evaluate(model, data.x_test, data.y_test, mean=mean, std=std, device=device,
                                     max_batches=1 if smoke else None)
        window = max(1, len(losses) // 10)  # 마지막 10% 배치의 평균: 잡음이 적은 '최종 학습 손실'
        final_loss = sum(losses[-window:]) / window
        curves[name] = pd.Series(losses).rolling(window, min_periods=1).mean().tolist()
        table[name] = {"layers": layers, "final_train_loss": final_loss, "test_accuracy": accuracy}
        print(f"  {name:12s} 최종 학습 손실 {final_loss:.3f}, 시험 정확도 {accuracy:.3f}")
    return {"curves": curves, "table": table}


# %% [markdown]
# ## 5. 전이 학습(transfer learning): ImageNet ResNet-18 의 몸통을 얼리고 머리만

# %%
def make_transfer_model(num_classes: int, weights=None) -> nn.Module:
    """torchvision ResNet-18 + 새 머리(head). 몸통(backbone)은 얼립니다(requires_grad=False).

    weights=None 이면 무작위 가중치(테스트용), ResNet18_Weights.IMAGENET1K_V1 이면 ImageNet 가중치.
    얼린 파라미터에는 기울기가 생기지 않아 옵티마이저가 바꾸지 않습니다. 새 머리 fc 만 학습됩니다.
    """
    from torchvision.models import resnet18

    model = resnet18(weights=weights)
    for parameter in model.parameters():
        parameter.requires_grad = False
    model.fc = nn.Linear(model.fc.in_features, num_classes)  # 새로 만든 층은 requires_grad=True
    return model


def unfreeze(model: nn.Module) -> None:
    """미세 조정(fine-tuning): 모든 층을 다시 학습 가능하게."""
    for parameter in model.parameters():
        parameter.requires_grad = True


def load_imagenet_weights(offline: bool):
    """ResNet-18 ImageNet 가중치를 torchvision 의 API 로. 받을 수 없으면 (None, 이유)."""
    from torchvision.models import ResNet18_Weights

    weights = ResNet18_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if offline and not cached.exists():
        return None, "--data offline/--smoke 라 네트워크를 쓰지 않음"
    # 받는지만 확인 (실패하면 짧은 소켓 시간 제한 안에 이유 한 줄); 성공하면 캐시에 남아 바로 다시 읽힘
    model, reason = try_download(lambda: weights.get_state_dict(progress=False))
    return (weights if model is not None else None), reason


def transfer_learning(data, *, device, config: Config, smoke: bool) -> dict:
    """ImageNet ResNet-18: 1) 몸통을 얼리고 새 머리만 학습 2) (선택) 전체를 작은 학습률로 미세 조정."""
    print("\n[전이 학습] (ResNet-18, ImageNet 가중치)")
    weights, reason = load_imagenet_weights(offline=smoke or config.data == "offline")
    if weights is None:
        print(f"  ResNet-18 ImageNet 가중치를 받을 수 없어 전이 학습을 건너뜁니다 ({reason}).")
        return {}
    model = make_transfer_model(len(data.classes), weights).to(device, memory_format=torch.channels_last)
    # ImageNet 으로 학습된 망에는 ImageNet 의 평균·표준편차로 정규화한 입력을 줘야 합니다
    mean = torch.tensor(weights.transforms().mean)
    std = torch.tensor(weights.transforms().std)
    size = config.transfer_size
    resized = ColorImages(*(F.interpolate(t.float(), size=(size, size), mode="bilinear", align_corners=False)
                            .round().clamp(0, 255).to(torch.uint8) if t.dtype == torch.uint8 else t
                            for t in (data.x_train, data.y_train, data.x_test, data.y_test)),
                          data.classes, data.name)  # (N, 3, size, size): 1/32 로 줄여도 남는 크기
    max_batches = 1 if smoke else None
    results = {}
    for phase, epochs, lr in (("frozen", config.transfer_epochs, 1e-3),
                              ("fine_tuned", config.fine_tune_epochs, 1e-4)):
        if epochs == 0:
            continue
        if phase == "fine_tuned":
            unfreeze(model)
        trainable = count_parameters(model)
        fit_quick(model, resized, mean=mean, std=std, device=device, epochs=epochs,
                  batch_size=config.batch_size, lr=lr, max_batches=max_batches, desc=f"transfer-{phase}")
        _, accuracy, _, _ = evaluate(model, resized.x_test, resized.y_test, mean=mean, std=std,
                                     device=device, max_batches=max_batches)
        print(f"  {phase}: 학습되는 파라미터 {trainable:,}개, 시험 정확도 {accuracy:.4f}")
        results[f"transfer_{phase}_test_accuracy"] = accuracy
    return results


# %% [markdown]
# ## 6. 시각화: 필터와 실제 사진의 특징 맵

# %%
def plot_first_filters(model: nn.Module, path: Path, show: bool) -> Path:
    """첫 합성곱 층의 필터 (out, 3, 3, 3) 를 RGB 작은 그림으로. 필터마다 0~1 로 늘려 그림."""
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    weights = first_conv.weight.detach().float().cpu()  # (out, 3, k, k)
    low = weights.amin(dim=(1, 2, 3), keepdim=True)
    high = weights.amax(dim=(1, 2, 3), keepdim=True)
    weights = (weights - low) / (high - low + 1e-8)
    return plot_image_grid(weights, [f"filter {i}" for i in range(len(weights))], path, show=show,
                           title="First-layer filters (RGB, min-max scaled)", columns=8)


@torch.no_grad()
def plot_feature_maps(model: nn.Module, mean, std, device, path: Path, show: bool, channels: int = 8) -> Path:
    """scikit-learn 에 들어 있는 실제 사진(china.jpg)의 첫 블록 특징 맵.

    합성곱은 입력 크기에 상관없이 같은 필터를 밀기만 하므로, 32x32 로 학습한 층도 큰 사진에 쓸 수 있습니다.
    """
    from sklearn.datasets import load_sample_image

    model.eval()
    photo = torch.tensor(load_sample_image("china.jpg")).permute(2, 0, 1)  # (H,W,3) → (3, 427, 640)
    photo = F.interpolate(photo.unsqueeze(0).float(), size=(128, 192), mode="area")  # (1, 3, 128, 192)
    photo = photo.round().to(torch.uint8)
    first_layers = _layers_until_first_relu(model)
    maps = first_layers(to_model_input(photo, mean, std, device))[0].float().cpu()  # (C, h, w)
    fig, axes = plt.subplots(1, channels + 1, figsize=(2.2 * (channels + 1), 2.0))
    axes[0].imshow(photo[0].permute(1, 2, 0).numpy())
    axes[0].set_title("china.jpg")
    for index, ax in enumerate(axes[1:]):
        ax.imshow(maps[index].numpy(), cmap="viridis")
        ax.set_title(f"channel {index}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.suptitle("Feature maps after the first Conv-BN-ReLU")
    return save_figure(fig, path, show)


def _layers_until_first_relu(model: nn.Module) -> nn.Module:
    """모델 앞쪽의 Conv→BN→ReLU 만 떼어 냅니다 (VGG 는 features[0][:3], ResNet 은 stem)."""
    if isinstance(model, VGGNet):
        return model.features[0][:3]
    return model.stem


def plot_depth_comparison(result: dict, path: Path, show: bool) -> Path:
    return plot_curves(result["curves"], path, show=show, xlabel="training batch",
                       ylabel="train loss (smoothed)",
                       title="Plain vs residual: deeper plain nets train worse")


# %% [markdown]
# ## 7. 추론: 이미지 한 장

# %%
def predict(config: Config, device: torch.device, out_dir: Path) -> dict:
    """학습한 best.pt 로 이미지 파일 한 장을 분류합니다. 상위 3개 클래스와 확률을 출력."""
    image = read_predict_image(config.predict)  # (1, 3, 32, 32) uint8, 이미지가 아니면 UserError
    checkpoint = out_dir / "best.pt"
    extra = checkpoint_extra(checkpoint)  # 모델 설정을 먼저 읽어 같은 모양의 모델을 만듦
    model_config = Config(**{**vars(config), **extra["model_config"]})
    model = build_model(model_config.model, len(extra["classes"]), model_config).to(device)
    load_checkpoint(checkpoint, model=model, device=device, restore_rng=False)
    model.eval()  # BatchNorm 이동 평균, Dropout 끔
    with torch.no_grad():
        logits = model(to_model_input(image, torch.tensor(extra["mean"]), torch.tensor(extra["std"]), device))
        probabilities = logits.softmax(dim=1)[0].cpu()  # (K,)
    top = probabilities.topk(min(3, len(probabilities)))
    ranking = [(extra["classes"][i], p) for p, i in zip(top.values.tolist(), top.indices.tolist())]
    print(f"{config.predict}: " + ", ".join(f"{name} {p:.1%}" for name, p in ranking))
    return {"prediction": ranking[0][0], "probability": ranking[0][1]}


# %% [markdown]
# ## main: 데이터 → 모델 → 학습 → 평가 → 시각화 → 추론

# %%
def main(config: Config) -> dict:
    started = time.perf_counter()
    device = pick_device(config.device)
    set_seed(config.seed)
    out_dir = make_out_dir(config, __file__)
    if config.predict:
        return predict(config, device, out_dir)

    convolution_lesson()

    # 1. 데이터 --------------------------------------------------------------
    data = load_color_images(config.data, config.data_dir, config.smoke, config.seed)
    # 검증(validation) 세트를 학습 분할에서 떼어 best.pt 를 고릅니다. 시험 세트로 고르면 시험 점수가
    # 실제보다 좋게 나오므로(선택 편향) 시험 세트는 마지막 평가에만 씁니다.
    order = torch.randperm(len(data.y_train))
    n_val = max(1, int(len(order) * config.val_fraction))
    x_val, y_val = data.x_train[order[:n_val]], data.y_train[order[:n_val]]
    data = ColorImages(data.x_train[order[n_val:]], data.y_train[order[n_val:]], data.x_test, data.y_test,
                       data.classes, data.name)
    num_classes = len(data.classes)
    mean, std = channel_stats(data.x_train)
    print(f"\n[데이터] 학습 {len(data.y_train):,}장, 검증 {n_val:,}장, 시험 {len(data.y_test):,}장, "
          f"클래스 {num_classes}개 | "
          f"채널 평균 {[round(v, 3) for v in mean.tolist()]}, 표준편차 {[round(v, 3) for v in std.tolist()]}")
    max_batches = 1 if config.smoke else None  # --smoke: 배치 하나씩만
    eval_batches = 1 if config.smoke else None
    epochs = 1 if config.smoke else config.epochs

    # 2. 모델 ---------------------------------------------------------------
    parameter_counts = mlp_vs_cnn_parameters()
    model = build_model(config.model, num_classes, config).to(device, memory_format=torch.channels_last)
    describe_run(device, model, data.name)
    steps_per_epoch = len(range(0, len(data.y_train), config.batch_size))
    if max_batches is not None:
        steps_per_epoch = min(steps_per_epoch, max_batches)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)
    # OneCycle: 처음 25% 동안 학습률을 올렸다가(warm-up) 코사인으로 0 근처까지 내림 → 짧은 학습에 강함
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, epochs=epochs,
                                                    steps_per_epoch=steps_per_epoch, pct_start=0.25)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp and device.type == "cuda")
    amp = config.amp and device.type == "cuda"

    history = History(out_dir / "history.csv", resume=config.resume)
    start_epoch, best = 1, -math.inf
    extra = {"classes": data.classes, "mean": mean.tolist(), "std": std.tolist(),
             "model_config": {"model": config.model, "width": config.width, "hidden": config.hidden,
                              "dropout": config.dropout, "blocks_per_stage": config.blocks_per_stage},
             "train_seconds": 0.0, "train_images": 0}
    if config.resume:
        state = load_checkpoint(out_dir / "last.pt", model=model, optimizer=optimizer,
                                scheduler=scheduler, scaler=scaler, device=device)
        start_epoch, best = state["epoch"] + 1, state["best_metric"]
        extra.update(state["extra"])
        history.truncate(state["epoch"])

    # 2-1. MLP 기준선과 깊이 실험 (이어하기면 저장된 결과를 씀) ----------------------
    if "mlp_test_accuracy" not in extra:
        mlp = MLP(num_classes, config.mlp_hidden).to(device)
        print(f"\n[MLP 기준선]: 파라미터 {count_parameters(mlp):,}개 vs CNN {count_parameters(model):,}개")
        mlp_epochs = 1 if config.smoke else config.mlp_epochs
        fit_quick(mlp, data, mean=mean, std=std, device=device, epochs=mlp_epochs,
                  batch_size=config.batch_size, lr=1e-3, max_batches=max_batches, desc="mlp")
        _, extra["mlp_test_accuracy"], _, _ = evaluate(mlp, data.x_test, data.y_test, mean=mean, std=std,
                                                       device=device, max_batches=eval_batches)
        extra["mlp_parameters"] = count_parameters(mlp)
        print(f"  MLP 시험 정확도 {extra['mlp_test_accuracy']:.4f}")
    if "depth" not in extra and config.depth_steps > 0:
        extra["depth"] = depth_experiment(data, mean=mean, std=std, device=device, config=config,
                                          smoke=config.smoke)
        set_seed(config.seed)  # 실험이 쓴 난수와 상관없이 본 학습은 항상 같은 상태에서 시작

    # 3. 학습 ---------------------------------------------------------------
    print(f"\n[학습] {config.model}: {epochs} epoch, 배치 {config.batch_size}, 증강 {config.augment}")
    completed = start_epoch - 1  # 끝까지 마치고 last.pt 에 저장한 마지막 epoch
    save_last = lambda: save_checkpoint(out_dir / "last.pt", model=model, optimizer=optimizer,
                                        scheduler=scheduler, scaler=scaler, epoch=completed,
                                        best_metric=best, extra=extra)
    # Ctrl+C: 끝난 epoch 의 last.pt 가 있으면 그대로 둡니다 (--resume 이 끊지 않은 학습과 같게 이어짐).
    on_interrupt = lambda: None if completed > 0 else save_last()
    with save_on_interrupt(on_interrupt, out_dir):
        for epoch in range(start_epoch, epochs + 1):
            epoch_started = time.perf_counter()
            train_loss, train_acc = train_one_epoch(
                model, data, optimizer, scheduler, scaler, mean=mean, std=std, device=device,
                batch_size=config.batch_size, augment=config.augment, amp=amp, epoch=epoch,
                max_batches=max_batches)
            extra["train_seconds"] += time.perf_counter() - epoch_started
            extra["train_images"] += min(len(data.y_train), steps_per_epoch * config.batch_size)
            val_loss, val_acc, _, _ = evaluate(model, x_val, y_val, mean=mean, std=std,
                                               device=device, amp=amp, max_batches=eval_batches)
            history.log(epoch=epoch, train_loss=train_loss, val_loss=val_loss, train_acc=train_acc,
                        val_acc=val_acc, lr=scheduler.get_last_lr()[0])
            if val_acc >= best:  # 같으면 더 오래 학습한 쪽
                best = val_acc
                save_checkpoint(out_dir / "best.pt", model=model, epoch=epoch, best_metric=best, extra=extra)
            completed = epoch
            save_last()

    # 4. 평가 ---------------------------------------------------------------
    # 마지막 epoch 모델로 평가합니다 (OneCycle 은 끝에서 학습률이 가장 작아 마지막이 보통 가장 좋음)
    test_loss, test_acc, predictions, truth = evaluate(model, data.x_test, data.y_test, mean=mean, std=std,
                                                       device=device, amp=amp, max_batches=eval_batches)
    matrix = confusion_matrix(predictions, truth, num_classes)
    per_class = (matrix.diag().float() / matrix.sum(1).clamp_min(1).float()).tolist()
    images_per_second = extra["train_images"] / max(extra["train_seconds"], 1e-9)
    print(f"\n[평가] 시험 정확도 {test_acc:.4f} (MLP 기준선 {extra['mlp_test_accuracy']:.4f}), "
          f"학습 속도 {images_per_second:,.0f} images/s")
    for name, accuracy in zip(data.classes, per_class):
        print(f"    {name:12s} {accuracy:.3f}")

    # 5. 시각화 -------------------------------------------------------------
    plot_history(history.rows, out_dir / "history.png", show=config.show,
                 title=f"{config.model} on {data.name}")
    plot_confusion_matrix(matrix.numpy(), data.classes, out_dir / "confusion_matrix.png", show=config.show)
    shown = min(32, len(predictions))
    plot_image_grid(data.x_test[:shown].float() / 255,
                    [f"{data.classes[p]}\n(true {data.classes[t]})" if p != t else data.classes[p]
                     for p, t in zip(predictions[:shown].tolist(), truth[:shown].tolist())],
                    out_dir / "predictions.png", show=config.show, title="Test predictions (red = wrong)",
                    title_colors=["green" if p == t else "red"
                                  for p, t in zip(predictions[:shown].tolist(), truth[:shown].tolist())])
    plot_first_filters(model, out_dir / "filters.png", config.show)
    plot_feature_maps(model, mean, std, device, out_dir / "feature_maps.png", config.show)
    if "depth" in extra:
        plot_depth_comparison(extra["depth"], out_dir / "depth_comparison.png", config.show)

    transfer = {}
    if config.pretrained:
        transfer = transfer_learning(data, device=device, config=config, smoke=config.smoke)

    # 6. 추론: 시험 이미지 한 장 ---------------------------------------------------
    model.eval()
    with torch.no_grad():
        probabilities = model(to_model_input(data.x_test[:1], mean, std, device)).softmax(1)[0]  # (K,)
    print(f"\n[추론] 시험 이미지 0: 예측 {data.classes[probabilities.argmax()]} "
          f"({probabilities.max():.1%}), 정답 {data.classes[data.y_test[0]]}")

    metrics = {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "mlp_test_accuracy": extra["mlp_test_accuracy"],
        "cnn_minus_mlp": test_acc - extra["mlp_test_accuracy"],
        "best_val_accuracy": best,
        "per_class_accuracy": dict(zip(data.classes, per_class)),
        "mlp_parameters": extra["mlp_parameters"],
        "parameter_counts_256x256": parameter_counts,
        **({"depth_experiment": extra["depth"]["table"]} if "depth" in extra else {}),
        **transfer,
    }
    seconds = time.perf_counter() - started
    # 학습 속도는 실행마다 달라서 metrics 가 아닌 timing 에 둡니다: 같은 seed → 같은 metrics
    write_run_record(out_dir, script=__file__, config=config, data=data.name, device=device, seconds=seconds,
                     parameters=count_parameters(model), metrics=metrics, headline="test_accuracy",
                     timing={"train_images_per_second": round(images_per_second, 1)})
    print(f"끝: {seconds:.0f}초, 학습 {images_per_second:,.0f} images/s → {out_dir}")
    return metrics


if __name__ == "__main__":
    run(main, Config)
