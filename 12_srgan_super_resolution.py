"""12장. 초해상도(super-resolution): 바이큐빅 → SRCNN → 서브픽셀 망(SRResNet) → SRGAN.

학습 목표
    - 초해상도 평가의 표준 약속(protocol)을 한 번 적고 시험한다: HR 을 배율(scale)의 배수로 자르기,
      LR 은 HR 의 바이큐빅(bicubic) 축소, PSNR 은 YCbCr 의 Y 채널에서 가장자리 scale 픽셀을 깎고(shave),
      SSIM 은 손으로 (가우스 창 11, σ 1.5) 짜서 torchmetrics 와 맞춰 본다.
    - 첫 기준선은 바이큐빅 확대: 같은 실행에서 같은 방식으로 잰 숫자 (논문 숫자를 옮겨 적지 않음).
    - SRCNN (Dong 2014): 바이큐빅으로 키운 입력에 9-5-5 합성곱 세 개 — 가장 작은 학습 모델.
    - 서브픽셀 합성곱(sub-pixel convolution, ESPCN 의 PixelShuffle)으로 LR 해상도에서 계산하고
      마지막에 키우는 잔차 망(SRResNet 을 줄인 것)을 L1 손실로 패치(patch)에 학습한다 (본 모델).
    - SRGAN (Ledig 2017): 같은 생성기를 판별기(discriminator)의 적대 손실 + 특징 손실로 미세 조정하면
      PSNR 은 내려가고 선명도(고주파 에너지)는 올라간다 — 지각–왜곡 상충(perception–distortion
      trade-off, Blau & Michaeli 2018)을 숫자와 그림으로 본다.

핵심 개념
    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (ITU-R BT.601, MATLAB rgb2ycbcr, R·G·B ∈ [0, 1]),
    PSNR = 10·log10(255² / MSE), SSIM = (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),
    PixelShuffle: (B, C·r², H, W) → (B, C, r·H, r·W), 전역 잔차(global residual: 출력 = 바이큐빅 + 망),
    적대 손실 −log D(G(x)), 특징 손실(content loss), 수용 영역(receptive field), 타일(tile) 추론.

실행 방법
    python 12_srgan_super_resolution.py --data real --data-dir ../shared/data/sr   # T91 → Set5, Set14 (×4)
    python 12_srgan_super_resolution.py                        # 기본: 벤치마크가 없으면 설치된 사진 3장
    python 12_srgan_super_resolution.py --data offline         # 네트워크·폴더 없이: sklearn·matplotlib 사진
    python 12_srgan_super_resolution.py --scale 2              # ×2 (×3, ×4 도 됨)
    python 12_srgan_super_resolution.py --data-dir my_photos/  # 내 사진 폴더: 일부는 시험용으로 떼어 둠
    python 12_srgan_super_resolution.py --no-srcnn --no-srgan  # 본 모델만 (시간 절반)
    python 12_srgan_super_resolution.py --smoke                # 배치 하나로 전체 흐름만 확인 (몇 초)
    python 12_srgan_super_resolution.py --predict photo.png    # best.pt → prediction.png (가로·세로 ×scale)
    python 12_srgan_super_resolution.py --predict photo.png --predict-model srgan   # SRGAN 생성기로
    python 12_srgan_super_resolution.py --resume               # 이어하기 (끝난 SRCNN·SRGAN 은 건너뜀)
    GPU 에서 논문 크기에 가깝게 (폭 64, 블록 16, 패치 96):
    python 12_srgan_super_resolution.py --data real --data-dir ../shared/data/sr --device cuda \\
        --width 64 --blocks 16 --patch-size 96 --epochs 300 --gan-epochs 100

기대 결과
    [results] benchmarks/run_all.py 가 results.json 에서 옮겨 씀: 중앙값 (최소–최대)
    - `--data offline` · sklearn + matplotlib sample photos (offline fallback) · cpu · seeds 42, 43, 44
      heldout_psnr 35.89 (35.83–35.92) · sharpness_psnr_model 0.2051 (0.1779–0.2067)
      sharpness_srgan 0.8873 (0.6849–1.145) · heldout_bicubic_psnr 34.53
      heldout_srcnn_psnr 34.2 (33.86–34.71) · heldout_srgan_psnr 35.13 (35.01–35.14)
      sharpness_bicubic 0.0783 · srcnn_seconds 55.29 (52.28–87.64) · srgan_seconds 32.41 (30.18–59.96)
      train_seconds 152.3 (139.7–201.7) · wall 252 (232–361) s · peak 1.28 GB
    - `--data real --data-dir ../shared/data/sr` · T91 → Set5, Set14 (real, ../shared/data/sr) · cpu
      seeds 42, 43, 44
      set5_psnr 30.83 (30.82–30.9) · set5_bicubic_psnr 28.43 · set5_srcnn_psnr 29.03 (28.91–29.1)
      set5_srgan_psnr 29.76 (29.54–30.08) · set5_ssim 0.873 (0.8729–0.8751)
      set14_psnr 27.8 (27.79–27.84) · set14_bicubic_psnr 26.09
      sharpness_psnr_model 0.2092 (0.2059–0.2183) · sharpness_srgan 0.7665 (0.4632–0.7877)
      sharpness_bicubic 0.0338 · srcnn_seconds 49.11 (47.19–49.6) · srgan_seconds 88.27 (85.09–91.03)
      train_seconds 347 (329.9–347.3) · wall 563 (546–576) s · peak 2.11 GB
    - 기계: AMD EPYC, 2 cores (1 torch threads), GPU: none, torch 2.14.1+cu130
    [/results]
    그 밖의 숫자는 이 장을 쓸 때 잰 값입니다 (조건을 함께 적음). 위 블록의 벽시계는 항목마다 적힌
    기계·torch 스레드 수로 잰 것입니다 (1 스레드 항목은 2코어에서 다른 측정과 나란히 돈 실행).
    논문 숫자 (Set5 ×4, Y-PSNR): 바이큐빅 28.42, SRCNN 30.48, SRResNet 32.05, SRGAN 29.40 dB —
    SRGAN 의 PSNR 이 SRResNet 보다 낮은 것이 이 장의 요점입니다. 여기의 바이큐빅은 PIL 로 만들지만
    같은 약속으로 재면 Set5 28.43, Set14 26.09 dB 로 논문(28.42, 26.00)과 0.1 dB 안에서 같습니다
    (MATLAB imresize 와 안티에일리어싱 구현이 조금 달라 0.1~0.3 dB 차이는 있을 수 있음).
    T91 → Set5 / Set14, ×4, 기본 설정, 시드 42, CPU 1 스레드 (2코어를 다른 작업과 나눠 쓰는 기계, 부하 1~4.6):
        | Y-PSNR (dB) / SSIM | 바이큐빅 | SRCNN (600걸음) | SRResNet (L1, 30 epoch) | SRGAN (288걸음) |
        | Set5               | 28.43 / 0.811 | 29.03 / 0.824 | 30.83 / 0.873 | 29.54 / 0.850 |
        | Set14              | 26.09 / 0.705 | 26.47 / 0.723 | 27.79 / 0.759 | 26.81 / 0.739 |
        | 선명도 (Set5)       | 0.034 | 0.054 | 0.206 | 0.767 |
        | 검증 9장 PSNR / 선명도 | 28.12 / 0.020 | 28.60 / 0.030 | 29.86 / 0.105 | 29.05 / 0.371 |
        본 모델은 바이큐빅보다 Set5 +2.40 dB, Set14 +1.70 dB. SRGAN 은 PSNR 을 1.3 dB 내주고 고주파
        에너지를 3.7배로 (HR 의 21% → 77%): 지각–왜곡 상충. 검증 PSNR (T91 에서 떼어 둔 9장) 은
        epoch 1→30: 28.38 → 29.86 (바이큐빅 28.12), 20 epoch 뒤로는 거의 평평.
        SRGAN 의 세 손실 가중치는 이 검증 9장만 보고 골랐습니다 (후보 4개와 숫자를 보기 전에 정한 규칙은
        부록 2 의 GAN_WEIGHT_CANDIDATES, choose_gan_weights): Set5/Set14 는 고르기에 쓰지 않았습니다.
        고른 값(적대 5e-3, 특징 1e-2, 픽셀 1)은 그전에 Set5 를 보고 골랐던 값과 같아 시험 숫자도 그때와
        같습니다 (후보 목록은 그 옛 값을 둘러 짰으니, 후보를 정할 때의 지식까지 깨끗하지는 않음).
        걸린 시간 (1 스레드, 나눠 쓰는 기계): 실행 전체 604초 (본 학습 385초, SRCNN 56초, SRGAN 85초;
        CPU 시간 541초) → 조용한 2코어에서는 그보다 짧음 (미측정).
    오프라인 사진 3장 (`--data offline`, 반으로 줄인 사진의 오른쪽 1/4 띠 3개가 시험), 같은 조건:
        바이큐빅 34.53, SRCNN 33.86, SRResNet 35.83 (+1.30 dB), SRGAN 35.01 dB; 선명도 0.078, 0.071,
        0.205, 1.145 (SRGAN 이 HR 보다 많은 고주파: 가중치는 T91 검증으로 골랐고 사진 3장에는 셈).
        세 조각 중 flower 는 거의 밋밋한 배경(바이큐빅 48 dB)이라 작은 오차도 큰 dB 차가 되어
        SRCNN 의 평균이 바이큐빅 아래로 내려감 (다른 두 조각에서는 SRCNN 이 +0.2, +1.0 dB).
        실행 전체 221초 (1 스레드, 나눠 쓰는 기계, 부하 1~3.7).
"""

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from utils import training  # 학습 뼈대: training.resume_or_start, .save_checkpoint, .History, …
from utils import visualization as viz  # 그림 저장은 이 장의 주제가 아니라 모듈 하나로 (viz.save_figure)
from utils.data import superres  # 파일 읽기·나누기·무작위 패치: superres.load_sr_data, .random_patches
from utils.runtime import RunConfig, UserError, pick_device, run, write_run_record

# 모양 글자(shape letters): B=배치, C=채널(Y 하나라 1), H·W=HR 높이·너비, h·w=LR 높이·너비 (= H/s, W/s)
PIXEL_MAX = 255.0  # PSNR·SSIM 은 8비트 밝기 단위(0~255)로 잽니다 (논문들과 같은 단위)
Y_WEIGHTS = (65.481, 128.553, 24.966)  # BT.601: Y = 16 + Σ w·RGB (RGB ∈ [0, 1]) → Y ∈ [16, 235]
Y_OFFSET = 16.0
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # Wang 2004 의 가우스 창 (11x11, σ = 1.5)
SSIM_K1, SSIM_K2 = 0.01, 0.03  # C1 = (K1·255)², C2 = (K2·255)²: 분모가 0 에 가까울 때의 안정 상수
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])  # 고주파(윤곽·결) 검출기
SEED_OFFSETS = {"srcnn": 1, "srgan": 2}  # 부록 학습마다 자기 난수: 본 학습·중단과 무관하게 같은 숫자
PREDICT_TILE = 96  # --predict: LR 타일 한 변 (픽셀). 큰 사진도 메모리가 타일 크기로 묶임
MAX_PREDICT_PIXELS = 4_000_000  # --predict 입력 상한 (가로×세로): ×4 면 출력이 6,400만 픽셀 → RGB 약 190 MB
CROP_SIDE = 24  # 비교 그림에서 LR 조각 한 변 (HR 에서는 24·scale 픽셀)
LABELS = {"bicubic": "bicubic", "srcnn": "SRCNN", "psnr": "SRResNet (L1)", "srgan": "SRGAN"}  # 표·그림의 이름
MIN_EPOCH_STEPS = 25  # epoch 하나의 최소 걸음 수 (steps_per_epoch 설명)


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "12_srgan_super_resolution"  # 출력 폴더 outputs/<장>/, 체크포인트 주인
    # 학습률 일정이 총 epoch 수에 묶임 → --epochs 변경은 다른 설정. --predict-model 은 예측에만 씀
    resume_free: ClassVar[frozenset[str]] = (RunConfig.resume_free - {"epochs"}) | {"predict_model"}
    epochs: int = 30  # 한 epoch = 학습 사진 넓이만큼의 무작위 패치 (T91: 약 1,200 패치 = 75 걸음)
    batch_size: int = 16  # 패치 16개 (SRResNet·EDSR 과 같은 크기)
    lr: float = 1e-3  # Adam 학습률: 작은 망 + 짧은 예산이라 논문(1e-4)보다 크게, 코사인으로 0 까지
    scale: Literal[2, 3, 4] = 4  # 배율: LR 한 변 × scale = HR 한 변
    patch_size: int = 64  # HR 패치 한 변 (픽셀, scale 의 배수로 내림). 논문 SRGAN 은 96
    width: int = 32  # 잔차 블록의 채널 수 (논문 SRResNet 64). CPU 시간 때문에 절반
    blocks: int = 8  # 잔차 블록 수 (논문 16). ×4 의 수용 영역 = 4·blocks + 8.5 LR 픽셀 (--predict 최소 크기)
    val_fraction: float = 0.1  # 학습 사진에서 검증(best.pt 고르기)으로 떼는 비율 (Set5/Set14 는 시험 전용)
    patience: int = 0  # 조기 종료: 검증 PSNR 이 이만큼의 epoch 동안 나아지지 않으면 멈춤 (0 = 끄기)
    srcnn: bool = True  # 부록 1: SRCNN 9-5-5 도 학습해 비교 (--no-srcnn 이면 건너뜀)
    srcnn_steps: int = 600  # SRCNN 걸음 수 (데이터와 무관하게 고정: 사진 3장에서도 바이큐빅을 넘도록)
    srcnn_patch_size: int = 32  # SRCNN 패치 한 변: 논문은 33 (HR 해상도에서 계산해 비싸므로 작게)
    srgan: bool = True  # 부록 2: 본 모델을 SRGAN 으로 미세 조정 (--no-srgan 이면 건너뜀)
    gan_epochs: int = 4  # SRGAN 미세 조정 예산 (같은 뜻의 epoch). 걸음마다 G 한 번 + D 한 번
    gan_lr: float = 1e-4  # SRGAN 의 G·D Adam 학습률 (논문과 같음)
    # 아래 세 가중치는 T91 에서 떼어 둔 검증 사진만 보고 골랐습니다 (Set5/Set14 는 보지 않음):
    # 후보·검증 숫자·고르는 규칙은 부록 2 의 GAN_WEIGHT_CANDIDATES 와 choose_gan_weights.
    adversarial_weight: float = 5e-3  # 적대 손실 가중치 (논문 1e-3, ESRGAN 5e-3): 결을 만드는 힘
    feature_weight: float = 1e-2  # 판별기 특징 손실(content loss) 가중치: 특징 거리가 L1 보다 100배쯤 큼
    pixel_weight: float = 1.0  # L1 픽셀 손실 가중치: 색·위치가 떠내려가지 않게 잡는 닻 (짧은 CPU 미세 조정용)
    predict: str = ""  # 사진 파일 경로: best.pt(또는 srgan.pt)로 가로·세로 ×scale 사진을 만들고 끝냄
    predict_model: Literal["psnr", "srgan"] = "psnr"  # --predict 에 쓸 모델: PSNR 학습 모델 또는 SRGAN

    def __post_init__(self):
        if self.width < 1 or self.blocks < 0:
            raise ValueError(f"--width 는 1 이상, --blocks 는 0 이상이어야 합니다 "
                             f"(받은 값: {self.width}, {self.blocks}).")
        for name in ("patch_size", "srcnn_patch_size"):
            if not 4 * self.scale <= getattr(self, name) <= 512:
                raise ValueError(f"--{name.replace('_', '-')} 는 {4 * self.scale} 이상 512 이하여야 합니다 "
                                 f"(받은 값: {getattr(self, name)}).")
        if self.patience < 0:
            raise ValueError(f"--patience 는 0 이상이어야 합니다 (받은 값: {self.patience}).")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"--val-fraction 은 0과 0.5 사이여야 합니다 (받은 값: {self.val_fraction}).")
        if min(self.srcnn_steps, self.gan_epochs) < 1 or self.gan_lr <= 0:
            raise ValueError("--srcnn-steps, --gan-epochs 는 1 이상, --gan-lr 은 0 보다 커야 합니다.")
        if min(self.adversarial_weight, self.feature_weight, self.pixel_weight) < 0:
            raise ValueError("--adversarial-weight, --feature-weight, --pixel-weight 는 0 이상이어야 합니다.")


# %% [markdown]
# ## 1. 데이터와 평가 약속(protocol)
# 공개 구현들이 서로 다른 PSNR 을 보고하는 가장 흔한 이유는 약속이 달라서입니다 (RGB 대 Y, 가장자리
# 깎기, 배수로 자르기). 이 장은 약속을 함수 하나씩으로 적고 (tests/test_ch12.py 가 하나씩 확인),
# 바이큐빅 기준선도 같은 함수로 잽니다.
# 1) modcrop: HR 을 오른쪽·아래에서 잘라 가로·세로를 scale 의 배수로 (LR 이 정확히 1/scale 이 되게)
# 2) LR = HR 의 바이큐빅 축소. PIL 의 BICUBIC 은 축소할 때 안티에일리어싱(antialiasing)을 하는데,
#    MATLAB imresize 와 구현이 조금 달라 논문의 바이큐빅 숫자와 0.1~0.3 dB 차이가 납니다.
# 3) Y 채널: 사람 눈은 밝기 변화에 가장 민감하고 SRCNN 이후 논문들이 Y 에서만 재므로 Y 에서.
#    이 장의 모델도 Y 한 채널만 학습하고 (ESPCN·SRCNN 처럼), 색(Cb, Cr)은 바이큐빅으로 키웁니다.
# 4) PSNR·SSIM 은 가장자리 scale 픽셀을 깎고: 테두리는 주변 정보가 없어 모든 방법이 틀리는 곳.

# %%
def modcrop(image: Image.Image, scale: int) -> Image.Image:
    """오른쪽·아래를 잘라 가로·세로를 scale 의 배수로 (왼쪽 위 기준: 픽셀 위치가 밀리지 않음)."""
    width, height = image.size
    return image.crop((0, 0, width - width % scale, height - height % scale))


def bicubic_resize(image: Image.Image, width: int, height: int) -> Image.Image:
    """PIL 바이큐빅 (a = −0.5). 축소에는 안티에일리어싱이 들어감: LR 만들기와 바이큐빅 기준선 모두 이것."""
    return image.resize((width, height), Image.BICUBIC)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(3, H, W) uint8 또는 0~255 실수 → (3, H, W) float64 YCbCr (BT.601 '스튜디오 범위', MATLAB rgb2ycbcr).

    Y ∈ [16, 235], Cb·Cr ∈ [16, 240]. 계수는 255 로 나눈 RGB(0~1)에 곱하는 값입니다.
    """
    r, g, b = rgb.double().div(PIXEL_MAX).unbind(0)
    y = Y_OFFSET + Y_WEIGHTS[0] * r + Y_WEIGHTS[1] * g + Y_WEIGHTS[2] * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return torch.stack([y, cb, cr])


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """rgb_to_ycbcr 의 역변환: (3, H, W) → (3, H, W) uint8 (반올림, 0~255 로 자름)."""
    offset = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64)[:, None, None]
    y, cb, cr = (ycbcr.double() - offset).unbind(0)
    r = 1.164383 * y + 1.596027 * cr
    g = 1.164383 * y - 0.391762 * cb - 0.812968 * cr
    b = 1.164383 * y + 2.017232 * cb
    return torch.stack([r, g, b]).round().clamp(0, 255).to(torch.uint8)


def y_channel(image: Image.Image) -> torch.Tensor:
    """PIL RGB → Y (1, H, W) float32 을 0~1 로 (Y/255). 모델의 입력·출력 단위."""
    rgb = torch.from_numpy(np.array(image)).permute(2, 0, 1)  # (3, H, W) uint8
    return rgb_to_ycbcr(rgb)[:1].div(PIXEL_MAX).float()


def shave(y: torch.Tensor, border: int) -> torch.Tensor:
    """(..., H, W) 의 가장자리 border 픽셀을 깎음."""
    return y[..., border:y.shape[-2] - border, border:y.shape[-1] - border] if border else y


def psnr(sr_y: torch.Tensor, hr_y: torch.Tensor, border: int) -> float:
    """Y-PSNR (dB): 두 Y (…, H, W), 값 0~1 → 255 단위로 MSE. 가장자리 border 픽셀은 빼고."""
    error = (shave(sr_y, border).double() - shave(hr_y, border).double()) * PIXEL_MAX
    mse = error.pow(2).mean().item()
    return 10 * math.log10(PIXEL_MAX**2 / mse) if mse > 0 else math.inf


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """정규화한 2차원 가우스 창 (1, 1, size, size) float64: 1차원 가우스의 바깥곱 (분리 가능)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(sr_y: torch.Tensor, hr_y: torch.Tensor, border: int) -> float:
    """SSIM (Wang 2004), 손으로: 가우스 창 안의 평균 μ, 분산 σ², 공분산 σxy 로 픽셀마다 값을 낸 뒤 평균.

    SSIM = (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)), C1 = (0.01·255)², C2 = (0.03·255)².
    창이 이미지 안에 다 들어가는 곳만 ('valid' 합성곱, MATLAB ssim_index 와 같음). 입력은 0~1 Y.
    """
    x, y = shave(sr_y, border).double() * PIXEL_MAX, shave(hr_y, border).double() * PIXEL_MAX
    x, y = x.reshape(1, 1, *x.shape[-2:]), y.reshape(1, 1, *y.shape[-2:])  # (1, 1, H', W')
    window = gaussian_window()
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)  # (1, 1, H−10, W−10): 창 안의 가중 평균
    sigma_x2 = F.conv2d(x * x, window) - mu_x**2  # 분산 = E[x²] − E[x]²
    sigma_y2 = F.conv2d(y * y, window) - mu_y**2
    sigma_xy = F.conv2d(x * y, window) - mu_x * mu_y  # 공분산 = E[xy] − E[x]E[y]
    c1, c2 = (SSIM_K1 * PIXEL_MAX) ** 2, (SSIM_K2 * PIXEL_MAX) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / \
        ((mu_x**2 + mu_y**2 + c1) * (sigma_x2 + sigma_y2 + c2))
    return ssim_map.mean().item()


def high_frequency_energy(y: torch.Tensor) -> float:
    """라플라시안(Laplacian) 응답 제곱의 평균: 윤곽·결(texture) 같은 고주파가 많을수록 큼. y: (…, H, W)."""
    y = y.double().reshape(1, 1, *y.shape[-2:])
    return F.conv2d(y, LAPLACIAN.double()[None, None]).pow(2).mean().item()


def sharpness(sr_y: torch.Tensor, hr_y: torch.Tensor, border: int) -> float:
    """선명도 = 고주파 에너지 비율 HF(SR) / HF(HR). HR 과 같은 양의 결이면 1, 흐리면 1 보다 작음.

    PSNR 이 모르는 것을 재는 간단한 대용품입니다: 흐린 예측은 평균적으로 오차가 작아 PSNR 이 높지만
    결이 사라져 이 비율이 낮습니다. 결을 '지어내는' SRGAN 은 PSNR 이 내려가도 이 비율이 1 에 가까워집니다.
    """
    return high_frequency_energy(shave(sr_y, border)) / max(high_frequency_energy(shave(hr_y, border)), 1e-12)


@dataclass
class Pair:
    """시험·검증 사진 한 장: HR 과 그 LR, 바이큐빅으로 다시 키운 것. *_y 는 Y (1, ·, ·) 0~1."""

    name: str
    hr_y: torch.Tensor  # (1, H, W)
    lr_y: torch.Tensor  # (1, h, w) = (1, H/s, W/s)
    bicubic_y: torch.Tensor  # (1, H, W): 바이큐빅 기준선이자 SRCNN 의 입력
    lr: Image.Image  # 그림용 RGB
    bicubic: Image.Image  # 그림용 RGB (색 Cb·Cr 도 여기서 가져옴)
    hr: Image.Image


def make_pair(name: str, photo: Image.Image, scale: int) -> Pair:
    """약속 1)~3): modcrop → 바이큐빅 축소(LR) → 바이큐빅 확대(기준선) → Y."""
    hr = modcrop(photo, scale)
    lr = bicubic_resize(hr, hr.width // scale, hr.height // scale)
    bicubic = bicubic_resize(lr, hr.width, hr.height)
    return Pair(name, y_channel(hr), y_channel(lr), y_channel(bicubic), lr, bicubic, hr)


def prepare_data(config: Config) -> tuple:
    """(학습 Pair 목록, 검증, 시험 {세트: 목록}, 데이터 이름). 폴더·파일 문제는 학습 전에 한 줄 오류로."""
    images = superres.load_sr_data(config.data, Path(config.data_dir), smoke=config.smoke,
                                   val_fraction=config.val_fraction)
    train = [make_pair(name, photo, config.scale) for name, photo in images.train]
    val = [make_pair(name, photo, config.scale) for name, photo in images.val]
    tests = {key: [make_pair(name, photo, config.scale) for name, photo in photos]
             for key, photos in images.tests.items()}
    area = sum(p.hr_y.shape[-1] * p.hr_y.shape[-2] for p in train)
    print(f"[데이터] {images.name}: 학습 {len(train)}장 ({area / 1e6:.2f}M 픽셀), 검증 {len(val)}장, 시험 "
          + ", ".join(f"{key} {len(pairs)}장" for key, pairs in tests.items()) + f", ×{config.scale}")
    return train, val, tests, images.name


# %% [markdown]
# ## 2. 모델
# ### 2-1. SRCNN (Dong 외 2014): 바이큐빅으로 키운 뒤 다듬기
# ```
# LR ─ 바이큐빅 ×s ─ (B,1,H,W) ─ Conv 9x9, 64 ─ ReLU ─ Conv 5x5, 32 ─ ReLU ─ Conv 5x5, 1 ─ (B,1,H,W)
#                               (조각 특징 추출)       (비선형 사상)          (재구성)
# ```
# 모든 계산이 HR 해상도에서 일어나 비쌉니다: 픽셀마다 9·9·64 + 5·5·64·32 + 5·5·32 ≈ 5.7만 곱셈.
# 논문은 패딩 없이(출력이 작아짐) 학습했고, 여기서는 같은 크기를 내도록 가장자리 복제(replicate) 패딩.
#
# ### 2-2. 서브픽셀 잔차 망 (SRResNet 을 줄인 것, 본 모델)
# ```
# LR (B,1,h,w) ─ Conv 3x3 ─ (B,w,h,w) ─ [잔차 블록 × blocks] ─ Conv ─(+)─ 업샘플 ×2 ×2 ─ Conv ─(+)─ SR
#      │                    └──────── 긴 건너뛰기 ────────┘ (Conv w→4w, PixelShuffle(2)) │ (B,1,H,W)
#      └────────────── 바이큐빅 ×s (전역 잔차: 망은 '바이큐빅이 놓친 것'만 배움) ───────────┘
# ```
# 서브픽셀 합성곱(ESPCN, Shi 2016): LR 해상도에서 채널을 r² 배로 만든 뒤 PixelShuffle 로
# (B, C·r², h, w) → (B, C, r·h, r·w) 재배열. 계산 대부분이 LR 해상도(1/s²)에서 일어나 SRCNN 보다 싸고,
# 전치 합성곱의 바둑판 무늬(checkerboard artifact)도 덜합니다. ×3 은 PixelShuffle(3) 한 번.
# 블록 안의 BatchNorm 은 뺐습니다 (EDSR, Lim 2017: 초해상도에서는 BN 이 밝기 범위를 흔들고 얼룩을 만듦).

# %%
class SRCNN(nn.Module):
    """SRCNN 9-5-5 (n1 = 64, n2 = 32). 입력: 바이큐빅으로 키운 Y (B, 1, H, W) → 같은 모양."""

    def __init__(self, n1: int = 64, n2: int = 32):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, n1, 9, padding=4, padding_mode="replicate"), nn.ReLU(),  # (B, 64, H, W)
            nn.Conv2d(n1, n2, 5, padding=2, padding_mode="replicate"), nn.ReLU(),  # (B, 32, H, W)
            nn.Conv2d(n2, 1, 5, padding=2, padding_mode="replicate"))  # (B, 1, H, W)

    def forward(self, upscaled: torch.Tensor) -> torch.Tensor:
        return self.layers(upscaled)


def build_srcnn(n1: int = 64, n2: int = 32) -> SRCNN:
    return SRCNN(n1, n2)


class ResidualBlock(nn.Module):
    """Conv 3x3 → ReLU → Conv 3x3, 그리고 입력을 더함: (B, C, h, w) → 같은 모양."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def pixel_shuffle_by_hand(x: torch.Tensor, r: int) -> torch.Tensor:
    """PixelShuffle 를 reshape·permute 로: (B, C·r², h, w) → (B, C, r·h, r·w).

    출력 (c, y·r + i, x·r + j) = 입력 (c·r² + i·r + j, y, x): 채널 r² 개가 LR 픽셀 하나의 r x r 자리를 맡음.
    """
    b, channels, h, w = x.shape
    c = channels // (r * r)
    x = x.reshape(b, c, r, r, h, w)  # (B, C, i, j, h, w)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(b, c, h * r, w * r)  # (B, C, h, i, w, j) → (B, C, h·r, w·r)


def upsampler(channels: int, scale: int) -> nn.Sequential:
    """서브픽셀 업샘플: ×2 는 한 번, ×4 는 ×2 두 번, ×3 은 한 번. (B, C, h, w) → (B, C, s·h, s·w)."""
    factors = [2, 2] if scale == 4 else [scale]
    layers = []
    for r in factors:
        layers += [nn.Conv2d(channels, channels * r * r, 3, padding=1),  # (B, C·r², h, w)
                   nn.PixelShuffle(r), nn.ReLU()]  # (B, C, r·h, r·w)
    return nn.Sequential(*layers)


class SRResNet(nn.Module):
    """LR Y (B, 1, h, w) → SR Y (B, 1, s·h, s·w). 출력 = 바이큐빅 확대 + 망이 배운 고주파(잔차)."""

    def __init__(self, scale: int = 4, width: int = 32, blocks: int = 8):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(1, width, 3, padding=1)  # (B, w, h, w)
        self.body = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)],
                                  nn.Conv2d(width, width, 3, padding=1))  # (B, w, h, w)
        self.upsample = upsampler(width, scale)  # (B, w, H, W)
        self.tail = nn.Conv2d(width, 1, 3, padding=1)  # (B, 1, H, W)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        features = self.head(lr)
        features = features + self.body(features)  # 긴 건너뛰기(long skip)
        residual = self.tail(self.upsample(features))  # (B, 1, H, W)
        # 전역 잔차: 바이큐빅(torch 의 a = −0.75 커널)이 낮은 주파수를 맡아 처음부터 바이큐빅 근처에서 시작
        base = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + residual


def build_model(scale: int = 4, width: int = 32, blocks: int = 8) -> SRResNet:
    """체크포인트의 model_args 만으로 같은 모델을 다시 만듭니다 (--resume, --predict, 시험, SRGAN)."""
    return SRResNet(scale, width, blocks)


def receptive_field(model: nn.Module) -> float:
    """출력 픽셀 하나가 보는 입력의 폭 (입력 픽셀 단위). 합성곱을 순서대로 따라가며
    field += (k − 1)·(지금 특징 맵 한 칸이 입력 몇 픽셀인가); PixelShuffle(r) 뒤에는 한 칸이 1/r 픽셀.

    잔차 연결은 더 넓게 보지 않으므로 (더하기만 함) 가장 긴 길 = 모든 합성곱을 지나는 길입니다.
    모듈을 만든 순서가 계산 순서와 같다고 가정합니다 (이 장의 두 모델은 그렇게 만들었음).
    """
    field, step = 1.0, 1.0
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            field += (module.kernel_size[0] - 1) * module.dilation[0] * step
            step *= module.stride[0]
        elif isinstance(module, nn.PixelShuffle):
            step /= module.upscale_factor
    return field


def describe_model(model: SRResNet, device) -> None:
    """실행 시작 때 한 번: 층마다 출력 모양, 파라미터 수, 수용 영역."""
    lr = torch.zeros(1, 1, 16, 16)
    sample = torch.arange(2 * 9 * 2 * 3, dtype=torch.float32).reshape(2, 9, 2, 3)  # (B, C·r², h, w), r = 3
    assert torch.equal(pixel_shuffle_by_hand(sample, 3), nn.PixelShuffle(3)(sample))  # 손으로 = 라이브러리
    with torch.no_grad():
        features = model.head(lr)
        print(f"  head: {tuple(features.shape)} → body: {tuple(model.body(features).shape)} → "
              f"upsample: {tuple(model.upsample(features).shape)} → SR: {tuple(model(lr).shape)}")
    parameters = sum(p.numel() for p in model.parameters())  # 모든 가중치 텐서의 원소 수 합
    print(f"장치(device): {device} | SRResNet ×{model.scale} 파라미터 {parameters:,}개, "
          f"수용 영역 {receptive_field(model):.1f} LR 픽셀")


# %% [markdown]
# ## 3. 학습: 무작위 패치, L1 손실, 코사인 학습률
# 사진 전체 대신 작은 패치(HR 64x64 ↔ LR 16x16)를 사진 어디서나 뽑습니다: 같은 계산으로 훨씬 다양한
# 장면을 보고, 91장이라도 '패치 수'는 사실상 무한합니다. 그래서 epoch 는 '사진 넓이만큼의 패치'로
# 정합니다 (91장 × 몇 바퀴가 아니라 본 패치 수로 예산을 잼: DESIGN "Your own data").
# L1 손실: 같은 PSNR 목표라도 L2(MSE)보다 빨리 수렴하고 흐림이 덜하다는 EDSR 의 관찰을 따릅니다.
# 검증 PSNR 이 가장 높은 epoch 이 best.pt (T91 에서 떼어 둔 사진, Set5/Set14 는 시험에만).

# %%
def steps_per_epoch(train: list[Pair], patch_size: int, batch_size: int) -> int:
    """epoch 당 걸음 수 = ⌈학습 사진 넓이 / 패치 넓이 / 배치⌉: 사진을 한 번 덮는 만큼의 패치.

    단 MIN_EPOCH_STEPS 이상: 사진 몇 장(오프라인 대체)이면 한 번 덮는 데 몇 걸음뿐이라, epoch 마다의
    검증·저장이 학습보다 잦아지고 예산(epochs × 걸음)이 너무 작아집니다.
    """
    area = sum(p.hr_y.shape[-1] * p.hr_y.shape[-2] for p in train)
    return max(MIN_EPOCH_STEPS, math.ceil(area / patch_size**2 / batch_size))


def train_one_epoch(model, inputs: list[torch.Tensor], targets: list[torch.Tensor], optimizer, scheduler,
                    device, epoch: int, *, steps: int, batch_size: int, patch_size: int, ratio: int,
                    generator: torch.Generator, loss_fn=F.l1_loss, desc: str | None = None) -> float:
    """steps 걸음 학습, 평균 손실을 돌려줍니다. 패치는 generator 로 뽑음 (이어하기가 같은 패치를 뽑도록).

    inputs[i] (1, H/ratio, W/ratio) 와 targets[i] (1, H, W) 는 같은 사진: 본 모델은 (LR, HR) 과 ratio = scale,
    SRCNN 은 (바이큐빅, HR) 과 ratio = 1.
    """
    model.train()
    total = 0.0
    for step in training.progress(range(steps), desc=desc or f"epoch {epoch}"):
        x, target = superres.random_patches(targets, inputs, batch_size, patch_size, ratio, generator)
        prediction = model(x.to(device))  # (B, 1, P, P)
        loss = loss_fn(prediction, target.to(device))
        training.check_finite(loss, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item()
    return total / steps


def prepare_model(config: Config, device, total_steps: int) -> tuple:
    """시드 → SRResNet(model_args) → Adam + 코사인 일정. (model_args, model, optimizer, scheduler)."""
    torch.manual_seed(config.seed)  # 초기 가중치가 시드로 정해지도록, 만들기 바로 전에
    model_args = {"scale": config.scale, "width": config.width, "blocks": config.blocks}
    model = build_model(**model_args).to(device)
    describe_model(model, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return model_args, model, optimizer, scheduler


def print_budget(model, train: list[Pair], config: Config, steps: int, epochs: int, device) -> None:
    """학습 전 한 줄: 패치 수 × epoch ≈ 본 패치 수, 이 기계에서 걸릴 시간 (한 배치를 재어 추정)."""
    probe = superres.random_patches([p.hr_y for p in train], [p.lr_y for p in train], config.batch_size,
                                    config.patch_size // config.scale * config.scale, config.scale,
                                    torch.Generator().manual_seed(0))
    seconds = None if config.smoke else training.seconds_per_image(
        model, F.l1_loss, (probe[0].to(device), probe[1].to(device)))
    print(training.describe_budget(steps * config.batch_size, epochs, seconds, unit="패치",
                                   early_stop=config.patience > 0))


# %% [markdown]
# ## 4. 평가: 이미지마다 Y-PSNR·SSIM·선명도, 세트 평균
# 시험 이미지는 크기가 제각각이라 한 장씩 통째로 (패치가 아니라 이미지 원래 크기로) 계산합니다.
# 세트 점수는 이미지마다의 PSNR 의 평균 (논문들의 관례).

# %%
@torch.no_grad()
def super_resolve(model, pair: Pair, device) -> torch.Tensor:
    """한 장을 키움: 모델이 None 이면 바이큐빅, SRCNN 은 바이큐빅 입력, 나머지는 LR 입력. → (1, H, W) 0~1."""
    if model is None:
        return pair.bicubic_y
    model.eval()  # 이 장의 판별기만 BatchNorm 을 쓰지만, 평가의 약속으로 늘 eval()
    x = pair.bicubic_y if isinstance(model, SRCNN) else pair.lr_y
    return model(x[None].to(device))[0].clamp(0, 1).cpu()  # 밝기 범위 밖은 잘라 냄 (저장하는 사진과 같게)


@torch.no_grad()
def evaluate(model, pairs: list[Pair], device, *, scale: int, full: bool = True) -> dict:
    """손실(Y 의 L1, 0~1 단위)과 지표: psnr, ssim, sharpness (세트 평균), per_image {이름: psnr}.

    full=False 면 PSNR·손실만 (epoch 마다의 검증을 빠르게). model=None 이면 바이큐빅 기준선.
    """
    rows = []
    for pair in pairs:
        sr = super_resolve(model, pair, device)
        row = {"name": pair.name, "loss": F.l1_loss(sr, pair.hr_y).item(), "psnr": psnr(sr, pair.hr_y, scale)}
        if full:
            row.update(ssim=ssim(sr, pair.hr_y, scale), sharpness=sharpness(sr, pair.hr_y, scale))
        rows.append(row)
    result = {key: float(np.mean([row[key] for row in rows])) for key in rows[0] if key != "name"}
    result["per_image"] = {row["name"]: row["psnr"] for row in rows}
    return result


def evaluate_all(models: dict, tests: dict[str, list[Pair]], device, scale: int) -> dict:
    """{방법: 모델 또는 None} × {세트: 이미지들} → {세트: {방법: evaluate 결과}}."""
    return {key: {method: evaluate(model, pairs, device, scale=scale) for method, model in models.items()}
            for key, pairs in tests.items()}


def report_validation(by_method: dict) -> None:
    """검증 사진(학습 데이터에서 뗀 것)의 평균 Y-PSNR / 선명도 한 줄: SRGAN 가중치를 고른 숫자와 같은 것."""
    print("\n[검증] Y-PSNR (dB) / 선명도: "
          + ", ".join(f"{LABELS[m]} {r['psnr']:.2f} / {r['sharpness']:.3f}" for m, r in by_method.items()))


def report(scores: dict) -> None:
    """이미지마다 Y-PSNR 표 (바이큐빅이 첫 기준선), 그리고 세트 평균 PSNR / SSIM / 선명도."""
    for key, by_method in scores.items():
        methods = list(by_method)
        print(f"\n[시험 {key}] Y-PSNR (dB), 가장자리 scale 픽셀 제외\n| image | "
              + " | ".join(LABELS[m] for m in methods)
              + " |\n|---|" + "---|" * len(methods))
        for name in by_method["bicubic"]["per_image"]:
            values = " | ".join(f"{by_method[m]['per_image'][name]:.2f}" for m in methods)
            print(f"| {name} | {values} |")
        print("| **평균** | " + " | ".join(f"{by_method[m]['psnr']:.2f}" for m in methods) + " |")
        print("  SSIM: " + ", ".join(f"{m} {by_method[m]['ssim']:.4f}" for m in methods)
              + "\n  선명도 HF(SR)/HF(HR): "
              + ", ".join(f"{m} {by_method[m]['sharpness']:.3f}" for m in methods))
    first = next(iter(scores.values()))
    gain = first["psnr"]["psnr"] - first["bicubic"]["psnr"]
    print(f"  본 모델(PSNR 학습)이 바이큐빅보다 {gain:+.2f} dB ({next(iter(scores))}, 같은 실행에서 잰 값)")
    if gain < 0.1:
        print(f"경고: 본 모델이 바이큐빅을 넘지 못했습니다 ({gain:+.2f} dB) — 학습이 부족합니다 "
              "(--epochs 를 늘리거나 --lr 을 확인하세요).")


# %% [markdown]
# ## 5. 시각화

# %%
def to_rgb(y: torch.Tensor, colour_source: Image.Image) -> np.ndarray:
    """모델의 Y (1, H, W) 0~1 + 바이큐빅 사진의 Cb·Cr → (H, W, 3) uint8. 예측·그림 모두 이 방식."""
    ycbcr = rgb_to_ycbcr(torch.from_numpy(np.array(colour_source)).permute(2, 0, 1))  # (3, H, W)
    ycbcr[0] = y[0].double() * PIXEL_MAX
    return ycbcr_to_rgb(ycbcr).permute(1, 2, 0).numpy()


def busiest_crop(hr_y: torch.Tensor, side: int) -> tuple[int, int]:
    """고주파가 가장 많은 side x side 창의 왼쪽 위 (y, x): 방법 사이 차이가 가장 잘 보이는 곳."""
    energy = F.conv2d(hr_y[None].double(), LAPLACIAN.double()[None, None], padding=1).pow(2)  # (1, 1, H, W)
    stride = max(1, side // 4)
    pooled = F.avg_pool2d(energy, side, stride=stride)[0, 0]  # (창 행, 창 열)
    row, column = divmod(int(pooled.argmax()), pooled.shape[1])
    return row * stride, column * stride


def plot_crops(pairs: list[Pair], outputs: dict, scores: dict, scale: int, path: Path, show: bool) -> Path:
    """행마다 한 이미지: LR | 바이큐빅 | SRCNN | PSNR 모델 | SRGAN | HR 의 같은 조각 (제목: 이미지의 PSNR)."""
    methods = list(outputs)
    columns = ["LR", *methods, "HR"]
    fig, axes = plt.subplots(len(pairs), len(columns), figsize=(2.1 * len(columns), 2.4 * len(pairs)),
                             squeeze=False)
    for row, pair in enumerate(pairs):
        side = min(CROP_SIDE * scale, *pair.hr_y.shape[-2:]) // scale * scale
        top, left = busiest_crop(pair.hr_y, side)
        top, left = top // scale * scale, left // scale * scale
        box = (left, top, left + side, top + side)
        panels = [(np.array(pair.lr.crop(tuple(v // scale for v in box)).resize((side, side), Image.NEAREST)),
                   f"LR ({side // scale} px)")]
        for method in methods:
            picture = to_rgb(outputs[method][row], pair.bicubic)[top:top + side, left:left + side]
            panels.append((picture, f"{LABELS[method]}\n{scores[method]['per_image'][pair.name]:.2f} dB"))
        panels.append((np.array(pair.hr.crop(box)), f"HR\n{pair.name}"[:24]))
        for ax, (picture, title) in zip(axes[row], panels):
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.suptitle(f"×{scale} crops (PSNR of the whole image, Y channel)")
    return viz.save_figure(fig, path, show)


def plot_tradeoff(by_method: dict, set_name: str, path: Path, show: bool) -> Path:
    """지각–왜곡 상충: x = 선명도(고주파 에너지 비율, HR = 1), y = Y-PSNR. 오른쪽 위가 이상적."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for method, scores in by_method.items():
        ax.scatter(scores["sharpness"], scores["psnr"], s=60)
        ax.annotate(LABELS[method], (scores["sharpness"], scores["psnr"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=9)
    ax.axvline(1.0, color="gray", linestyle="--", linewidth=1, label="HR sharpness")
    ax.set(xlabel="sharpness: high-frequency energy ratio SR/HR", ylabel="Y-PSNR (dB)",
           title=f"Perception–distortion trade-off ({set_name})")
    ax.margins(x=0.25, y=0.2)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    return viz.save_figure(fig, path, show)


def plot_training_curves(rows: list[dict], path: Path, show: bool) -> Path:
    """epoch 별 학습 L1 손실과 검증 PSNR (바이큐빅 검증 PSNR 을 가로선으로)."""
    epochs = [row["epoch"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(epochs, [row["train_loss"] for row in rows], marker="o", label="train (patches)")
    left.plot(epochs, [row["val_loss"] for row in rows], marker="o", label="validation (images)")
    left.set(xlabel="epoch", ylabel="L1 loss (Y, 0-1 scale)", title="Loss")
    right.plot(epochs, [row["val_psnr"] for row in rows], marker="o", label="SRResNet")
    right.axhline(rows[0]["val_bicubic_psnr"], color="gray", linestyle="--", label="bicubic")
    right.set(xlabel="epoch", ylabel="Y-PSNR (dB)", title="Validation PSNR")
    for ax in (left, right):
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return viz.save_figure(fig, path, show)


def visualize(models: dict, scores: dict, tests: dict, history: training.History, config: Config, device,
              out_dir: Path) -> None:
    """학습 곡선, 첫 시험 세트의 조각 비교(최대 3장), 지각–왜곡 그림."""
    plot_training_curves(history.rows, out_dir / "training_curves.png", config.show)
    key, pairs = next(iter(tests.items()))
    pairs = pairs[:3]
    outputs = {method: [super_resolve(model, pair, device) for pair in pairs]
               for method, model in models.items()}
    plot_crops(pairs, outputs, scores[key], config.scale, out_dir / "sr_crops.png", config.show)
    plot_tradeoff(scores[key], key, out_dir / "perception_distortion.png", config.show)


# %% [markdown]
# ## 6. 추론: 사진 한 장 → 가로·세로 ×scale 의 prediction.png, bicubic.png, prediction.json
# 큰 사진은 LR 타일(PREDICT_TILE 픽셀)로 나눠 키웁니다. 타일마다 수용 영역의 절반 이상을 여백(margin)으로
# 더 읽고 그 여백의 출력은 버리므로, 이어 붙인 결과는 통째로 계산한 것과 같습니다 (tests 가 확인).
# 메모리는 사진 크기가 아니라 타일 크기에 묶입니다.

# %%
@torch.no_grad()
def upscale_tiled(model: SRResNet, lr_y: torch.Tensor, device, tile: int = PREDICT_TILE) -> torch.Tensor:
    """(1, h, w) → (1, s·h, s·w). 타일 + 여백 ⌈수용 영역 / 2⌉ 으로 통째 계산과 같은 결과."""
    model.eval()
    scale, margin = model.scale, math.ceil(receptive_field(model) / 2)
    _, height, width = lr_y.shape
    out = torch.zeros(1, height * scale, width * scale)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            y0, x0 = max(top - margin, 0), max(left - margin, 0)  # 여백을 붙인 읽기 창
            y1, x1 = min(top + tile + margin, height), min(left + tile + margin, width)
            sr = model(lr_y[None, :, y0:y1, x0:x1].to(device))[0].cpu()  # (1, s·(y1−y0), s·(x1−x0))
            bottom, right = min(top + tile, height), min(left + tile, width)
            out[:, top * scale:bottom * scale, left * scale:right * scale] = \
                sr[:, (top - y0) * scale:(bottom - y0) * scale, (left - x0) * scale:(right - x0) * scale]
    return out.clamp(0, 1)


def predict(config: Config, device, out_dir: Path) -> dict:
    """체크포인트를 먼저 읽고(없거나 깨졌으면 한 줄), 입력을 확인한 뒤 Y 는 모델로, 색은 바이큐빅으로 키움."""
    name = "best.pt" if config.predict_model == "psnr" else "srgan.pt"
    model, checkpoint = training.load_trained_model(out_dir / name, build_model, config, device,
                                                    purpose="predict")
    path = Path(config.predict)
    if not path.exists():
        raise UserError(f"--predict 파일 {path} 가 없습니다.")
    if path.is_dir():
        raise UserError(f"--predict {path} 는 폴더입니다. 이미지 파일 하나를 주세요.")
    picture = superres.read_rgb(path)  # 회색조·RGBA 는 RGB 로 바꿈, 이미지가 아니면 한 줄 오류
    field = math.ceil(receptive_field(model))
    if min(picture.size) < field:
        raise UserError(f"--predict 이미지 {path} 가 {picture.width}x{picture.height} 로 모델의 수용 영역 "
                        f"({field} 픽셀)보다 작습니다: 출력 픽셀이 대부분 패딩을 보게 됩니다.")
    if picture.width * picture.height > MAX_PREDICT_PIXELS:
        raise UserError(f"--predict 이미지 {path} 가 {picture.width}x{picture.height} 로 너무 큽니다 "
                        f"(가로×세로 {MAX_PREDICT_PIXELS:,} 픽셀 이하로 잘라 주세요).")
    scale = model.scale
    bicubic = bicubic_resize(picture, picture.width * scale, picture.height * scale)
    sr_y = upscale_tiled(model, y_channel(picture), device)
    prediction_path, bicubic_path = out_dir / "prediction.png", out_dir / "bicubic.png"
    Image.fromarray(to_rgb(sr_y, bicubic)).save(prediction_path)
    bicubic.save(bicubic_path)
    result = {"input": str(path), "model": config.predict_model, "checkpoint": name, "scale": scale,
              "input_size": [picture.width, picture.height], "output_size": [bicubic.width, bicubic.height],
              "tiles": math.ceil(picture.width / PREDICT_TILE) * math.ceil(picture.height / PREDICT_TILE),
              "prediction": str(prediction_path), "bicubic": str(bicubic_path),
              "trained_on": checkpoint["extra"]["data"]}
    (out_dir / "prediction.json").write_text(json.dumps(result, indent=2, ensure_ascii=False),
                                             encoding="utf-8")
    print(f"{path} ({picture.width}x{picture.height}) → {prediction_path} ({bicubic.width}x{bicubic.height}, "
          f"{config.predict_model} 모델 ×{scale}), 비교용 {bicubic_path}")
    return result


# %% [markdown]
# ## 부록 1. SRCNN: 같은 데이터, 바이큐빅 입력, MSE 손실 (논문과 같음)
# 자기 시드로 초기화하고 자기 generator 로 패치를 뽑아, 본 학습이 몇 번 끊겼든 같은 숫자를 냅니다.
# 끝나면 srcnn.pt (같은 체크포인트 형식): --resume 때 같은 설정의 것이 있으면 다시 학습하지 않습니다.

# %%
def finished_checkpoint(path: Path, config: Config, data_name: str) -> dict | None:
    """--resume 이고 같은 설정·데이터로 끝난 체크포인트가 있으면 그 dict, 아니면 None (다시 학습)."""
    if not (config.resume and path.exists()):
        return None
    saved = training.load_checkpoint(path, config, purpose="resume")
    differences = training.setting_differences(saved["config"], asdict(config), config.resume_free)
    return saved if not differences and saved["extra"].get("data") == data_name else None


def train_srcnn(config: Config, train: list[Pair], val: list[Pair], device, out_dir: Path,
                data_name: str) -> SRCNN:
    """SRCNN 을 srcnn_steps 걸음 학습해 srcnn.pt 로 저장 (또는 --resume 이면 저장된 것을 읽음)."""
    path, model_args = out_dir / "srcnn.pt", {"n1": 64, "n2": 32}
    saved = finished_checkpoint(path, config, data_name)
    if saved is not None:
        print(f"[SRCNN] {path} 가 이미 있어 학습을 건너뜁니다.")
        return training.load_trained_model(path, build_srcnn, config, device, purpose="resume")[0]
    seed = config.seed + SEED_OFFSETS["srcnn"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_srcnn(**model_args).to(device)
    patch = config.srcnn_patch_size
    steps = 1 if config.smoke else config.srcnn_steps
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    print(f"[SRCNN] 9-5-5, 파라미터 {sum(p.numel() for p in model.parameters()):,}개, 수용 영역 "
          f"{receptive_field(model):.0f} HR 픽셀, {steps:,}걸음 × {config.batch_size} 패치 ({patch} 픽셀)")
    loss = train_one_epoch(model, [p.bicubic_y for p in train], [p.hr_y for p in train], optimizer, scheduler,
                           device, 1, steps=steps, batch_size=config.batch_size, patch_size=patch, ratio=1,
                           generator=torch.Generator().manual_seed(seed), loss_fn=F.mse_loss, desc="srcnn")
    val_psnr = evaluate(model, val, device, scale=config.scale, full=False)["psnr"]
    print(f"[SRCNN] 학습 MSE {loss:.5f}, 검증 PSNR {val_psnr:.2f} dB")
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    training.save_checkpoint(path, training.make_checkpoint(config, model_args, state, 1, val_psnr,
                                                            extra={"data": data_name}))
    return model


# %% [markdown]
# ## 부록 2. SRGAN: 같은 생성기를 적대 손실로 미세 조정
# 판별기(discriminator)는 논문의 모양을 1/4 폭으로: Conv 3x3 + LeakyReLU(0.2), 그다음 [Conv(스트라이드
# 2와 1 번갈아) + BN + LeakyReLU] 일곱 번(채널 16→16→32→32→64→64→128→128), 마지막은 논문의 Dense(1024)
# 대신 전역 평균 풀링 + Dense 256 + Dense 1 (패치 크기에 묶이지 않게). 출력은 확률이 아니라 로짓.
#
# (1) D 갱신: maximize log D(HR) + log(1 − D(G(LR)))
# (2) G 갱신: minimize pixel_weight·L1(SR, HR) + feature_weight·Σ‖φ(SR) − φ(HR)‖²
#                     + adversarial_weight·(−log D(SR))        (비포화 적대 손실)
#
# 논문의 내용 손실(content loss)은 ImageNet 으로 학습한 VGG19 의 특징 φ5,4 사이의 거리입니다: 픽셀
# 하나하나가 아니라 '결이 비슷한가'를 재므로, 평균으로 뭉갠 흐린 답을 벌합니다. 그 가중치(548 MB)는
# 오프라인에서 쓸 수 없어, 여기서는 판별기 자신의 중간 특징(3·5·7 번째 블록)을 φ 로 씁니다 (특징 맞추기
# feature matching, Salimans 2016): 판별기는 진짜와 가짜를 가르는 특징을 배우므로, 그 특징이 HR 과
# 같아지게 하면 G 는 판별기가 '가짜 같다'고 보는 흐림을 없애는 쪽으로 움직입니다. 대신 판별기와 함께
# 특징도 움직이므로 VGG 보다 덜 안정적입니다 — 작은 L1 항이 색과 위치를 붙잡아 둡니다.
#
# 세 가중치는 어떻게 고르나: 시험 세트(Set5/Set14)를 보며 고르면 시험 점수가 그 고르기에 맞춰져 부풀려집니다
# (시험 세트 누수, test-set leakage). 그래서 본 모델의 best.pt 를 고를 때와 같은 검증 사진(T91 에서 떼어 둔
# 9장)만 보고, 숫자를 보기 전에 정한 규칙으로 고릅니다 (choose_gan_weights):
# 1) 자격: 검증 PSNR 이 바이큐빅과 본 모델의 가운데 이상 (학습으로 번 PSNR 의 절반 이상을 지킴)이고
#    검증 선명도가 본 모델보다 높음 (적대 손실이 실제로 결을 더함).
# 2) 자격이 있는 후보 중 선명도가 HR 에 가장 가까운 것: |ln 선명도| 가 가장 작음. 선명도 1 을 넘으면
#    HR 보다 많은 '결' = 지어낸 잡음이라, 모자란 쪽과 넘치는 쪽을 로그 눈금에서 똑같이 벌합니다.
# 후보는 넷 (예전에 Set5 로 골랐던 값과 그 둘레: 적대 가중치 작게·크게, 픽셀 닻 약하게). 학습 길이
# (gan_epochs 4)와 학습률(1e-4, 논문)은 고정 — 시간 예산과 논문에서 정했고 어느 데이터로도 고르지 않았습니다.

# %%
# 후보 (적대, 특징, 픽셀 가중치) → 검증 (T91 9장, ×4) Y-PSNR, 선명도. 시드 42, 기본 설정의 best.pt 에서
# 시작해 gan_epochs 4 (288걸음), CPU 1 스레드. 한 줄이 `--adversarial-weight a --feature-weight f
# --pixel-weight p` 실행의 metrics.json 값 val_srgan_psnr, val_sharpness_srgan 과 같음.
# 기준: 바이큐빅 28.12 dB / 0.020, 본 모델 29.86 dB / 0.105 → 자격선 (28.12 + 29.86) / 2 = 28.99 dB.
GAN_VALIDATION_REFERENCE = {"bicubic_psnr": 28.1165, "psnr_model_psnr": 29.8602,
                            "psnr_model_sharpness": 0.1046}
GAN_WEIGHT_CANDIDATES = {  # (adversarial, feature, pixel): (val PSNR dB, val sharpness)
    (1e-3, 1e-2, 1.0): (29.4376, 0.2355),  # 논문의 적대 가중치: 자격 있음, 결이 적음 (|ln| 1.45)
    (5e-3, 1e-2, 1.0): (29.0459, 0.3709),  # 자격 있음, |ln| 0.99 → 고름 (Config 기본값)
    (2e-2, 1e-2, 1.0): (28.8323, 0.4152),  # 선 아래: 번 PSNR 의 절반 넘게 내줌
    (5e-3, 1e-2, 0.3): (28.7094, 0.4386),  # 선 아래: 픽셀 닻이 약해 PSNR 이 더 떨어짐
}


def choose_gan_weights(candidates: dict, bicubic_psnr: float, psnr_model_psnr: float,
                       psnr_model_sharpness: float) -> tuple[float, float, float] | None:
    """위 규칙 1)·2): {(적대, 특징, 픽셀): (검증 PSNR, 검증 선명도)} → 고른 가중치 (자격 없으면 None)."""
    floor = (bicubic_psnr + psnr_model_psnr) / 2  # 학습으로 번 PSNR 의 절반을 지키는 선
    eligible = {weights: sharp for weights, (val_psnr, sharp) in candidates.items()
                if val_psnr >= floor and sharp > psnr_model_sharpness}
    return min(eligible, key=lambda weights: abs(math.log(eligible[weights])), default=None)


class Discriminator(nn.Module):
    """HR 또는 SR 패치 (B, 1, P, P) → 로짓 (B,). features(x) 는 중간 특징 목록 (특징 손실용)."""

    FEATURE_BLOCKS = (3, 5, 7)  # 특징 손실에 쓰는 블록 (1/4, 1/8, 1/16 해상도)

    def __init__(self, base: int = 16):
        super().__init__()
        channels = [base, base, 2 * base, 2 * base, 4 * base, 4 * base, 8 * base, 8 * base]
        self.stem = nn.Sequential(nn.Conv2d(1, base, 3, padding=1), nn.LeakyReLU(0.2))  # (B, 16, P, P)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels[i], channels[i + 1], 3, stride=2 - i % 2, padding=1),
                          nn.BatchNorm2d(channels[i + 1]), nn.LeakyReLU(0.2))
            for i in range(7))  # 스트라이드 2, 1, 2, 1, 2, 1, 2 → (B, 128, P/16, P/16)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels[-1], 256),
                                  nn.LeakyReLU(0.2), nn.Linear(256, 1))  # (B, 1)

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        collected, x = [], self.stem(x)
        for index, block in enumerate(self.blocks, start=1):
            x = block(x)
            if index in self.FEATURE_BLOCKS:
                collected.append(x)
        return collected, self.head(x).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[1]


def generator_gan_loss(discriminator: Discriminator, sr: torch.Tensor, hr: torch.Tensor,
                       config: Config) -> dict:
    """(2) 의 세 항과 합계. 특징은 HR 쪽을 detach: G 만 움직이고 D 는 이 걸음에서 그대로."""
    real_features, _ = discriminator.features(hr)
    fake_features, fake_logits = discriminator.features(sr)
    terms = {"pixel": F.l1_loss(sr, hr),
             "feature": sum(F.mse_loss(f, r.detach()) for f, r in zip(fake_features, real_features)),
             "adversarial": F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))}
    terms["total"] = (config.pixel_weight * terms["pixel"] + config.feature_weight * terms["feature"]
                      + config.adversarial_weight * terms["adversarial"])
    return terms


def finetune_srgan(config: Config, train: list[Pair], out_dir: Path, device, data_name: str) -> SRResNet:
    """best.pt 의 생성기를 gan_epochs 만큼 SRGAN 으로 미세 조정해 srgan.pt 로 (--resume 이면 건너뜀)."""
    path = out_dir / "srgan.pt"
    if finished_checkpoint(path, config, data_name) is not None:
        print(f"[SRGAN] {path} 가 이미 있어 미세 조정을 건너뜁니다.")
        return training.load_trained_model(path, build_model, config, device, purpose="resume")[0]
    generator, best = training.load_trained_model(out_dir / "best.pt", build_model, config, device,
                                                  purpose="test")
    seed = config.seed + SEED_OFFSETS["srgan"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        discriminator = Discriminator().to(device)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=config.gan_lr)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=config.gan_lr)
    patch = config.patch_size // config.scale * config.scale
    steps = 1 if config.smoke else config.gan_epochs * steps_per_epoch(train, patch, config.batch_size)
    generator.train(), discriminator.train()
    patches = torch.Generator().manual_seed(seed)
    sums = dict.fromkeys(("d_loss", "d_real", "d_fake", "pixel", "feature", "adversarial"), 0.0)
    for step in training.progress(range(steps), desc="srgan"):
        lr_batch, hr_batch = superres.random_patches([p.hr_y for p in train], [p.lr_y for p in train],
                                                     config.batch_size, patch, config.scale, patches)
        lr_batch, hr_batch = lr_batch.to(device), hr_batch.to(device)
        sr = generator(lr_batch)  # (B, 1, P, P)
        # (1) D 갱신: maximize log D(HR) + log(1 − D(SR)); SR 은 detach (이 걸음에서 G 는 그대로)
        real_logits, fake_logits = discriminator(hr_batch), discriminator(sr.detach())
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        # (2) G 갱신: 픽셀 + 특징 + 적대(비포화 −log D(SR))
        terms = generator_gan_loss(discriminator, sr, hr_batch, config)
        training.check_finite(terms["total"] + d_loss, 1, step)
        g_optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        g_optimizer.step()
        for key, value in (("d_loss", d_loss), ("d_real", real_logits.sigmoid().mean()),
                           ("d_fake", fake_logits.sigmoid().mean()), *((k, terms[k]) for k in
                                                                     ("pixel", "feature", "adversarial"))):
            sums[key] += value.item() / steps
    print("[SRGAN] " + f"{steps:,}걸음 평균: " + ", ".join(f"{k} {v:.4f}" for k, v in sums.items()))
    state = {"model": generator, "optimizer": g_optimizer, "scheduler": None}
    saved = training.make_checkpoint(config, best["model_args"], state, 1, best["best"],
                                     extra={"data": data_name, **sums})
    training.save_checkpoint(path, saved)
    return generator.eval()


# %% [markdown]
# ## main: 데이터 → 모델 → 학습 → 평가 → 시각화 → (부록)

# %%
def main(config: Config) -> dict:
    started = time.perf_counter()
    device, out_dir = pick_device(config.device), Path(config.out_dir)
    if config.predict:
        return predict(config, device, out_dir)

    # 1. 데이터 (입력 확인이 학습보다 먼저) -------------------------------------------------
    train, val, tests, data_name = prepare_data(config)
    patch = config.patch_size // config.scale * config.scale  # HR 패치 한 변: scale 의 배수
    epochs = min(config.epochs, 3) if config.smoke else config.epochs
    steps = 1 if config.smoke else steps_per_epoch(train, patch, config.batch_size)
    inputs, targets = [p.lr_y for p in train], [p.hr_y for p in train]

    # 2. 모델과 최적화기: 시드 → SRResNet(model_args) → Adam + 코사인 일정 --------------------------
    model_args, model, optimizer, scheduler = prepare_model(config, device, epochs * steps)
    print_budget(model, train, config, steps, epochs, device)
    patches = torch.Generator().manual_seed(config.seed)  # 패치 뽑기 난수: 체크포인트에 저장

    # 3. 학습 (best.pt 는 검증 PSNR 이 가장 높은 epoch) ---------------------------------------
    history = training.History(out_dir / "history.csv")
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    extra = {"data": data_name}
    checkpoint = lambda epoch, best: training.make_checkpoint(
        config, model_args, state, epoch, best, generators=[patches], history=history, extra=extra)
    start_epoch, best = training.resume_or_start(config, checkpoint, state, generators=[patches],
                                                 history=history, best=-math.inf)
    val_bicubic = evaluate(None, val, device, scale=config.scale, full=False)
    train_started = time.perf_counter()
    try:
        for epoch in range(start_epoch, epochs + 1):
            train_loss = train_one_epoch(model, inputs, targets, optimizer, scheduler, device, epoch,
                                         steps=steps, batch_size=config.batch_size, patch_size=patch,
                                         ratio=config.scale, generator=patches)
            val_scores = evaluate(model, val, device, scale=config.scale, full=False)
            history.log(epoch=epoch, train_loss=train_loss, val_loss=val_scores["loss"],
                        val_psnr=val_scores["psnr"], val_bicubic_psnr=val_bicubic["psnr"])
            if val_scores["psnr"] > best:  # 검증 Y-PSNR (dB), 클수록 좋음
                best = val_scores["psnr"]
                training.save_checkpoint(out_dir / "best.pt", checkpoint(epoch, best))
            training.save_checkpoint(out_dir / "last.pt", checkpoint(epoch, best))
            if training.early_stop(history, "val_psnr", config.patience):
                break
    except KeyboardInterrupt:
        print("\n중단: --resume 을 붙여 다시 실행하면 마지막으로 끝난 epoch 다음부터 이어집니다")
        raise SystemExit(130) from None
    train_seconds = time.perf_counter() - train_started
    model, _ = training.load_trained_model(out_dir / "best.pt", build_model, config, device, purpose="test")

    # 부록 1·2: SRCNN (같은 데이터), SRGAN (best.pt 에서 미세 조정). 각자 자기 난수, 끝나면 .pt 로 저장
    models, seconds = run_appendices(config, model, train, val, device, out_dir, data_name)

    # 4. 평가: 검증 (SRGAN 가중치를 고르는 근거) → 시험 세트 (여기서만) → 5. 시각화 -------------------
    validation = evaluate_all(models, {"val": val}, device, config.scale)["val"]
    report_validation(validation)
    scores = evaluate_all(models, tests, device, config.scale)
    report(scores)
    visualize(models, scores, tests, history, config, device, out_dir)
    return summarize(config, out_dir, device, data_name, model, scores, validation, best,
                     {"train_seconds": train_seconds, **seconds}, started)


def run_appendices(config: Config, model, train, val, device, out_dir: Path, data_name: str) -> tuple:
    """({이름: 모델 또는 None} 을 표의 순서대로, {부록: 걸린 초}). --no-srcnn, --no-srgan 이면 건너뜀."""
    models, seconds = {"bicubic": None}, {}
    if config.srcnn:
        started = time.perf_counter()
        models["srcnn"] = train_srcnn(config, train, val, device, out_dir, data_name)
        seconds["srcnn_seconds"] = time.perf_counter() - started
    models["psnr"] = model
    if config.srgan:
        started = time.perf_counter()
        models["srgan"] = finetune_srgan(config, train, out_dir, device, data_name)
        seconds["srgan_seconds"] = time.perf_counter() - started
    return models, seconds


def summarize(config: Config, out_dir: Path, device, data_name: str, model, scores: dict, validation: dict,
              best: float, seconds: dict, started: float) -> dict:
    """metrics.json (지표, 파라미터 수, 걸린 시간, 설정)을 쓰고 지표 dict 를 돌려줍니다."""
    metrics = collect_metrics(scores, validation, best)
    headline = f"{next(iter(scores))}_psnr"  # 첫 시험 세트(Set5 또는 held-out)의 본 모델
    write_run_record(out_dir, script=config.chapter + ".py", config=config, data=data_name, device=device,
                     seconds=time.perf_counter() - started, metrics=metrics, headline=headline,
                     parameters=sum(p.numel() for p in model.parameters()),
                     timing={k: round(v, 2) for k, v in seconds.items()})
    return metrics


def collect_metrics(scores: dict, validation: dict, best_val_psnr: float) -> dict:
    """metrics.json 의 숫자 (이름은 tests 와 benchmarks 가 읽는 약속).

    검증: val_psnr (best.pt 의 검증 PSNR), val_{bicubic,srcnn,srgan}_psnr,
    val_sharpness_{bicubic,srcnn,psnr_model,srgan} — SRGAN 가중치를 고르는 숫자 (부록 2).
    시험 세트마다 {세트}_psnr (본 모델), {세트}_{bicubic,srcnn,srgan}_psnr, SSIM, 이미지마다의 PSNR;
    첫 세트(Set5 또는 held-out)의 선명도 sharpness_{bicubic,srcnn,psnr_model,srgan}.
    """
    metrics = {"val_psnr": round(best_val_psnr, 4)}
    for method, result in validation.items():
        if method != "psnr":  # 본 모델의 검증 PSNR 은 위의 val_psnr (같은 best.pt, 같은 사진)
            metrics[f"val_{method}_psnr"] = round(result["psnr"], 4)
        name = "psnr_model" if method == "psnr" else method
        metrics[f"val_sharpness_{name}"] = round(result["sharpness"], 4)
    for key, by_method in scores.items():
        for method, result in by_method.items():
            prefix = key if method == "psnr" else f"{key}_{method}"
            metrics[f"{prefix}_psnr"] = round(result["psnr"], 4)
            metrics[f"{prefix}_ssim"] = round(result["ssim"], 5)
            for name, value in result["per_image"].items():
                metrics[f"{key}_{name}_{'psnr_model' if method == 'psnr' else method}_psnr"] = round(value, 4)
        metrics[f"{key}_psnr_gain"] = round(by_method["psnr"]["psnr"] - by_method["bicubic"]["psnr"], 4)
    first = next(iter(scores.values()))
    for method, result in first.items():
        metrics[f"sharpness_{'psnr_model' if method == 'psnr' else method}"] = round(result["sharpness"], 4)
    return metrics


if __name__ == "__main__":
    run(main, Config)
