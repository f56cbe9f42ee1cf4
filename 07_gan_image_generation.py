"""07장. 생성적 적대 신경망(GAN)으로 이미지 만들기: DCGAN, WGAN-GP, 잠재 공간, 모드 붕괴.

학습 목표
    - 모드 붕괴(mode collapse)를 먼저 눈으로 본다: 2차원 고리 위 가우시안 8개(8-Gaussians ring)는
      생성 표본을 정확히 셀 수 있다 — 잡아낸 모드 수와 고품질 표본(모드 중심에서 3σ 안)의 비율
      (VEEGAN·PacGAN 의 측정 방식).
    - 적대적 게임: 생성기(generator, 위조지폐범) 대 판별기(discriminator, 경찰). 미니맥스(minimax)
      목표와 비포화(non-saturating) 생성기 손실을 매 반복의 두 걸음 위에 배너로 적는다.
    - 강의 표의 DCGAN: z(100) → ConvTranspose2d → 4x4 → BatchNorm → ReLU → … → Tanh 생성기,
      스트라이드 합성곱 + LeakyReLU 판별기, N(0, 0.02) 가중치 초기화, 층마다 출력 모양.
    - 판별기는 확률 대신 로짓(logit)을 내고 BCEWithLogitsLoss 를 쓴다: 왜 수치적으로 안전한지.
    - WGAN-GP(`--loss wgan-gp`): 시그모이드·BatchNorm 없는 비평가(critic), 바서슈타인(Wasserstein)
      추정값, 기울기 벌점(gradient penalty), 생성기 한 걸음마다 비평가 여러 걸음.
    - 감시(monitoring): 걸음마다 D·G 손실, D(x), D(G(z)); epoch 마다 고정 잡음 격자와 GIF;
      생성 표본의 클래스 분포로 만든 붕괴 계량기; D 손실이 0 으로 가면 한 줄 경고.
    - 눈대중이 아닌 측정: 같은 실제 데이터로 학습한 작은 분류기로 생성 표본의 클래스 히스토그램과
      엔트로피, 그리고 그 분류기 특징 공간의 프레셰 거리(Fréchet distance, FID 와 같은 식).
    - 잠재 공간(latent space) 보간, `--predict N` 으로 새 이미지 N장.

핵심 개념
    min_G max_D  E_x[log D(x)] + E_z[log(1 − D(G(z)))]  (Goodfellow 2014),
    비포화 G 손실 −log D(G(z)), BCEWithLogitsLoss = 시그모이드 + BCE 를 log-sum-exp 로 한 번에,
    DCGAN 규칙(Radford 2016): 풀링 대신 스트라이드, G 는 ReLU + 마지막 Tanh, D 는 LeakyReLU(0.2),
    G·D 모두 BatchNorm(단 G 출력층과 D 입력층 제외), Adam(lr 2e-4, β1 0.5), 가중치 N(0, 0.02).
    WGAN-GP(Gulrajani 2017): 비평가 손실 E[D(G(z))] − E[D(x)] + λ·E[(‖∇D(x̂)‖₂ − 1)²],
    x̂ = εx + (1−ε)G(z), 노름은 배치 외 모든 차원에 대해, 비평가에는 BatchNorm 대신 LayerNorm.
    프레셰 거리 FD = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½).

실행 방법
    python 07_gan_image_generation.py                         # 기본: MNIST, 없으면 sklearn digits (오프라인)
    python 07_gan_image_generation.py --data offline          # 네트워크 없이 sklearn 손글씨 숫자
    python 07_gan_image_generation.py --loss wgan-gp          # WGAN-GP (비평가 5걸음 : 생성기 1걸음)
    python 07_gan_image_generation.py --smoke                 # 배치 하나로 전체 흐름만 확인 (몇 초)
    python 07_gan_image_generation.py --data real --data-dir data   # MNIST 만 (data/MNIST/raw)
        학습 길이는 epoch 수가 아니라 판별기가 본 실제 이미지 수(--train-images 129,300 = digits 1,293장
        × 100바퀴)로 정합니다: 실제 MNIST 54,000장이면 3바퀴 (100바퀴면 2코어에서 2시간), 이미지 폴더
        2만 장이면 7바퀴. --epochs N 은 예산 대신 정확히 N. 시험 FD 가 학습 전 G 의 절반도 안 줄면 경고 한 줄.
        실제 MNIST (../shared/data/mnist, seed 42, 1회, 다른 학습 4~6개와 2코어를 나눠 쓰던 중, 1스레드,
        벽시계 16.5분·CPU 7분, 최대 메모리 2.2 GB): 3바퀴 (G 2,532걸음), best.pt = epoch 3,
        시험 FD 21.9 (학습 전 G 1,671 → 0.013배, 실제 대 실제 2.5), 10 클래스 모두, 최소 클래스 비율
        0.046, 엔트로피 2.267, 평가 분류기 정확도 0.970.
    python 07_gan_image_generation.py --dataset fashion       # Fashion-MNIST
    python 07_gan_image_generation.py --dataset folder --data-dir img_align_celeba --image-size 64
                                                              # 아무 이미지 폴더 (예: CelebA), 가운데 자르기
    python 07_gan_image_generation.py --predict 16            # best.pt 의 생성기로 새 이미지 16장
    python 07_gan_image_generation.py --resume                # 중단된 학습 이어하기
    GPU 에서 실제 MNIST·CelebA 를 논문 크기로:
    python 07_gan_image_generation.py --data real --device cuda --width 64 --epochs 25 --batch-size 128
    python 07_gan_image_generation.py --dataset folder --data-dir img_align_celeba --image-size 64 \\
        --device cuda --width 64 --epochs 10 --batch-size 128 --max-images 200000

기대 결과
    [results] benchmarks/run_all.py 가 results.json 에서 옮겨 씀: 중앙값 (최소–최대)
    - `--data offline` · sklearn digits (offline fallback) · cpu · seeds 42, 43, 44
      fd 13.15 (10.21–15.08) · min_class_fraction 0.064 (0.063–0.066)
      class_entropy 2.286 (2.281–2.29) · fd_untrained 1406 (1396–1626) · fd_real 4.476 (3.986–5.007)
      toy_modes_captured 8 · toy_high_quality_fraction 0.9312 (0.9032–0.9384) · wall 226 (216–231) s
      peak 1.14 GB
      기계: Intel(R) Xeon(R) Processor, 2 cores (2 torch threads), GPU: none, torch 2.14.1+cu130
    - `--data offline --loss wgan-gp` · sklearn digits (offline fallback) · cpu · seeds 42, 43, 44
      fd 34.6 (30.48–70.33) · min_class_fraction 0.056 (0.043–0.064)
      class_entropy 2.26 (2.195–2.282) · fd_untrained 1406 (1396–1626) · fd_real 4.476 (3.986–5.007)
      toy_modes_captured 8 · toy_high_quality_fraction 0.9312 (0.9032–0.9384) · wall 247 (244–252) s
      peak 1.19 GB
      기계: Intel(R) Xeon(R) Processor, 2 cores (2 torch threads), GPU: none, torch 2.14.1+cu130
    - `--data real --data-dir ../shared/data/mnist` · MNIST (real) · cpu · seeds 42, 43, 44
      fd 19.11 (17.94–21.94) · min_class_fraction 0.046 (0.041–0.059)
      class_entropy 2.245 (2.209–2.267) · fd_untrained 1701 (1671–1708) · fd_real 2.545 (2.519–3.721)
      toy_modes_captured 8 · toy_high_quality_fraction 0.9392 (0.926–0.9572) · wall 470 (468–483) s
      peak 2.15 GB
      기계: AMD EPYC, 2 cores (1 torch threads), GPU: none, torch 2.14.1+cu130
    [/results]
    그 밖의 숫자는 이 장을 쓸 때 잰 값입니다 (조건을 함께 적음). 위 블록의 벽시계는 항목마다 적힌
    기계·torch 스레드 수로 잰 것입니다 (1 스레드 항목은 2코어에서 다른 측정과 나란히 돈 실행).
    지금까지의 측정 (2코어 CPU 를 다른 학습 20여 개와 나눠 쓰던 중, OMP_NUM_THREADS=1, seed 42, 1회):
    - sklearn digits, DCGAN, 60 epoch (장난감 제외): 시험 (best.pt = epoch 59, 생성 1,000장 대 시험 360장)
      FD 13.4, 학습 전 G 1,411 (0.01배), 실제 대 실제 4.0; 10 클래스 모두, 최소 클래스 비율 0.077,
      엔트로피 2.288 (최대 log 10 = 2.303); 분류기 시험 정확도 0.989. CPU 188초, 최대 메모리 1.1 GB.
      검증 FD 는 epoch 1 의 약 1,300 에서 꾸준히 내려가고, epoch 15 부터 10 클래스가 모두 나옴.
      기본값 100 epoch 의 끝은 미측정.
    - `--loss wgan-gp`: epoch 49 (G 196걸음)에 검증 FD 278, 10 클래스, 최소 비율 0.028, 엔트로피 2.22
      — DCGAN 보다 느리게 올라옴. 100 epoch 끝은 미측정.
    - 8-가우시안 장난감 (G 3,000걸음): 보통 GAN 모드 5/8 · 고품질 91.8% (몇 모드만 또렷한 붕괴),
      WGAN-GP 모드 8/8 · 고품질 90.8%. CPU 131초 (대부분 WGAN-GP 의 비평가 5걸음 + 이중 역전파).
    - 계산량(CPU 시간, 1스레드): DCGAN 한 epoch(G 20걸음 + 검증) ≈ 2.9초, WGAN-GP ≈ 3.6초,
      평가용 분류기 ≈ 20초. 기본 실행 전체 ≈ 450초 → 조용한 2코어에서 약 4~5분으로 추정 (÷ 1.7).
"""

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import training  # 학습 뼈대: training.resume_or_start, .save_checkpoint, .History, …
from utils import visualization as viz  # 그림 저장·이미지 격자 (이 장의 주제가 아님)
from utils.data import images as image_data  # 실제 데이터(없으면 sklearn digits), [-1, 1] ↔ [0, 1]
from utils.runtime import RunConfig, pick_device, run, set_seed, write_run_record

# 모양 글자: B=배치, Z=잠재 차원(latent_dim), C=채널, S=이미지 한 변, H=높이, W=너비, K=클래스 수,
#            F=분류기 특징 차원, N=표본 수

SUPPORTED_IMAGE_SIZES = (32, 64)  # 4x4 에서 두 배씩: 32 = 4·2³, 64 = 4·2⁴ (DCGAN 논문은 64)
BASE_SIZE = 4  # 생성기 첫 층(z → 4x4)과 판별기 마지막 층(4x4 → 1)의 공간 크기
ADAM_BETAS = {"gan": (0.5, 0.999),  # DCGAN 논문: β1 0.9 는 진동해 0.5 로 낮춤
              "wgan-gp": (0.0, 0.9)}  # WGAN-GP 논문 Algorithm 1 의 기본값
LEAKY_SLOPE = 0.2  # DCGAN 논문의 LeakyReLU 기울기
INIT_STD = 0.02  # DCGAN 논문의 가중치 초기화 표준편차
D_LOSS_VANISHING = 0.05  # D 손실(두 BCE 의 합)이 이보다 작으면 D 가 거의 완벽: G 의 기울기가 사라짐
MAX_PREDICT = 10_000  # --predict 한 번에 쓸 수 있는 최대 이미지 수 (디스크를 채우지 않게)
VAL_SAMPLES = 500  # epoch 마다 검증에 쓰는 생성 표본 수 (FD·붕괴 계량기)
GRID_SAMPLES = 64  # 고정 잡음 격자 8x8
CLASSIFIER_BATCH = 128  # 평가용 분류기의 배치 크기
SEED_OFFSETS = {"classifier": 1, "val_noise": 2, "test_noise": 3, "untrained": 4, "toy": 5, "interp": 6}


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "07_gan_image_generation"  # 출력 폴더 이름, 체크포인트 주인 표시
    dataset: Literal["mnist", "fashion", "cifar10", "folder"] = "mnist"  # folder: --data-dir 의 이미지들
    loss: Literal["gan", "wgan-gp"] = "gan"  # gan: DCGAN (BCE, 비포화 G 손실), wgan-gp: 바서슈타인+벌점
    image_size: int = 32  # 생성 이미지 한 변: 32 또는 64 (4x4 에서 두 배씩 키우는 구조)
    latent_dim: int = 100  # z 의 차원 (DCGAN 논문·강의 표의 100)
    width: int = 32  # G 마지막 층·D 첫 층 채널 수, 한 단계마다 두 배 (논문 64; CPU 시간 예산 때문에 32)
    epochs: int = 0  # 0 = 학습 예산(--train-images)에서 계산. N 을 주면 정확히 N epoch
    train_images: int = 129_300  # 학습 예산: 판별기가 볼 실제 이미지 수 (아래 training_epochs 참고)
    batch_size: int = 64  # DCGAN 논문은 128; 작은 데이터에서 epoch 당 걸음 수를 늘리려 64
    lr: float = 2e-4  # G·D 공통 Adam 학습률 (DCGAN 논문의 값)
    critic_steps: int = 5  # WGAN-GP: 생성기 한 걸음마다 비평가 걸음 수 (논문 n_critic = 5)
    gp_weight: float = 10.0  # WGAN-GP 기울기 벌점의 λ (논문 값)
    val_fraction: float = 0.1  # 학습 분할에서 떼어 best.pt 고르기(검증 FD)에 쓰는 비율
    eval_samples: int = 1000  # 시험 지표(클래스 분포·FD)를 잴 생성 이미지 수
    classifier_steps: int = 120  # 평가용 분류기 학습 걸음(배치 128): digits 97%, MNIST 95% 이상
    toy_steps: int = 3000  # 8-가우시안 장난감의 생성기 걸음 수 (0 이면 생략)
    max_images: int = 20000  # 이미지 폴더에서 읽을 최대 장수 (64x64 RGB 2만 장 ≈ 1 GB)
    predict: int = 0  # N>0: best.pt 의 생성기로 새 이미지 N장을 쓰고 끝냄 (0 = 학습)

    def __post_init__(self):
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            supported = ", ".join(map(str, SUPPORTED_IMAGE_SIZES))
            raise ValueError(f"--image-size 는 {supported} 중 하나여야 합니다 (받은 값: {self.image_size}).")
        if not 0 <= self.predict <= MAX_PREDICT:
            raise ValueError(f"--predict 는 0(학습) 또는 1~{MAX_PREDICT} 장이어야 합니다 "
                             f"(받은 값: {self.predict}).")
        for name in ("latent_dim", "width", "critic_steps", "classifier_steps", "max_images", "train_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} 는 1 이상이어야 합니다 "
                                 f"(받은 값: {getattr(self, name)}).")
        if self.eval_samples < 10:
            raise ValueError(f"--eval-samples 는 10 이상이어야 합니다 (받은 값: {self.eval_samples}).")
        if self.gp_weight < 0 or self.toy_steps < 0:
            raise ValueError("--gp-weight 와 --toy-steps 는 0 이상이어야 합니다.")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"--val-fraction 은 0과 0.5 사이여야 합니다 (받은 값: {self.val_fraction}).")


# %% [markdown]
# ## 0. 장난감 문제: 고리 위 가우시안 8개로 모드 붕괴 세기
# 이미지에서는 "몇 종류를 놓쳤는지" 세기 어렵습니다. 2차원 평면의 반지름 2 고리 위에 같은 간격으로
# 가우시안 8개를 두면, 생성 표본이 어느 모드(mode)에 떨어졌는지 거리로 바로 셀 수 있습니다.
#   고품질 표본(high-quality) = 가장 가까운 중심까지 3σ 안 / 모드를 잡음 = 고품질 표본이 충분히 많음
# 보통 GAN 은 몇 개 모드만 오가며(mode collapse) 나머지를 놓치고, WGAN-GP 는 8개 모두를 덮습니다.
# 아래 4절의 손실 함수들(gan_losses, critic_loss …)을 그대로 씁니다: 이미지와 같은 게임입니다.
TOY_MODES = 8  # 고리 위 모드 수
TOY_RADIUS = 2.0  # 고리 반지름 (VEEGAN·WGAN-GP 예제와 같은 크기)
TOY_SIGMA = 0.05  # 모드 하나의 표준편차: 이웃 모드 사이 거리(≈1.53)의 약 3%
TOY_SAMPLES = 2500  # 평가 표본 수 (PacGAN 과 같음)
TOY_MIN_COUNT = 20  # 모드를 '잡았다'고 보는 최소 고품질 표본 수 (PacGAN: 2,500개 중 20개)
TOY_HIDDEN = 128  # 두 MLP 의 은닉 폭 (64 보다 모드 사이 '다리'가 빨리 끊김)
TOY_BATCH = 256
TOY_LR = 2e-3  # 작은 MLP 라 이미지보다 큰 학습률; 끝으로 갈수록 선형으로 0 까지 줄여 표본을 모드에 모음


def toy_centres() -> torch.Tensor:
    """(8, 2): 반지름 TOY_RADIUS 원 위에 45° 간격."""
    angles = torch.arange(TOY_MODES) * (2 * math.pi / TOY_MODES)
    return TOY_RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)


def sample_ring(count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(count, 2): 모드를 고르게 고른 뒤 N(중심, σ²I) 에서 뽑음."""
    modes = torch.randint(0, TOY_MODES, (count,), generator=generator)
    return toy_centres()[modes] + TOY_SIGMA * torch.randn(count, 2, generator=generator)


def score_ring(samples: torch.Tensor) -> tuple[int, float]:
    """(잡은 모드 수, 고품질 표본 비율). samples: (N, 2)."""
    distance, nearest = torch.cdist(samples, toy_centres()).min(dim=1)  # (N,), (N,)
    high_quality = distance < 3 * TOY_SIGMA
    counts = torch.bincount(nearest[high_quality], minlength=TOY_MODES)  # (8,)
    return int((counts >= TOY_MIN_COUNT).sum()), high_quality.float().mean().item()


def toy_mlp(inputs: int, outputs: int, activation: type[nn.Module]) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, TOY_HIDDEN), activation(), nn.Linear(TOY_HIDDEN, TOY_HIDDEN),
                         activation(), nn.Linear(TOY_HIDDEN, TOY_HIDDEN), activation(),
                         nn.Linear(TOY_HIDDEN, outputs))


def train_toy_gan(loss: str, steps: int, critic_steps: int, gp_weight: float, seed: int) -> nn.Module:
    """2차원 고리에서 GAN(loss="gan") 또는 WGAN-GP 를 steps 번 생성기 걸음만큼 학습. 생성기를 돌려줌."""
    generator_rng = torch.Generator().manual_seed(seed)  # 실제 표본은 이 생성기로 (전역 난수와 무관)
    toy_generator = toy_mlp(2, 2, nn.ReLU)  # z (B, 2) → 점 (B, 2)
    critic = toy_mlp(2, 1, nn.LeakyReLU)  # 점 (B, 2) → 로짓/점수 (B, 1)
    betas = ADAM_BETAS[loss]
    optimizer_g = torch.optim.Adam(toy_generator.parameters(), TOY_LR, betas=betas)
    optimizer_d = torch.optim.Adam(critic.parameters(), TOY_LR, betas=betas)
    decay = [torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / steps)
             for opt in (optimizer_g, optimizer_d)]
    d_steps = critic_steps if loss == "wgan-gp" else 1
    for _ in training.progress(range(steps), desc=f"toy {loss}"):
        for _ in range(d_steps):
            real = sample_ring(TOY_BATCH, generator_rng)
            fake = toy_generator(torch.randn(TOY_BATCH, 2)).detach()
            d_loss = discriminator_loss(critic(real).squeeze(1), critic(fake).squeeze(1), loss)
            if loss == "wgan-gp":
                d_loss = d_loss + gp_weight * gradient_penalty(critic, real, fake)
            optimizer_d.zero_grad(set_to_none=True)
            d_loss.backward()
            optimizer_d.step()
        g_loss = generator_loss(critic(toy_generator(torch.randn(TOY_BATCH, 2))).squeeze(1), loss)
        optimizer_g.zero_grad(set_to_none=True)
        g_loss.backward()
        optimizer_g.step()
        for scheduler in decay:
            scheduler.step()
    return toy_generator


# %% [markdown]
# ## 1. 데이터
# 실제 데이터는 MNIST(기본)·Fashion-MNIST·CIFAR-10·이미지 폴더, 오프라인 대체는 sklearn 손글씨 숫자.
# 모두 [-1, 1] 범위 (N, C, S, S) 텐서입니다: 생성기 마지막 Tanh 의 출력 범위와 같아야 D 가 "범위"만으로
# 진짜와 가짜를 가르지 못합니다. 데이터가 작아 DataLoader 없이 텐서를 직접 잘라 씁니다 (작업자
# 프로세스가 2코어에서 오히려 느림). 섞는 순서는 체크포인트에 저장되는 torch.Generator 로 정합니다.


def batches(images: torch.Tensor, batch_size: int, generator: torch.Generator | None, max_batches=None):
    """이미지 텐서를 섞어(generator 가 있으면) batch_size 씩. 마지막 작은 배치는 버림(BatchNorm 통계 안정)."""
    order = torch.randperm(len(images), generator=generator) if generator else torch.arange(len(images))
    count = max(1, len(images) // batch_size)
    if max_batches is not None:
        count = min(count, max_batches)
    for index in range(count):
        yield images[order[index * batch_size:(index + 1) * batch_size]]


def training_epochs(config: Config, train_count: int) -> int:
    """학습 길이를 epoch 수가 아니라 '본 이미지 수'(예산)로 정합니다 (DESIGN.md "Your own data").

    예산 129,300장 = sklearn digits 학습 분할 1,293장 × 100바퀴 (G 2,000걸음, 이 장을 맞춘 길이).
    같은 예산이 실제 MNIST 54,000장에서는 3바퀴 (G 약 2,500걸음, 2코어에서 몇 분)이고, 2시간짜리
    100바퀴가 되지 않습니다. 이미지 폴더 2만 장이면 7바퀴. --epochs N 은 예산 대신 정확히 N.
    """
    if config.smoke:
        return min(config.epochs or 3, 3)
    if config.epochs:
        return config.epochs
    return training.epochs_for_budget(train_count, config.train_images, max_epochs=1000)


def prepare_data(config: Config, device: torch.device) -> image_data.GanImages:
    """데이터를 읽고 (실제 데이터가 없으면 sklearn digits) 장치·분할 크기·손실을 한 줄로 알립니다."""
    data = image_data.load_gan_images(config.dataset, config.data, config.data_dir, config.smoke, config.seed,
                                      config.image_size, config.val_fraction, config.max_images)
    print(f"장치(device): {device} | 데이터: {data.name} (학습 {len(data.x_train)}, 검증 {len(data.x_val)}, "
          f"시험 {len(data.x_test)}) | 손실: {config.loss}")
    return data


# %% [markdown]
# ## 2. 모델: DCGAN 생성기와 판별기
# 어떤 활성화 함수를 어디에 왜 쓰는지 (DCGAN 논문, 강의 표):
# | 위치     | 활성화    | 이유                                                           |
# |----------|-----------|----------------------------------------------------------------|
# | G 은닉층 | ReLU      | 양수 쪽 기울기가 1: 깊은 업샘플링에서도 기울기가 잘 흐름       |
# | G 출력층 | Tanh      | [-1, 1] 로 묶어 실제 이미지 범위와 맞춤 (양 끝 포화로 빨리 안정) |
# | D 은닉층 | LeakyReLU | 음수 쪽에도 기울기 0.2: D 를 거쳐 G 로 가는 기울기가 안 끊김    |
# | D 출력   | Sigmoid   | 확률 D(x) ∈ (0, 1). 여기서는 로짓을 내고 손실 안에서 처리      |
# 정규화: G·D 모두 BatchNorm (단 G 출력층·D 입력층 제외: 출력 분포와 입력 통계를 그대로 두려고).
# WGAN-GP 의 비평가(critic)에는 BatchNorm 을 쓰지 않습니다: 기울기 벌점은 표본 하나하나에 대한
# ∇D(x̂) 인데 BatchNorm 은 배치 안의 표본을 서로 섞어 그 기울기를 바꿉니다. 대신 표본마다 따로
# 정규화하는 LayerNorm (논문의 권고).


def stage_count(image_size: int) -> int:
    """4x4 에서 image_size 까지 두 배씩 키우는 단계 수: 32 → 3, 64 → 4."""
    if image_size not in SUPPORTED_IMAGE_SIZES:
        raise ValueError(f"image_size 는 {SUPPORTED_IMAGE_SIZES} 중 하나여야 합니다 (받은 값: {image_size}).")
    return int(math.log2(image_size // BASE_SIZE))


class Generator(nn.Module):
    """z (B, Z) → 이미지 (B, C, S, S), 값 범위 [-1, 1].

    32x32, width=32 일 때 (64x64 는 단계가 하나 더, 첫 채널이 두 배: width 64 면 강의 표의 512x4x4):
        z (B, 100) → (B, 100, 1, 1)
        ConvTranspose2d(100, 128, 4, 1, 0) → BN → ReLU   (B, 128, 4, 4)     # 128 = width · 2^(단계−1)
        ConvTranspose2d(128,  64, 4, 2, 1) → BN → ReLU   (B,  64, 8, 8)     # 전치 합성곱: 출력 = 2 × 입력
        ConvTranspose2d( 64,  32, 4, 2, 1) → BN → ReLU   (B,  32, 16, 16)
        ConvTranspose2d( 32,   C, 4, 2, 1) → Tanh        (B,   C, 32, 32)
    전치 합성곱 출력 크기 = (입력 − 1)·stride − 2·padding + kernel: (1−1)·1 + 4 = 4, (4−1)·2 − 2 + 4 = 8.
    """

    def __init__(self, latent_dim: int, width: int, channels: int, image_size: int):
        super().__init__()
        stages = stage_count(image_size)
        features = width * 2 ** (stages - 1)  # 4x4 에서의 채널 수, 해상도가 두 배가 될 때마다 절반
        layers = [nn.ConvTranspose2d(latent_dim, features, BASE_SIZE, 1, 0, bias=False),  # (B, F0, 4, 4)
                  nn.BatchNorm2d(features), nn.ReLU(inplace=True)]
        for _ in range(stages - 1):  # (B, f, s, s) → (B, f/2, 2s, 2s)
            layers += [nn.ConvTranspose2d(features, features // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(features // 2), nn.ReLU(inplace=True)]
            features //= 2
        layers += [nn.ConvTranspose2d(features, channels, 4, 2, 1, bias=False), nn.Tanh()]  # (B, C, S, S)
        self.net = nn.Sequential(*layers)  # BN 바로 앞 합성곱의 편향은 BN 이 빼 버려 쓸모없음: bias=False

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(*z.shape, 1, 1))  # (B, Z) → (B, Z, 1, 1) → (B, C, S, S)


class Discriminator(nn.Module):
    """이미지 (B, C, S, S) → 로짓 (B,). 시그모이드는 손실 안에서 (아래 bce_with_logits).

    norm="batch"(DCGAN) 또는 "layer"(WGAN-GP 비평가: BatchNorm 금지). 32x32, width=32 일 때:
        Conv2d(C,  32, 4, 2, 1) → LeakyReLU              (B,  32, 16, 16)   # 첫 층은 정규화 없음
        Conv2d(32, 64, 4, 2, 1) → Norm → LeakyReLU       (B,  64,  8,  8)
        Conv2d(64, 128, 4, 2, 1) → Norm → LeakyReLU      (B, 128,  4,  4)
        Conv2d(128, 1, 4, 1, 0)                          (B,   1,  1,  1) → (B,)
    합성곱 출력 크기 = ⌊(입력 + 2·1 − 4) / 2⌋ + 1 = 입력 / 2.
    """

    def __init__(self, width: int, channels: int, image_size: int, norm: str = "batch"):
        super().__init__()
        stages = stage_count(image_size)
        size = image_size // 2
        layers = [nn.Conv2d(channels, width, 4, 2, 1),  # (B, width, S/2, S/2)
                  nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
        features = width
        for _ in range(stages - 1):  # (B, f, s, s) → (B, 2f, s/2, s/2)
            size //= 2
            # LayerNorm: 표본마다 자기 (C, H, W) 전체로 정규화 → 배치의 다른 표본과 섞이지 않음
            normalization = (nn.BatchNorm2d(features * 2) if norm == "batch"
                             else nn.LayerNorm([features * 2, size, size]))
            layers += [nn.Conv2d(features, features * 2, 4, 2, 1, bias=False), normalization,
                       nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
            features *= 2
        layers += [nn.Conv2d(features, 1, BASE_SIZE, 1, 0)]  # (B, F, 4, 4) → (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten()  # (B, 1, 1, 1) → (B,)


class GAN(nn.Module):
    """생성기와 판별기를 한 모듈에: 체크포인트 하나, build_model(**model_args) 하나로 둘 다 되살림."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, width: int, loss: str):
        super().__init__()
        self.latent_dim = latent_dim
        self.generator = Generator(latent_dim, width, channels, image_size)
        self.discriminator = Discriminator(width, channels, image_size, "batch" if loss == "gan" else "layer")
        self.apply(dcgan_init)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN 논문: 모든 가중치 N(0, 0.02). BatchNorm 의 γ 는 N(1, 0.02), β 는 0.

    PyTorch 기본값(Kaiming 균등 분포)보다 작은 값에서 시작하면 초반에 D 가 너무 빨리 이기지 않습니다.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


def build_model(image_size: int, channels: int, latent_dim: int, width: int, loss: str) -> GAN:
    """model_args 만으로 GAN 을 다시 만듭니다 (--resume, --predict, 시험 평가가 같은 함수를 씀)."""
    return GAN(image_size, channels, latent_dim, width, loss)


def layer_shapes(net: nn.Sequential, inputs: torch.Tensor) -> list[tuple[str, tuple]]:
    """실제로 한 번 흘려 보며 층마다 (이름, 출력 모양)을 모음: 주석의 모양을 코드로 확인 (d2l 방식)."""
    shapes, x = [], inputs
    for layer in net:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            shapes.append((type(layer).__name__, tuple(x.shape)))
    return shapes


def describe_model(gan: GAN, image_size: int, channels: int) -> None:
    with torch.no_grad():
        z = torch.zeros(2, gan.latent_dim, 1, 1)
        images = torch.zeros(2, channels, image_size, image_size)
        for name, net, inputs in (("generator", gan.generator.net, z),
                                  ("discriminator", gan.discriminator.net, images)):
            was_training = net.training
            net.eval()  # BatchNorm 통계를 건드리지 않게
            steps = " → ".join(str(shape[1:]) for _, shape in layer_shapes(net, inputs))
            net.train(was_training)
            parameters = sum(p.numel() for p in net.parameters())  # 파라미터 수 (모두 학습되는 것)
            print(f"{name}: {tuple(inputs.shape[1:])} → {steps}  ({parameters:,} parameters)")


# %% [markdown]
# ## 3. 학습: 적대적 게임
# 미니맥스 목표 (Goodfellow 2014):  min_G max_D  V(D, G) = E_x[log D(x)] + E_z[log(1 − D(G(z)))]
# 반복마다 두 걸음 (pytorch/examples dcgan 의 배너):
#   (1) D 갱신: log D(x) + log(1 − D(G(z))) 최대화 = 진짜는 1, 가짜는 0 으로 맞히는 BCE 최소화
#   (2) G 갱신: 원래 식은 log(1 − D(G(z))) 최소화. 학습 초반 D 가 가짜를 쉽게 알아보면
#       D(G(z)) ≈ 0 이라 log(1 − D) 가 평평해져(포화, saturating) G 의 기울기가 사라집니다.
#       그래서 같은 고정점을 가지면서 기울기가 큰 −log D(G(z)) 를 최소화 (비포화, non-saturating):
#       가짜에 '진짜(1)' 표를 붙인 BCE 와 같습니다.
#
# 왜 로짓 + BCEWithLogitsLoss 인가: 시그모이드를 따로 거치면 로짓 20 에서 σ = 1.0 (float32 반올림)
# 이 되어 log(1 − σ) = log 0 = −∞. F.binary_cross_entropy 는 이를 −100 으로 잘라 버려 손실과 기울기가
# 틀립니다. 로짓으로 직접 쓰면  −[t·log σ(l) + (1−t)·log(1−σ(l))] = max(l, 0) − l·t + log(1 + e^(−|l|))
# 이라 exp 가 넘치지 않습니다(log-sum-exp 요령).


def bce_with_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """처음부터: 평균 BCE(σ(logits), target) 를 로짓에서 안정적으로. logits: (B,)."""
    return (logits.clamp(min=0) - logits * target + torch.log1p(torch.exp(-logits.abs()))).mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP 기울기 벌점 E[(‖∇ₓ̂ D(x̂)‖₂ − 1)²], x̂ = ε·x + (1 − ε)·G(z), ε ~ U(0, 1) 표본마다 하나.

    최적 비평가는 진짜와 가짜를 잇는 직선 위에서 기울기 노름이 1 입니다 (1-립시츠, Lipschitz).
    노름은 한 표본의 모든 차원(C, H, W)에 대해: (B, C, H, W) → (B, C·H·W) 로 펴서 dim=1.
    (dim=1 만 쓰면 채널 노름이 (B, H, W) 개 생기는 흔한 버그.)
    real, fake: (B, C, H, W) 또는 (B, D).
    """
    epsilon = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)  # (B, 1, 1, 1)
    mixed = (epsilon * real + (1 - epsilon) * fake).requires_grad_(True)  # x̂
    scores = critic(mixed)
    # create_graph=True: 벌점 자체를 비평가 가중치로 미분해야 하므로 기울기 계산도 그래프에 남김
    (gradients,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)  # (B, C, H, W)
    norms = gradients.flatten(start_dim=1).norm(2, dim=1)  # (B, C·H·W) → (B,)
    return ((norms - 1) ** 2).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    """(1) D 의 손실 (기울기 벌점 제외). real_logits = D(x), fake_logits = D(G(z).detach()): 둘 다 (B,).

    gan: −[log D(x) + log(1 − D(G(z)))] = BCE(D(x), 1) + BCE(D(G(z)), 0).
    wgan-gp: 비평가는 진짜에 높은, 가짜에 낮은 점수 → 바서슈타인 추정값 E[D(x)] − E[D(G(z))] 를 최대화.
    """
    if loss == "gan":
        return F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
            F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return fake_logits.mean() - real_logits.mean()


def generator_loss(fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    """(2) G 의 손실. gan: 비포화 −log D(G(z)) = BCE(로짓, 1). wgan-gp: −E[D(G(z))]."""
    if loss == "gan":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    return -fake_logits.mean()


class AdversarialOptimizers:
    """G 와 D 의 Adam 두 개. state_dict()/load_state_dict() 가 있어 체크포인트의 "optimizer" 칸 하나에."""

    def __init__(self, gan: GAN, lr: float, loss: str):
        betas = ADAM_BETAS[loss]
        self.generator = torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=betas)
        self.discriminator = torch.optim.Adam(gan.discriminator.parameters(), lr=lr, betas=betas)

    def state_dict(self) -> dict:
        return {"generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])


def train_one_epoch(gan: GAN, optimizers: AdversarialOptimizers, images: torch.Tensor, config: Config,
                    device: torch.device, epoch: int, shuffle: torch.Generator, step_log: dict,
                    max_batches: int | None = None) -> dict:
    """한 epoch. 반환: epoch 평균 {d_loss, g_loss, d_real, d_fake}; step_log 에 G 걸음마다 한 줄씩 추가.

    gan 이면 배치마다 D 한 걸음 + G 한 걸음. wgan-gp 면 배치마다 비평가 한 걸음, critic_steps 번째마다
    G 한 걸음 (G 걸음 하나에 서로 다른 진짜 배치 critic_steps 개).
    d_real, d_fake: gan 은 확률 D(x), D(G(z)) 의 평균; wgan-gp 는 비평가 점수의 평균.
    """
    gan.train()
    d_steps = config.critic_steps if config.loss == "wgan-gp" else 1
    to_score = torch.sigmoid if config.loss == "gan" else (lambda scores: scores)
    sums, g_steps = dict.fromkeys(("d_loss", "g_loss", "d_real", "d_fake"), 0.0), 0
    for step, real in enumerate(training.progress(batches(images, config.batch_size, shuffle, max_batches),
                                                  desc=f"epoch {epoch}")):
        real = real.to(device)
        z = torch.randn(len(real), gan.latent_dim, device=device)  # (B, Z)
        # (1) D 갱신: maximize log D(x) + log(1 − D(G(z)))   [wgan-gp: maximize D(x) − D(G(z)) − λ·GP]
        fake = gan.generator(z)  # (B, C, S, S)
        # detach: D 걸음에서는 G 가 움직이지 않음 (기울기를 G 까지 흘릴 필요도 없음)
        real_logits, fake_logits = gan.discriminator(real), gan.discriminator(fake.detach())  # (B,), (B,)
        d_loss = discriminator_loss(real_logits, fake_logits, config.loss)
        if config.loss == "wgan-gp":
            d_loss = d_loss + config.gp_weight * gradient_penalty(gan.discriminator, real, fake.detach())
        optimizers.discriminator.zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers.discriminator.step()
        if (step + 1) % d_steps != 0 and max_batches != 1:  # wgan-gp: 비평가가 앞서 가도록 G 는 쉼
            continue
        # (2) G 갱신: maximize log D(G(z)) (비포화)   [wgan-gp: maximize D(G(z))]
        fake_logits = gan.discriminator(fake)  # 같은 G(z), 이번에는 detach 없이: 기울기가 G 로 흐름
        g_loss = generator_loss(fake_logits, config.loss)
        optimizers.generator.zero_grad(set_to_none=True)
        g_loss.backward()
        optimizers.generator.step()
        training.check_finite(d_loss + g_loss, epoch, step)
        # 기록: D(x) 는 D 걸음 전, D(G(z)) 는 D 걸음 뒤의 값 (pytorch/examples dcgan 의 D_x, D_G_z2)
        row = {"d_loss": d_loss.item(), "g_loss": g_loss.item(),
               "d_real": to_score(real_logits.detach()).mean().item(),
               "d_fake": to_score(fake_logits.detach()).mean().item()}
        g_steps += 1
        for key, value in row.items():
            step_log[key].append(value)
            sums[key] += value
        step_log["epoch"].append(epoch)
    means = {key: value / max(g_steps, 1) for key, value in sums.items()}
    if config.loss == "gan" and means["d_loss"] < D_LOSS_VANISHING:
        print(f"경고: epoch {epoch} 의 D 손실 {means['d_loss']:.4f} ≈ 0 — D 가 진짜·가짜를 완벽히 갈라 "
              "G 의 기울기가 사라지고 있습니다 (lr 을 낮추거나 D 를 작게).")
    return means


def restore_step_log(step_log: dict, last_path: Path, start_epoch: int) -> None:
    """이어하기: 걸음별 기록(extra["steps"])은 resume_or_start 가 되살리지 않으므로 last.pt 에서 직접."""
    if start_epoch > 1:  # resume_or_start 가 방금 검사하고 읽은 파일이라 torch.load 로 바로
        saved = torch.load(last_path, map_location="cpu", weights_only=True)
        for key, values in saved["extra"]["steps"].items():
            step_log[key][:] = values


# %% [markdown]
# ## 4. 평가: 분류기로 잰 클래스 분포와 프레셰 거리
# 생성 이미지가 "좋은지"는 눈대중이 아니라 숫자로 잽니다. 같은 실제 데이터로 작은 CNN 분류기를 학습해
#   (a) 생성 표본 1,000장의 클래스 히스토그램과 엔트로피: 모드 붕괴 탐지기 (10 클래스 균등이면 log 10 ≈ 2.30)
#   (b) 분류기 특징 공간에서 생성 표본과 (학습에 쓰지 않은) 실제 표본의 프레셰 거리(FD):
#       두 분포를 가우시안 N(μ, Σ) 로 근사했을 때의 2-바서슈타인 거리의 제곱. FID 는 같은 식을
#       ImageNet Inception 특징에서 잰 것이고, 여기서는 이 데이터로 학습한 분류기의 특징을 씁니다.
# 기준선 둘: 학습하지 않은 생성기의 FD(나쁨의 기준), 실제 대 실제의 FD(표본 수가 유한해서 생기는 바닥).


class FeatureClassifier(nn.Module):
    """이미지 (B, C, S, S) → 특징 (B, F) → 로짓 (B, K). 평가 전용의 작은 CNN (03장의 Conv→BN→ReLU→Pool)."""

    def __init__(self, channels: int, classes: int, features: int = 64):
        super().__init__()
        pooled = 8  # 32px: 32→16→8 그대로, 64px: 16 을 8 로 평균 풀링 → 두 크기 모두 같은 선형층
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, S/2, S/2)
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, S/4, S/4)
            nn.AdaptiveAvgPool2d(pooled), nn.Flatten(),  # (B, 64·8·8)
            nn.Linear(64 * pooled * pooled, features), nn.ReLU())  # (B, F): FD 를 재는 특징 공간
        self.head = nn.Linear(features, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))


def train_classifier(data: image_data.GanImages, config: Config, device: torch.device,
                     max_batches: int | None = None) -> tuple[FeatureClassifier, float]:
    """평가용 분류기를 학습하고 (분류기, 시험 정확도)를 돌려줍니다.

    자기 seed 로만 초기화·섞기 (fork_rng): 전역 난수를 건드리지 않아 --resume 때 다시 만들어도
    똑같은 분류기가 나오고, 그 뒤 GAN 학습의 난수도 그대로입니다.
    """
    seed = config.seed + SEED_OFFSETS["classifier"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = FeatureClassifier(data.channels, len(data.classes)).to(device)
        optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
        shuffle = torch.Generator().manual_seed(seed)
        steps = 1 if max_batches else config.classifier_steps
        epochs = math.ceil(steps * CLASSIFIER_BATCH / len(data.y_train))  # 데이터가 작으면 여러 바퀴
        order = torch.cat([torch.randperm(len(data.y_train), generator=shuffle) for _ in range(epochs)])
        classifier.train()
        for batch in training.progress(order.split(CLASSIFIER_BATCH)[:steps], desc="classifier"):
            logits = classifier(data.x_train[batch].to(device))
            loss = F.cross_entropy(logits, data.y_train[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    classifier.eval()
    predictions = classify(classifier, data.x_test, device)[0]
    return classifier, (predictions == data.y_test).float().mean().item()


@torch.no_grad()
def classify(classifier: FeatureClassifier, images: torch.Tensor, device: torch.device,
             batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(예측 클래스 (N,), 특징 (N, F)) — CPU 텐서. eval(): BatchNorm 이 배치 통계 대신 학습 통계를 씀."""
    classifier.eval()
    labels, features = [], []
    for start in range(0, len(images), batch_size):
        feats = classifier.body(images[start:start + batch_size].to(device))  # (b, F)
        labels.append(classifier.head(feats).argmax(dim=1).cpu())
        features.append(feats.cpu())
    return torch.cat(labels), torch.cat(features)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """처음부터: FD = ‖μa − μb‖² + Tr(Σa + Σb − 2(Σa Σb)^½). features: (N, F), float64 로 계산.

    Tr((Σa Σb)^½) 는 행렬 제곱근을 만들지 않고 구합니다: Σa Σb 는 대칭 PSD 행렬
    M = Σa^½ Σb Σa^½ 와 닮음(similar)이라 고윳값이 같고, 따라서 Tr((ΣaΣb)^½) = Σ_i √λ_i(M).
    대칭 행렬만 다루므로 eigh 로 안정적입니다 (scipy.linalg.sqrtm 의 결과와 테스트가 비교).
    """
    a, b = features_a.double(), features_b.double()
    mu_a, mu_b = a.mean(dim=0), b.mean(dim=0)  # (F,)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)  # (F, F), 표본 공분산 (N−1 로 나눔)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov_a)
    sqrt_a = eigenvectors @ torch.diag(eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T  # Σa^½
    middle = sqrt_a @ cov_b @ sqrt_a  # (F, F) 대칭 PSD
    trace_sqrt = torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()
    return ((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt).item()


def frechet_distance_scipy(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """라이브러리 판: 같은 식을 scipy.linalg.sqrtm 으로 (pytorch-fid 가 쓰는 방식). 위 함수의 정답 확인용."""
    import warnings

    import numpy as np
    from scipy.linalg import sqrtm

    a, b = features_a.double().numpy(), features_b.double().numpy()
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # 표본이 특징 수보다 적으면(--smoke) 공분산이 특이(singular)하다는 경고
        warnings.simplefilter("ignore")
        covmean = sqrtm(cov_a @ cov_b).real  # 수치 오차로 생긴 아주 작은 허수부는 버림
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def class_statistics(labels: torch.Tensor, classes: int) -> dict:
    """생성 표본 라벨 (N,) → 클래스 비율, 최소 비율, 덮은 클래스 수, 엔트로피(nats)."""
    fractions = torch.bincount(labels, minlength=classes).double() / max(len(labels), 1)  # (K,)
    nonzero = fractions[fractions > 0]
    return {"fractions": fractions.tolist(), "min_class_fraction": fractions.min().item(),
            "classes_covered": int((fractions > 0).sum()),
            "class_entropy": 0.0 - (nonzero * nonzero.log()).sum().item()}  # 0.0 −: −0.0 이 찍히지 않게


@torch.no_grad()
def generate(generator: Generator, noise: torch.Tensor, device: torch.device,
             batch_size: int = 500) -> torch.Tensor:
    """고정 잡음 (N, Z) → 이미지 (N, C, S, S), CPU. eval(): BatchNorm 이 학습 중 모은 통계를 씀."""
    generator.eval()
    return torch.cat([generator(noise[start:start + batch_size].to(device)).cpu()
                      for start in range(0, len(noise), batch_size)])


@torch.no_grad()
def evaluate(gan: GAN, classifier: FeatureClassifier, real_images: torch.Tensor, real_features: torch.Tensor,
             noise: torch.Tensor, loss: str, device: torch.device) -> dict:
    """검증·시험: {loss, fd, min_class_fraction, classes_covered, class_entropy, d_real}.

    loss: D 의 손실(gp 제외)을 학습에 쓰지 않은 실제 이미지와 고정 잡음의 가짜로 — D 가 학습 데이터를
    외우면(과적합) 이 값만 커집니다. d_real: 처음 보는 진짜에 대한 D(x) 평균 (wgan-gp 는 점수).
    gan.eval(): 판별기의 BatchNorm 도 배치 통계 대신 학습 통계를 쓰게 (배치 구성에 따라 답이 바뀌지 않게).
    """
    gan.eval()
    fake = generate(gan.generator, noise, device)
    labels, features = classify(classifier, fake, device)
    real_logits, fake_logits = (torch.cat([gan.discriminator(part.to(device)).cpu()
                                           for part in images.split(500)])
                                for images in (real_images, fake))  # (N_real,), (N,)
    d_loss = discriminator_loss(real_logits, fake_logits, loss)  # 라이브러리 BCEWithLogits (gp 제외)
    d_real = real_logits.mean().item()
    if loss == "gan":  # 처음부터 만든 bce_with_logits 가 라이브러리와 같은 값인지 매번 확인
        from_scratch = bce_with_logits(real_logits, 1.0) + bce_with_logits(fake_logits, 0.0)
        assert torch.isclose(from_scratch, d_loss, rtol=1e-4, atol=1e-5), (from_scratch, d_loss)
        d_real = torch.sigmoid(real_logits).mean().item()
    stats = class_statistics(labels, classifier.head.out_features)
    return {"loss": d_loss.item(), "fd": frechet_distance(features, real_features),
            "min_class_fraction": stats["min_class_fraction"], "classes_covered": stats["classes_covered"],
            "class_entropy": stats["class_entropy"], "d_real": d_real}


def fixed_noise(count: int, latent_dim: int, seed: int) -> torch.Tensor:
    """(count, Z): 자기 seed 의 고정 잡음. 전역 난수와 무관해 epoch·이어하기와 상관없이 같은 z."""
    return torch.randn(count, latent_dim, generator=torch.Generator().manual_seed(seed))


def test_scores(gan: GAN, classifier: FeatureClassifier, data: image_data.GanImages, model_args: dict,
                config: Config, eval_count: int, device: torch.device, out_dir: Path) -> dict:
    """best.pt 의 생성기, 학습 전 생성기, 실제 대 실제를 같은 방식으로: 시험 분할의 실제 특징과 비교."""
    noise = fixed_noise(eval_count, config.latent_dim, config.seed + SEED_OFFSETS["test_noise"])
    test_features = classify(classifier, data.x_test, device)[1]
    trained = evaluate(gan, classifier, data.x_test, test_features, noise, config.loss, device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + SEED_OFFSETS["untrained"])
        untrained_gan = build_model(**model_args).to(device)  # 같은 구조, 학습 전 가중치
    untrained = evaluate(untrained_gan, classifier, data.x_test, test_features, noise, config.loss, device)
    real_subset = data.x_train[:eval_count]  # 학습 이미지 중 같은 수: 실제끼리의 거리 = 표본 수가 만드는 바닥
    real_features = classify(classifier, real_subset, device)[1]
    fd_real = frechet_distance(real_features, test_features)
    library = frechet_distance_scipy(real_features, test_features)  # 같은 식을 scipy 로: 확인용
    assert math.isclose(fd_real, library, rel_tol=1e-3, abs_tol=1e-3), (fd_real, library)
    count = len(data.classes)
    fractions = {name: class_statistics(classify(classifier, images, device)[0], count)["fractions"]
                 for name, images in (("trained G", generate(gan.generator, noise, device)),
                                      ("untrained G", generate(untrained_gan.generator, noise, device)),
                                      ("real (test)", data.x_test))}
    plot_class_histogram(fractions, data.classes, out_dir / "class_histogram.png", config.show)
    return {"fd": trained["fd"], "fd_untrained": untrained["fd"], "fd_real": fd_real,
            "min_class_fraction": trained["min_class_fraction"], "class_entropy": trained["class_entropy"],
            "classes_covered": trained["classes_covered"],
            "untrained_min_class_fraction": untrained["min_class_fraction"]}


def summarize(test: dict, classifier_accuracy: float, best_epoch: int, toy: dict, out_dir: Path) -> dict:
    """시험 지표, 분류기 정확도, best.pt 의 epoch, 장난감 결과를 metrics 하나로 묶고 한 줄로 알립니다."""
    metrics = {**test, "classifier_accuracy": classifier_accuracy, "best_epoch": best_epoch, **toy}
    print(f"시험 (best.pt, epoch {best_epoch}): FD {test['fd']:.2f} "
          f"(학습 전 G {test['fd_untrained']:.2f}, 실제 대 실제 {test['fd_real']:.2f}), "
          f"최소 클래스 비율 {test['min_class_fraction']:.3f}, 엔트로피 {test['class_entropy']:.3f} "
          f"→ {out_dir}")
    # 기준선 = 학습 전 생성기의 FD. 그 절반도 못 줄였으면 (실제 MNIST 3바퀴면 약 0.01배) 배우지 못한 것
    training.warn_if_trivial("시험 FD", test["fd"], test["fd_untrained"], 0.5 * test["fd_untrained"],
                             "학습이 너무 짧거나(--train-images, --epochs) D 가 G 를 압도했습니다"
                             "(--lr, --loss wgan-gp).", higher_is_better=False)
    return metrics


# %% [markdown]
# ## 5. 시각화


def save_epoch_grid(generator: Generator, noise: torch.Tensor, folder: Path, epoch: int,
                    device: torch.device) -> None:
    """고정 잡음 64개의 생성 이미지를 8x8 격자 PNG 로 (같은 z 가 epoch 마다 어떻게 변하는지)."""
    from torchvision.utils import save_image

    folder.mkdir(exist_ok=True)
    images = image_data.to_pixel_range(generate(generator, noise, device))  # [-1, 1] → [0, 1]
    save_image(images, folder / f"epoch_{epoch:03d}.png", nrow=8)


def save_animation(frame_paths: list[Path], path: Path) -> Path | None:
    """epoch 격자 PNG 들을 GIF 하나로 (PIL). 마지막 장면은 조금 오래 보여 줌."""
    from PIL import Image

    if not frame_paths:
        return None
    frames = [Image.open(p).convert("P", palette=Image.ADAPTIVE) for p in frame_paths]
    durations = [200] * (len(frames) - 1) + [1500]  # 밀리초
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return path


def plot_training(step_log: dict, rows: list[dict], loss: str, path: Path, show: bool) -> Path:
    """왼쪽: G 걸음마다 D·G 손실 / 가운데: D(x), D(G(z)) / 오른쪽: epoch 마다 검증 FD 와 붕괴 계량기."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    steps = range(1, len(step_log["d_loss"]) + 1)
    axes[0].plot(steps, step_log["d_loss"], label="D loss", alpha=0.8)
    axes[0].plot(steps, step_log["g_loss"], label="G loss", alpha=0.8)
    axes[0].set(xlabel="generator step", ylabel="loss", title="Losses per step")
    name = "D" if loss == "gan" else "critic"
    axes[1].plot(steps, step_log["d_real"], label=f"{name}(x), real")
    axes[1].plot(steps, step_log["d_fake"], label=f"{name}(G(z)), generated")
    axes[1].set(xlabel="generator step", ylabel="probability" if loss == "gan" else "score",
                title="Discriminator outputs per step")
    epochs = [row["epoch"] for row in rows]
    axes[2].plot(epochs, [row["val_fd"] for row in rows], marker="o", color="tab:red", label="val FD")
    axes[2].set(xlabel="epoch", ylabel="Frechet distance (log scale)", yscale="log",
                title="Validation FD and class coverage")
    axes[2].xaxis.get_major_locator().set_params(integer=True)
    coverage = axes[2].twinx()
    coverage.plot(epochs, [row["val_min_class_fraction"] for row in rows], marker=".", color="tab:green",
                  label="min class fraction")
    coverage.set(ylabel="min class fraction", ylim=(0, 0.2))  # 10 클래스 균등이면 0.1
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
        ax.legend()
    axes[2].legend(loc="upper left")
    coverage.legend(loc="upper right")
    return viz.save_figure(fig, path, show)


def plot_class_histogram(fractions: dict[str, list[float]], classes: list[str], path: Path,
                         show: bool) -> Path:
    """생성 표본(학습 / 미학습 G)과 실제 시험 데이터의 클래스 비율 막대그래프."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(classes) + 3), 4))
    width = 0.8 / len(fractions)
    for index, (name, values) in enumerate(fractions.items()):
        ax.bar([k + index * width for k in range(len(classes))], values, width=width, label=name)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(classes))], classes,
                  rotation=30 if len(classes) > 10 else 0)
    ax.set(xlabel="class (by the evaluation classifier)", ylabel="fraction of samples",
           title="Class histogram of generated samples")
    ax.legend()
    return viz.save_figure(fig, path, show)


def report_training(history: training.History, step_log: dict, epochs: int, config: Config,
                    out_dir: Path) -> None:
    """학습 곡선 그림과 epoch 격자 GIF. 기록은 체크포인트에서 되살린 것, 격자는 디스크의 PNG 라
    이어하기를 해도 끊김 없는 실행과 같은 그림이 나옵니다."""
    plot_training(step_log, history.rows, config.loss, out_dir / "training_curves.png", config.show)
    with (out_dir / "steps.csv").open("w", encoding="utf-8") as f:  # G 걸음마다 한 줄
        f.write("step," + ",".join(step_log) + "\n")
        for index, values in enumerate(zip(*step_log.values()), start=1):
            f.write(f"{index}," + ",".join(f"{v:.6g}" for v in values) + "\n")
    frames = [out_dir / "epochs" / f"epoch_{epoch:03d}.png" for epoch in range(1, epochs + 1)]
    save_animation([path for path in frames if path.exists()], out_dir / "training.gif")


# %% [markdown]
# ## 6. 추론: 잠재 공간과 --predict


def predict(config: Config, device: torch.device, out_dir: Path) -> dict:
    """best.pt 의 생성기로 새 이미지 N장: predictions/sample_XXXX.png, prediction.png, prediction.json."""
    import json

    from torchvision.utils import save_image

    # 체크포인트를 가장 먼저: 없거나 깨졌으면 다른 일을 하기 전에 한 줄 오류
    gan, checkpoint = training.load_trained_model(out_dir / "best.pt", build_model, config, device)
    extra = checkpoint["extra"]
    images = generate(gan.generator, fixed_noise(config.predict, gan.latent_dim, config.seed), device)
    labels = classify(restore_classifier(extra, device), images, device)[0]
    folder = out_dir / "predictions"
    folder.mkdir(exist_ok=True)
    files = []
    for index, image in enumerate(image_data.to_pixel_range(images)):
        save_image(image, folder / f"sample_{index:04d}.png")
        files.append({"file": f"predictions/sample_{index:04d}.png",
                      "class": extra["classes"][labels[index]]})
    shown = min(len(images), GRID_SAMPLES)
    viz.plot_image_grid(image_data.to_pixel_range(images[:shown]), [f["class"] for f in files[:shown]],
                        out_dir / "prediction.png", config.show,
                        title=f"{len(images)} new samples (epoch {checkpoint['epoch']} generator)")
    result = {"count": len(images), "seed": config.seed, "checkpoint": str(out_dir / "best.pt"),
              "epoch": checkpoint["epoch"], "data": extra["data"], "images": files}
    text = json.dumps(result, indent=2, ensure_ascii=False)
    (out_dir / "prediction.json").write_text(text, encoding="utf-8")
    counts = torch.bincount(labels, minlength=len(extra["classes"])).tolist()
    print(f"새 이미지 {len(images)}장 → {folder} (분류기가 본 클래스별 수: {counts}), "
          f"{out_dir / 'prediction.json'}")
    return result


def restore_classifier(extra: dict, device: torch.device) -> FeatureClassifier:
    classifier = FeatureClassifier(extra["channels"], len(extra["classes"]))
    classifier.load_state_dict(extra["classifier"])
    return classifier.to(device).eval()


def interpolate_latent(generator: Generator, z_start: torch.Tensor, z_end: torch.Tensor, steps: int,
                       device: torch.device) -> torch.Tensor:
    """z 두 개 (Z,) 사이를 직선으로 steps 등분 → 이미지 (steps, C, S, S). 부드럽게 변하면 G 가 외우지 않고
    연속적인 잠재 공간을 배웠다는 뜻입니다 (DCGAN 논문 6.1절)."""
    weights = torch.linspace(0, 1, steps).unsqueeze(1)  # (steps, 1)
    return generate(generator, (1 - weights) * z_start + weights * z_end, device)  # (steps, Z) → 이미지


# %% [markdown]
# ## 부록(실험)


def study_eight_gaussians(config: Config, out_dir: Path) -> dict:
    """0절의 장난감: GAN 과 WGAN-GP 를 같은 걸음 수로 학습해 잡은 모드 수·고품질 비율을 세고 그림으로."""
    steps = 20 if config.smoke else config.toy_steps
    if steps == 0:
        return {}
    results, samples = {}, {}
    seed = config.seed + SEED_OFFSETS["toy"]
    for loss in ("gan", "wgan-gp"):
        with torch.random.fork_rng(devices=[]):  # 자기 seed: 앞에서 무엇이 돌았든 같은 숫자
            torch.manual_seed(seed)
            toy_generator = train_toy_gan(loss, steps, config.critic_steps, config.gp_weight, seed)
            with torch.no_grad():
                samples[loss] = toy_generator(torch.randn(TOY_SAMPLES, 2))
        results[loss] = score_ring(samples[loss])
        print(f"[8-가우시안] {loss}: 모드 {results[loss][0]}/{TOY_MODES}, 고품질 표본 {results[loss][1]:.1%}")
    real = sample_ring(TOY_SAMPLES, torch.Generator().manual_seed(seed))
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, loss in zip(axes, samples):
        ax.scatter(real[:, 0], real[:, 1], s=2, color="lightgray", label="real")
        ax.scatter(samples[loss][:, 0], samples[loss][:, 1], s=2, color="tab:blue", label="generated")
        ax.set(xlim=(-3, 3), ylim=(-3, 3), xlabel="x1", ylabel="x2", aspect="equal",
               title=f"{loss}: {results[loss][0]}/{TOY_MODES} modes, {results[loss][1]:.0%} high quality")
        ax.legend(loc="upper right", markerscale=4)
    viz.save_figure(fig, out_dir / "toy_eight_gaussians.png", config.show)
    return {"toy_modes_captured": results["wgan-gp"][0], "toy_high_quality_fraction": results["wgan-gp"][1],
            "toy_gan_modes_captured": results["gan"][0], "toy_gan_high_quality_fraction": results["gan"][1]}


def study_samples_and_interpolation(gan: GAN, classifier: FeatureClassifier, classes: list[str],
                                    config: Config, device: torch.device, out_dir: Path) -> None:
    """best.pt 생성기의 표본 격자(samples.png)와 z 쌍 4개 사이 8단계 보간(interpolation.png).

    제목은 분류기가 본 클래스: 보간 중 숫자가 바뀌는 지점이 보입니다.
    """
    noise = fixed_noise(GRID_SAMPLES, gan.latent_dim, config.seed + SEED_OFFSETS["interp"])  # (64, Z)
    images = generate(gan.generator, noise, device)
    labels = classify(classifier, images, device)[0]
    viz.plot_image_grid(image_data.to_pixel_range(images), [classes[k] for k in labels],
                        out_dir / "samples.png", config.show,
                        title="Samples from best.pt (title: class by the evaluation classifier)")
    steps, pairs = 8, 4
    images = torch.cat([interpolate_latent(gan.generator, noise[2 * k], noise[2 * k + 1], steps, device)
                        for k in range(pairs)])  # (pairs·steps, C, S, S)
    labels = classify(classifier, images, device)[0]
    viz.plot_image_grid(image_data.to_pixel_range(images), [classes[k] for k in labels],
                        out_dir / "interpolation.png", config.show,
                        title="Latent interpolation: each row goes from z_start to z_end", columns=steps)


# %% 실행


def main(config: Config) -> dict:
    started, device, out_dir = time.time(), pick_device(config.device), Path(config.out_dir)
    if config.predict:  # 6. 추론만
        return predict(config, device, out_dir)
    set_seed(config.seed)
    # 1. 데이터
    data = prepare_data(config, device)
    epochs = training_epochs(config, len(data.x_train))
    # GAN 의 FD 는 들쭉날쭉해 조기 종료 없이 best.pt 만 고름
    print(training.describe_budget(len(data.x_train), epochs, early_stop=False))
    max_batches = 1 if config.smoke else None
    eval_count = config.batch_size if config.smoke else config.eval_samples
    # 4. 평가 준비: 학습 전에 분류기를 만들어 둬야 epoch 마다 붕괴 계량기·검증 FD 를 잴 수 있음
    classifier, classifier_accuracy = train_classifier(data, config, device, max_batches)
    val_features = classify(classifier, data.x_val, device)[1]
    # 2. 모델
    model_args = dict(image_size=config.image_size, channels=data.channels, latent_dim=config.latent_dim,
                      width=config.width, loss=config.loss)
    gan = build_model(**model_args).to(device)
    describe_model(gan, config.image_size, data.channels)
    optimizers = AdversarialOptimizers(gan, config.lr, config.loss)
    shuffle = torch.Generator().manual_seed(config.seed)
    val_noise = fixed_noise(min(VAL_SAMPLES, eval_count), config.latent_dim,
                            config.seed + SEED_OFFSETS["val_noise"])
    step_log = {key: [] for key in ("epoch", "d_loss", "g_loss", "d_real", "d_fake")}
    extra = {"data": data.name, "classes": data.classes, "channels": data.channels,
             "classifier": classifier.state_dict(), "steps": step_log}

    # 3. 학습
    history = training.History(out_dir / "history.csv")
    state = {"model": gan, "optimizer": optimizers, "scheduler": None}
    checkpoint = lambda epoch, best: training.make_checkpoint(
        config, model_args, state, epoch, best, generators=[shuffle], history=history, extra=extra)
    start_epoch, best = training.resume_or_start(config, checkpoint, state, generators=[shuffle],
                                                 history=history, best=math.inf)
    restore_step_log(step_log, out_dir / "last.pt", start_epoch)  # 걸음별 기록도 이어서
    try:
        for epoch in range(start_epoch, epochs + 1):
            train = train_one_epoch(gan, optimizers, data.x_train, config, device, epoch, shuffle, step_log,
                                    max_batches)
            val = evaluate(gan, classifier, data.x_val, val_features, val_noise, config.loss, device)
            history.log(epoch=epoch, **train, **{f"val_{k}": v for k, v in val.items()})
            save_epoch_grid(gan.generator, val_noise[:GRID_SAMPLES], out_dir / "epochs", epoch, device)
            if val["fd"] < best:  # 검증 기준: 처음 보는 실제 이미지와의 FD, 작을수록 좋음
                best = val["fd"]
                training.save_checkpoint(out_dir / "best.pt", checkpoint(epoch, best))
            training.save_checkpoint(out_dir / "last.pt", checkpoint(epoch, best))
    except KeyboardInterrupt:
        print("\n중단: --resume 을 붙여 다시 실행하면 마지막으로 끝난 epoch 다음부터 이어집니다")
        raise SystemExit(130) from None
    # 4. 평가 (best.pt) → 5. 시각화 → 부록
    gan, best_pt = training.load_trained_model(out_dir / "best.pt", build_model, config, device,
                                               purpose="test")
    test = test_scores(gan, classifier, data, model_args, config, eval_count, device, out_dir)
    report_training(history, step_log, epochs, config, out_dir)
    study_samples_and_interpolation(gan, classifier, data.classes, config, device, out_dir)
    toy = study_eight_gaussians(config, out_dir)
    metrics = summarize(test, classifier_accuracy, best_pt["epoch"], toy, out_dir)
    write_run_record(out_dir, script=config.chapter + ".py", config=config, data=data.name, device=device,
                     seconds=time.time() - started, parameters=sum(p.numel() for p in gan.parameters()),
                     metrics=metrics, headline="fd")
    return metrics


if __name__ == "__main__":
    run(main, Config)
