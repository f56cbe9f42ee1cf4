"""11장. 오토인코더(autoencoder): 병목으로 요약하기, 잡음 제거, 이상 탐지, 잠재 공간, 변분 오토인코더(VAE).

학습 목표
    - 오토인코더 = 인코더(encoder) x → z 와 디코더(decoder) z → x̂ 를 이어 x̂ ≈ x 가 되게 학습하는 모델.
      병목(bottleneck) z 가 입력(784 픽셀)보다 훨씬 작아서(기본 32) 그대로 베낄 수 없고, 데이터에
      되풀이되는 구조(획, 모양)만 남기는 '요약'을 배울 수밖에 없다.
    - 밀집(dense) 오토인코더, 그다음 합성곱(convolutional) 오토인코더: Conv → ReLU → MaxPool 인코더와
      대칭인 ConvTranspose 디코더, 층마다 출력 모양을 찍어 본다.
    - 잡음 제거(denoising): 가우시안 잡음(σ = --noise-std, [0, 1] 픽셀, 잘라냄)을 넣은 입력 → 깨끗한
      목표로 학습. PSNR 과 (직접 쓴) SSIM 으로 잡음 입력·잡음 제거 출력·두 기준선(같은 차원의 PCA,
      검증 세트로 세기를 고른 가우시안 흐림/중앙값 필터)을 같은 시험 이미지에서 나란히 잰다.
    - 이상 탐지(anomaly detection): 한 숫자(--normal-digit)만으로 학습한 오토인코더의 재구성 오차가
      점수. 시험 세트 전체의 ROC 곡선과 AUROC, 검증 세트의 정상 이미지로 정한 문턱값(95번째 백분위)에서의
      정밀도·재현율, 같은 차원의 PCA 재구성 오차와 나란히 (Deep SVDD 논문의 one-class MNIST 방식).
    - 잠재 공간(latent space): 잠재 벡터의 첫 두 주성분을 클래스별로 찍은 그림과 픽셀 PCA 2-D 지도,
      그리고 같은 차원에서 선형 탐침(linear probe, 로지스틱 회귀) 정확도 비교.
    - 변분 오토인코더(VAE): 재매개변수화(reparameterisation), ELBO = 재구성 + KL, 닫힌 꼴 가우시안 KL,
      사전분포(prior)에서 뽑은 표본, 잠재 공간 보간, --beta.
    - 오토인코더와 U-Net(09장)의 차이를 표로.

핵심 개념
    잡음 제거 목표: min E‖f(clip(x + σε)) − x‖², ε ~ N(0, I)   (Vincent 2008)
    PSNR = 10·log10(L² / MSE) (L = 1, 픽셀 범위), 이미지마다 계산해 평균
    SSIM = [(2μxμy + c1)(2σxy + c2)] / [(μx² + μy² + c1)(σx² + σy² + c2)], 11x11 가우시안 창(σ 1.5),
           c1 = (0.01L)², c2 = (0.03L)² (Wang 2004)
    VAE: q(z|x) = N(μ, diag σ²), z = μ + σ ⊙ ε, ELBO = E_q[log p(x|z)] − KL(q(z|x) ‖ N(0, I)),
         KL = −½ Σ (1 + log σ² − μ² − σ²)   (Kingma & Welling 2014), β-VAE 는 KL 에 β 를 곱함 (Higgins 2017)
    음의 ELBO 는 '이미지 한 장당 nat' 으로 적습니다 (pytorch/examples vae 는 배치 합을 찍음).

실행 방법
    python 11_autoencoder_anomaly.py                          # 기본: MNIST, 없으면 sklearn digits (오프라인)
    python 11_autoencoder_anomaly.py --data offline           # 네트워크 없이 sklearn 손글씨 숫자
    python 11_autoencoder_anomaly.py --data real --data-dir ../shared/data/mnist   # 실제 MNIST
    python 11_autoencoder_anomaly.py --dataset fashion        # Fashion-MNIST (온라인이거나 파일이 있을 때)
    python 11_autoencoder_anomaly.py --normal-digit 8 --noise-std 0.3 --beta 4
    python 11_autoencoder_anomaly.py --smoke                  # 배치 하나로 전체 흐름만 확인 (몇 초)
    python 11_autoencoder_anomaly.py --predict my_digit.png   # 재구성, 이상 점수, 저장된 문턱값으로 판정
    python 11_autoencoder_anomaly.py --resume                 # 중단된 학습 이어하기
    python benchmarks/anomaly_all_digits.py --data-dir ../shared/data/mnist   # 열 숫자 모두의 평균 AUROC
    GPU 에서 크게 (GPU 에서는 아직 재지 않았습니다): 학습량은 '본 이미지 수'로 정하므로 늘리면 됩니다.
    python 11_autoencoder_anomaly.py --data real --device cuda --width 32 --train-images 1200000 \\
        --vae-images 1200000 --anomaly-steps 10000 --batch-size 128

기대 결과
    [results] benchmarks/run_all.py 가 results.json 에서 옮겨 씀: 중앙값 (최소–최대)
    - `--data offline` · sklearn digits (offline fallback) · cpu · seeds 42, 43, 44
      denoise_psnr 22.4 (22.14–22.58) · noisy_psnr 9.324 (9.306–9.358) · pca_psnr 19.54 (19.45–19.58)
      filter_psnr 16.65 (16.64–16.72) · denoise_ssim 0.8067 (0.8054–0.8183) · auroc 1
      pca_auroc 1 (0.9993–1) · probe_accuracy 0.9556 (0.9528–0.9556)
      pca_probe_accuracy 0.9639 (0.9556–0.9639) · vae_test_neg_elbo 154 (153.4–154.4)
      wall 359 (242–392) s · peak 1.31 GB
    - `--data real --data-dir ../shared/data/mnist` · MNIST (real) · cpu · seeds 42
      denoise_psnr 18.44 · noisy_psnr 9.379 · pca_psnr 14.94 · filter_psnr 14.19 · denoise_ssim 0.7954
      auroc 0.9937 · pca_auroc 0.9919 · probe_accuracy 0.9289 · pca_probe_accuracy 0.9005
      vae_test_neg_elbo 109 · wall 301 s · peak 1.88 GB
    - 기계: AMD EPYC, 2 cores (1 torch threads), GPU: none, torch 2.14.1+cu130
    [/results]
    지금까지의 측정 (2코어 CPU 를 다른 학습 여럿과 나눠 쓰던 중, OMP_NUM_THREADS=1; 시드 42 · 43 · 44):
    - 실제 MNIST (`--data real --data-dir ../shared/data/mnist`), 시험 10,000장, σ 0.5, 이미지 평균 PSNR:
      잡음 입력 9.38 · 합성곱 AE 18.44 · 18.51 · 18.51 dB · PCA 32성분 14.94 (세 시드 같음) ·
      중앙값 필터(창 3, 검증으로 고름) 14.19 · 14.19 · 14.20; SSIM (시드 42) 0.413 · 0.795 · 0.462 · 0.551.
      같은 Z·학습량의 밀집 AE 17.94 · 17.94 · 17.97 dB.
      이상 탐지 (정상 0, 이상 9,020장): AUROC 밀집 AE 0.9937 · 0.9939 · 0.9928 vs PCA 0.9919 · 0.9924 ·
      0.9917; 문턱값(검증 정상 95%)에서 정밀도 0.993 · 0.996 · 0.995, 재현율 0.993 · 0.979 · 0.987.
      열 숫자 각각 (benchmarks/anomaly_all_digits.py): 평균 AUROC 밀집 AE 0.9679 · 0.9670 · 0.9675 vs
      PCA 0.9550 · 0.9550 · 0.9560; 30번 중 29번 AE 가 높음 (진 한 번: 시드 43 의 4, 0.9553 대 0.9558;
      가장 어려운 8: 0.903 · 0.901 · 0.892 대 0.867 · 0.865 · 0.867).
      선형 탐침 (학습 10,000장): AE 잠재 0.9289 · 0.9301 · 0.9309 vs 픽셀 PCA 32차원 0.9005 · 0.8977 · 0.8979.
      VAE 시험 음의 ELBO (nat/이미지, 시드 42) epoch 1–4: 119.9 → 112.8 → 110.4 → 109.0 (끝 108.8–109.0).
      CPU 134 · 139 · 129초 (1스레드; 부하로 벽시계 6–12분), 최대 메모리 1.9 GB → 조용한 2코어에서 약 2분.
      열 숫자 벤치마크는 시드마다 CPU 약 130초 (1스레드).
    - sklearn digits (`--data offline`, 시드 42), 시험 360장: PSNR 잡음 9.36 · 합성곱 AE 22.40 · PCA 19.58 ·
      중앙값 필터(창 5) 16.72, 밀집 AE 22.86 (8x8 을 늘린 흐린 이미지라 밀집도 잘 됨); AUROC 1.000 vs
      PCA 0.9993 (시험 정상 36장뿐); 탐침 0.9556 vs 0.9556; VAE 음의 ELBO 153.4 (60 epoch).
      CPU 61초 (1스레드; 벽시계 273초), 최대 메모리 1.4 GB.
"""

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import training  # 학습 뼈대: training.resume_or_start, .save_checkpoint, .History, …
from utils import visualization as viz  # 그림 저장·이미지 격자 (이 장의 주제가 아님)
from utils.data import vision  # MNIST·Fashion-MNIST·sklearn digits 읽기, 이미지 → MNIST 형식
from utils.runtime import RunConfig, UserError, pick_device, run, set_seed, write_run_record

# 난수 시드 = --seed + 오프셋: 검증 잡음 +1, 시험 잡음 +2, 그 밖의 부록 모델은 아래 표
# 모양 글자: B=배치, C=채널, H=높이, W=너비, Z=잠재 차원(latent_dim), D=픽셀 수(784), N=이미지 수, K=클래스 수
IMAGE_SIDE = 28  # MNIST 한 변
PIXELS = IMAGE_SIDE * IMAGE_SIDE  # D = 784: 밀집 오토인코더는 이미지를 한 줄로 펴서 받음
EVAL_BATCH = 1000  # 평가 때 한 번에 넣는 이미지 수 (기울기를 저장하지 않아 크게 잡아도 됨)
DENSE_HIDDEN = 256  # 밀집 AE 의 은닉층 너비 (784 → 256 → Z): 이상 탐지 모델과 비교용 밀집 AE
VAE_HIDDEN = 400  # VAE 은닉층 너비 (pytorch/examples vae 의 784-400-20 구조)
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # SSIM 가우시안 창 크기와 표준편차 (Wang 2004, torchmetrics 기본값)
SSIM_K1, SSIM_K2 = 0.01, 0.03  # SSIM 의 안정화 상수 c1 = (K1·L)², c2 = (K2·L)²
GAUSSIAN_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0)  # 가우시안 흐림의 후보 σ (픽셀): 검증 PSNR 로 고름
MEDIAN_SIZES = (3, 5)  # 중앙값 필터의 후보 창 크기 (cv2 는 float32 에서 3, 5 만 받음)
SCATTER_POINTS = 2000  # 잠재 공간 산점도에 찍는 시험 이미지 수 (많으면 점이 뭉개짐)
INTERPOLATION_STEPS = 10  # 보간 띠 한 줄의 이미지 수
SEED_OFFSETS = {"dense": 3, "anomaly": 4, "vae": 5, "probe": 6}
AE_VS_UNET = """| 항목 | 오토인코더 (이 장) | U-Net (09장) |
|---|---|---|
| 목적 | 입력을 작은 z 로 요약했다가 다시 그림 (x → z → x̂) | 입력의 픽셀마다 라벨 (이미지 → 마스크) |
| 정보 흐름 | 모든 정보가 병목 z 하나를 지나야 함 | 건너뛰기 연결(skip)로 고해상도 특징이 디코더에 바로 감 |
| 병목의 뜻 | 요약을 강제하는 핵심 (작을수록 강한 요약) | 넓은 문맥을 보는 곳일 뿐, 세부는 skip 이 전달 |
| 학습 신호 | 자기 지도(self-supervised): 목표 = 입력 (또는 깨끗한 입력) | 지도 학습: 사람이 그린 마스크 |
| 잘하는 일 | 압축, 잡음 제거, 이상 탐지, 생성(VAE) | 분할(segmentation), 경계가 정확해야 하는 출력 |
| 함정 | 병목이 크면 항등 함수를 배움 (이상도 잘 재구성) | skip 이 병목을 건너뜀 → 이상 탐지에 부적합 |
09장의 `--no-skip` U-Net 은 모양만 오토인코더이고 목표가 마스크입니다: 09장에서 skip 을 끄면 IoU 가
떨어지는 것은, 병목 하나로는 픽셀 단위 경계를 다 담지 못하기 때문입니다."""


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "11_autoencoder_anomaly"  # 출력 폴더 이름, 체크포인트 주인 표시
    # 학습 블록 뒤의 부록 모델(이상 탐지, VAE, 탐침)은 --resume 때마다 다시 학습하므로 그 설정은 바꿔도 됨:
    # 다 끝난 실행에 `--resume --normal-digit 8` 이면 주 모델은 그대로 두고 부록만 다시 돕니다.
    resume_free: ClassVar[frozenset[str]] = RunConfig.resume_free | {
        "normal_digit", "anomaly_latent_dim", "anomaly_steps", "threshold_quantile", "vae_latent_dim",
        "vae_images", "beta", "probe_samples"}
    dataset: Literal["mnist", "fashion"] = "mnist"  # 실제 데이터 종류 (없으면 sklearn digits)
    epochs: int = 60  # 주 모델의 최대 epoch: 실제 epoch 수 = ceil(train_images / 학습 장수), 이 값으로 자름
    train_images: int = 200_000  # 주 모델(합성곱 잡음 제거 AE)이 볼 이미지 수: MNIST 4 epoch, digits 60 epoch
    batch_size: int = 64  # 미니배치 크기 (작은 모델이라 64 로 걸음 수를 확보)
    lr: float = 1e-3  # Adam 학습률 (모든 오토인코더 공통, Adam 의 보통 시작값)
    latent_dim: int = 32  # 주 모델의 병목 크기 Z (PCA 기준선·선형 탐침도 같은 차원)
    width: int = 16  # 합성곱 AE 첫 층의 채널 수 (둘째 층은 두 배)
    noise_std: float = 0.5  # 잡음 제거: 가우시안 잡음 σ ([0, 1] 픽셀 단위, 더한 뒤 [0, 1] 로 자름)
    val_fraction: float = 0.1  # 학습 분할에서 떼어 best.pt·필터 세기·이상 문턱값을 고르는 비율
    normal_digit: int = 0  # 이상 탐지: '정상'으로 학습할 숫자(클래스) 0~9, 나머지는 모두 이상
    anomaly_latent_dim: int = 16  # 이상 탐지 AE 의 병목 (PCA 기준선도 같은 성분 수)
    anomaly_steps: int = 2500  # 이상 탐지 AE 의 학습 걸음 수 (배치 64 → 16만 장 ≈ MNIST 한 숫자 30 epoch)
    threshold_quantile: float = 0.95  # 문턱값 = 검증 정상 이미지 점수의 이 분위수 (정상의 5% 를 이상이라 함)
    vae_latent_dim: int = 16  # VAE 잠재 차원
    vae_images: int = 200_000  # VAE 가 볼 이미지 수 (epoch 수는 주 모델처럼 정하고 --epochs 로 자름)
    beta: float = 1.0  # β-VAE: KL 항의 가중치 (1 = 보통 VAE, 크면 더 매끈한 잠재 공간·흐린 재구성)
    probe_samples: int = 10_000  # 선형 탐침을 학습할 이미지 수 (로지스틱 회귀 시간 예산)
    predict: str = ""  # 이미지 파일: best.pt·anomaly.pt 로 재구성·이상 점수·판정을 쓰고 끝냄

    def __post_init__(self):
        if not 0 <= self.normal_digit <= 9:
            raise ValueError(f"--normal-digit 은 0~9 중 하나여야 합니다 (받은 값: {self.normal_digit}).")
        if not self.noise_std >= 0:  # NaN 도 여기서 걸림 (NaN 은 모든 비교가 거짓)
            raise ValueError(f"--noise-std 는 0 이상이어야 합니다 (받은 값: {self.noise_std}).")
        if not self.beta >= 0:
            raise ValueError(f"--beta 는 0 이상이어야 합니다 (받은 값: {self.beta}).")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"--val-fraction 은 0과 0.5 사이여야 합니다 (받은 값: {self.val_fraction}).")
        if not 0 < self.threshold_quantile < 1:
            raise ValueError("--threshold-quantile 은 0과 1 사이여야 합니다 "
                             f"(받은 값: {self.threshold_quantile}).")
        for name in ("train_images", "latent_dim", "width", "anomaly_latent_dim", "anomaly_steps",
                     "vae_latent_dim", "vae_images", "probe_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} 는 1 이상이어야 합니다 "
                                 f"(받은 값: {getattr(self, name)}).")
        if self.latent_dim < 2:
            raise ValueError("--latent-dim 은 2 이상이어야 합니다 (잠재 공간을 2-D 로 그림).")


# %% [markdown]
# ## 1. 데이터
# MNIST(기본)·Fashion-MNIST, 없으면 sklearn 손글씨 숫자. vision 모듈은 분류 장(01·02)을 위해 MNIST 평균·
# 표준편차로 정규화해 주므로, 여기서는 되돌려 [0, 1] 픽셀로 씁니다: 디코더 끝의 Sigmoid 출력 범위,
# PSNR 의 L = 1, 잡음 σ 의 단위가 모두 [0, 1] 입니다. 데이터가 작아 DataLoader 없이 텐서를 직접 잘라
# 씁니다 (2코어에서 작업자 프로세스는 오히려 느림). 섞는 순서는 체크포인트에 저장되는 torch.Generator 로.


@dataclass
class Splits:
    """x: (N, 1, 28, 28) [0, 1] 픽셀 float32 (CPU), y: (N,) int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    name: str


def to_unit_pixels(normalized: torch.Tensor) -> torch.Tensor:
    """vision 의 정규화(x − 평균)/표준편차 를 되돌려 [0, 1] 픽셀로."""
    return (normalized * vision.MNIST_STD + vision.MNIST_MEAN).clamp(0, 1)


def split_validation(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int) -> tuple:
    """학습 분할에서 검증 분할을 떼어 냄 (전용 생성기: 전역 난수와 무관하게 늘 같은 분할)."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(len(y) * fraction))
    return x[order[n_val:]], y[order[n_val:]], x[order[:n_val]], y[order[:n_val]]


def load_data(config: Config) -> Splits:
    images = vision.load_mnist_like(config.dataset, config.data, config.data_dir, config.smoke, config.seed)
    x_train, y_train, x_val, y_val = split_validation(to_unit_pixels(images.x_train), images.y_train,
                                                      config.val_fraction, config.seed)
    data = Splits(x_train, y_train, x_val, y_val, to_unit_pixels(images.x_test), images.y_test,
                  images.classes, images.name)
    print(f"{data.name}: 학습 {len(x_train)}장, 검증 {len(x_val)}장 (학습 분할에서 떼어 냄), "
          f"시험 {len(data.x_test)}장, 픽셀 [0, 1]")
    return data


def add_noise(clean: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """clip(x + σε, 0, 1), ε ~ N(0, I). 학습 중에는 전역 난수(체크포인트에 저장됨)로 배치마다 새 잡음,
    검증·시험에는 시드를 고정한 generator 로 한 번 만든 잡음 (모든 방법이 같은 잡음 이미지를 받음)."""
    noise = torch.randn(clean.shape, generator=generator, device=clean.device if generator is None else "cpu")
    return (clean + std * noise.to(clean.device)).clamp(0, 1)


# %% [markdown]
# ## 2. 모델: 밀집 오토인코더, 합성곱 오토인코더, VAE
# 왜 병목이 '요약'을 강제하나: 784 개 숫자를 Z(=32) 개로 줄였다가 되살려야 하므로, 이미지마다 다른
# 잡음·우연한 점은 담을 자리가 없고 많은 이미지에 되풀이되는 구조(획의 방향·두께·숫자 모양)만 남습니다.
# 그래서 잡음 낀 입력을 넣어도 디코더는 '숫자다운' 이미지만 그릴 수 있습니다 (잡음 제거), 그리고
# 한 숫자만 보고 배운 요약으로는 다른 숫자를 잘 그리지 못합니다 (이상 탐지).


class DenseAutoencoder(nn.Module):
    """(B, 1, 28, 28) → Flatten (B, D) → Linear → ReLU → Linear (B, Z) → Linear → ReLU → Linear → Sigmoid."""

    def __init__(self, latent_dim: int, width: int = DENSE_HIDDEN):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(),  # (B, D)
            nn.Linear(PIXELS, width), nn.ReLU(),  # (B, width)
            nn.Linear(width, latent_dim),  # (B, Z): 활성화 없음 — 잠재 값은 음수도 될 수 있음
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, width), nn.ReLU(),  # (B, width)
            nn.Linear(width, PIXELS), nn.Sigmoid(),  # (B, D), 픽셀 범위 [0, 1]
            nn.Unflatten(1, (1, IMAGE_SIDE, IMAGE_SIDE)),  # (B, 1, 28, 28)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class ConvAutoencoder(nn.Module):
    """대칭 합성곱 오토인코더 (width=16, Z=32 일 때):

        인코더  (B, 1, 28, 28) → Conv3x3 → ReLU → MaxPool2   (B, 16, 14, 14)
                              → Conv3x3 → ReLU → MaxPool2   (B, 32, 7, 7)
                              → Flatten → Linear             (B, 32)        # 병목 z: 1,568 → 32
        디코더  (B, 32) → Linear → ReLU → Unflatten          (B, 32, 7, 7)
                       → ConvTranspose 2x2, stride 2 → ReLU (B, 16, 14, 14)  # 풀링의 거울: 두 배로
                       → ConvTranspose 2x2, stride 2 → Sigmoid (B, 1, 28, 28)
    """

    def __init__(self, latent_dim: int, width: int = 16):
        super().__init__()
        pooled = IMAGE_SIDE // 4  # 7: 풀링 두 번 28 → 14 → 7
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * pooled * pooled, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 2 * width * pooled * pooled), nn.ReLU(),
            nn.Unflatten(1, (2 * width, pooled, pooled)),
            nn.ConvTranspose2d(2 * width, width, 2, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 2, stride=2), nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class VAE(nn.Module):
    """변분 오토인코더: 인코더가 z 하나 대신 분포 q(z|x) = N(μ, diag σ²) 의 μ, log σ² 를 냅니다.

        (B, 1, 28, 28) → Flatten → Linear → ReLU (B, H) → μ (B, Z), log σ² (B, Z)
        z = μ + σ ⊙ ε (B, Z) → Linear → ReLU → Linear (B, D) → 로짓 (B, 1, 28, 28)
    디코더는 픽셀마다 베르누이(Bernoulli) 확률의 로짓을 냅니다: log p(x|z) = −BCE(로짓, x).
    """

    def __init__(self, latent_dim: int, width: int = VAE_HIDDEN):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, width), nn.ReLU())
        self.to_mu = nn.Linear(width, latent_dim)
        self.to_log_var = nn.Linear(width, latent_dim)  # 분산 대신 log σ²: 제약 없는 실수라 학습이 안정
        self.decoder = nn.Sequential(nn.Linear(latent_dim, width), nn.ReLU(), nn.Linear(width, PIXELS),
                                     nn.Unflatten(1, (1, IMAGE_SIDE, IMAGE_SIDE)))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(x)
        return self.to_mu(hidden), self.to_log_var(hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, log_var = self.encode(x)
        return self.decoder(reparameterize(mu, log_var)), mu, log_var


def reparameterize(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """z = μ + σ ⊙ ε, ε ~ N(0, I). 무작위성을 ε 로 빼내서 z 가 μ, σ 의 미분 가능한 함수가 됩니다
    (z ~ N(μ, σ²) 를 직접 뽑으면 표본 추출을 거쳐 μ, σ 로 기울기가 흐르지 못함)."""
    return mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)


def build_model(kind: str, latent_dim: int, width: int) -> nn.Module:
    """kind: "dense" | "conv" | "vae". width: 밀집·VAE 는 은닉층 너비, 합성곱은 첫 층 채널 수."""
    models = {"dense": DenseAutoencoder, "conv": ConvAutoencoder, "vae": VAE}
    if kind not in models:
        raise ValueError(f"모르는 모델 종류 {kind!r}: {sorted(models)}")
    return models[kind](latent_dim, width)


def layer_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple]]:
    """인코더와 디코더의 층을 하나씩 통과시키며 (층 이름, 출력 모양)."""
    shapes = []
    with torch.no_grad():
        for part in (model.encoder, model.decoder):
            for layer in part:
                x = layer(x)
                shapes.append((layer.__class__.__name__, tuple(x.shape)))
    return shapes


def describe_models(config: Config) -> None:
    """밀집 AE 와 합성곱 AE 의 층별 출력 모양, 파라미터 수: 병목이 어디서 생기는지 눈으로."""
    for kind, width in (("dense", DENSE_HIDDEN), ("conv", config.width)):
        model = build_model(kind, config.latent_dim, width)
        shapes = " → ".join(f"{name} {list(shape[1:])}" for name, shape in
                            layer_shapes(model, torch.zeros(2, 1, IMAGE_SIDE, IMAGE_SIDE)))
        print(f"[{kind}] 파라미터 {sum(p.numel() for p in model.parameters()):,}: [1, 28, 28] → {shapes}")


# %% [markdown]
# ## 3. 학습


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x_clean: torch.Tensor,
                    noise_std: float, batch_size: int, generator: torch.Generator, device: torch.device,
                    desc: str, max_batches: int | None = None) -> float:
    """잡음 제거 한 epoch: 입력 clip(x + σε) → 출력이 깨끗한 x 에 가깝게 (MSE). 평균 손실을 돌려줌.

    σ = 0 이면 보통 오토인코더(입력 = 목표)입니다. 잡음은 배치마다 새로 뽑습니다: 같은 잡음을 외우지 않게.
    """
    model.train()
    order = torch.randperm(len(x_clean), generator=generator)
    count = max(1, len(x_clean) // batch_size)  # 마지막 작은 배치는 버림 (걸음마다 같은 크기)
    if max_batches is not None:
        count = min(count, max_batches)
    total = 0.0
    for step in training.progress(range(count), desc=desc):
        clean = x_clean[order[step * batch_size:(step + 1) * batch_size]].to(device)  # (B, 1, 28, 28)
        noisy = add_noise(clean, noise_std)
        loss = F.mse_loss(model(noisy), clean)  # 픽셀 평균 제곱 오차: PSNR 을 바로 올리는 손실
        if not torch.isfinite(loss):  # 망가진 학습을 끝까지 돌리지 않음: 어디서인지 한 줄로
            raise UserError(f"손실이 {loss.item()} 이 되었습니다 ({desc}, 배치 {step}). --lr 을 낮춰 보세요.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / count


def fit_autoencoder(model: nn.Module, x_clean: torch.Tensor, noise_std: float, epochs: int, config: Config,
                    device: torch.device, name: str, max_batches: int | None = None) -> list[float]:
    """부록 모델(밀집 AE, 이상 탐지 AE)을 같은 train_one_epoch 로 학습. epoch 별 평균 손실 목록.

    부르는 쪽이 torch.random.fork_rng 안에서 시드를 고정하므로 섞는 순서·잡음이 늘 같습니다.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    shuffle = torch.Generator().manual_seed(config.seed)
    batch_size = min(config.batch_size, len(x_clean))
    return [train_one_epoch(model, optimizer, x_clean, noise_std, batch_size, shuffle, device,
                            f"{name} {epoch}", max_batches) for epoch in range(1, epochs + 1)]


# %% [markdown]
# ## 4. 평가: PSNR, SSIM (직접 구현), 기준선


def psnr(output: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """이미지마다의 PSNR (N,) dB = 10·log10(L² / MSE). MSE 는 그 이미지의 픽셀 평균."""
    mse = (output - target).pow(2).flatten(1).mean(1).clamp_min(1e-12)  # 완전히 같으면 120 dB 로 자름
    return 10 * torch.log10(data_range ** 2 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """(1, 1, size, size) 합이 1 인 2-D 가우시안 창 = 1-D 가우시안의 바깥곱."""
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim(output: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """이미지마다의 SSIM (N,). 입력 (N, 1, H, W).

    국소 평균·분산·공분산을 가우시안 창으로 구해 SSIM 지도를 만들고 그 평균을 씁니다. 창이 이미지 안에
    다 들어가는 곳만 씁니다(패딩 없음, Wang 의 MATLAB 원본·scikit-image 처럼). torchmetrics 는 반사
    패딩(reflect)한 전체 지도를 평균하므로 28x28 에서는 숫자가 다릅니다: 시험은 torchmetrics 의 전체
    지도에서 같은 안쪽 영역을 잘라 비교합니다. 분산은 창 가중 평균 E[x²] − μ² (음수 반올림 오차는 0 으로).
    """
    window = gaussian_window().to(output)
    mu_x, mu_y = F.conv2d(output, window), F.conv2d(target, window)  # (N, 1, H−10, W−10)
    var_x = (F.conv2d(output * output, window) - mu_x ** 2).clamp_min(0)
    var_y = (F.conv2d(target * target, window) - mu_y ** 2).clamp_min(0)
    cov_xy = F.conv2d(output * target, window) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)  # 밝기 비교 × (대비·구조) 비교
    denominator = (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)
    ssim_map = numerator / denominator  # (N, 1, H−10, W−10)
    return ssim_map.flatten(1).mean(1)


@torch.no_grad()
def reconstruct(model: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """모델 출력 (N, 1, 28, 28), CPU. eval(): 이 장의 모델엔 Dropout·BatchNorm 이 없지만 습관으로."""
    model.eval()
    return torch.cat([model(x[i:i + EVAL_BATCH].to(device)).cpu() for i in range(0, len(x), EVAL_BATCH)])


@torch.no_grad()
def evaluate(model: nn.Module, noisy: torch.Tensor, clean: torch.Tensor, device: torch.device) -> dict:
    """잡음 입력 → 출력을 깨끗한 원본과 비교: {"loss": 픽셀 MSE, "psnr", "ssim": 이미지마다 잰 평균}."""
    output = reconstruct(model, noisy, device)
    return {"loss": F.mse_loss(output, clean).item(), "psnr": psnr(output, clean).mean().item(),
            "ssim": ssim(output, clean).mean().item()}


def fit_pca(x: torch.Tensor, components: int, seed: int):
    """픽셀 PCA (sklearn): 선형 오토인코더의 최적해. 인코더 = 주성분으로 사영, 디코더 = 되돌리기."""
    from sklearn.decomposition import PCA

    components = min(components, len(x))  # --smoke 의 작은 데이터: 성분 수 ≤ 표본 수
    return PCA(n_components=components, random_state=seed).fit(x.flatten(1).numpy())


def pca_reconstruct(pca, x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1).numpy()
    restored = pca.inverse_transform(pca.transform(flat))  # (N, D): 주성분 공간으로 갔다 돌아옴
    return torch.from_numpy(restored).float().view_as(x).clamp(0, 1)


def apply_filter(noisy: torch.Tensor, kind: str, strength: float) -> torch.Tensor:
    """고전 필터 (OpenCV): 가우시안 흐림 (σ = strength) 또는 중앙값 필터 (창 크기 = strength)."""
    import cv2

    images = noisy[:, 0].numpy().astype(np.float32)  # (N, 28, 28)
    if kind == "gaussian":
        out = [cv2.GaussianBlur(image, (0, 0), sigmaX=strength) for image in images]  # 창 크기는 σ 로 자동
    else:
        out = [cv2.medianBlur(image, int(strength)) for image in images]
    return torch.from_numpy(np.stack(out)).unsqueeze(1)


def choose_filter(noisy_val: torch.Tensor, clean_val: torch.Tensor) -> tuple[str, float, float]:
    """가우시안 σ 와 중앙값 창 크기 후보 중 검증 PSNR 이 가장 높은 것: (종류, 세기, 검증 PSNR).

    시험 세트로 고르면 필터에 유리하게 부풀려지므로, 오토인코더의 best.pt 처럼 검증으로 고릅니다.
    """
    candidates = [("gaussian", s) for s in GAUSSIAN_SIGMAS] + [("median", k) for k in MEDIAN_SIZES]
    scores = [psnr(apply_filter(noisy_val, kind, s), clean_val).mean().item() for kind, s in candidates]
    best = int(np.argmax(scores))
    return *candidates[best], scores[best]


def denoising_report(model: nn.Module, data: Splits, noisy_val: torch.Tensor, noisy_test: torch.Tensor,
                     config: Config, device: torch.device, out_dir: Path) -> dict:
    """시험 세트의 같은 잡음 이미지에서: 잡음 입력, 합성곱 AE, 같은 차원 PCA, 검증으로 고른 고전 필터."""
    pca = fit_pca(data.x_train, config.latent_dim, config.seed)
    kind, strength, _ = choose_filter(noisy_val, data.x_val)
    outputs = {"noisy": noisy_test, "denoise": reconstruct(model, noisy_test, device),
               "pca": pca_reconstruct(pca, noisy_test), "filter": apply_filter(noisy_test, kind, strength)}
    metrics = {}
    for name, output in outputs.items():
        metrics[f"{name}_psnr"] = psnr(output, data.x_test).mean().item()
        metrics[f"{name}_ssim"] = ssim(output, data.x_test).mean().item()
    labels = {"noisy": f"noisy input (σ={config.noise_std:g})", "denoise": "conv autoencoder",
              "pca": f"PCA, {pca.n_components_} components",
              "filter": f"{kind} filter ({strength:g}, chosen on val)"}
    print(f"잡음 제거, 시험 {len(data.x_test)}장 (이미지마다 잰 뒤 평균):")
    for name, label in labels.items():
        print(f"  {label:<36} PSNR {metrics[f'{name}_psnr']:6.2f} dB   SSIM {metrics[f'{name}_ssim']:.4f}")
    shown = 8
    grid = torch.cat([data.x_test[:shown]] + [outputs[name][:shown] for name in labels])  # (5·8, 1, 28, 28)
    titles = [f"clean {k}" for k in range(shown)] + [
        f"{name} {value:.1f}dB" for name in labels
        for value in psnr(outputs[name][:shown], data.x_test[:shown])]
    viz.plot_image_grid(grid, titles, out_dir / "denoising.png", config.show, columns=shown,
                        title="Rows: clean, noisy, conv AE, PCA, filter (title: PSNR of that image)")
    return {**metrics, "filter_is_gaussian": int(kind == "gaussian"), "filter_strength": float(strength)}


# %% [markdown]
# ## 5. 이상 탐지: 한 숫자만으로 학습, 재구성 오차가 점수
# 정상(normal) = --normal-digit 하나, 이상(anomaly) = 나머지 아홉 숫자. 학습 분할의 정상 이미지만으로
# 학습하고(그중 일부는 문턱값용 검증으로 떼어 둠), 시험 분할 전체를 점수 매깁니다 (Deep SVDD 의 방식).
# 점수 = 이미지의 픽셀 평균 제곱 재구성 오차. 정확도 대신 AUROC 를 씁니다: 문턱값 없이 '이상이 정상보다
# 높은 점수를 받을 확률'이고, 이상이 90% 인 시험 세트에서 정확도는 '모두 이상'만으로 0.9 가 되기 때문.
# 문턱값이 꼭 필요한 실제 판정(--predict)은 검증 정상 이미지 점수의 95번째 백분위를 씁니다.
# 왜 밀집 AE 인가: 같은 Z=16 의 합성곱 AE(채널 8·16, 10 epoch)는 획 같은 국소 특징을 다른 숫자와 공유해
# 다른 숫자도 잘 재구성해 버렸습니다: MNIST 열 숫자 평균 AUROC 0.940 < 같은 성분 수 PCA 0.954 (이 장을 쓸
# 때 잰 값). 이미지 전체를 한 번에 보는 밀집 AE 는 '그 숫자의 모양'만 배워 PCA 를 넘습니다 (docstring).


@torch.no_grad()
def anomaly_scores(model: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(N,) 이미지마다 픽셀 평균 제곱 재구성 오차 ‖x − f(x)‖² / D."""
    return (reconstruct(model, x, device) - x).pow(2).flatten(1).mean(1)


def pca_scores(pca, x: torch.Tensor) -> torch.Tensor:
    return (pca_reconstruct(pca, x) - x).pow(2).flatten(1).mean(1)


def threshold_metrics(scores: torch.Tensor, is_anomaly: torch.Tensor, threshold: float) -> dict:
    """점수 > 문턱값 을 '이상'으로 판정했을 때의 정밀도(precision)·재현율(recall). 양성 = 이상."""
    flagged = scores > threshold
    true_positive = (flagged & is_anomaly).sum().item()
    return {"precision": true_positive / max(1, flagged.sum().item()),
            "recall": true_positive / max(1, is_anomaly.sum().item())}


def one_class_anomaly(data: Splits, config: Config, device: torch.device, max_batches: int | None = None):
    """정상 숫자 하나로 밀집 AE 와 PCA 를 학습하고 시험 세트 전체를 점수 매김.

    반환: (지표 dict, 모델, model_args, 점수들 dict). benchmarks/anomaly_all_digits.py 도 이 함수를 씁니다.
    """
    from sklearn.metrics import roc_auc_score

    digit = config.normal_digit
    normal = data.x_train[data.y_train == digit]
    if len(normal) < 2:
        raise UserError(f"학습 분할에 정상 클래스 {digit} 의 이미지가 {len(normal)}장뿐입니다.")
    # 학습 분할의 정상 이미지에서 문턱값용 검증을 떼어 냄 (시험 세트는 판정 기준을 정하는 데 쓰지 않음)
    x_fit, _, x_val_normal, _ = split_validation(normal, torch.zeros(len(normal)), config.val_fraction,
                                                 config.seed + SEED_OFFSETS["anomaly"])
    model_args = dict(kind="dense", latent_dim=config.anomaly_latent_dim, width=DENSE_HIDDEN)
    with torch.random.fork_rng(devices=[]):  # 자기 시드: 앞에서 무엇을 돌렸든, 이어하기를 했든 같은 숫자
        torch.manual_seed(config.seed + SEED_OFFSETS["anomaly"])
        model = build_model(**model_args).to(device)
        steps_per_epoch = max(1, len(x_fit) // min(config.batch_size, len(x_fit)))
        epochs = 1 if max_batches else max(1, math.ceil(config.anomaly_steps / steps_per_epoch))
        fit_autoencoder(model, x_fit, 0.0, epochs, config, device, "anomaly AE", max_batches)
    is_anomaly = data.y_test != digit  # (N,) 양성 = 이상
    pca = fit_pca(x_fit, config.anomaly_latent_dim, config.seed)
    results, scores = {}, {}
    score_fns = {"ae": lambda x: anomaly_scores(model, x, device), "pca": lambda x: pca_scores(pca, x)}
    for name, score_fn in score_fns.items():
        val_scores, test_scores = score_fn(x_val_normal), score_fn(data.x_test)
        threshold = torch.quantile(val_scores, config.threshold_quantile).item()
        at_threshold = threshold_metrics(test_scores, is_anomaly, threshold)
        results[name] = {"auroc": float(roc_auc_score(is_anomaly.numpy(), test_scores.numpy())),
                         "threshold": threshold, **at_threshold}
        scores[name] = test_scores
    metrics = {"auroc": results["ae"]["auroc"], "pca_auroc": results["pca"]["auroc"],
               "anomaly_threshold": results["ae"]["threshold"],
               "anomaly_precision": results["ae"]["precision"],
               "anomaly_recall": results["ae"]["recall"], "pca_precision": results["pca"]["precision"],
               "pca_recall": results["pca"]["recall"]}
    return metrics, model, model_args, {**scores, "is_anomaly": is_anomaly, "epochs": epochs}


def anomaly_study(data: Splits, config: Config, device: torch.device, out_dir: Path,
                  max_batches: int | None) -> dict:
    """이상 탐지를 돌리고, --predict 가 쓸 모델·문턱값을 anomaly.pt (같은 체크포인트 형식)에 저장."""
    metrics, model, model_args, scores = one_class_anomaly(data, config, device, max_batches)
    extra = {"data": data.name, "normal_digit": config.normal_digit,
             "threshold": metrics["anomaly_threshold"],
             "threshold_quantile": config.threshold_quantile, "classes": data.classes}
    training.save_checkpoint(out_dir / "anomaly.pt", training.make_checkpoint(
        config, model_args, {"model": model}, scores["epochs"], metrics["auroc"], extra=extra))
    digit = data.classes[config.normal_digit]
    count, anomalies = len(scores["is_anomaly"]), int(scores["is_anomaly"].sum())
    print(f"이상 탐지 (정상 = {digit}, 시험 {count}장 중 이상 {anomalies}장): "
          f"AUROC 밀집 AE {metrics['auroc']:.4f} vs PCA {metrics['pca_auroc']:.4f}; 검증 정상의 "
          f"{config.threshold_quantile:.0%} 분위 문턱값에서 정밀도 {metrics['anomaly_precision']:.3f}, "
          f"재현율 {metrics['anomaly_recall']:.3f} "
          f"(PCA {metrics['pca_precision']:.3f}, {metrics['pca_recall']:.3f})")
    plot_anomaly(scores, metrics, digit, out_dir / "anomaly_roc.png", config.show)
    return metrics


def plot_anomaly(scores: dict, metrics: dict, digit: str, path: Path, show: bool) -> Path:
    """왼쪽: ROC 곡선 (AE, PCA). 오른쪽: 정상/이상 AE 점수 분포와 문턱값."""
    from sklearn.metrics import roc_curve

    fig, (ax_roc, ax_hist) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = scores["is_anomaly"].numpy()
    for name, label in (("ae", "dense AE"), ("pca", "PCA")):
        fpr, tpr, _ = roc_curve(labels, scores[name].numpy())
        auroc = metrics["auroc" if name == "ae" else "pca_auroc"]
        ax_roc.plot(fpr, tpr, label=f"{label} (AUROC {auroc:.3f})")
    ax_roc.plot([0, 1], [0, 1], color="gray", linestyle=":", label="chance")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate",
               title=f"ROC, normal class = {digit}")
    ax_roc.legend(loc="lower right")
    log_scores = np.log10(scores["ae"].clamp_min(1e-12).numpy())
    bins = np.linspace(log_scores.min(), log_scores.max(), 50)
    ax_hist.hist(log_scores[~labels], bins=bins, alpha=0.6, density=True, label=f"normal ({digit})")
    ax_hist.hist(log_scores[labels], bins=bins, alpha=0.6, density=True, label="anomaly (other classes)")
    ax_hist.axvline(math.log10(max(metrics["anomaly_threshold"], 1e-12)), color="black", linestyle="--",
                    label="threshold")
    ax_hist.set(xlabel="log10 reconstruction MSE", ylabel="density", title="Dense AE scores on test images")
    ax_hist.legend()
    return viz.save_figure(fig, path, show)


# %% [markdown]
# ## 6. 추론: --predict (재구성, 이상 점수, 판정)


def predict(config: Config, device: torch.device, out_dir: Path) -> dict:
    """best.pt (잡음 제거 AE) 와 anomaly.pt (이상 탐지 AE + 문턱값) 로 이미지 한 장을 판정.

    체크포인트를 먼저 읽어, 없거나 다른 장의 것이면 입력을 보기 전에 한 줄로 알립니다. 모델 플래그는
    필요 없습니다: model_args 와 문턱값이 체크포인트에 들어 있습니다.
    """
    denoiser, _ = training.load_trained_model(out_dir / "best.pt", build_model, config, device)
    detector, checkpoint = training.load_trained_model(out_dir / "anomaly.pt", build_model, config, device)
    extra = checkpoint["extra"]
    # 아무 크기의 흑백·컬러 이미지 → MNIST 처럼 (20x20 상자, 28x28 가운데). Fashion 은 질량 중심 맞춤 없음
    image = to_unit_pixels(vision.read_image_as_mnist(config.predict,
                                                      center_of_mass=not extra["data"].startswith("Fashion")))
    reconstruction = reconstruct(detector, image, device)  # (1, 1, 28, 28)
    score = (reconstruction - image).pow(2).mean().item()
    anomalous = score > extra["threshold"]
    normal = extra["classes"][extra["normal_digit"]]
    verdict = f"이상 (정상 = {normal} 이 아님)" if anomalous else f"정상 ({normal} 처럼 보임)"
    panels = torch.cat([image, reconstruction, (reconstruction - image).abs(),
                        reconstruct(denoiser, image, device)])  # (4, 1, 28, 28)
    viz.plot_image_grid(panels, ["input (as MNIST)", "anomaly AE output", "|error|", "denoising AE output"],
                        out_dir / "prediction.png", config.show, columns=4,
                        title=f"score {score:.4f} vs threshold {extra['threshold']:.4f}: "
                              f"{'ANOMALY' if anomalous else 'normal'}")
    result = {"input": str(config.predict), "anomaly_score": score, "threshold": extra["threshold"],
              "anomalous": bool(anomalous), "normal_digit": int(extra["normal_digit"]),
              "threshold_quantile": extra["threshold_quantile"], "data": extra["data"]}
    text = json.dumps(result, indent=2, ensure_ascii=False)
    (out_dir / "prediction.json").write_text(text, encoding="utf-8")
    print(f"{config.predict}: 이상 점수 {score:.5f}, 문턱값 {extra['threshold']:.5f} → {verdict} "
          f"→ {out_dir / 'prediction.png'}, {out_dir / 'prediction.json'}")
    return result


# %% [markdown]
# ## 부록(실험): 밀집 대 합성곱, 잠재 공간, VAE, AE 대 U-Net


def dense_study(data: Splits, noisy_test: torch.Tensor, config: Config, epochs: int, device: torch.device,
                max_batches: int | None) -> dict:
    """같은 병목 Z, 같은 학습량의 밀집 AE 로 같은 잡음 제거: 합성곱이 무엇을 더해 주는지."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + SEED_OFFSETS["dense"])
        model = build_model("dense", config.latent_dim, DENSE_HIDDEN).to(device)
        fit_autoencoder(model, data.x_train, config.noise_std, epochs, config, device, "dense AE",
                        max_batches)
    value = psnr(reconstruct(model, noisy_test, device), data.x_test).mean().item()
    print(f"[밀집 AE] 같은 Z={config.latent_dim}, 같은 학습량: 시험 잡음 제거 PSNR {value:.2f} dB")
    return {"dense_denoise_psnr": value}


@torch.no_grad()
def encode_all(model: nn.Module, x: torch.Tensor, device: torch.device) -> np.ndarray:
    model.eval()
    return torch.cat([model.encode(x[i:i + EVAL_BATCH].to(device)).cpu()
                      for i in range(0, len(x), EVAL_BATCH)]).numpy()


def latent_study(model: nn.Module, data: Splits, config: Config, device: torch.device, out_dir: Path) -> dict:
    """선형 탐침(linear probe): 잠재 z (깨끗한 입력) 대 같은 차원 픽셀 PCA 의 로지스틱 회귀, 그리고 2-D 지도.

    탐침이 잘 맞으면 오토인코더가 라벨 없이 배운 요약에 클래스 정보가 '직선으로 갈라지게' 들어 있다는 뜻.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    count = min(config.probe_samples, len(data.x_train))
    x_fit, y_fit = data.x_train[:count], data.y_train[:count].numpy()
    pca = fit_pca(x_fit, config.latent_dim, config.seed)
    features = {"autoencoder": (encode_all(model, x_fit, device), encode_all(model, data.x_test, device)),
                "PCA": (pca.transform(x_fit.flatten(1).numpy()),
                        pca.transform(data.x_test.flatten(1).numpy()))}
    accuracy = {}
    for name, (train_features, test_features) in features.items():
        # 표준화 먼저: 잠재 축마다 크기가 달라 그대로면 정칙화(C)가 축마다 다르게 걸림
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        probe.fit(train_features, y_fit)
        accuracy[name] = probe.score(test_features, data.y_test.numpy())
    print(f"선형 탐침 (학습 {count}장 → 시험 {len(data.x_test)}장), 같은 {config.latent_dim}차원: "
          f"AE 잠재 {accuracy['autoencoder']:.4f} vs 픽셀 PCA {accuracy['PCA']:.4f}")
    shown = slice(0, SCATTER_POINTS)
    maps = {f"conv AE latent (first 2 PCs of z, Z={config.latent_dim})":
            PCA(2, random_state=config.seed).fit_transform(features["autoencoder"][1][shown]),
            "pixel PCA (2 components)": features["PCA"][1][shown, :2]}
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    labels = data.y_test[shown].numpy()
    for ax, (title, points) in zip(axes, maps.items()):
        for k in range(len(data.classes)):
            ax.scatter(points[labels == k, 0], points[labels == k, 1], s=4, color=plt.cm.tab10(k),
                       label=data.classes[k])
        ax.set(xlabel="component 1", ylabel="component 2", title=title)
    axes[1].legend(markerscale=3, fontsize=7, loc="best")
    viz.save_figure(fig, out_dir / "latent_space.png", config.show)
    return {"probe_accuracy": accuracy["autoencoder"], "pca_probe_accuracy": accuracy["PCA"]}


def gaussian_kl(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) 를 이미지마다 (B,): −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²).

    유도: KL = E_q[log q − log p] 에 두 가우시안의 로그 밀도를 넣으면 차원마다
    ½(σ² + μ² − 1 − log σ²). tests/test_ch11.py 가 torch.distributions.kl_divergence 와 맞춰 봅니다.
    """
    return -0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum(dim=1)


def vae_terms(model: VAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(재구성 항, KL 항) 을 이미지마다 (B,) nat 으로. 음의 ELBO = 재구성 + KL.

    재구성 = −log p(x|z) = 픽셀 BCE 의 합 (연속값 x ∈ [0, 1] 에 베르누이 우도: pytorch/examples 와 같음).
    """
    logits, mu, log_var = model(x)
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    return reconstruction, gaussian_kl(mu, log_var)


def train_vae_epoch(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor, config: Config,
                    generator: torch.Generator, device: torch.device, epoch: int,
                    max_batches: int | None) -> float:
    """한 epoch: 손실 = 재구성 + β·KL 의 배치 평균 (이미지당). 평균 손실을 돌려줌."""
    model.train()
    order = torch.randperm(len(x), generator=generator)
    batch_size = min(config.batch_size, len(x))
    count = len(x) // batch_size if max_batches is None else min(len(x) // batch_size, max_batches)
    total = 0.0
    for step in training.progress(range(count), desc=f"VAE {epoch}"):
        batch = x[order[step * batch_size:(step + 1) * batch_size]].to(device)
        reconstruction, kl = vae_terms(model, batch)
        loss = (reconstruction + config.beta * kl).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / max(1, count)


@torch.no_grad()
def vae_neg_elbo(model: VAE, x: torch.Tensor, device: torch.device) -> dict:
    """시험 세트의 음의 ELBO (β = 1 의 참 ELBO, 이미지당 nat), 재구성·KL 로 나눠서. z 는 한 번 뽑음."""
    model.eval()
    terms = [vae_terms(model, x[i:i + EVAL_BATCH].to(device)) for i in range(0, len(x), EVAL_BATCH)]
    reconstruction = torch.cat([r for r, _ in terms]).mean().item()
    kl = torch.cat([k for _, k in terms]).mean().item()
    return {"neg_elbo": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}


def vae_study(data: Splits, config: Config, epochs: int, device: torch.device, out_dir: Path,
              max_batches: int | None) -> dict:
    """VAE 를 학습하며 epoch 마다 시험 음의 ELBO, 그다음 사전분포 표본과 보간 띠."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + SEED_OFFSETS["vae"])
        model = build_model("vae", config.vae_latent_dim, VAE_HIDDEN).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        shuffle = torch.Generator().manual_seed(config.seed + SEED_OFFSETS["vae"])
        curve = []
        for epoch in range(1, epochs + 1):
            train_vae_epoch(model, optimizer, data.x_train, config, shuffle, device, epoch, max_batches)
            curve.append(vae_neg_elbo(model, data.x_test, device))
            print(f"[VAE] epoch {epoch}: 시험 음의 ELBO {curve[-1]['neg_elbo']:.2f} nat/이미지 "
                  f"(재구성 {curve[-1]['reconstruction']:.2f} + KL {curve[-1]['kl']:.2f})")
        with torch.no_grad():
            model.eval()
            prior_z = torch.randn(64, config.vae_latent_dim, device=device)  # (64, Z) ~ N(0, I)
            samples = torch.sigmoid(model.decoder(prior_z)).cpu()  # 로짓 → 픽셀 평균
            mu, _ = model.encode(data.x_test[:8].to(device))  # 시험 이미지 네 쌍의 평균 잠재 사이를 직선으로
            weights = torch.linspace(0, 1, INTERPOLATION_STEPS, device=device).view(1, -1, 1)
            path = (1 - weights) * mu[0::2, None] + weights * mu[1::2, None]  # (4, steps, Z)
            strip = torch.sigmoid(model.decoder(path.flatten(0, 1))).cpu()  # (4·steps, 1, 28, 28)
    viz.plot_image_grid(samples, [""] * len(samples), out_dir / "vae_samples.png", config.show,
                        title=f"VAE samples from the prior z ~ N(0, I), beta={config.beta:g}")
    viz.plot_image_grid(strip, [""] * len(strip), out_dir / "vae_interpolation.png", config.show,
                        columns=INTERPOLATION_STEPS,
                        title="VAE: decode points on a line between two test images")
    viz.plot_curves({"test -ELBO": [row["neg_elbo"] for row in curve]}, out_dir / "vae_neg_elbo.png",
                    config.show, ylabel="negative ELBO (nats per image)", title="VAE on the test split")
    return {"vae_test_neg_elbo": curve[-1]["neg_elbo"],
            "vae_test_reconstruction": curve[-1]["reconstruction"],
            "vae_test_kl": curve[-1]["kl"], "vae_neg_elbo_by_epoch": [row["neg_elbo"] for row in curve]}


def epochs_for(train_count: int, images: int, config: Config, name: str) -> int:
    """본 이미지 수 예산 → epoch 수 (데이터가 작으면 더 많은 epoch), --epochs 로 자름. --smoke 는 최대 3.

    MNIST(5만 장)와 digits(1,300장)에 같은 epoch 수를 쓰면 걸음 수가 40배 차이 나므로 '본 이미지 수'를 맞춤.
    """
    epochs = training.epochs_for_budget(train_count, images, max_epochs=config.epochs)
    epochs = min(epochs, 3) if config.smoke else epochs
    print(f"학습 예산, {name}: {train_count:,}장 × {epochs} epoch ≈ {train_count * epochs:,}장 "
          "(상한 --epochs)")
    return epochs


# %% 실행


def main(config: Config) -> dict:
    started, device, out_dir = time.time(), pick_device(config.device), Path(config.out_dir)
    if config.predict:  # 6. 추론만
        return predict(config, device, out_dir)
    set_seed(config.seed)
    print("== 1. 데이터 ==")
    data = load_data(config)
    noisy_val, noisy_test = (add_noise(x, config.noise_std, torch.Generator().manual_seed(config.seed + k))
                             for x, k in ((data.x_val, 1), (data.x_test, 2)))  # 고정 잡음: 모두 같은 입력
    print("\n== 2. 모델: 밀집 AE, 합성곱 AE (주 모델: 합성곱 잡음 제거 AE) ==")
    describe_models(config)
    model_args = dict(kind="conv", latent_dim=config.latent_dim, width=config.width)
    model = build_model(**model_args).to(device)
    epochs = epochs_for(len(data.x_train), config.train_images, config, "주 모델 (--train-images)")
    max_batches = 1 if config.smoke else None  # --smoke: epoch 마다 배치 하나
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    shuffle = torch.Generator().manual_seed(config.seed)

    print(f"\n== 3. 학습: 잡음 σ={config.noise_std:g} → 깨끗한 이미지, 검증 PSNR 로 best.pt ==")
    history = training.History(out_dir / "history.csv")
    state = {"model": model, "optimizer": optimizer, "scheduler": None}
    checkpoint = lambda epoch, best: training.make_checkpoint(
        config, model_args, state, epoch, best, generators=[shuffle], history=history,
        extra={"data": data.name})
    start_epoch, best = training.resume_or_start(config, checkpoint, state, generators=[shuffle],
                                                 history=history, best=-math.inf)
    try:
        for epoch in range(start_epoch, epochs + 1):
            train_loss = train_one_epoch(model, optimizer, data.x_train, config.noise_std, config.batch_size,
                                         shuffle, device, f"epoch {epoch}", max_batches)
            val = evaluate(model, noisy_val, data.x_val, device)
            history.log(epoch=epoch, train_loss=train_loss, **{f"val_{k}": v for k, v in val.items()})
            if val["psnr"] > best:  # 검증 잡음 제거 PSNR (dB), 클수록 좋음
                best = val["psnr"]
                training.save_checkpoint(out_dir / "best.pt", checkpoint(epoch, best))
            training.save_checkpoint(out_dir / "last.pt", checkpoint(epoch, best))
    except KeyboardInterrupt:
        print("\n중단: --resume 을 붙여 다시 실행하면 마지막으로 끝난 epoch 다음부터 이어집니다")
        raise SystemExit(130) from None

    print("\n== 4. 평가 (best.pt): 잡음 제거 대 PCA 대 고전 필터 ==")
    model, best_pt = training.load_trained_model(out_dir / "best.pt", build_model, config, device,
                                                 purpose="test")
    metrics = {**denoising_report(model, data, noisy_val, noisy_test, config, device, out_dir),
               "best_epoch": best_pt["epoch"]}
    print("\n== 5. 시각화 → 부록: 밀집 AE, 이상 탐지, 잠재 공간, VAE, AE 대 U-Net ==")
    viz.plot_history(history.rows, out_dir / "training_curves.png", config.show, metrics=["val_psnr"],
                     metric_label="PSNR (dB)", title="Denoising conv autoencoder")
    metrics.update(dense_study(data, noisy_test, config, epochs, device, max_batches))
    metrics.update(anomaly_study(data, config, device, out_dir, max_batches))
    metrics.update(latent_study(model, data, config, device, out_dir))
    metrics.update(vae_study(data, config, epochs_for(len(data.x_train), config.vae_images, config,
                                                      "VAE (--vae-images)"), device, out_dir, max_batches))
    print(f"\n오토인코더 대 U-Net (09장):\n{AE_VS_UNET}")
    write_run_record(out_dir, script=config.chapter + ".py", config=config, data=data.name, device=device,
                     seconds=time.time() - started, parameters=sum(p.numel() for p in model.parameters()),
                     metrics=metrics, headline="denoise_psnr")
    print(f"\n잡음 제거 PSNR {metrics['denoise_psnr']:.2f} dB (PCA {metrics['pca_psnr']:.2f}, 필터 "
          f"{metrics['filter_psnr']:.2f}), AUROC {metrics['auroc']:.4f} | {time.time() - started:.0f}초")
    return metrics


if __name__ == "__main__":
    run(main, Config)
