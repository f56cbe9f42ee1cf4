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
    - 같은 스크립트를 torchrun 으로 여러 프로세스·여러 기계에서 DistributedDataParallel(DDP)로
      학습한다 (3-1절).

핵심 개념
    출력 크기 = ⌊(입력 + 2·패딩 − 커널) / 스트라이드⌋ + 1, 파라미터 공유(weight sharing),
    국소 연결(local connectivity), 배치 정규화(BatchNorm), 잔차 연결, 1x1 합성곱 지름길(shortcut),
    채널별 평균·표준편차 정규화, 무작위 자르기(random crop)와 좌우 뒤집기(horizontal flip),
    얼리기(freezing, requires_grad=False)와 미세 조정(fine-tuning), 혼동 행렬(confusion matrix),
    분산 학습: RANK·LOCAL_RANK·WORLD_SIZE, DistributedSampler 와 set_epoch, 기울기 all-reduce, SyncBatchNorm.

실행 방법
    python 03_cnn_image_classification.py                      # 기본: CIFAR-10, 없으면 오프라인 도형 데이터
    python 03_cnn_image_classification.py --data offline       # 네트워크 없이 절차적 도형 10종
    python 03_cnn_image_classification.py --model resnet       # ResNet 변형
    python 03_cnn_image_classification.py --smoke              # 배치 하나씩 3 epoch: 흐름만 확인 (몇 초)
    python 03_cnn_image_classification.py --data real          # CIFAR-10 만 (data/cifar-10-batches-py)
    python 03_cnn_image_classification.py --data-dir my_images/   # 내 사진: my_images/<클래스>/*.jpg
                                                              # (또는 my_images/train/, my_images/test/)
        학습 길이는 epoch 수가 아니라 본 이미지 수(--train-images 144,000 = 도형 18,000장 × 8바퀴)로
        정합니다: 300장짜리 폴더면 480바퀴, CIFAR-10 이면 4바퀴. 시작할 때 한 줄로 알리고, 검증 손실이
        --patience 10 epoch 동안 나아지지 않으면 멈춥니다. --epochs N 은 예산 대신 정확히 N epoch.
        시험 정확도가 찍기(1/클래스 수)와 잡음 안에서 같으면 마지막에 경고 한 줄.
    python 03_cnn_image_classification.py --pretrained         # + ResNet-18 ImageNet 가중치로 전이 학습
    python 03_cnn_image_classification.py --predict cat.jpg    # best.pt 로 사진 한 장 분류 → prediction.json
    python 03_cnn_image_classification.py --resume             # Ctrl+C 로 멈춘 학습을 마지막 epoch 다음부터
    OMP_NUM_THREADS=1 python 03_cnn_image_classification.py    # CPU 가 다른 작업으로 바쁠 때 (아래 참고)
    GPU 에서 실제 CIFAR-10 (권장):
    python 03_cnn_image_classification.py --data real --device cuda --amp --model resnet \\
        --width 64 --blocks-per-stage 2 --epochs 30 --batch-size 256 --lr 0.1
    여러 프로세스 (DDP, 3-1절): --batch-size 와 --lr 은 전체 값, 프로세스마다 batch-size/N 장.
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 03_cnn_image_classification.py --data offline
    torchrun --standalone --nproc_per_node=4 03_cnn_image_classification.py --data real --device cuda --amp
        (GPU 4장: 백엔드 nccl, 프로세스마다 cuda:LOCAL_RANK, BatchNorm → SyncBatchNorm;
         GPU 보다 많은 --nproc_per_node 는 한 줄 오류)
    … --resume 을 붙이면 last.pt 에서 이어 갑니다: 프로세스 수가 달라도, torchrun 없이 한 프로세스로도 됩니다.
    두 기계 (기계마다 같은 명령, --node_rank 만 0 과 1; host:port = 첫 기계의 주소와 비어 있는 포트):
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 --rdzv_endpoint host:29500 \\
        03_cnn_image_classification.py --data real --device cuda
    torchrun --nnodes 2 --node_rank 1 --nproc_per_node 4 --rdzv_endpoint host:29500 \\
        03_cnn_image_classification.py --data real --device cuda
    클러스터(SLURM): 기계마다 torchrun 하나를 srun 으로 띄우고, 약속 장소(rendezvous)는 첫 노드:
    srun --nodes 2 --ntasks-per-node 1 torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d \\
        --rdzv_id $SLURM_JOB_ID --rdzv_endpoint "$(scontrol show hostnames | head -n 1):29500" \\
        03_cnn_image_classification.py --data real --device cuda
    여러 기계에서 달라지는 것: 데이터는 모든 기계에 미리 두고(프로세스들이 동시에 내려받지 않게), 출력
    (체크포인트·그림·metrics.json)은 rank 0 의 기계에만 생깁니다 (--resume 때도 rank 0 이 읽어 나눠 줌).
    닿지 않는 주소: torchrun 은 스크립트를 띄우기 전에 자기 약속(rendezvous)에서 아무 말 없이 기다립니다
    (기본 600초, 이 스크립트가 어쩔 수 없는 부분). torchrun 에 --rdzv_conf timeout=60 (기본 static) 또는
    join_timeout=60 (c10d) 을 주면 그 뒤 torchrun 의 traceback 과 함께 끝납니다. 스크립트가 여는 프로세스
    그룹은 --dist-timeout 초(기본 60) 안에 못 만나면 "오류: …" 한 줄, 종료 코드 2 로 끝납니다.
    두 기계·SLURM·GPU(nccl) 명령은 이 저장소의 기계(GPU 없는 한 대)에서 시험하지 못했습니다. 한 기계의
    torchrun 2 프로세스(CPU, gloo)는 tests/test_ddp.py 가 시험합니다. 2코어 CPU 에서는 프로세스 2개(각
    1스레드)가 1개(2스레드)보다 빠르지 않을 수 있습니다: DDP 의 이득은 GPU 여러 장·기계 여러 대에서 나옵니다.

기대 결과 (아래 블록은 benchmarks/run_all.py 가 씀; 그 밖의 숫자는 조건을 밝힌 따로 잰 값)
    [results] benchmarks/run_all.py 가 results.json 에서 옮겨 씀: 중앙값 (최소–최대)
    - `--data offline` · procedural colour shapes (offline fallback) · cpu · seeds 42, 43, 44
      test_accuracy 0.9977 (0.9977–0.998) · mlp_test_accuracy 0.51 (0.4967–0.544)
      train_images_per_second 2267 (2266–2328) · wall 131 (130–133) s · peak 1.39 GB
    - `torchrun --nproc_per_node 2` `--data offline` · procedural colour shapes (offline fallback) · cpu
      seeds 42
      test_accuracy 0.9978 · mlp_test_accuracy 0.517 · processes 2 · train_images_per_second 1936
      wall 162 s · peak 1.53 GB
    - 기계: Intel(R) Xeon(R) Processor, 2 cores (2 torch threads), GPU: none, torch 2.14.1+cu130
    [/results]
    깊이 실험 (150 배치 뒤 학습 손실, 계약 개편 뒤 1회, 붐비는 기계): 평범한 8층 2.00, 평범한 32층 2.30,
        잔차 32층 2.08 → 깊기만 한 망이 가장 나쁘고, 건너뛰기 연결(skip)이 그 차이의 대부분을 되찾습니다.
    실제 CIFAR-10 은 이 환경에 네트워크가 없어 측정하지 못했습니다. 위 GPU 설정(폭 64, 단계마다
    블록 2개 = ResNet-18 배치, 30 epoch, AMP)이면 같은 계열 모델의 흔한 수치로 93~94% 정도가
    기대되지만, 이 스크립트로 GPU 에서 돌린 측정값은 아직 없습니다(미측정). 기본 설정(폭 16)으로
    CPU 에서 CIFAR-10 을 돌린 결과도 미측정입니다.
    CPU 를 다른 프로그램과 나눠 쓰는 중이면 스레드끼리 기다리느라 크게 느려질 수 있습니다. 다른 학습
    4개가 함께 돌던 이 기계에서는 OMP_NUM_THREADS=1 이 2스레드보다 약 6배 빨랐습니다
    (814 대 126 images/s, 측정값).
"""

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DistributedSampler

from utils import (
    distributed,  # 여러 프로세스(DDP)의 준비: distributed.start, .is_main, .barrier, …
    training,  # 학습 뼈대: training.resume_or_start, .save_checkpoint, .History, …
)
from utils import visualization as viz  # 그림 저장은 이 장의 주제가 아니라 모듈 하나로 (viz.save_figure)
from utils.data import color_images  # 데이터 읽기: color_images.load_color_images, .read_predict_image
from utils.data.common import try_download
from utils.runtime import RunConfig, pick_device, run, write_run_record

# 모양 글자: B=배치, C=채널, H=높이, W=너비, K=클래스 수, N=이미지 수


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "03_cnn_image_classification"  # 출력 폴더 이름, 체크포인트 주인
    # --resume 때 달라도 되는 플래그: 원-사이클 스케줄이 총 epoch 수에 묶여 --epochs 는 빼고,
    # 부록 실험의 설정은 본 학습(run 블록)의 숫자를 바꾸지 않으므로 더함
    # (예: 멈춘 뒤 --resume --depth-steps 0 으로 깊이 실험 건너뛰기)
    resume_free: ClassVar[frozenset[str]] = (RunConfig.resume_free - {"epochs"}) | {
        "mlp_epochs", "mlp_hidden_size", "depth_layers", "depth_steps", "pretrained",
        "transfer_epochs", "fine_tune_epochs", "transfer_size", "dist_timeout"}
    model: Literal["vgg", "resnet"] = "vgg"  # vgg: 강의의 3블록 CNN, resnet: 잔차 블록 변형
    epochs: int = 0  # 0 = 학습 예산(--train-images)에서 계산 (도형은 8바퀴). N 을 주면 정확히 N epoch
    train_images: int = 144_000  # 학습 예산(본 이미지 수): 도형 학습 18,000장 × 8바퀴면 99% 를 넘김
    patience: int = 10  # 조기 종료: 검증 손실이 이만큼 epoch 동안 나아지지 않으면 멈춤 (0 = 끄기)
    batch_size: int = 128  # CPU 에서 빠르고 BatchNorm 통계가 안정적인 크기
    lr: float = 0.05  # SGD 최대 학습률 (OneCycle 스케줄의 꼭대기)
    momentum: float = 0.9  # SGD 모멘텀: 표준값
    weight_decay: float = 5e-4  # L2 규제: CIFAR 계열에서 흔한 값
    width: int = 16  # 첫 블록의 채널 수. 블록마다 두 배 (16→32→64). GPU 에서는 64 권장
    blocks_per_stage: int = 1  # resnet 단계마다 잔차 블록 수 (2 면 ResNet-18 과 같은 배치)
    hidden_size: int = 256  # vgg 분류기(FC) 첫 은닉층 크기
    dropout: float = 0.2  # 분류기 FC 사이 드롭아웃 비율
    augment: bool = True  # 무작위 자르기(패딩 4) + 좌우 뒤집기
    val_fraction: float = 0.1  # 학습 분할에서 떼어 best.pt 고르기에 쓰는 검증 비율
    amp: bool = False  # GPU 혼합 정밀도 (CUDA float16). CPU 에서는 이득이 없어 꺼 둠
    mlp_epochs: int = 8  # 부록 MLP 기준선 학습 epoch (CNN 과 같은 수, 0 이면 생략)
    mlp_hidden_size: int = 512  # 부록 MLP 기준선 은닉층 크기
    depth_layers: int = 32  # 부록 깊이 실험의 '깊은' 망 층 수 (얕은 망은 8층)
    depth_steps: int = 150  # 부록 깊이 실험에서 망마다 학습할 배치 수 (0 이면 생략)
    pretrained: bool = False  # 부록: ResNet-18 ImageNet 가중치로 전이 학습 (가중치를 받을 수 있을 때)
    transfer_epochs: int = 2  # 전이 학습: 몸통을 얼리고 머리만 학습하는 epoch
    fine_tune_epochs: int = 1  # 전이 학습: 그 뒤 전체를 작은 학습률로 미세 조정하는 epoch (0 이면 생략)
    transfer_size: int = 64  # 전이 학습 입력 크기: 32x32 를 키움 (ResNet-18 은 1/32 로 줄이므로)
    predict: str = ""  # 이미지 파일 경로: 학습한 best.pt 로 분류만 하고 prediction.json 에 씀
    dist_timeout: float = 60.0  # 초: torchrun 의 다른 프로세스를 기다리는 최대 시간 (못 만나면 한 줄 오류)

    def __post_init__(self):
        for name in ("width", "blocks_per_stage", "hidden_size", "mlp_hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} 는 1 이상이어야 합니다 "
                                 f"(받은 값: {getattr(self, name)}).")
        for name in ("mlp_epochs", "depth_steps", "transfer_epochs", "fine_tune_epochs", "patience"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} 는 0 이상이어야 합니다 "
                                 f"(받은 값: {getattr(self, name)}).")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout 는 0 이상 1 미만이어야 합니다 (받은 값: {self.dropout}).")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"--val-fraction 는 0 과 0.5 사이여야 합니다 (받은 값: {self.val_fraction}).")
        if self.depth_layers < 10 or self.depth_layers % 2:
            raise ValueError("--depth-layers 는 10 이상의 짝수여야 합니다 (줄기 1층 + 2층짜리 블록들 + "
                             f"출력 1층) (받은 값: {self.depth_layers}).")
        if not self.dist_timeout > 0:
            raise ValueError(f"--dist-timeout 은 0 보다 커야 합니다 (받은 값: {self.dist_timeout}).")
        if self.transfer_size < 32:
            raise ValueError(f"--transfer-size 는 32 이상이어야 합니다 (받은 값: {self.transfer_size}).")


LOW_CONFIDENCE = 0.5  # --predict: 최고 확률이 이보다 낮으면 '학습 데이터와 다른 이미지일 수 있음'을 알림
EVAL_BATCH_SIZE = 512  # 평가는 기울기를 저장하지 않아 메모리가 적게 듦 → 학습보다 큰 배치로 반복 횟수를 줄임


# %% [markdown]
# ## 1. 데이터: 검증 분할, 채널별 정규화, 배치 단위 증강
# 이미지는 uint8 텐서 (N, 3, 32, 32) 로 통째로 메모리에 둡니다 (CIFAR-10 5만 장 = 150 MB).
# DataLoader 작업자 없이 배치마다 잘라 쓰는 편이 2코어 CPU 에서 더 빠르므로, 섞는 순서는
# DataLoader 대신 seed 를 준 torch.Generator 로 정하고 체크포인트에 함께 저장합니다.

# %%
def split_validation(data, fraction: float, seed: int):
    """학습 분할에서 검증(validation) 세트를 떼어 냅니다. 반환: (남은 학습 데이터, (x_val, y_val)).

    best.pt 는 검증 점수로 고릅니다. 시험 세트로 고르면 시험 점수가 실제보다 좋게 나오므로(선택 편향)
    시험 세트는 마지막 평가에만 씁니다. 자기 Generator 로 섞어 앞에서 쓴 난수와 상관없이 같은 분할.
    """
    order = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(len(order) * fraction))
    val, train = order[:n_val], order[n_val:]
    return (dataclasses.replace(data, x_train=data.x_train[train], y_train=data.y_train[train]),
            (data.x_train[val], data.y_train[val]))


def prepare_data(config: Config, device: torch.device):
    """데이터 정책대로 불러오고 검증 세트를 뗀 뒤, 학습 세트로만 채널별 평균·표준편차를 잽니다.

    반환: (학습·시험 데이터, (x_val, y_val), inputs). inputs = {"mean", "std", "device"}: uint8 배치를
    모델 입력으로 바꿀 때 늘 같이 넘기는 것 (to_model_input). 시험 세트로 재면 시험 정보가 새어 듦.
    """
    data = color_images.load_color_images(config.data, config.data_dir, config.smoke, config.seed)
    data, (x_val, y_val) = split_validation(data, config.val_fraction, config.seed)
    print(f"\n[데이터] {data.name}: 학습 {len(data.y_train):,}장, 검증 {len(y_val):,}장, "
          f"시험 {len(data.y_test):,}장, 클래스 {len(data.classes)}개 ({', '.join(data.classes[:10])}"
          f"{', …' if len(data.classes) > 10 else ''})")
    mean, std = channel_stats(data.x_train)
    return data, (x_val, y_val), {"mean": mean, "std": std, "device": device}


def training_length(config: Config, train_count: int) -> tuple[int, int | None]:
    """(epoch 수, epoch 당 최대 배치 수). 학습 길이는 epoch 수가 아니라 '본 이미지 수'(예산)로 정합니다.

    도형 18,000장 × 8바퀴 = 144,000장에 맞춘 학습 길이를 300장짜리 폴더에 8 epoch 로 쓰면 걸음 수가
    60 분의 1 이라 배우다 맙니다. 그래서 예산 ÷ 세트 크기: 폴더 300장 → 480바퀴 (조기 종료가 먼저 끝낼
    수 있음), CIFAR-10 45,000장 → 4바퀴. 32x32 이미지라 예산이 곧 시간 상한 (2코어 약 5분).
    --epochs N 은 예산 대신 정확히 N, --smoke 는 배치 하나씩 최대 3 epoch.
    """
    if config.smoke:
        return min(config.epochs or 3, 3), 1
    epochs = config.epochs or training.epochs_for_budget(train_count, config.train_images, max_epochs=2000)
    print(training.describe_budget(train_count, epochs, early_stop=config.patience > 0))
    return epochs, None


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


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None,
                  padding: int = 4) -> torch.Tensor:
    """배치 전체에 무작위 자르기(random crop) + 좌우 뒤집기(horizontal flip)를 한 번에. (B, C, H, W).

    이미지마다 파이썬 반복문을 돌지 않고 인덱스 텐서로 한꺼번에 잘라 냅니다(장치 위에서).
    정규화한 뒤에 0 으로 패딩하므로 채운 칸은 '평균 색'입니다. 라벨은 바뀌지 않습니다:
    잘린 위치나 좌우가 달라도 같은 물체이기 때문입니다 (그래서 위아래 뒤집기는 하지 않음).
    난수(B 개씩)는 CPU 의 `generator` 로 뽑아 장치로 옮깁니다: 이어하기 때 그 상태를 되살리면 같은 증강.
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    top = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    left = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    rows = (top.view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1)  # (B, 1, H, 1)
    cols = (left.view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w)  # (B, 1, 1, W)
    batch_index = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    channel_index = torch.arange(c, device=x.device).view(1, c, 1, 1)
    cropped = padded[batch_index, channel_index, rows, cols]  # (B, C, H, W)
    cropped = torch.where(flip.view(b, 1, 1, 1), cropped.flip(3), cropped)
    return cropped.contiguous(memory_format=torch.channels_last)


# %% [markdown]
# ## 2. 모델: 합성곱과 풀링을 손으로 → VGG 스타일 CNN → 잔차 블록(ResNet)
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


def count_parameters(model: nn.Module) -> int:
    """학습되는(requires_grad) 파라미터 수. 얼린 층(부록의 전이 학습)은 세지 않습니다."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """강의의 기본 블록 Conv→ReLU→Conv→ReLU→MaxPool 에 배치 정규화(BatchNorm)를 더한 것.

    BatchNorm: 채널마다 배치의 평균 0, 분산 1 로 맞춘 뒤 학습되는 γ, β 로 다시 늘이고 옮깁니다.
        y = γ · (x − μ_B) / √(σ²_B + ε) + β
    층 입력의 분포가 학습 중에 덜 흔들려 큰 학습률로도 안정적으로 빨리 배웁니다. 바로 뒤에
    BatchNorm 이 평균을 빼므로 합성곱의 편향(bias)은 쓸모가 없어 bias=False.
    3x3 패딩 1 은 크기를 유지하고(⌊(n+2−3)/1⌋+1 = n), MaxPool 2 가 가로세로를 절반으로 줄입니다.
    (앞의 Conv→BN→ReLU 세 층은 06·09·10 장이 쓰는 utils.models.conv_bn_relu 와 같습니다.)
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

    def __init__(self, num_classes: int, width: int = 16, hidden_size: int = 256, dropout: float = 0.2):
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
            nn.Linear(flat, hidden_size), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden_size, hidden_size // 2), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden_size // 2, num_classes),  # (B, K) 로짓(logit)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ResidualBlock(nn.Module):
    """잔차 블록: 출력 = ReLU(f(x) + shortcut(x)),  f = Conv→BN→ReLU→Conv→BN.

    층이 '전체 변환' 대신 '입력과의 차이(잔차) f(x)' 만 배우면 됩니다. 더할 수 있으려면 모양이
    같아야 하므로, 채널 수나 stride 가 바뀔 때는 지름길(shortcut)을 1x1 합성곱(+BN)으로 맞춥니다
    (다운샘플 지름길, downsample shortcut). 역전파 때 기울기는 + 를 지나 지름길로 그대로 흘러
    깊은 망에서도 기울기 소실(vanishing gradient)이 덜합니다.
    06·09·10 장은 같은 블록을 utils.models.ResidualBlock 으로 가져다 씁니다 (tests/test_ch03.py 가
    같은 가중치에서 같은 값을 내는지 확인).
    입력 (B, in, H, W) → 출력 (B, out, H/stride, W/stride)
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
        # 아래 두 스위치는 부록의 깊이 실험용: skip=False 면 같은 층을 지름길 없이 쌓은 '평범한(plain)'
        # 블록, batch_norm=False 면 BatchNorm 의 도움 없이 깊이와 지름길의 효과만 봅니다.
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


def build_model(name: str, num_classes: int, width: int = 16, hidden_size: int = 256, dropout: float = 0.2,
                blocks_per_stage: int = 1) -> nn.Module:
    """model_args 만으로 모델을 만듭니다: 학습, --resume, --predict, 시험 평가가 모두 이 함수를 씁니다."""
    if name == "vgg":
        return VGGNet(num_classes, width, hidden_size, dropout)
    return ResNet(num_classes, width, blocks_per_stage)


# %% [markdown]
# ## 3. 학습: SGD + OneCycle, 배치마다 증강

# %%
def train_one_epoch(model, data, optimizer, scheduler, scaler, *, generator: torch.Generator, mean, std,
                    device, batch_size: int, augment: bool, amp: bool, epoch: int,
                    max_batches: int | None = None, sampler: DistributedSampler | None = None) -> float:
    """학습 세트를 한 번 돕니다. 반환: 평균 손실 (배치 평균 × 배치 크기로 합산한 뒤 N 으로 나눔).

    섞는 순서와 증강은 `generator` 로, 드롭아웃은 전역 RNG 로 정해집니다 (둘 다 체크포인트에 저장).
    DDP(3-1절): model 은 DDP 로 감싼 모델, 순서는 `sampler` 가 준 이 프로세스의 몫, batch_size 는
    프로세스마다의 B/N. 증강·드롭아웃 난수는 epoch 마다 (seed, epoch, rank) 로 새로 정합니다
    (rank 마다 다르게, 그리고 프로세스 수가 달라져도 이어하기가 같게: utils/distributed.seed_epoch).
    """
    model.train()  # Dropout 켜기, BatchNorm 은 배치 통계로 정규화하고 이동 평균을 갱신
    if sampler is None:
        order = torch.randperm(len(data.y_train), generator=generator)
    else:
        distributed.seed_epoch(sampler.seed, epoch, [generator])
        order = torch.tensor(list(sampler))  # 이 프로세스의 몫: (seed + epoch) 로 섞은 전체의 rank 번째 줄
    batches = order.split(batch_size)[:max_batches]
    total_loss = torch.zeros((), device=device)
    for step, index in enumerate(training.progress(batches, desc=f"epoch {epoch}"), start=1):
        x = to_model_input(data.x_train[index], mean, std, device)  # (B, 3, H, W)
        y = data.y_train[index].to(device)  # (B,)
        if augment:
            x = augment_batch(x, generator)
        optimizer.zero_grad(set_to_none=True)  # 기울기는 .grad 에 누적되므로 배치마다 비움
        # 혼합 정밀도(AMP)는 CUDA 에서만: CPU 의 bfloat16 은 숫자를 몰래 바꾸므로 켜지 않음
        with torch.amp.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(x)  # (B, K)
            loss = F.cross_entropy(logits, y)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:  # float16 AMP: 손실을 키워 작은 기울기가 0 이 되는 것을 막고, step 전에 되돌림
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        scheduler.step()  # OneCycle 은 배치마다 학습률을 바꿈
        training.check_finite(loss, epoch, step)
        total_loss += loss.detach() * len(y)  # .item() 은 GPU 를 기다리므로 epoch 끝에서 한 번
    count = sum(len(index) for index in batches)
    if sampler is None:
        return total_loss.item() / count
    # DDP: BatchNorm 의 이동 평균은 프로세스마다 자기 배치로 갱신되어 조금씩 다릅니다 (CPU 에는
    # SyncBatchNorm 이 없음). 검증·체크포인트가 모두 같은 모델을 보도록 rank 0 의 값을 모두에게 보냄.
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)
    totals = torch.stack([total_loss.double(), torch.tensor(count, dtype=torch.float64, device=device)])
    dist.all_reduce(totals)  # 기록할 평균 손실: 모든 프로세스의 (손실 합, 이미지 수)를 더해서
    return (totals[0] / totals[1]).item()


def make_optimizer(model: nn.Module, config: Config, epochs: int, steps_per_epoch: int):
    """SGD(네스테로프 모멘텀) + OneCycle 학습률 스케줄. 반환: (optimizer, scheduler).

    OneCycle: 처음 25% 동안 학습률을 올렸다가(warm-up) 코사인으로 0 근처까지 내림 → 짧은 학습에 강함.
    배치마다 step 하므로 총 걸음 수 = epochs × steps_per_epoch 가 처음부터 정해져 있습니다.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, epochs=epochs,
                                                    steps_per_epoch=steps_per_epoch, pct_start=0.25)
    return optimizer, scheduler


def images_per_second(history: training.History, images_per_epoch: int) -> float:
    """학습 속도: 기록된 epoch 들의 학습 이미지 수 / 학습 시간 (이어하기 뒤에도 기록으로 계산)."""
    seconds = sum(row["train_seconds"] for row in history.rows)
    return round(len(history.rows) * images_per_epoch / max(seconds, 1e-9), 1)


# %% [markdown]
# ## 3-1. 여러 프로세스로 학습: torchrun + DistributedDataParallel (DDP)
# `torchrun --nproc_per_node=N 03_cnn_image_classification.py …` 는 이 스크립트를 N 번 띄우고 프로세스마다
# 환경 변수 RANK(전체에서 몇 번째, 0…N-1), LOCAL_RANK(이 기계에서 몇 번째 = GPU 번호), WORLD_SIZE(N)를 줍니다.
# 모든 프로세스가 이 파일을 위에서부터 똑같이 실행하고, 달라지는 곳은 넷뿐입니다:
#   1) 데이터: DistributedSampler 가 학습 세트를 N 몫으로 나눠, 프로세스마다 서로 다른 B/N 장을 봅니다.
#   2) 기울기: DDP 로 감싼 모델은 backward() 도중 모든 프로세스의 기울기를 all-reduce 로 평균합니다.
#      손실이 배치 평균이므로 'N 개 × B/N 장의 기울기 평균' = '한 프로세스 × B 장의 기울기'
#      (BatchNorm 이 없는 모델에서 정확히; tests/test_ddp.py 가 확인). 그래서 모든 프로세스가 같은
#      기울기로 같은 optimizer.step() 을 하고, 가중치가 끝까지 같습니다.
#   3) 평가: 프로세스마다 시험 세트의 자기 몫을 평가하고 (손실 합, 정답 수, 개수)를 all_reduce 로 더함.
#   4) 출력·그림·체크포인트·metrics.json 은 rank 0 만. 다른 프로세스는 저장이 끝날 때까지 barrier 에서
#      기다림. 시험 평가가 끝나면 프로세스 그룹을 닫고(distributed.end) 그림·부록 실험·기록은 rank 0 혼자.
# --batch-size 와 --lr 은 전체(global) 값입니다: 프로세스마다 batch-size/N 장, 학습률은 그대로.
# 그래서 한 epoch 의 걸음 수와 OneCycle 일정이 N 과 상관없이 같고, 체크포인트를 다른 N 으로 이어 갈 수
# 있습니다 (rank 0 이 쓴 체크포인트의 state_dict 는 DDP 로 감싸기 전 모델의 것이라 이름도 같음).

# %%
def setup_ddp(config: Config) -> tuple[torch.device, int]:
    """torchrun 아래면 프로세스 그룹에 들어갑니다. 반환: (이 프로세스의 장치, 프로세스 수 N).

    torchrun 없이 실행하면 (--device 의 장치, 1): 지금까지와 똑같은 한 프로세스 학습입니다.
    백엔드는 장치로 정해집니다: CUDA 면 nccl(장치 cuda:LOCAL_RANK), CPU 면 gloo (utils/distributed.py).
    """
    device = distributed.start(config.device, config.dist_timeout, batch_size=config.batch_size)
    world = distributed.world_size()
    if distributed.is_distributed():
        print(f"[DDP] 프로세스 {world}개 ({dist.get_backend()}, {device}): 프로세스마다 배치 "
              f"{config.batch_size // world}장 × {world} = 전체 배치 {config.batch_size}, 학습률 {config.lr}")
    return device, world


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """모델을 DDP 로 감쌉니다 (프로세스 그룹이 없으면 그대로). 장치로 옮긴 '뒤에' 감쌉니다.

    DDP 는 감쌀 때 rank 0 의 가중치를 모두에게 보내고(broadcast), backward() 때 기울기를 평균합니다.
    BatchNorm 은 배치 통계로 정규화하므로 B/N 장의 통계는 B 장과 다릅니다. CUDA 에서는 SyncBatchNorm 으로
    바꿔 모든 프로세스의 배치를 합친 평균·분산을 씁니다 (프로세스끼리 통계를 주고받는 비용이 듦).
    SyncBatchNorm 은 CPU 를 지원하지 않으므로 CPU(gloo) 에서는 프로세스마다의 BatchNorm 을 그대로 씁니다.
    바꿔도 state_dict 의 이름은 같아서 체크포인트는 프로세스 수와 상관없이 그대로 읽힙니다.
    """
    if not distributed.is_distributed():
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # 같은 파라미터를 쓰는 SyncBatchNorm 으로 교체
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def make_sampler(size: int, seed: int) -> DistributedSampler | None:
    """DDP: 0…size-1 중 이 프로세스의 몫. 프로세스 그룹이 없으면 None (train_one_epoch 가 randperm 을 씀).

    DistributedSampler 는 (seed + epoch) 로 전체 순서를 섞고 rank, rank+N, rank+2N, … 번째를 가집니다.
    모든 프로세스가 같은 순서를 만들어야 몫이 겹치지 않으므로, epoch 마다 sampler.set_epoch(epoch) 를
    불러야 합니다: 부르지 않으면 매 epoch 똑같은 순서를 되풀이합니다. 순서가 seed 와 epoch 만으로 정해지므로
    다른 프로세스 수로 이어 가도 됩니다. size 가 N 으로 나누어떨어지지 않으면 앞쪽 몇 개를 되풀이해
    채웁니다: 학습에는 상관없지만 평가에 쓰면 그 예제가 두 번 세어지므로 평가는 [rank::N] 으로 나눕니다.
    """
    if not distributed.is_distributed():
        return None
    return DistributedSampler(range(size), num_replicas=dist.get_world_size(), rank=dist.get_rank(),
                              shuffle=True, seed=seed)


# %% [markdown]
# ## 4. 평가: 손실·정확도, 혼동 행렬

# %%
@torch.no_grad()
def predict_logits(model, images: torch.Tensor, *, mean, std, device, amp: bool = False) -> torch.Tensor:
    """uint8 이미지 (N, 3, H, W) → 로짓 (N, K), CPU float32. EVAL_BATCH_SIZE 장씩.

    model.eval(): Dropout 을 끄고 BatchNorm 이 배치 통계 대신 학습 중 모은 이동 평균을 쓰게 합니다.
    그래야 배치 구성과 상관없이 같은 이미지에 같은 답을 냅니다.
    """
    model.eval()
    chunks = []
    for start in range(0, len(images), EVAL_BATCH_SIZE):
        x = to_model_input(images[start:start + EVAL_BATCH_SIZE], mean, std, device)
        with torch.amp.autocast(device.type, dtype=torch.float16, enabled=amp):
            chunks.append(model(x).float().cpu())
    return torch.cat(chunks)


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, *, mean, std, device, amp: bool = False,
             max_batches: int | None = None) -> dict:
    """{"loss": 평균 교차 엔트로피, "accuracy": 정답 비율, "examples": 평가한 이미지 수}.

    max_batches 면 앞쪽 그만큼의 배치만. DDP: 프로세스마다 rank, rank+N, … 번째 이미지(겹치지도 빠지지도
    않음)를 평가하고 (손실 합, 정답 수, 개수)를 all_reduce 로 더해, 전체 세트를 정확히 한 번 센 값을 냅니다.
    """
    count = len(labels) if max_batches is None else min(len(labels), max_batches * EVAL_BATCH_SIZE)
    images, labels = images[:count], labels[:count]
    if not distributed.is_distributed():
        logits = predict_logits(model, images, mean=mean, std=std, device=device, amp=amp)  # (N, K)
        return {"loss": F.cross_entropy(logits, labels).item(),
                "accuracy": (logits.argmax(1) == labels).float().mean().item(), "examples": count}
    rank, world = dist.get_rank(), dist.get_world_size()
    images, labels = images[rank::world], labels[rank::world]  # 이 프로세스의 몫 (채워 넣기 없음)
    logits = predict_logits(model, images, mean=mean, std=std, device=device, amp=amp)  # (N/world, K)
    totals = torch.tensor([F.cross_entropy(logits, labels, reduction="sum").item(),
                           (logits.argmax(1) == labels).sum().item(), len(labels)],
                          dtype=torch.float64, device=device)
    dist.all_reduce(totals)  # 기본 연산 SUM: 모든 프로세스의 합
    loss_sum, correct, examples = totals.tolist()
    return {"loss": loss_sum / examples, "accuracy": correct / examples, "examples": int(examples)}


def confusion_matrix(predictions: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """행 = 정답, 열 = 예측. (K, K) 개수. bincount 한 번으로: 칸 번호 = 정답·K + 예측."""
    return torch.bincount(truth * num_classes + predictions, minlength=num_classes ** 2).view(num_classes, -1)


def per_class_report(model, data, *, mean, std, device, amp: bool = False):
    """시험 세트의 예측 (N,), 혼동 행렬 (K, K), 클래스별 정확도 {이름: 정답 비율}."""
    print("\n[평가] best.pt 로 시험 세트의 클래스별 정확도")
    predictions = predict_logits(model, data.x_test, mean=mean, std=std, device=device, amp=amp).argmax(1)
    matrix = confusion_matrix(predictions, data.y_test, len(data.classes))
    per_class = (matrix.diag() / matrix.sum(1).clamp_min(1)).tolist()  # 행(정답)마다 대각선 비율
    for name, accuracy in zip(data.classes, per_class):
        print(f"    {name:12s} {accuracy:.3f}")
    return predictions, matrix, dict(zip(data.classes, per_class))


# %% [markdown]
# ## 5. 시각화: 학습 곡선, 혼동 행렬, 예측, 필터, 실제 사진의 특징 맵

# %%
def plot_results(model, history: training.History, data, predictions: torch.Tensor, matrix: torch.Tensor, *,
                 mean, std, device, out_dir: Path, show: bool) -> None:
    """학습 곡선, 혼동 행렬, 시험 이미지 예측(틀리면 빨강), 첫 층 필터, 특징 맵을 PNG 로."""
    viz.plot_history(history.rows, out_dir / "history.png", show=show,
                 title=f"{type(model).__name__} on {data.name}")
    viz.plot_confusion_matrix(matrix.numpy(), data.classes, out_dir / "confusion_matrix.png", show=show)
    shown = min(16, len(predictions))  # 두 줄이면 맞음·틀림을 보기에 충분
    pairs = list(zip(predictions[:shown].tolist(), data.y_test[:shown].tolist()))
    titles = [data.classes[p] if p == t else f"{data.classes[p]}\n(true {data.classes[t]})" for p, t in pairs]
    viz.plot_image_grid(data.x_test[:shown].float() / 255, titles,
                    out_dir / "predictions.png", show=show, title="Test predictions (red = wrong)",
                    title_colors=["green" if p == t else "red" for p, t in pairs])
    plot_first_filters(model, out_dir / "filters.png", show)
    plot_feature_maps(model, mean, std, device, out_dir / "feature_maps.png", show)


def plot_first_filters(model: nn.Module, path: Path, show: bool) -> Path:
    """첫 합성곱 층의 필터 (out, 3, k, k) 를 RGB 작은 그림으로 이어 붙여 한 장에. 필터마다 0~1 로 늘림."""
    from torchvision.utils import make_grid

    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    weights = first_conv.weight.detach().float().cpu()  # (out, 3, k, k)
    low = weights.amin(dim=(1, 2, 3), keepdim=True)
    high = weights.amax(dim=(1, 2, 3), keepdim=True)
    weights = (weights - low) / (high - low + 1e-8)
    columns = 8
    mosaic = make_grid(weights, nrow=columns, padding=1, pad_value=1.0)  # (3, rows·(k+1)+1, 8·(k+1)+1)
    fig, ax = plt.subplots(figsize=(6, 0.75 * math.ceil(len(weights) / columns) + 1))
    ax.imshow(mosaic.permute(1, 2, 0).numpy(), interpolation="nearest")  # (C,H,W) → (H,W,C)
    ax.set_title(f"First-layer filters: {len(weights)} x (3x{weights.shape[-1]}x{weights.shape[-1]}), "
                 "RGB, min-max scaled per filter", fontsize=9)
    ax.axis("off")
    return viz.save_figure(fig, path, show)


@torch.no_grad()
def plot_feature_maps(model: nn.Module, mean, std, device, path: Path, show: bool, channels: int = 8) -> Path:
    """scikit-learn 에 들어 있는 실제 사진(china.jpg)의 첫 블록 특징 맵.

    합성곱은 입력 크기에 상관없이 같은 필터를 밀기만 하므로, 32x32 로 학습한 층도 큰 사진에 쓸 수 있습니다.
    """
    from sklearn.datasets import load_sample_image

    model.eval()  # BatchNorm 은 이동 평균으로
    photo = torch.tensor(load_sample_image("china.jpg")).permute(2, 0, 1)  # (H,W,3) → (3, 427, 640)
    photo = F.interpolate(photo.unsqueeze(0).float(), size=(128, 192), mode="area")  # (1, 3, 128, 192)
    photo = photo.round().to(torch.uint8)
    first_layers = model.features[0][:3] if isinstance(model, VGGNet) else model.stem  # Conv→BN→ReLU
    maps = first_layers(to_model_input(photo, mean, std, device))[0].float().cpu()  # (C, 128, 192)
    fig, axes = plt.subplots(1, channels + 1, figsize=(2.2 * (channels + 1), 2.0))
    axes[0].imshow(photo[0].permute(1, 2, 0).numpy())
    axes[0].set_title("china.jpg")
    for index, ax in enumerate(axes[1:]):
        ax.imshow(maps[index].numpy(), cmap="viridis")
        ax.set_title(f"channel {index}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.suptitle("Feature maps after the first Conv-BN-ReLU")
    return viz.save_figure(fig, path, show)


# %% [markdown]
# ## 6. 추론: 이미지 한 장 (--predict)

# %%
def predict(config: Config, device: torch.device) -> dict:
    """best.pt 로 이미지 파일 한 장을 분류합니다: 상위 3개 클래스와 확률 → 출력, prediction.json/png.

    모델은 체크포인트의 model_args 로만 다시 만듭니다 (학습 때의 --width 등을 다시 줄 필요 없음).
    체크포인트를 먼저 읽으므로 없거나 망가진 best.pt 는 입력과 상관없이 한 줄 오류입니다.
    """
    out_dir = Path(config.out_dir)
    model, checkpoint = training.load_trained_model(out_dir / "best.pt", build_model, config, device)
    image = color_images.read_predict_image(config.predict)  # (1, 3, 32, 32) uint8; 읽을 수 없으면 한 줄 오류
    extra = checkpoint["extra"]
    classes, mean, std = extra["classes"], torch.tensor(extra["mean"]), torch.tensor(extra["std"])
    probabilities = predict_logits(model, image, mean=mean, std=std, device=device).softmax(1)[0]  # (K,)
    top = probabilities.topk(min(3, len(classes)))
    ranking = [{"class": classes[i], "probability": p}
               for p, i in zip(top.values.tolist(), top.indices.tolist())]
    # 분류기는 학습한 클래스 중 하나로만 답합니다. 확신이 낮으면 학습 데이터와 다른 이미지일 수 있다고 알림
    warning = None
    if ranking[0]["probability"] < LOW_CONFIDENCE:
        warning = (f"확신이 낮습니다 (최고 확률 {ranking[0]['probability']:.0%}): 학습 데이터"
                   f"({extra['data']})의 클래스 {len(classes)}개와 닮지 않은 이미지일 수 있습니다.")
    result = {"input": str(config.predict), "prediction": ranking[0]["class"],
              "probability": ranking[0]["probability"], "top": ranking, "warning": warning,
              "trained_on": extra["data"], "classes": classes}
    path = out_dir / "prediction.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    plot_prediction(image[0], ranking, out_dir / "prediction.png", config.show)
    print(f"{config.predict}: " + ", ".join(f"{r['class']} {r['probability']:.1%}" for r in ranking)
          + f" → {path}")
    if warning:
        print(f"주의: {warning}")
    return result


def show_one_prediction(model, data, *, mean, std, device) -> None:
    """학습이 끝난 모델로 시험 이미지 한 장: 예측 클래스와 확률, 정답."""
    logits = predict_logits(model, data.x_test[:1], mean=mean, std=std, device=device)  # (1, K)
    probabilities = logits.softmax(1)[0]  # (K,)
    print(f"[추론] 시험 이미지 0: 예측 {data.classes[probabilities.argmax()]} ({probabilities.max():.1%}), "
          f"정답 {data.classes[data.y_test[0]]}")


def plot_prediction(image: torch.Tensor, ranking: list[dict], path: Path, show: bool) -> Path:
    """입력 이미지 (3, 32, 32) uint8 와 상위 클래스 확률 막대."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 3))
    left.imshow(image.permute(1, 2, 0).numpy())  # (C,H,W) → (H,W,C)
    left.set_title(f"input (32x32): {ranking[0]['class']}")
    left.axis("off")
    names = [r["class"] for r in ranking][::-1]  # 가장 높은 것이 위로
    right.barh(names, [100 * r["probability"] for r in ranking][::-1], color="tab:blue")
    right.set_xlim(0, 100)
    right.set_xlabel("probability (%)")
    right.set_title("Top classes")
    return viz.save_figure(fig, path, show)


# %% [markdown]
# ## 부록(실험): MLP 기준선, 깊이 실험, 전이 학습
# 모두 본 학습(run 블록)이 끝난 뒤에 돌고, 저마다 자기 seed 로 난수를 고정합니다. 그래서 실험 도중
# Ctrl+C 를 누르고 --resume 하면 (학습은 끝났으므로 건너뛰고) 실험만 처음부터 같은 숫자로 다시 합니다.
# 진행 막대 이름은 "study ..." 로, 본 학습의 "epoch N" 과 겹치지 않습니다.

# %%
def fit_quick(model, data, *, mean, std, device, epochs: int, batch_size: int, lr: float,
              max_batches: int | None, desc: str, seed: int) -> list[float]:
    """기준선·실험용 짧은 학습 (Adam, 증강 없음). 최대 max_batches 배치. 반환: 배치마다의 손실 목록."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)  # 섞는 순서: 앞에서 쓴 난수와 상관없이 같게
    losses = []
    for epoch in range(1, epochs + 1):
        model.train()
        batches = torch.randperm(len(data.y_train), generator=generator).split(batch_size)
        if max_batches is not None:
            batches = batches[:max_batches - len(losses)]
        for step, index in enumerate(training.progress(batches, desc=f"{desc} {epoch}"), start=1):
            x = to_model_input(data.x_train[index], mean, std, device)
            y = data.y_train[index].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            training.check_finite(loss, epoch, step)
            losses.append(loss.detach())  # 곡선용. .item() 은 GPU 를 기다리므로 끝에서 한 번에
    return torch.stack(losses).tolist()


class MLP(nn.Module):
    """기준선: 픽셀을 한 줄로 펴서(3·32·32 = 3,072) 완전 연결층 세 개. 위치 정보를 구조로 쓰지 못합니다."""

    def __init__(self, num_classes: int, hidden_size: int = 512, image_size: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),  # (B, 3, 32, 32) → (B, 3072)
            nn.Linear(3 * image_size * image_size, hidden_size), nn.ReLU(),
            nn.Linear(hidden_size, hidden_size // 2), nn.ReLU(),
            nn.Linear(hidden_size // 2, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp_baseline(data, *, mean, std, device, config: Config, cnn_accuracy: float) -> dict:
    """같은 데이터에서 MLP 를 학습해 CNN 과 비교할 기준선(baseline) 정확도를 냅니다."""
    if config.mlp_epochs == 0:
        return {}
    torch.manual_seed(config.seed)  # 초기화 난수: 본 학습이 얼마나 난수를 썼든 같은 MLP
    mlp = MLP(len(data.classes), config.mlp_hidden_size).to(device)
    print(f"\n[부록: MLP 기준선] 파라미터 {count_parameters(mlp):,}개")
    fit_quick(mlp, data, mean=mean, std=std, device=device, epochs=1 if config.smoke else config.mlp_epochs,
              batch_size=config.batch_size, lr=1e-3, max_batches=1 if config.smoke else None,
              desc="study mlp", seed=config.seed)
    test = evaluate(mlp, data.x_test, data.y_test, mean=mean, std=std, device=device,
                    max_batches=1 if config.smoke else None)
    print(f"  MLP 시험 정확도 {test['accuracy']:.4f} (CNN {cnn_accuracy:.4f}, "
          f"차이 {cnn_accuracy - test['accuracy']:+.4f})")
    return {"mlp_test_accuracy": test["accuracy"], "mlp_test_loss": test["loss"],
            "cnn_minus_mlp": cnn_accuracy - test["accuracy"], "mlp_parameters": count_parameters(mlp)}


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


def depth_study(data, *, mean, std, device, config: Config, out_dir: Path) -> dict:
    """얕은 평범한 망(8층), 깊은 평범한 망, 깊은 잔차 망을 같은 배치 수만큼 학습해 비교합니다.

    평범한(plain) 망은 층을 쌓을수록 학습 손실이 오히려 높아집니다(성능 저하 문제, degradation
    problem; He et al., 2015). 과적합이 아니라 최적화가 어려워서입니다. 지름길이 있으면 같은
    깊이에서도 잘 배웁니다. 반환: {"depth_experiment": 망마다 {층 수, 최종 학습 손실, 시험 정확도}}.
    """
    if config.depth_steps == 0:
        return {}
    steps = 1 if config.smoke else config.depth_steps
    runs = {"plain-8": (8, False), f"plain-{config.depth_layers}": (config.depth_layers, False),
            f"residual-{config.depth_layers}": (config.depth_layers, True)}
    curves, table = {}, {}
    print(f"\n[부록: 깊이 실험] 망마다 {steps} 배치 학습")
    for name, (layers, skip) in runs.items():
        torch.manual_seed(config.seed)  # 모든 망이 같은 초기화 난수·같은 배치 순서로 공정하게
        model = DeepNet(len(data.classes), layers, skip).to(device, memory_format=torch.channels_last)
        losses = fit_quick(model, data, mean=mean, std=std, device=device,
                           epochs=math.ceil(steps * config.batch_size / len(data.y_train)),
                           batch_size=config.batch_size, lr=2e-3, max_batches=steps,
                           desc=f"study depth {name}", seed=config.seed)
        test = evaluate(model, data.x_test, data.y_test, mean=mean, std=std, device=device,
                        max_batches=1 if config.smoke else None)
        window = max(1, len(losses) // 10)  # 마지막 10% 배치의 평균: 잡음이 적은 '최종 학습 손실'
        final_loss = sum(losses[-window:]) / window
        curves[name] = pd.Series(losses).rolling(window, min_periods=1).mean().tolist()
        table[name] = {"layers": layers, "final_train_loss": final_loss, "test_accuracy": test["accuracy"]}
        print(f"  {name:12s} 최종 학습 손실 {final_loss:.3f}, 시험 정확도 {test['accuracy']:.3f}")
    viz.plot_curves(curves, out_dir / "depth_comparison.png", show=config.show, xlabel="training batch",
                ylabel="train loss (smoothed)", title="Plain vs residual: deeper plain nets train worse")
    return {"depth_experiment": table}


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
    state, reason = try_download(lambda: weights.get_state_dict(progress=False))
    return (weights if state is not None else None), reason


def transfer_learning(data, *, device, config: Config) -> dict:
    """ImageNet ResNet-18: 1) 몸통을 얼리고 새 머리만 학습 2) (선택) 전체를 작은 학습률로 미세 조정."""
    print("\n[부록: 전이 학습] (ResNet-18, ImageNet 가중치)")
    weights, reason = load_imagenet_weights(offline=config.smoke or config.data == "offline")
    if weights is None:
        print(f"  ResNet-18 ImageNet 가중치를 받을 수 없어 전이 학습을 건너뜁니다 ({reason}).")
        return {}
    torch.manual_seed(config.seed)  # 새 머리의 초기화
    model = make_transfer_model(len(data.classes), weights).to(device, memory_format=torch.channels_last)
    # ImageNet 으로 학습된 망에는 ImageNet 의 평균·표준편차로 정규화한 입력을 줘야 합니다
    mean = torch.tensor(weights.transforms().mean)
    std = torch.tensor(weights.transforms().std)
    size = config.transfer_size
    enlarge = lambda x: (F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False)
                         .round().clamp(0, 255).to(torch.uint8))  # (N, 3, size, size): 1/32 로 줄여도 남음
    resized = dataclasses.replace(data, x_train=enlarge(data.x_train), x_test=enlarge(data.x_test))
    max_batches = 1 if config.smoke else None
    results = {}
    for phase, epochs, lr in (("frozen", config.transfer_epochs, 1e-3),
                              ("fine_tuned", config.fine_tune_epochs, 1e-4)):
        if epochs == 0:
            continue
        if phase == "fine_tuned":
            unfreeze(model)
        trainable = count_parameters(model)
        fit_quick(model, resized, mean=mean, std=std, device=device, epochs=epochs,
                  batch_size=config.batch_size, lr=lr, max_batches=max_batches,
                  desc=f"study transfer {phase}", seed=config.seed)
        test = evaluate(model, resized.x_test, resized.y_test, mean=mean, std=std, device=device,
                        max_batches=max_batches)
        print(f"  {phase}: 학습되는 파라미터 {trainable:,}개, 시험 정확도 {test['accuracy']:.4f}")
        results[f"transfer_{phase}_test_accuracy"] = test["accuracy"]
    return results


# %% [markdown]
# ## main: 데이터 → 모델 → 학습 → 평가 → 시각화 → 추론 → 부록

# %%
def main(config: Config) -> dict:
    started, out_dir = time.perf_counter(), Path(config.out_dir)  # run() 이 쓸 수 있는지 이미 확인한 폴더
    if config.predict:
        return predict(config, pick_device(config.device))
    device, world = setup_ddp(config)  # torchrun 이 아니면 (--device 의 장치, 1): 한 프로세스 (3-1절)
    parameter_counts = run_lessons()  # 합성곱·풀링 손 계산, MLP 와 CNN 의 첫 층 파라미터 수
    amp = config.amp and device.type == "cuda"

    # 1. 데이터: 검증 분할, 학습 세트의 채널별 평균·표준편차 ---------------------------------
    data, (x_val, y_val), inputs = prepare_data(config, device)  # inputs: uint8 배치 → 모델 입력에 필요한 것
    epochs, max_batches = training_length(config, len(data.y_train))  # 본 이미지 수로 정한 epoch 수

    # 2. 모델과 최적화기 (DDP 면 모델을 감싸고 학습 세트를 프로세스 수로 나눔) -----------------------
    model_args, model, optimizer, scheduler, scaler = prepare_model(config, data, device, epochs, amp)
    loader_generator = torch.Generator().manual_seed(config.seed)  # 섞는 순서와 증강
    ddp_model, sampler = wrap_ddp(model, device), make_sampler(len(data.y_train), config.seed)

    # 3. 학습: best.pt 는 검증 '손실'로 고름 (정확도는 금방 1.0 같은 값에 머물러 구별을 못 함) ------------
    history = training.History(out_dir / "history.csv")
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    extra = {"data": data.name, "classes": data.classes, **{k: inputs[k].tolist() for k in ("mean", "std")}}
    checkpoint = lambda epoch, best: training.make_checkpoint(
        config, model_args, state, epoch, best, extra=extra, generators=[loader_generator], history=history)
    start_epoch, best = training.resume_or_start(config, checkpoint, state, generators=[loader_generator],
                                                 history=history, best=math.inf)
    try:
        for epoch in range(start_epoch, epochs + 1):
            if sampler is not None:  # DDP: set_epoch 를 부르지 않으면 매 epoch 똑같은 순서 (3-1절)
                sampler.set_epoch(epoch)
            lr, epoch_started = scheduler.get_last_lr()[0], time.perf_counter()
            train_loss = train_one_epoch(ddp_model, data, optimizer, scheduler, scaler, **inputs, amp=amp,
                                         generator=loader_generator, batch_size=config.batch_size // world,
                                         augment=config.augment, epoch=epoch, max_batches=max_batches,
                                         sampler=sampler)
            train_seconds = round(time.perf_counter() - epoch_started, 2)
            val = evaluate(model, x_val, y_val, **inputs, amp=amp, max_batches=max_batches)
            history.log(epoch=epoch, train_loss=train_loss, val_loss=val["loss"],
                        val_accuracy=val["accuracy"], lr=lr, train_seconds=train_seconds)
            if val["loss"] < best:  # 검증 손실이 가장 낮은 epoch (같으면 먼저 닿은 쪽)
                best = val["loss"]
                training.save_checkpoint(out_dir / "best.pt", checkpoint(epoch, best))
            training.save_checkpoint(out_dir / "last.pt", checkpoint(epoch, best))  # DDP: 파일은 rank 0 만 씀
            distributed.barrier()  # DDP: 다른 프로세스는 rank 0 이 다 쓸 때까지 기다림 (3-1절)
            if training.early_stop(history, "val_loss", config.patience, mode="min"):
                break
    except KeyboardInterrupt:
        print("\n중단: --resume 을 붙여 다시 실행하면 마지막으로 끝난 epoch 다음부터 이어집니다")
        raise SystemExit(130) from None

    # 4. 평가: 시험 점수는 언제나 best.pt 로 (--predict 와 같은 가중치). DDP: 몫마다 평가해 합침 -----------
    model, test = evaluate_best(config, data, inputs, amp)
    if not distributed.end():  # DDP 끝: 그룹을 닫고 rank 0 만 계속 (그림·부록 실험·기록), 나머지는 끝냄
        return test
    predictions, matrix, per_class = per_class_report(model, data, **inputs, amp=amp)

    # 5. 시각화 / 6. 추론 / 부록(실험): 학습이 끝난 뒤, 저마다 자기 seed 로 ----------------------------
    plot_results(model, history, data, predictions, matrix, **inputs, out_dir=out_dir, show=config.show)
    show_one_prediction(model, data, **inputs)
    studies = run_studies(data, inputs, config, out_dir, cnn_accuracy=test["accuracy"])
    return summarize(config, data, model, history, test, best, per_class, parameter_counts, studies,
                     device=device, started=started, world=world)


def run_lessons() -> dict:
    """학습 전의 손 계산 둘 (몇 ms): 합성곱·풀링·패딩, MLP 와 CNN 의 첫 층 파라미터 수 (반환)."""
    convolution_lesson()
    return mlp_vs_cnn_parameters()


def prepare_model(config: Config, data, device: torch.device, epochs: int, amp: bool):
    """model_args → 모델 (시드 고정 뒤) → SGD + OneCycle, (CUDA AMP 면) GradScaler.

    반환: (model_args, model, optimizer, scheduler, scaler). 한 epoch 의 걸음 수는 전체 배치(--batch-size)로
    셉니다: DDP 에서 프로세스마다 B/N 장씩 ⌈(N_train/N)/(B/N)⌉ = ⌈N_train/B⌉ 걸음이라 같은 값입니다.
    """
    model_args = {"name": config.model, "num_classes": len(data.classes), "width": config.width,
                  "hidden_size": config.hidden_size, "dropout": config.dropout,
                  "blocks_per_stage": config.blocks_per_stage}
    torch.manual_seed(config.seed)
    model = build_model(**model_args).to(device, memory_format=torch.channels_last)
    print(f"[모델] {config.model}: 파라미터 {count_parameters(model):,}개, 장치(device) {device}")
    steps_per_epoch = math.ceil(len(data.y_train) / config.batch_size)
    optimizer, scheduler = make_optimizer(model, config, epochs, 1 if config.smoke else steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type) if amp else None  # float16 기울기의 크기 조절 (CUDA 만)
    return model_args, model, optimizer, scheduler, scaler


def evaluate_best(config: Config, data, inputs: dict, amp: bool):
    """best.pt 를 다시 읽어 시험 세트를 평가합니다 (DDP 면 모든 프로세스가 자기 몫을). 반환: (모델, 점수)."""
    model, _ = training.load_trained_model(Path(config.out_dir) / "best.pt", build_model, config,
                                           inputs["device"], purpose="test")
    return model, evaluate(model, data.x_test, data.y_test, **inputs, amp=amp)


def run_studies(data, inputs: dict, config: Config, out_dir: Path, cnn_accuracy: float) -> dict:
    """부록 실험 셋 (모두 본 학습 뒤, 자기 seed 로): MLP 기준선, 깊이 실험, (--pretrained 면) 전이 학습."""
    mlp = mlp_baseline(data, **inputs, config=config, cnn_accuracy=cnn_accuracy)
    depth = depth_study(data, **inputs, config=config, out_dir=out_dir)
    transfer = transfer_learning(data, device=inputs["device"], config=config) if config.pretrained else {}
    return {**mlp, **depth, **transfer}


def summarize(config: Config, data, model, history: training.History, test: dict, best: float,
              per_class: dict,
              parameter_counts: dict, studies: dict, *, device, started: float, world: int) -> dict:
    """metrics.json 을 쓰고 마지막 줄을 출력합니다. 반환: metrics (같은 seed·CPU → 같은 숫자).

    test_examples: 평가한 시험 이미지 수. DDP 에서도 시험 세트 크기와 같아야 합니다 (한 번씩만 셈).
    학습 속도는 실행마다 달라서 metrics 가 아닌 timing 에: 한 epoch 에 학습한 이미지 수(DDP 면 모든
    프로세스의 합, 전체 배치 B × 걸음 수) / 학습 시간.
    """
    metrics = {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "best_val_loss": best,
               "per_class_accuracy": per_class, "parameter_counts_256x256": parameter_counts, **studies,
               "test_examples": test["examples"]}
    images_per_epoch = min(len(data.y_train), config.batch_size) if config.smoke else len(data.y_train)
    speed = images_per_second(history, images_per_epoch)
    timing = {"train_images_per_second": speed, **({"processes": world} if world > 1 else {})}
    write_run_record(config.out_dir, script=config.chapter + ".py", config=config, data=data.name,
                     device=device, seconds=time.perf_counter() - started, parameters=count_parameters(model),
                     metrics=metrics, headline="test_accuracy", timing=timing)
    print(f"\n끝: 시험 정확도 {test['accuracy']:.4f} (best.pt), 학습 {speed:,.0f} images/s → "
          f"{config.out_dir}")
    chance = 1 / len(data.classes)  # 찍기(chance): 한 클래스만 고르는 모델의 기대 정확도 (균형 잡힌 세트)
    noise = 3 * math.sqrt(chance * (1 - chance) / max(1, test["examples"]))  # 이항분포 표준편차 × 3
    if not config.smoke:
        training.warn_if_trivial("시험 정확도", test["accuracy"], chance, noise,
                                 "학습이 너무 짧거나(--train-images, --epochs) 학습률이 맞지 않습니다(--lr).")
    return metrics


if __name__ == "__main__":
    run(main, Config)
