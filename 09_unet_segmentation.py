"""09장. U-Net 으로 이미지 분할(segmentation)하기: 인코더–디코더, 건너뛰기 연결, Dice/IoU.

학습 목표
    - 분류(classification: 이미지에 이름표 하나), 검출(detection: 상자들), 분할(segmentation:
      픽셀마다 이름표)의 차이를 출력 모양으로 이해한다.
    - U-Net 을 작은 부품(두 번 합성곱 double conv, 내려가기 down, 올라가기 up + 이어 붙이기
      concatenation, 마지막 1x1 합성곱)으로 만들고 모든 층의 모양(shape)을 따라간다.
    - 전치 합성곱(transposed convolution)의 출력 크기를 공식과 손 계산 예제로 확인한다.
    - 건너뛰기 연결(skip connection)을 뺀 같은 망(`--no-skip`, 오토인코더 AutoEncoder 모양)과
      같은 데이터·같은 예산으로 비교해, 왜 내려갔다 올라오기만 하는 망은 경계가 흐려지는지 본다.
    - 손실 BCE + Dice 와, 전경이 작을 때 Dice 가 왜 도움이 되는지 숫자로 본다.
    - IoU, Dice, 픽셀 정확도(pixel accuracy)를 이미지마다(평균)와 데이터 전체로 각각 계산하고
      둘이 왜 다른지 본다. 민감도·특이도·ROC-AUC 까지 (망막 혈관 분할 논문들이 보고하는 값).
    - 내 사진 폴더(예: 망막 혈관 999×960)는 줄이지 않고 원래 해상도로: 무작위 패치로 학습하고,
      사진 전체를 겹치는 조각(tile)으로 예측해 가중 평균으로 이어 붙인다. 학습 길이는 epoch 이
      아니라 '본 패치 수'(예산)로 정하고, 기준선과 같은 점수면 경고한다.

핵심 개념
    인코더(encoder)–병목(bottleneck)–디코더(decoder), 전치 합성곱 출력 크기
    (n−1)·s − 2p + k + output_padding, 채널 방향 이어 붙이기(torch.cat(dim=1)), 1x1 합성곱 = 픽셀별
    분류기, 로짓(logit)과 시그모이드(sigmoid), 소프트 Dice 손실, IoU = |A∩B| / |A∪B|,
    Dice = 2|A∩B| / (|A|+|B|), 경계 IoU(boundary IoU), 16의 배수가 아닌 입력의 패딩(padding),
    패치 학습(patch training)과 조각 예측(tiled inference), 국소 대비 정규화(local contrast
    normalisation), 시야 마스크(field of view), 조기 종료(early stopping), '전부 배경/전경' 기준선.

실행 방법
    python 09_unet_segmentation.py                      # 기본: 실제 데이터가 없으면 오프라인 도형
    python 09_unet_segmentation.py --data offline       # 네트워크 없이: 무늬 배경 위 겹치는 도형
    python 09_unet_segmentation.py --no-skip            # 건너뛰기 연결 없는 같은 망 (부록은 skip 망과 비교)
    python 09_unet_segmentation.py --no-compare         # 부록의 비교 학습 생략 (시간 절반)
    python 09_unet_segmentation.py --smoke              # 배치 하나로 전체 흐름만 확인 (몇 초)
    python 09_unet_segmentation.py --data real          # Oxford-IIIT Pet (data/oxford-iiit-pet, 공식 test)
    python 09_unet_segmentation.py --data-dir my_cells/ # 내 데이터: my_cells/images/ + my_cells/masks/
                                                        # (같은 이름, 마스크는 0/255 또는 0/1 두 값)
        선택: my_cells/fov/ (또는 mask_fov/) 에 시야 마스크 (같은 이름, <이름>_mask, <이름>_fov; 값 > 0 = 안)
        → 지표는 시야 안 픽셀로만 (DRIVE 의 mask/ 폴더를 fov/ 로). 내 폴더는 원래 해상도 그대로:
        --patch-size 64 패치로 학습, 256 조각으로 예측. 학습 길이는 --train-images (본 패치 수, 0 = 자동:
        절차적 기본 실행 전체와 같은 일)로 정해 시작 전에 한 줄로 알림; --epochs N 이면 정확히 N 바퀴.
    python 09_unet_segmentation.py --data-dir ../shared/data/chasedb1   # 망막 혈관 28장 (아래 결과)
    python 09_unet_segmentation.py --predict photo.jpg  # best.pt 로 마스크 + 겹친 그림 + prediction.json
                                                        # (원래 해상도로 배운 모델은 큰 사진도 원래 크기로)
    python 09_unet_segmentation.py --resume             # 중단된 학습 이어하기
    GPU 에서 크게 (Oxford-IIIT Pet, 강의와 같은 폭 64):
    python 09_unet_segmentation.py --data real --device cuda --width 64 --image-size 160 \\
        --epochs 30 --batch-size 32

기대 결과
    [results] benchmarks/run_all.py 가 results.json 에서 옮겨 씀: 중앙값 (최소–최대)
    - `--data offline` · procedural shapes (offline) · cpu · seeds 42, 43, 44
      test_iou 0.9941 (0.9912–0.9954) · test_dice 0.9971 (0.9956–0.9977)
      test_pixel_accuracy 0.9994 (0.9991–0.9995) · test_iou_per_image 0.9942 (0.9909–0.9956)
      no_skip_test_iou 0.6486 (0.6379–0.6556) · compare_seconds 114.9 (110.7–115.8)
      train_seconds 147 (145–149.7) · wall 274 (267–277) s · peak 1.30 GB
      기계: Intel(R) Xeon(R) Processor, 2 cores (2 torch threads), GPU: none, torch 2.14.1+cu130
    - `--data real --data-dir ../shared/data/chasedb1`
      mask folder ../shared/data/chasedb1 (real, native resolution) · cpu · seeds 42, 43, 44
      test_iou 0.6365 (0.6261–0.6377) · test_dice 0.7779 (0.77–0.7787)
      test_pixel_accuracy 0.9694 (0.9688–0.9699) · test_iou_per_image 0.6335 (0.6228–0.6362)
      test_auc 0.9735 (0.9725–0.9749) · test_sensitivity 0.7929 (0.7666–0.8)
      test_specificity 0.9816 (0.9812–0.985) · train_dice 0.7816 (0.7733–0.798) · test_images 4
      train_seconds 401 (380.7–404.2) · wall 430 (408–434) s · peak 1.55 GB
      기계: AMD EPYC, 2 cores (2 torch threads), GPU: none, torch 2.14.1+cu130
    [/results]
    그 밖의 숫자는 이 장을 쓸 때 잰 값입니다 (조건을 함께 적음). 위 블록의 벽시계는 항목마다 적힌
    기계·torch 스레드 수로 잰 것입니다 (1 스레드 항목은 2코어에서 다른 측정과 나란히 돈 실행).
    아래는 개발 중에 잰 값입니다 (2코어 CPU 를 다른 학습 여러 개와 나눠 쓰는 중, OMP_NUM_THREADS=1,
    시드 42).
    오프라인 도형, skip U-Net (폭 16, 8 epoch 코사인 일정으로 잰 곡선): 검증 IoU (데이터 전체)
        epoch 1→6: 0.816, 0.936, 0.987, 0.994, 0.996, 0.997 (기본 6 epoch 는 미측정, 0.95 이상 예상).
    no-skip 망 (기본 6 epoch 코사인 일정, 따로 돌린 --no-skip --no-compare): 검증 IoU
        epoch 1→6: 0.434, 0.505, 0.587, 0.606, 0.639, 0.647; 시험 IoU 0.649 (이미지 평균 0.644),
        Dice 0.787, 픽셀 정확도 0.956 ('전부 배경' 0.899), 경계 IoU 0.509 — skip 망보다 30점 넘게 낮음.
    학습 속도 (조용할 때, 1 스레드, 배치 32, 64x64): skip 약 71, no-skip 약 83 images/s →
        2스레드 1.6~1.8배로 잡으면 기본 실행(두 망 × 6 epoch × 3,000장)은 약 5분 (추정, 미측정).
    내 폴더, 원래 해상도 — 망막 혈관 CHASE_DB1 (28장 999×960, 혈관 7%; 이 세션의 측정, 시드 42,
    OMP_NUM_THREADS=1, 2코어를 다른 학습 여럿과 나눠 쓰는 중: 부하 평균 약 8):
    python 09_unet_segmentation.py --data-dir ../shared/data/chasedb1
        분할(사진 단위, 시드 42): 학습 22, 검증 2, 시험 4장 — 시험 숫자는 사진 4장에 기댑니다.
        예산 22장 × 96패치 × 18바퀴 ≈ 38,000 패치 (64x64), 국소 대비 정규화, 검증에서 고른 문턱값
        (로짓 −0.28 = 확률 0.43). best.pt = 18바퀴 중 검증 IoU 가 가장 높았던 15바퀴째.
        | 데이터 전체 | Dice | IoU | 민감도 | 특이도 | ROC-AUC |
        | 학습 4장 | 0.780 | 0.639 | 0.782 | 0.984 | 0.977 |
        | 시험 4장 | 0.777 | 0.635 | 0.784 | 0.983 | 0.973 |
        시험 사진마다 Dice 0.749–0.821 (이미지 평균 0.774). 시야 마스크가 없어 특이도·AUC 에는 검은
        테두리가 들어 있습니다. 학습 ≈ 시험: 과적합이 아니라 예산이 모자란 쪽 (GPU 에서 수백 epoch 의
        공개 U-Net 은 Dice/F1 0.80~0.82).
        걸린 시간 1,820초 (약 30분; 위 부하 아래 1스레드, CPU 시간 약 13분 추정).
        조용한 2코어(2 스레드)에서는 7분 안팎, 시드 3개 모두 Dice 0.77 이상: 위 블록.
        같은 설정에 예산만 18,000 패치: 시험 Dice 0.758, IoU 0.610, AUC 0.977 (1,470초 + 문턱값 단계).
        국소 대비 정규화 없이는 같은 6바퀴(사진당 48패치) 뒤 검증 IoU 0.43 (있으면 0.49); 64x64 로 줄여
        배우던 예전 방식은 비슷한 DRIVE 폴더에서 시험 IoU 0.012 (전부 배경, 이슈 21).
"""

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

from utils import training  # 학습 뼈대: training.resume_or_start, .save_checkpoint, .History, …
from utils import visualization as viz  # 그림 저장은 이 장의 주제가 아니라 모듈 하나로 (viz.save_figure)
from utils.data import segmentation  # 데이터 읽기: segmentation.load_segmentation_data, .read_rgb, …
from utils.models import conv_bn_relu
from utils.runtime import RunConfig, UserError, pick_device, run, set_seed, write_run_record

# 모양 글자(shape letters): B=배치, C=채널, H=높이, W=너비, K=클래스(여기서는 전경 하나라 1)
THRESHOLD_LOGIT = 0.0  # 로짓 > 0 ⇔ 시그모이드 확률 > 0.5 → 전경
BOUNDARY_WIDTH = 2  # 경계 IoU 를 잴 때 윤곽선 안쪽 띠의 두께 (픽셀)
FIGURE_EXAMPLES = 6  # 겹친 그림(overlay)에 보일 시험 이미지 수 (원래 해상도 사진은 3장)
TILE_SIZE = 256  # 큰 사진은 이 크기의 겹치는 조각(tile)으로 나눠 예측 (메모리가 사진 크기와 무관해짐)
TILE_OVERLAP = 32  # 이웃 조각이 적어도 이만큼 겹침: 조각 가장자리(패딩 영향)는 가중치를 낮춰 섞음
TRAIN_EVAL_IMAGES = {"native": 4, "fixed": 500}  # 학습 지표를 잴 학습 이미지 수 (시험 지표와 나란히)
# 학습 예산의 자동값. 원래 해상도 폴더는 절차적 기본 실행 전체의 일과 같음: skip 망 3,000장 × 6 epoch 에
# 비교용 no-skip 망이 같은 양 (= 36,000장, 배치 32 로 약 1,100 걸음). 폴더에서는 비교 학습을 하지 않으므로
# 그 몫까지 한 모델에 씀 (CHASE_DB1: 18,000 패치면 시험 Dice 0.758, 36,000 이면 0.777)
FIXED_TRAIN_IMAGES = 3000 * 6
NATIVE_TRAIN_IMAGES = 36_000
NOISE_MARGIN = 0.05  # 시험 IoU 가 자명한 기준선 + 이 값 안이면 '배운 것이 없음' 경고 (IoU 단위)


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "09_unet_segmentation"  # 출력 폴더 outputs/<장>/, 체크포인트 주인
    resume_free: ClassVar[frozenset[str]] = RunConfig.resume_free - {"epochs"}  # 스케줄이 총 epoch 수에 묶임
    # 학습 길이는 epoch 수가 아니라 '본 이미지(패치) 수'(예산)로: 절차적 기본은 3,000장 × 6바퀴, skip 망 +
    # 비교용 no-skip 망이 조용한 2코어 CPU 에서 약 5분. --epochs N 을 주면 예산 대신 정확히 N 바퀴
    epochs: int = 0  # 0 = 학습 예산(--train-images)에서 계산
    # 학습 예산(본 이미지·패치 수). 0 = 자동: 절차적·고정 크기 FIXED_TRAIN_IMAGES (3,000장 × 6),
    # 내 폴더(원래 해상도) NATIVE_TRAIN_IMAGES 패치 (아래 patches_per_image 참고)
    train_images: int = 0
    batch_size: int = 32  # CPU 에서 빠르고 BatchNorm 통계가 안정적인 크기
    lr: float = 2e-3  # Adam 학습률: 작은 U-Net 은 1e-3~3e-3 에서 빠르고 안정적
    width: int = 16  # 첫 단계 채널 수 (단계마다 두 배: 16→32→64→128→256). 강의·원논문은 64
    depth: int = 4  # 내려가기(풀링) 횟수: 입력은 2**depth = 16 의 배수로 패딩됨
    image_size: int = 64  # 절차적 도형·Oxford Pet 의 이미지 한 변 (픽셀). 내 폴더는 원래 크기 그대로
    patch_size: int = 64  # 내 폴더: 원래 해상도에서 잘라 배우는 패치 한 변 (픽셀). 가는 혈관 + 주변 맥락
    patches_per_image: int = 96  # 내 폴더: 한 바퀴(epoch)에 사진마다 뽑는 무작위 패치 수 (바퀴마다 검증)
    max_epochs: int = 40  # 시간 상한: 사진이 적어도 바퀴 수는 이 이하 (바퀴마다 검증 사진 전체를 예측하므로)
    patience: int = 8  # 조기 종료(early stopping): 검증 IoU 가 이만큼 epoch 동안 나아지지 않으면 멈춤
    local_contrast: bool = True  # 내 폴더: 사진마다 국소 대비 정규화(CLAHE 비슷): 고르지 않은 조명을 지움
    train_size: int = 3000  # 절차적 학습 이미지 수
    val_size: int = 200  # 절차적 검증 이미지 수 (best.pt 고르기)
    test_size: int = 500  # 절차적 시험 이미지 수 (다른 seed 로 만든 처음 보는 이미지)
    val_fraction: float = 0.1  # 실제 데이터: 학습 분할에서 떼어 검증에 쓰는 비율
    dice_weight: float = 1.0  # 손실 = BCE + dice_weight × Dice 손실 (0 이면 BCE 만)
    # 플래그 이름이 --skip / --no-skip 이 되도록 긍정형 이름 (argparse 는 '--no-' 로 시작하면 False 로 읽음)
    skip: bool = True  # 건너뛰기 연결(U-Net). --no-skip: 이어 붙이기를 뺀 같은 망(오토인코더 모양)
    compare: bool = True  # 부록: 반대쪽 망(skip ↔ no-skip)도 같은 데이터·예산으로 학습해 비교
    predict: str = ""  # 이미지 파일 경로: best.pt 로 마스크와 겹친 그림만 만들고 끝냄

    def __post_init__(self):
        if self.width < 1:
            raise ValueError(f"--width 는 1 이상이어야 합니다 (받은 값: {self.width}).")
        if not 1 <= self.depth <= 6:
            raise ValueError(f"--depth 는 1 이상 6 이하여야 합니다 (받은 값: {self.depth}).")
        if not 2**self.depth <= self.image_size <= 1024:
            raise ValueError(f"--image-size 는 {2**self.depth} 이상 1024 이하여야 합니다 "
                             f"(받은 값: {self.image_size}).")
        if min(self.train_size, self.val_size, self.test_size) < 1:
            raise ValueError("--train-size, --val-size, --test-size 는 1 이상이어야 합니다.")
        if not 2**self.depth <= self.patch_size <= 1024:
            raise ValueError(f"--patch-size 는 {2**self.depth} 이상 1024 이하여야 합니다 "
                             f"(받은 값: {self.patch_size}).")
        if min(self.patches_per_image, self.max_epochs, self.patience) < 1 or self.train_images < 0:
            raise ValueError("--patches-per-image, --max-epochs, --patience 는 1 이상, --train-images 는 "
                             "0(자동) 이상이어야 합니다.")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"--val-fraction 은 0과 0.5 사이여야 합니다 (받은 값: {self.val_fraction}).")
        if self.dice_weight < 0:
            raise ValueError(f"--dice-weight 는 0 이상이어야 합니다 (받은 값: {self.dice_weight}).")


# %% [markdown]
# ## 0. 분류 · 검출 · 분할: 출력 모양이 다르다
# - 분류(classification): 이미지 (B, 3, H, W) → 클래스 점수 (B, K). 무엇이 있는가.
# - 검출(detection): → 상자 (B, 물체 수, 4 + K). 어디에 무엇이 (대충, 사각형으로).
# - 분할(segmentation): → 픽셀마다 점수 (B, K, H, W). 픽셀 하나하나가 무엇인가 — 입력과 같은 H, W.
#
# 분할 망은 그래서 '줄였다가(무엇인지 알기 위해 넓게 봄) 다시 키워야(어디인지 픽셀 단위로)' 합니다.
# 줄이는 동안 버린 위치 정보를 키우면서 되살릴 수 없다는 것이 건너뛰기 연결이 푸는 문제입니다.

# %%
def output_shapes_lesson(batch: int = 2, size: int = 64, classes: int = 3) -> dict:
    """세 과제의 출력 모양을 실제 텐서로: 분류 (B, K), 검출 (B, N, 4+K), 분할 (B, K, H, W)."""
    features = torch.randn(batch, 8, size, size)  # (B, 8, H, W): 어떤 CNN 의 특징 맵이라 치고
    classification = nn.Linear(8, classes)(features.mean(dim=(2, 3)))  # 전역 평균 → (B, K)
    boxes_per_image = 5
    detection = torch.randn(batch, boxes_per_image, 4 + classes)  # (B, N, 4+K): 상자 좌표 4개 + 점수
    segmentation = nn.Conv2d(8, classes, kernel_size=1)(features)  # 1x1 합성곱 = 픽셀별 분류기 → (B, K, H, W)
    shapes = {"classification": tuple(classification.shape), "detection": tuple(detection.shape),
              "segmentation": tuple(segmentation.shape)}
    print("[출력 모양] " + ", ".join(f"{k} {v}" for k, v in shapes.items()))
    return shapes


# %% [markdown]
# ## 1. 데이터
# 오프라인 기본은 절차적 도형입니다 (`utils/data/segmentation.py`): 줄무늬·얼룩·잡음이 있는 배경 위에
# 원·사각형·삼각형과 함께 가는 선(1~2.5 픽셀), 고리, 작은 점이 겹쳐 그려지고, 마스크는 그린 것과
# 같은 기하 조건으로 만든 정확한 정답입니다. 가는 도형은 경계가 곧 도형 전체라서, 위치 정보를
# 잃는 망과 잃지 않는 망의 차이가 크게 드러납니다.
# 이미지는 uint8 로 메모리에 두고(float32 의 1/4) 배치마다 정규화합니다.
#
# 내 폴더(`--data-dir my_folder`, images/ + masks/ [+ fov/])는 **원래 해상도 그대로** 씁니다. 망막
# 사진의 혈관은 1~3 픽셀 굵기라 999×960 사진을 64×64 로 줄이면 혈관이 사라지고, 모델은 '전부 배경'
# (픽셀 정확도 0.91!)을 배웁니다. 그래서 학습은 원래 해상도에서 잘라 낸 작은 패치(patch)로,
# 예측은 사진 전체를 겹치는 조각(tile)으로 나눠 하고 이어 붙입니다 (orobix retina-unet 의 방식).

# %%
def channel_stats(images) -> tuple[torch.Tensor, torch.Tensor]:
    """학습 이미지 (N, 3, H, W) uint8 (또는 크기가 제각각인 (3, H, W) 들의 목록)의 채널별 평균·표준편차
    (0~1 밝기 단위), 각각 (3,)."""
    if isinstance(images, torch.Tensor):
        pixels = images.float().div(255).transpose(0, 1).reshape(3, -1)  # (3, N·H·W)
        return pixels.mean(dim=1), pixels.std(dim=1)
    sums = torch.zeros(3, dtype=torch.float64)  # 큰 사진 여러 장: 합과 제곱합만 모아 메모리를 아낌
    squares, count = torch.zeros(3, dtype=torch.float64), 0
    for image in images:
        pixels = image.double().div(255).reshape(3, -1)  # (3, H·W)
        sums, squares, count = sums + pixels.sum(1), squares + pixels.square().sum(1), count + pixels.shape[1]
    mean = sums / count
    return mean.float(), (squares / count - mean.square()).clamp(min=1e-12).sqrt().float()


def to_input(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, device) -> torch.Tensor:
    """(B, 3, H, W) uint8 → 정규화한 float (B, 3, H, W): 채널마다 평균 0, 표준편차 1 근처."""
    x = images.to(device).float().div(255)
    return (x - mean.to(device)[None, :, None, None]) / std.to(device)[None, :, None, None]


def flip_batch(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> tuple:
    """이미지와 마스크를 '같이' 뒤집는 증강(augmentation): 좌우·상하 뒤집기 각각 절반 확률.

    분할에서는 이미지만 뒤집으면 정답이 틀려집니다. 마스크도 같은 변환을 받아야 합니다.
    난수는 넘겨받은 generator 에서: 체크포인트에 그 상태가 저장되어 이어하기가 같은 숫자를 냅니다.
    """
    if torch.rand((), generator=generator) < 0.5:
        images, masks = images.flip(-1), masks.flip(-1)  # 좌우 (W 축)
    if torch.rand((), generator=generator) < 0.5:
        images, masks = images.flip(-2), masks.flip(-2)  # 상하 (H 축)
    return images, masks


CONTRAST_WINDOW = 31  # 국소 대비 정규화의 창 한 변 (픽셀): 가장 굵은 혈관(10~15 픽셀)보다 넓게
CONTRAST_FLOOR = 4.0  # 표준편차에 더하는 밝기 (0~255): 평평한 곳(검은 테두리)의 잡음을 키우지 않게


def local_contrast(image: torch.Tensor, window: int = CONTRAST_WINDOW) -> torch.Tensor:
    """국소 대비 정규화(local contrast normalisation): (3, H, W) uint8 → 같은 모양 uint8.

    채널마다 z = (x − 주변 평균) / (주변 표준편차 + 바닥값), 주변 = window×window 상자. 사진 가장자리가
    어둡고 가운데가 밝은 조명 차이(망막 사진의 전형)를 지우고 '주변보다 어두운 가는 선'을 또렷하게 합니다
    (CLAHE 의 착안을 상자 필터로). ±3 을 0~255 로 되돌려 uint8 로 보관합니다.
    """
    def box_mean(t: torch.Tensor) -> torch.Tensor:  # 가로 → 세로 평균 (분리 가능: window² 대신 2·window)
        t = F.avg_pool2d(t, (1, window), stride=1, padding=(0, window // 2), count_include_pad=False)
        return F.avg_pool2d(t, (window, 1), stride=1, padding=(window // 2, 0), count_include_pad=False)

    x = image.float()[:, None]  # (3, 1, H, W): 채널을 배치처럼 (가장자리는 사진 안의 픽셀만으로 평균)
    centered = x - box_mean(x)
    z = centered / (box_mean(centered.square()).sqrt() + CONTRAST_FLOOR)
    return (z.clamp(-3, 3) * 42.5 + 127.5).round().to(torch.uint8)[:, 0]  # (3, H, W)


def enhance(data, config: Config):
    """원래 해상도 사진에 국소 대비 정규화 (--no-local-contrast 면 그대로). 같은 크기 데이터는 그대로."""
    if not (is_native(data) and config.local_contrast):
        return data
    return segmentation.NativeData([local_contrast(image) for image in data.images], data.masks, data.fov,
                                   data.names)


COLOR_JITTER = 0.15  # 패치마다 밝기 ±15%, 대비(곱) ±15%: 사진마다 다른 조명·카메라에 덜 민감하게


def is_native(data) -> bool:
    """원래 해상도의 사진 목록(내 폴더)이면 True, 같은 크기로 쌓인 텐서(도형, Pet)면 False."""
    return isinstance(data, segmentation.NativeData)


def sample_patches(data: segmentation.NativeData, per_image: int, size: int,
                   generator: torch.Generator) -> segmentation.SegmentationData:
    """사진마다 무작위 위치의 size×size 패치 per_image 개 → 90° 회전 k번 → 색 흔들기(color jitter).

    반환: (N·per_image, 3, size, size) uint8 이미지와 같은 자리의 마스크. 회전은 이미지와 마스크에
    똑같이 (좌우·상하 뒤집기는 train_one_epoch 의 flip_batch 가 배치마다). 난수는 모두 generator 에서:
    체크포인트에 그 상태가 저장되어 --resume 이 같은 패치를 뽑습니다.
    """
    images, masks = [], []
    for image, mask in zip(data.images, data.masks):
        height, width = image.shape[-2:]
        tops = torch.randint(0, height - size + 1, (per_image,), generator=generator).tolist()
        lefts = torch.randint(0, width - size + 1, (per_image,), generator=generator).tolist()
        for top, left in zip(tops, lefts):
            images.append(image[:, top:top + size, left:left + size])
            masks.append(mask[:, top:top + size, left:left + size])
    images, masks = torch.stack(images), torch.stack(masks)  # (P, 3, s, s), (P, 1, s, s)
    turns = torch.randint(0, 4, (len(images),), generator=generator)  # 0°, 90°, 180°, 270°
    for k in (1, 2, 3):
        chosen = turns == k
        images[chosen] = images[chosen].rot90(k, dims=(-2, -1))
        masks[chosen] = masks[chosen].rot90(k, dims=(-2, -1))
    gain = 1 + COLOR_JITTER * (2 * torch.rand(len(images), generator=generator) - 1)  # 대비
    shift = 255 * COLOR_JITTER * (2 * torch.rand(len(images), generator=generator) - 1)  # 밝기
    jittered = images.float() * gain[:, None, None, None] + shift[:, None, None, None]
    return segmentation.SegmentationData(jittered.round().clamp(0, 255).to(torch.uint8), masks,
                                         [f"patch_{i}" for i in range(len(images))])


def training_examples(train, config: Config, generator: torch.Generator):
    """이번 epoch 에 배울 예: 같은 크기 데이터는 그대로, 원래 해상도 사진은 새로 뽑은 무작위 패치."""
    if not is_native(train):
        return train
    return sample_patches(train, patches_per_image(train, config), patch_size_for(train, config), generator)


def patch_size_for(data: segmentation.NativeData, config: Config) -> int:
    """--patch-size, 단 가장 작은 사진의 짧은 변보다 크지 않게."""
    return min(config.patch_size, *(min(image.shape[-2:]) for image in data.images))


def patches_per_image(data: segmentation.NativeData, config: Config) -> int:
    """--patches-per-image, 단 사진이 아주 많으면 한 바퀴가 예산을 넘지 않게 줄임 (최소 1)."""
    return max(1, min(config.patches_per_image, train_budget(config, native=True) // len(data)))


def train_budget(config: Config, native: bool) -> int:
    """학습 예산(본 이미지·패치 수): --train-images, 0 이면 자동 (절차적 18,000장, 원래 해상도 36,000패치)."""
    return config.train_images or (NATIVE_TRAIN_IMAGES if native else FIXED_TRAIN_IMAGES)


def prepare_data(config: Config) -> tuple:
    """(학습, 검증, 시험, 데이터 이름). 실제 데이터의 폴더·파일 문제는 여기서, 학습 전에 한 줄 오류로."""
    train, val, test, data_name = segmentation.load_segmentation_data(
        config.data, Path(config.data_dir), smoke=config.smoke, size=config.image_size, seed=config.seed,
        sizes=(config.train_size, config.val_size, config.test_size), val_fraction=config.val_fraction)
    train, val, test = (enhance(data, config) for data in (train, val, test))
    if is_native(train):
        sizes = sorted({f"{image.shape[2]}x{image.shape[1]}" for image in train.images + test.images})
        foreground = sum(m.sum().item() for m in train.masks) / sum(m.numel() for m in train.masks)
        size_text = f"원래 해상도 {', '.join(sizes[:3])}{' 등' if len(sizes) > 3 else ''}"
    else:
        foreground, size_text = train.masks.float().mean().item(), f"{config.image_size}x{config.image_size}"
    print(f"[데이터] {data_name}: 학습 {len(train)}, 검증 {len(val)}, 시험 {len(test)}장 (이미지 단위 분할, "
          f"시드 {config.seed}), {size_text}, 전경 비율 {foreground:.1%}")
    return train, val, test, data_name


def plan_training(config: Config, train, val) -> tuple[int, int]:
    """(epoch 수, epoch 당 학습 예 수). 원래 해상도 폴더는 epoch 이 아니라 '본 패치 수'로 예산을 잡고
    학습 전에 한 줄로 알립니다: 사진 22장이면 절차적 기본(3,000장)보다 한 바퀴가 훨씬 짧으므로."""
    if config.smoke:
        return min(config.epochs or 3, 3), len(train)
    if not is_native(train):  # 절차적 3,000장: 18,000 / 3,000 = 6바퀴 (Oxford Pet 3,312장: 6바퀴)
        budget = train_budget(config, native=False)  # 상한은 예산 그 자체 (한 바퀴에 적어도 한 장)
        return config.epochs or training.epochs_for_budget(len(train), budget, max_epochs=budget), len(train)
    per_image = patches_per_image(train, config)
    per_epoch = len(train) * per_image
    default = not config.epochs  # --epochs 를 주지 않았으면 예산으로
    epochs = (training.epochs_for_budget(per_epoch, train_budget(config, native=True),
                                         max_epochs=config.max_epochs) if default else config.epochs)
    size = patch_size_for(train, config)
    probe = build_model(width=config.width, depth=config.depth, skip=config.skip)
    batch = (torch.randn(8, 3, size, size), torch.rand(8, 1, size, size).round())
    per_patch = training.seconds_per_image(probe, lambda out, y: segmentation_loss(out, y, 1.0), batch)
    # 검증: 바퀴마다 검증 사진 전체를 조각으로 예측 (앞으로만 ≈ 학습 한 걸음의 1/3, 조각 겹침 ≈ 1.6배)
    val_pixels = 1.6 * sum(image[0].numel() for image in val.images)
    per_patch += val_pixels / size**2 * per_patch / 3 / per_epoch
    print(f"[예산] 사진 {len(train)}장 × 사진당 {per_image}패치 = 바퀴마다 {per_epoch:,}패치 "
          f"({size}x{size}); " + training.describe_budget(per_epoch, epochs, per_patch, unit="패치")
          + ("" if default else " — --epochs 로 정함"))
    return epochs, per_epoch


# %% [markdown]
# ## 2. 모델: U-Net
# ```
#  입력 (B,3,64,64) ─ DoubleConv ─ x1 (B,w,64,64) ──────────────────────────────┐ 이어 붙이기
#                      Down ─ x2 (B,2w,32,32) ──────────────────────────┐        │ (concatenate)
#                        Down ─ x3 (B,4w,16,16) ──────────────┐         │        │
#                          Down ─ x4 (B,8w,8,8) ───────┐      │         │        │
#                            Down ─ 병목 (B,16w,4,4)   │      │         │        │
#                              Up ──────── (B,8w,8,8) ─┘      │         │        │
#                                Up ──────────── (B,4w,16,16) ┘         │        │
#                                  Up ───────────────────── (B,2w,32,32)┘        │
#                                    Up ─────────────────────────────── (B,w,64,64)
#                                      1x1 Conv ─ 로짓 (B,1,64,64)
# ```
# 강의의 폭 w = 64 이면 마지막 Up 에서 업샘플한 64채널 + 인코더의 64채널 = 128채널을 이어 붙인 뒤
# 두 번 합성곱으로 다시 64채널로 줄입니다. 이 장의 기본 w = 16 은 CPU 시간 때문입니다 (구조는 같음).

# %%
def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """(Conv3x3 → BN → ReLU) × 2: (B, in, H, W) → (B, out, H, W). 패딩 1 이라 H, W 그대로.

    `conv_bn_relu` 는 03장에서 만든 블록 (utils/models.py). 3x3 두 번 = 수용 영역 5x5 를 더 적은
    파라미터로 (VGG 의 착안).
    """
    return nn.Sequential(conv_bn_relu(in_channels, out_channels), conv_bn_relu(out_channels, out_channels))


class Down(nn.Module):
    """내려가기: MaxPool 2x2 → double conv. (B, C, H, W) → (B, 2C, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pool = nn.MaxPool2d(2)  # 가로세로 절반: 같은 3x3 커널이 두 배 넓은 영역을 봄
        self.conv = double_conv(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))  # (B, C, H, W) → (B, C, H/2, W/2) → (B, 2C, H/2, W/2)


class Up(nn.Module):
    """올라가기: 전치 합성곱으로 두 배 키움 → 같은 깊이 인코더 특징 맵과 채널 방향 이어 붙이기 → double conv.

    skip=True : (B, 2C, H/2, W/2) → up → (B, C, H, W); cat [skip (B, C, H, W), up] → (B, 2C, H, W)
                → double conv → (B, C, H, W)
    skip=False: (B, 2C, H/2, W/2) → up → (B, C, H, W) → (B, C, H, W)   (이어 붙일 것이 없음: 오토인코더)
    """

    def __init__(self, in_channels: int, out_channels: int, skip: bool = True):
        super().__init__()
        self.skip = skip
        # 커널 2, 스트라이드 2: 출력 = (n−1)·2 − 0 + 2 = 2n (크기가 정확히 두 배, 겹침 없음)
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = double_conv(2 * out_channels if skip else out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip_features: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)  # (B, C, H, W)
        if self.skip:
            x = torch.cat([skip_features, x], dim=1)  # (B, C + C = 2C, H, W): 위치 정보가 그대로 돌아옴
        return self.conv(x)  # (B, C, H, W)


class UNet(nn.Module):
    """U-Net (Ronneberger 외 2015)의 패딩 있는 변형: 출력 H, W = 입력 H, W.

    입력 (B, in_channels, H, W) → 로짓 (B, classes, H, W). H, W 가 2**depth 의 배수가 아니면
    오른쪽·아래를 반사(reflect) 패딩해 맞춘 뒤 출력을 원래 크기로 잘라 냅니다 — 풀링 네 번의 1/16
    크기가 정수가 아니면 Up 의 출력과 인코더 특징 맵의 크기가 어긋나 이어 붙일 수 없기 때문입니다.
    """

    def __init__(self, in_channels: int = 3, classes: int = 1, width: int = 16, depth: int = 4,
                 skip: bool = True):
        super().__init__()
        channels = [width * 2**level for level in range(depth + 1)]  # 예: [16, 32, 64, 128, 256]
        self.depth, self.skip = depth, skip
        self.stem = double_conv(in_channels, channels[0])  # (B, 3, H, W) → (B, w, H, W)
        self.downs = nn.ModuleList(Down(channels[i], channels[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(Up(channels[i + 1], channels[i], skip) for i in reversed(range(depth)))
        self.head = nn.Conv2d(channels[0], classes, kernel_size=1)  # 1x1 합성곱: 픽셀마다 w → classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2**self.depth
        pad_bottom, pad_right = -height % multiple, -width % multiple  # 다음 배수까지 모자란 픽셀
        if pad_bottom or pad_right:
            # reflect 는 (패딩 < 크기) 일 때만 됩니다: 아주 작은 입력은 테두리 값 복제(replicate)
            mode = "reflect" if pad_bottom < height and pad_right < width else "replicate"
            x = F.pad(x, (0, pad_right, 0, pad_bottom), mode=mode)  # (B, 3, H', W'), H', W' = 16의 배수
        features = [self.stem(x)]  # [(B, w, H', W')]
        for down in self.downs:
            features.append(down(features[-1]))  # (B, 2w, H'/2, W'/2) … (B, 16w, H'/16, W'/16)
        x = features.pop()  # 병목 (B, 16w, H'/16, W'/16)
        for up in self.ups:
            x = up(x, features.pop())  # 같은 깊이의 인코더 특징 맵과 → (B, 8w, H'/8, W'/8) … (B, w, H', W')
        logits = self.head(x)  # (B, classes, H', W')
        return logits[..., :height, :width]  # 패딩을 잘라 (B, classes, H, W)


def describe_model(model: UNet, size: int, device) -> None:
    """실행 시작 때 한 번: 부품마다 출력 모양, 장치, 파라미터 수."""
    for name, shape in trace_shapes(model, size):
        print(f"  {name:>11}: {shape}")
    parameters = sum(p.numel() for p in model.parameters())  # 파라미터 수 = 모든 가중치 텐서의 원소 수 합
    print(f"장치(device): {device} | U-Net ({'skip' if model.skip else 'no-skip'}) 파라미터 {parameters:,}개")


def build_model(in_channels: int = 3, classes: int = 1, width: int = 16, depth: int = 4,
                skip: bool = True) -> UNet:
    """체크포인트의 model_args 만으로 같은 모델을 다시 만듭니다 (--resume, --predict, 시험 평가)."""
    return UNet(in_channels, classes, width, depth, skip)


def trace_shapes(model: UNet, size: int = 64) -> list[tuple[str, tuple]]:
    """가짜 입력 하나를 흘려 각 부품의 출력 모양을 모읍니다 (forward hook). 위 그림이 맞는지 확인."""
    shapes, hooks = [], []
    named = [("stem", model.stem), *((f"down{i + 1}", m) for i, m in enumerate(model.downs)),
             *((f"up{i + 1}", m) for i, m in enumerate(model.ups)), ("head", model.head)]
    for name, module in named:
        hooks.append(module.register_forward_hook(
            lambda _m, _inputs, output, name=name: shapes.append((name, tuple(output.shape)))))
    for i, up in enumerate(model.ups):  # 이어 붙인 직후 = up.conv 의 입력: 채널이 두 배인지
        hooks.append(up.conv.register_forward_hook(
            lambda _m, inputs, _output, i=i: shapes.append((f"up{i + 1} concat", tuple(inputs[0].shape)))))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, model.stem[0][0].in_channels, size, size))
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    return shapes


# %% [markdown]
# ### 2-1. 전치 합성곱(transposed convolution)의 출력 크기
# 합성곱이 n → ⌊(n + 2p − k)/s⌋ + 1 로 줄인다면, 전치 합성곱은 그 반대 방향입니다:
#     출력 = (n − 1)·s − 2p + d·(k − 1) + output_padding + 1      (d = dilation, 보통 1)
# 계산은 '입력 원소 하나마다 커널 전체에 그 값을 곱해, 출력의 (i·s, j·s) 자리에 더해 넣기'입니다.
# 강의의 작은 예제: 입력 [[0, 1], [2, 3]], 커널 [[0, 1], [2, 3]], 스트라이드 1 → 3x3
#     [[0, 0, 1], [0, 4, 6], [4, 12, 9]]

# %%
TRANSPOSED_INPUT = torch.tensor([[0.0, 1.0], [2.0, 3.0]])  # 강의(d2l 13.10)의 2x2 입력
TRANSPOSED_KERNEL = torch.tensor([[0.0, 1.0], [2.0, 3.0]])  # 2x2 커널
TRANSPOSED_EXPECTED = torch.tensor([[0.0, 0.0, 1.0], [0.0, 4.0, 6.0], [4.0, 12.0, 9.0]])  # 손 계산 결과


def transposed_conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                                output_padding: int = 0, dilation: int = 1) -> int:
    """(n − 1)·s − 2p + d·(k − 1) + output_padding + 1 (nn.ConvTranspose2d 문서의 공식)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def transposed_conv2d_by_hand(x: torch.Tensor, kernel: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """(h, w) 입력, (kh, kw) 커널 → ((h−1)·s + kh, (w−1)·s + kw). 원소마다 커널을 흩뿌려 더함(scatter-add)."""
    (h, w), (kh, kw) = x.shape, kernel.shape
    out = torch.zeros((h - 1) * stride + kh, (w - 1) * stride + kw)
    for i in range(h):
        for j in range(w):
            out[i * stride:i * stride + kh, j * stride:j * stride + kw] += x[i, j] * kernel
    return out


def transposed_conv_lesson() -> dict:
    """손 계산 = 기대값 = F.conv_transpose2d, 그리고 U-Net 의 k=2, s=2 가 크기를 정확히 두 배로."""
    by_hand = transposed_conv2d_by_hand(TRANSPOSED_INPUT, TRANSPOSED_KERNEL)
    library = F.conv_transpose2d(TRANSPOSED_INPUT[None, None], TRANSPOSED_KERNEL[None, None])[0, 0]
    assert torch.equal(by_hand, TRANSPOSED_EXPECTED) and torch.allclose(by_hand, library)
    stride2 = transposed_conv2d_by_hand(TRANSPOSED_INPUT, TRANSPOSED_KERNEL, stride=2)  # 겹침 없이 4x4
    assert torch.allclose(stride2, F.conv_transpose2d(TRANSPOSED_INPUT[None, None],
                                                      TRANSPOSED_KERNEL[None, None], stride=2)[0, 0])
    sizes = {"k2_s1_from2": transposed_conv_output_size(2, 2, 1),
             "k2_s2_from2": transposed_conv_output_size(2, 2, 2),
             "k2_s2_from4": transposed_conv_output_size(4, 2, 2),
             "k3_s2_p1_from4": transposed_conv_output_size(4, 3, 2, 1)}
    print(f"[전치 합성곱] 강의 예제 2x2 ⊛ᵀ 2x2 → {by_hand.int().tolist()} (F.conv_transpose2d 와 같음); "
          f"출력 크기 {sizes} — k=2, s=2 는 정확히 두 배, k=3, s=2, p=1 은 2n−1 (output_padding=1 로 2n)")
    return sizes


# %% [markdown]
# ## 3. 손실과 학습
# 소프트 Dice 손실: 예측 확률 p 와 정답 g (픽셀별)로
#     Dice = (2 Σ p·g + ε) / (Σ p + Σ g + ε),   손실 = 1 − Dice     (이미지마다 계산 후 평균)
# BCE 는 픽셀마다의 평균이라, 전경이 2% 인 이미지에서 '전부 배경'이라고 해도 손실이 작습니다
# (틀린 2% 의 몫만). Dice 는 전경 픽셀끼리의 겹침만 보므로 전경을 놓치면 손실이 1 에 가깝습니다:
# 작은 전경(가는 선, 점)을 무시하는 쉬운 해답을 막아 줍니다. BCE 는 매끄러운 픽셀별 기울기를
# 주고 Dice 는 전경·배경 불균형을 바로잡으므로 둘을 더해 씁니다.

# %%
def steps_per_epoch(examples: int, batch_size: int, max_batches: int | None) -> int:
    return min(math.ceil(examples / batch_size), max_batches or math.inf)


def cosine_schedule(optimizer, epochs: int, steps: int):
    """코사인 감소(cosine annealing): 학습률을 lr 에서 0 까지 반 코사인으로, 배치마다 한 걸음.

    끝 무렵의 작은 학습률이 경계 픽셀 하나하나를 다듬습니다 (고정 학습률보다 짧은 예산에서 유리).
    """
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps)


DICE_SMOOTH = 1.0  # ε: 전경이 없는 이미지에서 0/0 을 막고, 둘 다 비었을 때 Dice = 1 이 되게 함


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = DICE_SMOOTH) -> torch.Tensor:
    """소프트 Dice 손실. logits, target: (B, 1, H, W) → 스칼라 (이미지마다 1 − Dice 의 평균)."""
    probabilities = logits.sigmoid().flatten(1)  # (B, H·W)
    target = target.flatten(1)  # (B, H·W)
    intersection = (probabilities * target).sum(dim=1)  # (B,)
    total = probabilities.sum(dim=1) + target.sum(dim=1)  # (B,)
    return (1 - (2 * intersection + smooth) / (total + smooth)).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float) -> torch.Tensor:
    """BCE(로짓에서 바로: 시그모이드와 로그를 합쳐 수치적으로 안정) + dice_weight × Dice 손실."""
    return F.binary_cross_entropy_with_logits(logits, target) + dice_weight * dice_loss(logits, target)


def dice_vs_bce_lesson(size: int = 64, foreground_pixels: int = 40) -> dict:
    """전경이 작은 마스크(≈1%)에서 '거의 전부 배경' 예측의 BCE 와 Dice 손실을 비교합니다."""
    target = torch.zeros(1, 1, size, size)
    target[..., :4, :foreground_pixels // 4] = 1  # 4 × 10 픽셀 = 40 픽셀 (64×64 의 약 1%)
    all_background = torch.full_like(target, -4.0)  # 로짓 −4 ⇔ 모든 픽셀 확률 ≈ 0.018
    result = {"foreground_fraction": target.mean().item(),
              "bce": F.binary_cross_entropy_with_logits(all_background, target).item(),
              "dice_loss": dice_loss(all_background, target).item()}
    print(f"[BCE vs Dice] 전경 {result['foreground_fraction']:.1%} 인 마스크에 '전부 배경' 예측: "
          f"BCE {result['bce']:.3f} (작음 — 속기 쉬움), "
          f"Dice 손실 {result['dice_loss']:.3f} (거의 1 — 놓친 것을 알려 줌)")
    return result


def train_one_epoch(model, data: segmentation.SegmentationData, optimizer, scheduler, device, epoch: int,
                    *, batch_size: int, generator: torch.Generator, mean, std, dice_weight: float,
                    max_batches: int | None = None, desc: str | None = None) -> float:
    """한 epoch 학습, 평균 손실을 돌려줍니다. 섞기와 뒤집기 증강은 generator 에서 (이어하기가 같도록).

    scheduler 는 배치마다 한 걸음 (None 이면 학습률 고정).
    """
    model.train()  # BatchNorm 이 배치 통계를 쓰고 이동 평균을 갱신하도록
    order = torch.randperm(len(data), generator=generator)  # 데이터가 텐서 하나에 들어가 DataLoader 없이 자름
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)][:max_batches]
    total, count = 0.0, 0
    for step, index in enumerate(training.progress(batches, desc=desc or f"epoch {epoch}")):
        images, masks = flip_batch(data.images[index], data.masks[index], generator)
        x = to_input(images, mean, std, device)  # (B, 3, H, W)
        target = masks.to(device).float()  # (B, 1, H, W) ∈ {0, 1}
        logits = model(x)  # (B, 1, H, W)
        loss = segmentation_loss(logits, target, dice_weight)
        training.check_finite(loss, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * len(index)
        count += len(index)
    return total / count


def prepare_model(config: Config, device, epochs: int, steps: int) -> tuple:
    """시드 고정 → U-Net → Adam + 코사인 일정. (model_args, model, optimizer, scheduler) 를 돌려줍니다.

    model_args 는 체크포인트에 들어가 --resume·--predict·시험 평가가 build_model(**model_args) 로
    같은 모델을 다시 만듭니다. steps: epoch 당 배치 수 (학습률 일정의 길이 = epochs × steps).
    """
    set_seed(config.seed)  # 모델의 초기 가중치가 시드로 정해지도록, 만들기 바로 전에
    model_args = {"in_channels": 3, "classes": 1, "width": config.width, "depth": config.depth,
                  "skip": config.skip}
    model = build_model(**model_args).to(device)
    describe_model(model, config.image_size, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return model_args, model, optimizer, cosine_schedule(optimizer, epochs, steps)


# %% [markdown]
# ## 4. 평가: IoU, Dice, 픽셀 정확도 — 이미지마다(평균) 대 데이터 전체
# 예측 P 와 정답 G 의 전경 픽셀 수로 (TP = |P∩G|, FP = |P−G|, FN = |G−P|, TN = 나머지):
#     IoU = TP / (TP + FP + FN),  Dice = 2TP / (2TP + FP + FN),  픽셀 정확도 = (TP + TN) / 전체
# - 데이터 전체(dataset-level): 모든 이미지의 TP, FP, FN 을 먼저 더한 뒤 한 번 나눔 → 큰 물체가 지배.
# - 이미지마다(per-image) 평균: 이미지마다 나눈 뒤 평균 → 작은 물체 하나를 놓친 이미지도 똑같이 한 표.
# 작은 물체를 자주 놓치는 모델은 데이터 전체 IoU 는 높고 이미지 평균 IoU 는 낮습니다. 공개 튜토리얼이
# 둘을 섞어 비교하는 일이 많으니, 어느 쪽인지 늘 밝힙니다. 전경도 예측도 없는 이미지는 IoU = Dice = 1
# (완벽히 맞음)로 셉니다. 픽셀 정확도는 배경이 90% 면 '전부 배경'도 0.9 라서 분할에는 부족합니다.
# 의료 영상(망막 혈관)에서 흔히 함께 보고하는 값: 민감도(sensitivity, 재현율) = TP / (TP + FN),
# 특이도(specificity) = TN / (TN + FP), 그리고 문턱값에 매이지 않는 ROC-AUC (아래). Dice 는 F1 과 같습니다.
# 시야(field of view) 마스크가 있으면 시야 밖(사진의 검은 테두리) 픽셀은 세지 않습니다: 그 픽셀은
# 누구나 맞히는 배경이라 특이도·AUC 를 부풀립니다.

# %%
def confusion_counts(predicted: torch.Tensor, truth: torch.Tensor,
                     valid: torch.Tensor | None = None) -> torch.Tensor:
    """bool (B, 1, H, W) 두 개 → 이미지마다 [TP, FP, FN, TN] (B, 4) 정수.

    valid: 셀 픽셀 bool (B, 1, H, W) (시야 마스크). None 이면 모든 픽셀."""
    if valid is not None:
        predicted, truth = predicted & valid, truth & valid  # 시야 밖은 TP·FP·FN 에 들지 않음
    predicted, truth = predicted.flatten(1), truth.flatten(1)  # (B, H·W)
    tp = (predicted & truth).sum(dim=1)
    fp = (predicted & ~truth).sum(dim=1)
    fn = (~predicted & truth).sum(dim=1)
    tn = (~predicted & ~truth).sum(dim=1)
    if valid is not None:
        tn = tn - (~valid).flatten(1).sum(dim=1)  # 시야 밖 픽셀은 TN 에서도 뺌
    return torch.stack([tp, fp, fn, tn], dim=1)  # (B, 4)


def scores_from_counts(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """[TP, FP, FN, TN] (..., 4) → IoU, Dice, 픽셀 정확도, 민감도, 특이도 (...). 분모 0 이면 1."""
    tp, fp, fn, tn = counts.double().unbind(-1)
    union = tp + fp + fn
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.ones_like(tp))
    dice = torch.where(union > 0, 2 * tp / (2 * tp + fp + fn).clamp(min=1), torch.ones_like(tp))
    sensitivity = torch.where(tp + fn > 0, tp / (tp + fn).clamp(min=1), torch.ones_like(tp))
    specificity = torch.where(tn + fp > 0, tn / (tn + fp).clamp(min=1), torch.ones_like(tp))
    return {"iou": iou, "dice": dice, "pixel_accuracy": (tp + tn) / (tp + fp + fn + tn),
            "sensitivity": sensitivity, "specificity": specificity}


# ROC-AUC: 전경 픽셀 하나와 배경 픽셀 하나를 무작위로 골랐을 때 전경 쪽 점수가 더 높을 확률
# (Mann–Whitney). 로짓을 잘게 나눈 칸(bin)의 히스토그램으로 세면 이미지마다의 칸 수를 더해 데이터
# 전체의 AUC 도 바로 나옵니다 (수백만 픽셀을 정렬하지 않음). 같은 칸의 쌍은 반만 맞은 것으로 셉니다.
AUC_BINS = 2048  # 로짓 [-16, 16] 을 나누는 칸 수 (칸 너비 0.016: 같은 칸에 드는 쌍이 드묾)
AUC_LOGIT_RANGE = 16.0


def score_histograms(logits: torch.Tensor, truth: torch.Tensor,
                     valid: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 1, H, W) 로짓과 bool 정답 → (B, 2, AUC_BINS) 칸별 픽셀 수: [배경, 전경]. valid 밖은 세지 않음."""
    batch = logits.shape[0]
    bins = ((logits.clamp(-AUC_LOGIT_RANGE, AUC_LOGIT_RANGE) + AUC_LOGIT_RANGE)
            / (2 * AUC_LOGIT_RANGE) * (AUC_BINS - 1)).round().long().flatten(1)  # (B, H·W) ∈ [0, BINS)
    row = torch.arange(batch, device=logits.device)[:, None] * 2 + truth.flatten(1).long()  # (B, H·W)
    index = row * AUC_BINS + bins
    weights = None if valid is None else valid.flatten().double()
    counts = torch.bincount(index.flatten(), weights=weights, minlength=batch * 2 * AUC_BINS)
    return counts.view(batch, 2, AUC_BINS).double()


def auc_from_histograms(histograms: torch.Tensor) -> torch.Tensor:
    """(..., 2, BINS) → ROC-AUC (...). 전경이나 배경이 하나도 없으면 정의되지 않아 NaN."""
    negative, positive = histograms[..., 0, :], histograms[..., 1, :]
    below = negative.cumsum(-1) - negative  # 각 칸보다 아래 칸에 있는 배경 픽셀 수
    wins = (positive * (below + 0.5 * negative)).sum(-1)  # 전경 점수 > 배경 점수인 쌍 (+ 같은 칸 반)
    pairs = positive.sum(-1) * negative.sum(-1)
    return torch.where(pairs > 0, wins / pairs.clamp(min=1), torch.full_like(pairs, math.nan))


def boundary_band(mask: torch.Tensor, width: int = BOUNDARY_WIDTH) -> torch.Tensor:
    """윤곽선 안쪽 width 픽셀 띠: mask − 침식(erosion)(mask). (B, 1, H, W) bool → 같은 모양 bool.

    침식 = 1 − 최대 풀링(1 − mask): 주변 (2·width+1)² 안에 배경이 하나라도 있으면 지워짐.
    """
    eroded = 1 - F.max_pool2d(1 - mask.float(), 2 * width + 1, stride=1, padding=width)
    return mask & (eroded < 0.5)


def metrics_lesson() -> dict:
    """손으로 만든 마스크로: IoU·Dice 손 계산 = 공식, 이미지 평균과 데이터 전체가 다른 예."""
    truth = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    truth[..., 1:3, 1:3] = True  # 전경 4 픽셀
    predicted = torch.zeros_like(truth)
    predicted[..., 1:3, 1:4] = True  # 6 픽셀 예측: 4 개 맞음, 2 개 틀림 → IoU 4/6, Dice 8/10
    single = scores_from_counts(confusion_counts(predicted, truth))
    assert math.isclose(single["iou"].item(), 4 / 6) and math.isclose(single["dice"].item(), 8 / 10)
    big = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    big[0, :, :10, :10] = True  # 이미지 1: 100 픽셀 물체, 완벽히 맞춤 (IoU 1)
    big[1, :, :2, :2] = True  # 이미지 2: 4 픽셀 물체, 놓침 (IoU 0)
    guess = big.clone()
    guess[1] = False
    counts = confusion_counts(guess, big)  # (2, 4)
    per_image = scores_from_counts(counts)["iou"].mean().item()  # (1 + 0) / 2 = 0.5
    dataset = scores_from_counts(counts.sum(dim=0))["iou"].item()  # 100 / 104 ≈ 0.96
    print(f"[지표] 손 계산 IoU 4/6 = {single['iou'].item():.3f}, Dice 8/10 = {single['dice'].item():.3f}; "
          f"큰 물체 맞춤 + 작은 물체 놓침: 이미지 평균 IoU {per_image:.2f} vs 데이터 전체 IoU {dataset:.2f}")
    return {"per_image_iou": per_image, "dataset_iou": dataset}


# ### 4-1. 큰 사진은 겹치는 조각(tile)으로 예측해 이어 붙이기
# 학습은 96×96 패치로 했어도 U-Net 은 완전 합성곱(fully convolutional)이라 어떤 크기든 받습니다.
# 다만 4000×3000 사진을 한 번에 넣으면 특징 맵 메모리가 사진 크기에 비례해 커지므로, 사진을
# TILE_SIZE 조각으로 나누되 이웃과 겹치게 자르고, 조각마다의 로짓을 '가장자리로 갈수록 작아지는
# 가중치'로 섞어(blend) 평균 냅니다. 조각 가장자리는 0 패딩을 보고 예측한 자리라 덜 믿을 만하고,
# 가중 평균이면 이음매(seam)에 계단이 생기지 않습니다. 가중치 합으로 나누므로 사진 가장자리처럼
# 조각 하나만 덮는 곳도 그 조각의 로짓 그대로입니다.

# %%
def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """한 축에서 조각의 시작 위치들: 처음 0, 마지막 length − tile, 사이는 고르게 (이웃과 ≥ overlap 겹침)."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))  # 모두 덮으면서 겹침 ≥ overlap 인 최소 개수
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def blend_weights(height: int, width: int, overlap: int) -> torch.Tensor:
    """(H, W) 가중치: 안쪽은 1, 가장자리 overlap 픽셀에서 직선으로 작아짐 (0 은 아님: 나눗셈이 되도록)."""
    def ramp(n: int) -> torch.Tensor:
        position = torch.arange(n, dtype=torch.float32) + 0.5  # 픽셀 중심
        return torch.minimum(position, n - position).div(overlap).clamp(min=1e-3, max=1.0)
    return ramp(height)[:, None] * ramp(width)[None, :]


@torch.no_grad()
def predict_logits(model, images: torch.Tensor, device, mean, std, tile: int = TILE_SIZE,
                   overlap: int = TILE_OVERLAP) -> torch.Tensor:
    """(B, 3, H, W) uint8 → 로짓 (B, 1, H, W), 원래 크기 그대로. 한 변이라도 tile 보다 크면 조각으로."""
    model.eval()
    x = to_input(images, mean, std, device)  # (B, 3, H, W)
    height, width = x.shape[-2:]
    if height <= tile and width <= tile:
        return model(x)  # 조각 하나에 들어감: 그대로 (작은 이미지, 절차적 도형)
    total = torch.zeros(x.shape[0], 1, height, width, device=device)  # 가중치 곱한 로짓의 합
    weight_sum = torch.zeros(1, 1, height, width, device=device)
    for top in tile_starts(height, tile, overlap):
        for left in tile_starts(width, tile, overlap):
            window = (slice(None), slice(None), slice(top, top + tile), slice(left, left + tile))
            logits = model(x[window])  # (B, 1, h, w): h, w ≤ tile (사진이 더 작은 축은 그 크기)
            weights = blend_weights(*logits.shape[-2:], overlap).to(device)
            total[window] += logits * weights
            weight_sum[window] += weights
    return total / weight_sum


def batches_of(data, batch_size: int, max_batches: int | None):
    """평가용 묶음 (이미지, 마스크, 시야): 같은 크기는 batch_size 장씩(시야 None), 원래 해상도는 한 장씩."""
    if is_native(data):
        for image, mask, fov in list(zip(data.images, data.masks, data.fov))[:max_batches]:
            yield image[None], mask[None], fov[None]
    else:
        for start in range(0, len(data), batch_size)[:max_batches]:
            yield data.images[start:start + batch_size], data.masks[start:start + batch_size], None


@torch.no_grad()  # 평가에는 기울기가 필요 없음: 메모리와 시간 절약
def evaluate(model, data, device, *, mean, std, batch_size: int = 64, dice_weight: float = 1.0,
             max_batches: int | None = None, threshold: float = THRESHOLD_LOGIT) -> dict:
    """손실과 지표 dict: loss, iou/dice/pixel_accuracy/sensitivity/specificity/auc (데이터 전체),
    *_per_image (이미지 평균), boundary_iou (윤곽 띠의 데이터 전체 IoU), all_background_images (전경을
    하나도 예측 안 한 이미지 수), images (이미지 수), per_image (이미지마다의 행: 표와 CSV 용).

    data: 같은 크기 `SegmentationData` (배치로) 또는 원래 해상도 `NativeData` (한 장씩 조각 예측, 시야 안만).
    threshold: 로짓이 이보다 크면 전경 (기본 0 ⇔ 확률 0.5; 내 폴더는 검증 사진에서 고른 값).
    """
    model.eval()  # BatchNorm 이 학습 때 모은 이동 평균을 쓰도록 (배치 구성에 따라 결과가 달라지지 않게)
    counts, boundary_counts, histograms, total_loss, seen = [], [], [], 0.0, 0
    for images, masks, fov in batches_of(data, batch_size, max_batches):
        logits = predict_logits(model, images, device, mean, std)  # (B, 1, H, W)
        truth = masks.to(device).bool()  # (B, 1, H, W)
        fov = None if fov is None else fov.to(device)
        total_loss += segmentation_loss(logits, truth.float(), dice_weight).item() * len(images)
        predicted = logits > threshold  # (B, 1, H, W) bool
        counts.append(confusion_counts(predicted, truth, fov).cpu())
        boundary_counts.append(confusion_counts(boundary_band(predicted), boundary_band(truth), fov).cpu())
        histograms.append(score_histograms(logits, truth, fov).cpu())
        seen += len(images)
    counts, histograms = torch.cat(counts), torch.cat(histograms)  # (N, 4), (N, 2, BINS)
    dataset, per_image = scores_from_counts(counts.sum(dim=0)), scores_from_counts(counts)
    dataset["auc"] = auc_from_histograms(histograms.sum(dim=0))  # 칸별 수를 더한 뒤 한 번: 데이터 전체
    per_image["auc"] = auc_from_histograms(histograms)
    result = {"loss": total_loss / seen}
    result.update({name: value.item() for name, value in dataset.items()})
    result.update({f"{name}_per_image": value.nanmean().item() for name, value in per_image.items()})
    result["boundary_iou"] = scores_from_counts(torch.cat(boundary_counts).sum(dim=0))["iou"].item()
    result["all_background_images"] = int((counts[:, 0] + counts[:, 1] == 0).sum())  # TP + FP = 0
    result["images"] = seen
    names = data.names[:seen]
    result["per_image"] = [{"image": name, **{k: round(v[i].item(), 6) for k, v in per_image.items()}}
                           for i, name in enumerate(names)]
    return result


@torch.no_grad()
def choose_threshold(model, data, device, *, mean, std, **_) -> float:
    """검증 사진에서 데이터 전체 Dice 가 가장 큰 로짓 문턱값. 칸(bin)별 전경·배경 수(AUC 와 같은
    히스토그램)에서 '이 칸 이상 = 전경'의 TP·FP·FN 을 누적합으로 한 번에 셉니다 (문턱값마다 예측하지 않음).

    BCE + Dice 로 배운 망은 확률이 0.5 근처에 몰리지 않아 보통 0 근처가 뽑히지만, 가는 혈관 가장자리처럼
    애매한 픽셀이 많으면 조금 움직이는 것만으로 Dice 가 오릅니다. 시험 사진은 보지 않습니다.
    """
    histograms = torch.zeros(2, AUC_BINS, dtype=torch.float64)  # 검증 사진 전체: [배경, 전경] 칸별 수
    for images, masks, fov in batches_of(data, 64, None):
        logits = predict_logits(model, images, device, mean, std)
        valid = None if fov is None else fov.to(device)
        histograms += score_histograms(logits, masks.to(device).bool(), valid).sum(dim=0).cpu()
    negative, positive = histograms
    tp = positive.flip(0).cumsum(0).flip(0)  # tp[b] = 칸 b 이상에 든 전경 픽셀 수
    fp = negative.flip(0).cumsum(0).flip(0)
    dice = 2 * tp / (2 * tp + fp + (positive.sum() - tp)).clamp(min=1)
    best = int(dice.argmax())
    step = 2 * AUC_LOGIT_RANGE / (AUC_BINS - 1)
    return -AUC_LOGIT_RANGE + (best - 0.5) * step  # 칸 best 의 아래 경계: 이보다 큰 로짓 = 칸 best 이상


def trivial_baselines(data) -> dict:
    """기준선 둘: 모든 픽셀을 배경이라고 하는 '모델'과 모두 전경이라고 하는 '모델' (시야 안에서).

    전경이 7% 면 '전부 배경'의 픽셀 정확도는 0.93 이지만 IoU 는 0, '전부 전경'의 IoU 는 0.07 입니다.
    학습한 모델의 IoU 가 둘 중 큰 값 근처라면 아무것도 배우지 않은 것입니다.
    """
    counts = {"background": torch.zeros(4, dtype=torch.long), "foreground": torch.zeros(4, dtype=torch.long)}
    for _, masks, fov in batches_of(data, 256, None):
        truth = masks.bool()
        counts["background"] += confusion_counts(torch.zeros_like(truth), truth, fov).sum(dim=0)
        counts["foreground"] += confusion_counts(torch.ones_like(truth), truth, fov).sum(dim=0)
    return {kind: {name: value.item() for name, value in scores_from_counts(c).items()}
            for kind, c in counts.items()}


@torch.no_grad()
def predict_masks(model, images, device, mean, std):
    """(B, 3, H, W) uint8 → 예측 마스크 (B, 1, H, W) bool (CPU). 크기가 제각각인 (3, H, W) 목록이면
    (1, H, W) 마스크의 목록 (사진마다 조각 예측)."""
    if isinstance(images, list):
        return [(predict_logits(model, image[None], device, mean, std) > THRESHOLD_LOGIT)[0].cpu()
                for image in images]
    return (predict_logits(model, images, device, mean, std) > THRESHOLD_LOGIT).cpu()


# %% [markdown]
# ## 5. 시각화

# %%
def overlay(image: torch.Tensor, mask: torch.Tensor, color=(1.0, 0.2, 0.2), alpha: float = 0.5) -> np.ndarray:
    """(3, H, W) uint8 이미지 위에 (1, H, W) bool 마스크를 반투명 색으로 → (H, W, 3) float."""
    picture = image.permute(1, 2, 0).float().numpy() / 255  # (H, W, 3)
    region = mask[0].numpy()
    picture[region] = (1 - alpha) * picture[region] + alpha * np.array(color)
    return picture


def plot_overlays(data: segmentation.SegmentationData, predicted: torch.Tensor, path: Path, show: bool,
                  title: str) -> Path:
    """행마다: 이미지 | 정답 마스크 겹침 | 예측 겹침 | 오류 (빨강 = 거짓 양성 FP, 파랑 = 거짓 음성 FN)."""
    rows = len(data)
    fig, axes = plt.subplots(rows, 4, figsize=(9, 2.3 * rows), squeeze=False)
    for row in range(rows):
        truth, guess = data.masks[row].bool(), predicted[row]
        errors = np.ones((*truth.shape[1:], 3))  # 흰 바탕
        errors[(guess & ~truth)[0].numpy()] = (0.9, 0.1, 0.1)
        errors[(~guess & truth)[0].numpy()] = (0.1, 0.3, 0.9)
        iou = scores_from_counts(confusion_counts(guess[None], truth[None]))["iou"].item()
        panels = [(data.images[row].permute(1, 2, 0).numpy(), "image"),
                  (overlay(data.images[row], truth, (0.1, 0.9, 0.2)), "true mask"),
                  (overlay(data.images[row], guess), f"predicted (IoU {iou:.2f})"),
                  (errors, "errors: FP red, FN blue")]
        for ax, (picture, label) in zip(axes[row], panels):
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(label, fontsize=9)
            ax.axis("off")
    fig.suptitle(title)
    return viz.save_figure(fig, path, show)


def plot_training_curves(rows: list[dict], path: Path, show: bool) -> Path:
    """epoch 별 학습·검증 손실과 검증 IoU (데이터 전체)."""
    epochs = [row["epoch"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(epochs, [row["train_loss"] for row in rows], marker="o", label="train")
    left.plot(epochs, [row["val_loss"] for row in rows], marker="o", label="validation")
    left.set(xlabel="epoch", ylabel="BCE + Dice loss", title="Loss")
    right.plot(epochs, [row["val_iou"] for row in rows], marker="o", label="dataset-level")
    right.plot(epochs, [row["val_iou_per_image"] for row in rows], marker="s", label="per-image mean")
    right.set(xlabel="epoch", ylabel="foreground IoU", title="Validation IoU")
    for ax in (left, right):
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return viz.save_figure(fig, path, show)


def visualize_results(model, history: training.History, test: segmentation.SegmentationData, device, mean,
                      std, out_dir: Path, show: bool, data_name: str) -> None:
    """학습 곡선(training_curves.png)과 시험 이미지 몇 장의 예측 겹친 그림(test_overlays.png)."""
    plot_training_curves(history.rows, out_dir / "training_curves.png", show)
    examples = test.subset(range(min(FIGURE_EXAMPLES // (2 if is_native(test) else 1), len(test))))
    plot_overlays(examples, predict_masks(model, examples.images, device, mean, std),
                  out_dir / "test_overlays.png", show, f"Test images ({data_name})")


# %% [markdown]
# ## 6. 추론: 사진 한 장 → 마스크 PNG + 겹친 그림 + prediction.json

# %%
MIN_PREDICT_SIDE = 8  # 이보다 작은 이미지는 분할할 내용이 없음 (학습 이미지는 수십~수백 픽셀)


def predict(config: Config, device: torch.device, out_dir: Path) -> dict:
    """best.pt 를 먼저 읽고(없거나 깨졌으면 한 줄), 입력을 확인한 뒤 예측합니다. 마스크는 언제나 원본
    사진과 같은 크기: 원래 해상도로 배운 모델(내 폴더)은 사진 그대로 조각(tile)으로 예측하고, 같은
    크기로 줄여 배운 모델(도형, Pet)은 학습 크기로 줄여 예측한 확률을 원래 크기로 되돌립니다(쌍선형).
    """
    model, checkpoint = training.load_trained_model(out_dir / "best.pt", build_model, config, device,
                                                    purpose="predict")
    extra = checkpoint["extra"]
    path = Path(config.predict)
    if not path.exists():
        raise UserError(f"--predict 파일 {path} 가 없습니다.")
    if path.is_dir():
        raise UserError(f"--predict {path} 는 폴더입니다. 이미지 파일 하나를 주세요.")
    picture = segmentation.read_rgb(path)  # 이미지가 아니면 한 줄 UserError
    if min(picture.size) < MIN_PREDICT_SIDE:
        raise UserError(f"--predict 이미지 {path} 가 {picture.width}x{picture.height} 로 너무 작습니다 "
                        f"(한 변 {MIN_PREDICT_SIDE} 픽셀 이상).")
    mean, std = torch.tensor(extra["mean"]), torch.tensor(extra["std"])
    if extra.get("native"):  # 원래 해상도: (1, 3, H, W) 를 겹치는 조각으로
        original = torch.from_numpy(np.array(picture)).permute(2, 0, 1)  # (3, H, W) uint8
        image = local_contrast(original) if extra.get("local_contrast") else original  # 학습 때와 같은 전처리
        probability = predict_logits(model, image[None], device, mean, std).sigmoid()[0, 0].cpu()  # (H, W)
    else:
        size = extra["image_size"]
        resized = torch.from_numpy(np.array(picture.resize((size, size))))  # (S, S, 3) uint8 (쓰기 가능)
        logits = predict_logits(model, resized.permute(2, 0, 1)[None], device, mean, std)  # (1, 1, S, S)
        probability = F.interpolate(logits.sigmoid(), size=(picture.height, picture.width),
                                    mode="bilinear", align_corners=False)[0, 0].cpu()  # (H, W)
    mask = probability > torch.tensor(extra.get("threshold", THRESHOLD_LOGIT)).sigmoid()  # 검증에서 고른 값
    mask_path, overlay_path = out_dir / "prediction_mask.png", out_dir / "prediction_overlay.png"
    plt.imsave(mask_path, mask.numpy().astype(np.uint8) * 255, cmap="gray", vmin=0, vmax=255)
    original = torch.from_numpy(np.array(picture)).permute(2, 0, 1)  # (3, H, W) (쓰기 가능한 복사본)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    axes[0].imshow(original.permute(1, 2, 0).numpy())
    axes[0].set_title("input")
    axes[1].imshow(overlay(original, mask[None]))
    axes[1].set_title(f"predicted foreground {mask.float().mean().item():.1%}")
    for ax in axes:
        ax.axis("off")
    viz.save_figure(fig, overlay_path, config.show)
    result = {"input": str(path), "width": picture.width, "height": picture.height,
              "foreground_fraction": round(mask.float().mean().item(), 6),
              "all_background": not bool(mask.any()), "mask": str(mask_path), "overlay": str(overlay_path),
              "native_resolution": bool(extra.get("native")), "trained_on": extra["data"]}
    (out_dir / "prediction.json").write_text(json.dumps(result, indent=2, ensure_ascii=False),
                                             encoding="utf-8")
    print(f"{path}: 전경 {result['foreground_fraction']:.1%} → {mask_path}, {overlay_path}")
    if result["all_background"]:
        print("  모델이 전경을 하나도 찾지 못했습니다 (전부 배경). 학습 데이터와 다른 종류의 사진이거나, "
              "학습한 마스크가 비어 있었을 수 있습니다.")
    return result


# %% [markdown]
# ## 부록: 건너뛰기 연결이 없으면? (AutoEncoder 대 U-Net)
# 같은 망에서 이어 붙이기만 뺀 망(`skip=False`)을 같은 데이터·같은 epoch·같은 학습률로 학습합니다.
# 디코더는 4x4 병목에서만 정보를 받아 64x64 를 다시 그려야 하므로 넓은 도형은 찾아도 가는 선,
# 고리, 점과 경계가 뭉개집니다. 데이터 전체 IoU 와 함께 경계 IoU(윤곽 안쪽 2픽셀 띠의 IoU)를 봅니다.

# %%
def compare_skip(config: Config, train: segmentation.SegmentationData, test: segmentation.SegmentationData,
                 device, options: dict, epochs: int, main_test: dict, out_dir: Path) -> dict:
    """반대쪽 망(skip ↔ no-skip)을 같은 예산으로 학습해 표(skip_comparison.csv)와 그림으로 비교합니다.

    options: 본 모델과 같은 mean, std, dice_weight, max_batches (main 의 options 그대로).
    """
    mean, std = options["mean"], options["std"]
    other_skip = not config.skip  # 본 모델이 no-skip 이면 비교 대상은 skip 망
    torch.manual_seed(config.seed)  # 앞에서 쓴 난수와 상관없이 언제나 같은 초기값
    generator = torch.Generator().manual_seed(config.seed)
    other = build_model(width=config.width, depth=config.depth, skip=other_skip).to(device)
    optimizer = torch.optim.Adam(other.parameters(), lr=config.lr)
    steps = steps_per_epoch(len(train), config.batch_size, options["max_batches"])
    scheduler = cosine_schedule(optimizer, epochs, steps)  # 본 모델과 같은 학습률 일정
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        name = "skip" if other_skip else "no-skip"
        loss = train_one_epoch(other, train, optimizer, scheduler, device, epoch,
                               batch_size=config.batch_size, generator=generator, desc=f"{name} {epoch}",
                               **options)
        print(f"  [{name}] epoch {epoch} train_loss {loss:.4f}")
    other_test = evaluate(other, test, device, **options)
    seconds = time.perf_counter() - started
    skip_test, no_skip_test = (other_test, main_test) if other_skip else (main_test, other_test)
    keys = ("iou", "dice", "iou_per_image", "boundary_iou", "pixel_accuracy")
    print("\n| model | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for name, scores in (("U-Net (skip)", skip_test), ("no-skip (autoencoder)", no_skip_test)):
        print(f"| {name} | " + " | ".join(f"{scores[k]:.4f}" for k in keys) + " |")
    with (out_dir / "skip_comparison.csv").open("w", encoding="utf-8") as f:
        f.write("model," + ",".join(keys) + "\n")
        for name, scores in (("skip", skip_test), ("no_skip", no_skip_test)):
            f.write(name + "," + ",".join(f"{scores[k]:.6f}" for k in keys) + "\n")
    examples = test.subset(range(min(FIGURE_EXAMPLES, len(test))))
    main_model, _ = training.load_trained_model(out_dir / "best.pt", build_model, config, device,
                                                purpose="test")
    masks = {other_skip: predict_masks(other, examples.images, device, mean, std),
             not other_skip: predict_masks(main_model, examples.images, device, mean, std)}
    plot_skip_comparison(examples, masks[True], masks[False], skip_test, no_skip_test,
                         out_dir / "skip_vs_no_skip.png", config.show)
    print(f"  skip 망이 데이터 전체 IoU 로 {100 * (skip_test['iou'] - no_skip_test['iou']):+.1f}점, "
          f"경계 IoU 로 {100 * (skip_test['boundary_iou'] - no_skip_test['boundary_iou']):+.1f}점 "
          f"(같은 데이터, {epochs} epoch, 비교 학습 {seconds:.0f}초)")
    return {"skip": skip_test, "no_skip": no_skip_test, "seconds": seconds}


def plot_skip_comparison(data: segmentation.SegmentationData, skip_masks, no_skip_masks, skip_test: dict,
                         no_skip_test: dict, path: Path, show: bool) -> Path:
    """행마다: 이미지 | 정답 | U-Net(skip) 예측 | no-skip 예측, 그리고 아래에 두 망의 지표 막대."""
    rows = len(data)
    fig = plt.figure(figsize=(9, 2.2 * rows + 3))
    grid = fig.add_gridspec(rows + 1, 4, height_ratios=[1] * rows + [1.4])
    for row in range(rows):
        panels = [(data.images[row].permute(1, 2, 0).numpy(), "image"),
                  (data.masks[row, 0].numpy(), "true mask"),
                  (skip_masks[row, 0].numpy(), "U-Net (skip)"),
                  (no_skip_masks[row, 0].numpy(), "no skip")]
        for column, (picture, label) in enumerate(panels):
            ax = fig.add_subplot(grid[row, column])
            ax.imshow(picture, cmap="gray", interpolation="nearest")
            ax.set_title(label, fontsize=9)
            ax.axis("off")
    bars = fig.add_subplot(grid[rows, :])
    keys = ("iou", "iou_per_image", "boundary_iou")
    positions = np.arange(len(keys))
    for offset, scores, label in ((-0.2, skip_test, "U-Net (skip)"), (0.2, no_skip_test, "no skip")):
        container = bars.bar(positions + offset, [scores[k] for k in keys], 0.4, label=label)
        bars.bar_label(container, fmt="%.3f", fontsize=8)
    bars.set_xticks(positions, ["IoU (dataset)", "IoU (per-image mean)", "boundary IoU (2 px band)"])
    bars.set(ylabel="test score", ylim=(0, 1.3), title="Same data, same epochs")
    bars.legend(loc="upper center", ncol=2)  # 막대 위 빈 자리 (ylim 1.3)에: 막대를 가리지 않게
    return viz.save_figure(fig, path, show)


# %% [markdown]
# ## main: 데이터 → 모델 → 학습 → 평가 → 시각화 → (부록)

# %%
def main(config: Config) -> dict:
    started = time.perf_counter()
    device, out_dir = pick_device(config.device), Path(config.out_dir)
    if config.predict:
        return predict(config, device, out_dir)
    run_lessons()  # 각 절의 작은 손 계산: 출력 모양, 전치 합성곱, BCE 대 Dice, IoU·Dice

    # 1. 데이터 (입력 확인이 학습보다 먼저) → 학습 길이 (내 폴더: 본 패치 수로 예산) ---------------
    train, val, test, data_name = prepare_data(config)
    mean, std = channel_stats(train.images)
    epochs, per_epoch = plan_training(config, train, val)
    max_batches = 1 if config.smoke else None  # --smoke: epoch 마다 학습·평가 배치 하나
    # 학습·평가에 늘 같이 넘기는 것: 정규화 값, 손실의 Dice 비중, --smoke 의 배치 제한
    options = {"mean": mean, "std": std, "dice_weight": config.dice_weight, "max_batches": max_batches}

    # 2. 모델과 최적화기(optimizer): 시드 → U-Net(model_args) → Adam + 코사인 일정 (길이 = epoch × 배치 수) --
    model_args, model, optimizer, scheduler = prepare_model(
        config, device, epochs, steps_per_epoch(per_epoch, config.batch_size, max_batches))
    loader_generator = torch.Generator().manual_seed(config.seed)  # 섞기·패치·증강 난수: 체크포인트에 저장

    # 3. 학습 (best.pt 는 검증 IoU 가 가장 높은 epoch; 나아지지 않으면 조기 종료) -----------------
    history = training.History(out_dir / "history.csv")
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    extra = {"data": data_name, "image_size": config.image_size, "mean": mean.tolist(), "std": std.tolist(),
             "native": is_native(train), "local_contrast": is_native(train) and config.local_contrast}
    checkpoint = lambda epoch, best: training.make_checkpoint(
        config, model_args, state, epoch, best, extra=extra, generators=[loader_generator], history=history)
    start_epoch, best = training.resume_or_start(config, checkpoint, state, generators=[loader_generator],
                                                 history=history, best=-math.inf)
    train_started = time.perf_counter()
    try:
        for epoch in range(start_epoch, epochs + 1):
            examples = training_examples(train, config, loader_generator)  # 내 폴더: 새 무작위 패치
            train_loss = train_one_epoch(model, examples, optimizer, scheduler, device, epoch,
                                         batch_size=config.batch_size, generator=loader_generator, **options)
            scores = evaluate(model, val, device, **options)
            history.log(epoch=epoch, train_loss=train_loss, val_loss=scores["loss"], val_iou=scores["iou"],
                        val_iou_per_image=scores["iou_per_image"], val_boundary_iou=scores["boundary_iou"])
            if scores["iou"] > best:  # 검증 전경 IoU (데이터 전체), 클수록 좋음
                best = scores["iou"]
                training.save_checkpoint(out_dir / "best.pt", checkpoint(epoch, best))
            training.save_checkpoint(out_dir / "last.pt", checkpoint(epoch, best))
            if history.epochs_since_best("val_iou") >= config.patience:
                print(f"조기 종료(early stopping): 검증 IoU 가 {config.patience} epoch 동안 나아지지 않음")
                break
    except KeyboardInterrupt:
        print("\n중단: --resume 을 붙여 다시 실행하면 마지막으로 끝난 epoch 다음부터 이어집니다")
        raise SystemExit(130) from None
    train_seconds = time.perf_counter() - train_started
    model, saved = training.load_trained_model(out_dir / "best.pt", build_model, config, device, "test")

    # 4. 평가 (시험 점수는 언제나 best.pt 로, 학습 이미지 점수와 나란히) → 5. 시각화 -------------------
    test_scores, train_scores, baseline = test_and_report(model, saved, (train, val, test), device, options,
                                                          out_dir)
    visualize_results(model, history, test, device, mean, std, out_dir, config.show, data_name)

    # 부록: 반대쪽 망(skip ↔ no-skip)을 같은 예산으로 (--no-compare 면 생략; 내 폴더는 시간 때문에 생략) ---
    comparison = (compare_skip(config, train, test, device, options, epochs, test_scores, out_dir)
                  if config.compare and not is_native(train) else None)
    return summarize(config, out_dir, device, data_name, model, (test_scores, train_scores), baseline,
                     comparison, started=started, train_seconds=train_seconds)


def run_lessons() -> None:
    """학습 전의 작은 손 계산 넷 (몇 ms): 0절 출력 모양, 2-1절 전치 합성곱, 3절 BCE 대 Dice, 4절 IoU·Dice."""
    output_shapes_lesson()
    transposed_conv_lesson()
    dice_vs_bce_lesson()
    metrics_lesson()


def test_and_report(model, saved: dict, splits: tuple, device, options: dict, out_dir: Path) -> tuple:
    """(시험 점수, 학습 점수, 자명한 기준선). 학습 이미지 몇 장의 점수를 나란히 보여 과적합이 보이게.

    내 폴더(원래 해상도)는 문턱값을 검증 사진에서 골라(choose_threshold) best.pt 의 extra 에 적어 둡니다:
    --predict 가 같은 문턱값을 씁니다. 절차적 도형·Pet 은 0 (확률 0.5) 그대로.
    """
    train, val, test = splits
    threshold = choose_threshold(model, val, device, **options) if is_native(test) else THRESHOLD_LOGIT
    if is_native(test):
        saved["extra"]["threshold"] = threshold
        training.save_checkpoint(out_dir / "best.pt", saved)
        print(f"[문턱값] 검증 사진에서 Dice 가 가장 큰 로짓 {threshold:+.3f} (확률 "
              f"{torch.tensor(threshold).sigmoid().item():.3f})")
    test_scores = evaluate(model, test, device, threshold=threshold, **options)
    train_scores = evaluate(model, train_subset(train), device, threshold=threshold, **options)
    test_scores["threshold"] = threshold
    baselines = trivial_baselines(test)
    report_test(test_scores, train_scores, baselines, out_dir, native=is_native(test))
    return test_scores, train_scores, baselines


def train_subset(train):
    """학습 지표를 잴 학습 이미지: 앞에서부터 몇 장 (원래 해상도 사진은 조각 예측이 비싸 4장)."""
    count = TRAIN_EVAL_IMAGES["native" if is_native(train) else "fixed"]
    return train.subset(range(min(len(train), count)))


REPORT_KEYS = ("dice", "iou", "sensitivity", "specificity", "auc")  # 이미지마다·데이터 전체 표의 열


def report_test(scores: dict, train_scores: dict, baselines: dict, out_dir: Path, native: bool) -> None:
    """시험 지표(학습 지표와 나란히), 이미지마다의 표(test_per_image.csv), 그리고 '배운 것이 없음' 경고."""
    print(f"\n[시험] IoU {scores['iou']:.4f} (데이터 전체) / {scores['iou_per_image']:.4f} (이미지 평균), "
          f"Dice {scores['dice']:.4f} / {scores['dice_per_image']:.4f}, "
          f"픽셀 정확도 {scores['pixel_accuracy']:.4f}, "
          f"경계 IoU {scores['boundary_iou']:.4f}")
    print(f"| 데이터 전체 | 이미지 수 | {' | '.join(REPORT_KEYS)} |\n|---|---|" + "---|" * len(REPORT_KEYS))
    for name, result in (("학습 (train)", train_scores), ("시험 (held-out)", scores)):
        print(f"| {name} | {result['images']} | " + " | ".join(f"{result[k]:.4f}" for k in REPORT_KEYS)
              + " |")
    rows = scores["per_image"]
    with (out_dir / "test_per_image.csv").open("w", encoding="utf-8") as f:
        f.write("image," + ",".join(REPORT_KEYS) + "\n")
        f.writelines(row["image"] + "," + ",".join(f"{row[k]:.6f}" for k in REPORT_KEYS) + "\n"
                     for row in rows)
    if len(rows) <= 12:  # 몇 장뿐인 시험 세트: 숫자가 몇 장에 기대는지 이미지마다 보여 줌
        for row in rows:
            print(f"  {row['image']}: " + ", ".join(f"{k} {row[k]:.4f}" for k in REPORT_KEYS))
    print(f"  기준선 '전부 배경': IoU {baselines['background']['iou']:.4f}, 픽셀 정확도 "
          f"{baselines['background']['pixel_accuracy']:.4f} — 픽셀 정확도만 보면 그럴듯해 보이는 이유; "
          f"'전부 전경': IoU {baselines['foreground']['iou']:.4f}")
    if scores["all_background_images"]:
        print(f"  주의: 시험 이미지 {scores['all_background_images']}장에서 전경을 하나도 예측하지 않음 "
              "(전부 배경). 학습이 덜 되었거나 마스크의 전경이 비어 있는지 확인하세요.")
    warning = silent_failure_warning(scores, baselines, native)
    if warning:
        print(warning)


def silent_failure_warning(scores: dict, baselines: dict, native: bool) -> str | None:
    """시험 IoU 가 자명한 기준선(전부 배경·전부 전경 중 큰 IoU) + NOISE_MARGIN 안이면 경고 한 줄, 아니면 None.

    표는 끝까지 그럴듯하게 찍히므로(픽셀 정확도 0.9!) 마지막 줄에서 말해야 사용자가 알아챕니다.
    """
    trivial = max(baselines["background"]["iou"], baselines["foreground"]["iou"])
    if scores["iou"] > trivial + NOISE_MARGIN:
        return None
    cause = ("학습이 너무 짧았거나(--train-images 나 --epochs 를 늘리세요) 패치가 구조보다 작을 수 있습니다"
             "(--patch-size)"
             if native else "이미지를 줄이며 가는 구조가 사라졌거나(--image-size 를 키우세요) 학습이 "
             "짧았을 수 있습니다(--epochs)")
    return (f"경고: 시험 IoU {scores['iou']:.3f} 가 자명한 기준선(모두 배경/전경 IoU {trivial:.3f})과 잡음 "
            f"수준으로 같습니다 — 모델이 전경을 배우지 못했습니다. {cause}.")


def collect_metrics(test: dict, train: dict, baseline: dict, comparison: dict | None) -> dict:
    """metrics.json 의 숫자들 (이름은 tests 와 benchmarks 가 읽는 약속)."""
    metrics = {f"test_{k}": round(v, 6) for k, v in test.items() if k not in ("per_image", "images")}
    metrics["test_images"] = test["images"]  # 시험 숫자가 기대는 이미지 수
    metrics.update({f"train_{k}": round(train[k], 6) for k in ("iou", "dice", "auc")})
    metrics["all_background_test_iou"] = round(baseline["background"]["iou"], 6)
    metrics["all_background_test_pixel_accuracy"] = round(baseline["background"]["pixel_accuracy"], 6)
    metrics["all_foreground_test_iou"] = round(baseline["foreground"]["iou"], 6)
    if comparison is not None:
        for name in ("skip", "no_skip"):
            for key in ("iou", "iou_per_image", "dice", "boundary_iou"):
                metrics[f"{name}_test_{key}"] = round(comparison[name][key], 6)
    return metrics


def summarize(config: Config, out_dir: Path, device, data_name: str, model, scores: tuple, baseline: dict,
              comparison: dict | None, *, started: float, train_seconds: float) -> dict:
    """metrics.json (지표, 파라미터 수, 걸린 시간, 설정)을 쓰고 지표 dict 를 돌려줍니다.

    scores: (시험 점수, 학습 점수)."""
    metrics = collect_metrics(*scores, baseline, comparison)
    write_run_record(out_dir, script=config.chapter + ".py", config=config, data=data_name, device=device,
                     seconds=time.perf_counter() - started, metrics=metrics, headline="test_iou",
                     parameters=sum(p.numel() for p in model.parameters()),
                     timing={"train_seconds": round(train_seconds, 2),
                             "compare_seconds": round(comparison["seconds"], 2) if comparison else None})
    return metrics


if __name__ == "__main__":
    run(main, Config)
