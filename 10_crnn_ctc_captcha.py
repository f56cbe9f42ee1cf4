"""10장. CRNN + CTC 로 캡차(captcha) 글자 읽기: 합성곱 + 양방향 GRU, 정렬 없는 시퀀스 학습.

학습 목표
    - CTC(Connectionist Temporal Classification)가 왜 필요한지 본다: 라벨 "hello" 는 5글자인데
      망은 이미지의 세로줄(frame)마다 하나씩, 예를 들어 32번 예측한다. 어느 frame 이 어느 글자인지
      정답(정렬, alignment)은 없다. CTC 는 라벨로 줄어드는(collapse) 모든 경로의 확률을 더한다.
    - 강의의 작은 예(경로 aa, a_, _a → 0.16 + 0.04 + 0.04 = 0.24)를 경로를 모두 세어 계산하고
      exp(−F.ctc_loss) 와 맞춰 본다. 줄이기 규칙(반복 합치기 → 빈칸 지우기)을 "dogs" 경로로 확인한다.
    - CRNN: 잔차 블록(residual block) CNN 이 높이만 줄이고 너비를 시간 축으로 남긴 뒤
      (B, C, H, W) → (T, B, C·H), 양방향 GRU, 선형층(알파벳 + 빈칸), log-softmax, CTC 손실.
    - 탐욕(greedy) 디코딩과 작은 빔 탐색(beam search), 시퀀스 정확도와 문자 오류율(CER, 편집 거리).
      같은 글자가 겹친 라벨("2yggg")이 살아남는 이유(사이에 빈칸이 필요), 글자별 혼동표.
    - 빈칸 평탄 구간(blank plateau): CTC 모델은 처음에 빈칸만 내놓다가 갑자기 배운다. 그래서 조기
      종료(early stopping)를 그 구간에 걸면 안 된다.

핵심 개념
    빈칸(blank) 기호, 줄이기 함수 B(·), 경로 확률 = frame 확률의 곱, 전방 알고리즘(forward algorithm),
    입력 길이 T ≥ 2·L + 1 (겹친 글자 사이마다 빈칸), zero_infinity, 시퀀스 정확도(exact match),
    편집 거리(Levenshtein distance), 글자 모양에 맞는 증강(작은 아핀 떨림·잡음·대비, 뒤집기 없음).

실행 방법
    python 10_crnn_ctc_captcha.py                      # 기본: data/ 의 캡차 폴더, 없으면 오프라인 캡차
    python 10_crnn_ctc_captcha.py --data offline       # 네트워크 없이 ImageCaptcha 로 그린 캡차
    python 10_crnn_ctc_captcha.py --data-dir captchas/   # 내 캡차 폴더 (파일 이름 = 정답, 알파벳은 라벨에서)
        실제 폴더는 30 epoch (오프라인의 5배, 30만 장). 실제 4자리 캡차 3,000장(../shared/data/captchas,
        어두운 배경에 흐린 점선 글자, 취소선·점 잡음), 시험 300장 시퀀스 정확도: 18 epoch 는 시드 42·43·44 에
        0.960·0.940·0.943 (학습 0.99, 검증은 14 epoch 부터 멈춤), 기본 30 epoch 는 0.973·0.977·0.977
        (학습 0.996, CER 0.011; 아래 블록), 한 스레드로 다른 측정 옆에서 31~33분. 6 epoch 는 0.773,
        입력 정규화 전에는 0.220 (시드 42). 2코어를 다 쓰면 더 빠르고, GPU 에서는 몇 분.
    python 10_crnn_ctc_captcha.py --data-dir my_captchas/   # 파일 이름이 정답인 내 캡차 (2b827.png)
    python 10_crnn_ctc_captcha.py --predict captcha.png     # 학습한 best.pt 로 한 장 읽기
    python 10_crnn_ctc_captcha.py --resume             # 중단된 학습 이어하기
    python 10_crnn_ctc_captcha.py --smoke              # 배치 하나로 전체 흐름만 확인 (몇 초)
    실제 폴더(keras-io OCR 예제의 captcha_images_v2, 1,040장)는 data/captcha_images_v2/ 에 풀어 두면
    그대로 씁니다. GPU 에서는 더 어려운 캡차도 됩니다, 예:
    python 10_crnn_ctc_captcha.py --data offline --device cuda --train-size 100000 --epochs 20 \\
        --width 64 --hidden-size 256 --batch-size 256 --captcha-length 6

기대 결과
    [results] benchmarks/run_all.py 가 results.json 에서 옮겨 씀: 중앙값 (최소–최대)
    - `--data offline` · ImageCaptcha 5-char, 19 symbols (offline) · cpu · seeds 42, 43, 44
      test_sequence_accuracy 0.987 (0.981–0.993) · test_cer 0.0028 (0.0014–0.0038)
      train_sequence_accuracy 0.997 (0.993–0.998) · data_seconds 37.38 (25.44–49.09)
      train_images_per_second 122.3 (91.2–142.9) · wall 545 (484–752) s · peak 1.45 GB
    - `--data real --data-dir ../shared/data/captchas`
      captcha folder captchas (3000 images, 4-char, real) · cpu · seeds 42, 43, 44
      test_sequence_accuracy 0.9767 (0.9733–0.9767) · test_cer 0.01083 (0.0075–0.01333)
      train_sequence_accuracy 0.996 (0.996–0.998) · data_seconds 0.58 (0.48–0.62)
      train_images_per_second 158.1 (155.1–161.9) · wall 1920 (1876–1955) s · peak 1.15 GB
    - `--data real --data-dir ../shared/data/captchas --epochs 18`
      captcha folder captchas (3000 images, 4-char, real) · cpu · seeds 42, 43, 44
      test_sequence_accuracy 0.9433 (0.94–0.96) · test_cer 0.01833 (0.01667–0.02)
      train_sequence_accuracy 0.989 (0.987–0.995) · data_seconds 1.31 (0.62–6.1)
      train_images_per_second 151.2 (128.3–153.9) · wall 1212 (1188–1443) s · peak 1.20 GB
    - 기계: AMD EPYC, 2 cores (1 torch threads), GPU: none, torch 2.14.1+cu130
    [/results]
    그 밖의 숫자는 이 장을 쓸 때 잰 값입니다 (조건을 함께 적음). 위 블록의 벽시계는 항목마다 적힌
    기계·torch 스레드 수로 잰 것입니다 (1 스레드 항목은 2코어에서 다른 측정과 나란히 돈 실행).
    아래는 개발 중에 잰 값입니다 (바쁜 2코어 CPU, OMP_NUM_THREADS=1).
    오프라인 캡차, 기본 설정 (6 epoch × 1만 장, 시드 42, 1회): 시험 시퀀스 정확도 0.987, CER 0.0028,
        학습 세트 0.996, 빔 탐색 0.988, 같은 글자가 겹친 라벨 209장의 정확도 0.990. 검증 정확도는
        epoch 1 부터 0.848 → 0.936 → 0.970 → 0.976 → 0.988 → 0.988.
        CPU 시간 389초(1스레드, 데이터 그리기 약 25초 포함), 최대 메모리 1.2 GB. 조용한 2코어에서는
        약 4~5분으로 추정 (바쁜 기계에서 잰 CPU 시간 ÷ 2스레드 이득 약 1.7 + 그리기·평가).
    실제 폴더 흉내 (PIL·DejaVu 글꼴로 직접 그린 200x50 캡차 1,040장, keras 와 같은 19개 기호, 5글자;
        학습 832 / 검증 104 / 시험 104, 기본 설정, 1회): best.pt (검증 손실 최저, epoch 5) 의 시험 시퀀스
        정확도 0.962 (104장 중 100장), CER 0.0077, 학습 세트 1.000; 6 epoch 뒤 가중치로는 0.981.
        CPU 시간 324초, 최대 메모리 1.2 GB. 검증 정확도로 best.pt 를 고르던 이전 판은 운 좋게 100% 를
        찍은 epoch 2 를 골라 시험 0.923 이었습니다: 그래서 지금은 검증 CTC 손실로 고릅니다.
    빈칸 평탄 구간 (오프라인, 시드 42): 첫 epoch 의 배치 약 10~80 (batch 64) 동안 손실이 글자당
    3.2~3.4 에 머물고 frame 의 100% 가 빈칸이다가, 배치 90~110 사이에 0.9 아래로 떨어지며 글자를 읽기
    시작합니다 (learning_curve.png 왼쪽). 실제 폴더 흉내에서는 이 구간이 첫 epoch 거의 전체였습니다.
"""

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import (
    models,  # 03장의 블록: models.conv_bn_relu, models.ResidualBlock
    training,  # 학습 뼈대: training.resume_or_start, .save_checkpoint, .History, …
)
from utils import visualization as viz  # 그림 저장은 이 장의 주제가 아니라 모듈 하나로 (viz.save_figure)
from utils.data import captcha  # 이 저장소의 utils/data/captcha.py (pip 의 captcha 패키지가 아님)
from utils.runtime import RunConfig, UserError, pick_device, run, set_seed, write_run_record

# 모양 글자: B=배치, C=채널, H=높이, W=너비, T=시간(frame) 수, K=클래스 수(빈칸 + 알파벳),
#            L=라벨 길이, S=배치 라벨 길이의 합
BLANK = 0  # 빈칸(blank)의 클래스 번호. 알파벳의 i 번째 글자는 i + 1


@dataclass
class Config(RunConfig):
    chapter: ClassVar[str] = "10_crnn_ctc_captcha"  # 출력 폴더 outputs/<chapter>/, 체크포인트 주인 표시
    resume_free: ClassVar[frozenset[str]] = RunConfig.resume_free - {"epochs"}  # 스케줄이 총 epoch 수에 묶임
    epochs: int = 0  # 0 = 자동: 오프라인 6 (6만 장), 실제 폴더 30 (30만 장). N = 정확히 N (OneCycle 한 주기)
    batch_size: int = 64  # CPU 에서 빠르고 BatchNorm 통계가 안정적인 크기
    lr: float = 3e-3  # AdamW 최대 학습률 (OneCycle 꼭대기). CTC+GRU 에서 흔한 1e-3 보다 조금 큼: 짧은 예산
    weight_decay: float = 1e-4  # AdamW 가중치 감쇠: 작은 규제
    width: int = 32  # 첫 잔차 단계의 채널 수. 단계마다 두 배 (32 → 64 → 128)
    hidden_size: int = 128  # 양방향 GRU 한 방향의 은닉 크기 (출력은 두 배)
    dropout: float = 0.2  # GRU 출력과 분류층 사이 드롭아웃
    image_height: int = 32  # 모델 입력 높이 (200x50 캡차를 128x32 로 줄임: 비율 4:1 유지)
    image_width: int = 128  # 모델 입력 너비. 가로는 두 번만 절반이 되어 시간 축 T = 너비 / 4 = 32
    captcha_length: int = 5  # 오프라인 캡차의 글자 수 (실제 폴더는 파일 이름 길이를 그대로 씀)
    alphabet: str = captcha.KERAS_ALPHABET  # 오프라인 캡차의 글자: keras 예제의 19개 (헷갈리는 0/o, 1/l 없음)
    train_size: int = 10_000  # 오프라인 학습 캡차 수 (한 번 그려 메모리에 텐서로)
    val_size: int = 500  # 오프라인 검증 캡차 수: best.pt 를 고름
    test_size: int = 1_000  # 오프라인 시험 캡차 수: 학습·검증과 다른 시드로 그림
    val_fraction: float = 0.1  # 실제 폴더에서 검증으로 뗄 비율 (고정 시드)
    test_fraction: float = 0.1  # 실제 폴더에서 시험으로 뗄 비율 (고정 시드)
    min_epoch_images: int = 10_000  # 학습 세트가 이보다 작으면(실제 폴더 ~1,000장) 여러 바퀴 돌아 이만큼 봄
    augment: bool = True  # 학습 배치에 작은 회전·기울임·이동·크기, 잡음, 대비 변화 (뒤집기 없음)
    beam_width: int = 5  # 빔 탐색의 빔 수 (1 이면 탐욕 디코딩과 같음)
    predict: str = ""  # 캡차 이미지 파일: 학습한 best.pt 로 읽기만 하고 끝냄

    def __post_init__(self):
        for name in ("width", "hidden_size", "captcha_length", "train_size", "val_size", "test_size",
                     "beam_width", "min_epoch_images"):
            if getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} 는 1 이상이어야 합니다 (받은 값: {getattr(self, name)}).")
        if self.image_height < 16 or self.image_height % 16:
            raise ValueError(f"--image-height 는 16 의 배수여야 합니다 (높이를 네 번 절반: 받은 값: "
                             f"{self.image_height}).")
        if self.image_width < 16 or self.image_width % 4:
            raise ValueError(f"--image-width 는 4 의 배수이고 16 이상이어야 합니다 "
                             f"(받은 값: {self.image_width}).")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout 은 0 이상 1 미만이어야 합니다 (받은 값: {self.dropout}).")
        for name in ("val_fraction", "test_fraction"):
            if not 0 < getattr(self, name) < 0.5:
                raise ValueError(f"--{name.replace('_', '-')} 는 0 보다 크고 0.5 보다 작아야 합니다 "
                                 f"(받은 값: {getattr(self, name)}).")
        if len(set(self.alphabet)) < 2 or any(c.isspace() for c in self.alphabet):
            raise ValueError(f"--alphabet 은 공백 없는 서로 다른 글자 2개 이상이어야 합니다 "
                             f"(받은 값: {self.alphabet!r}).")


SMOKE_SIZES = (64, 32, 32)  # --smoke: 학습·검증·시험 캡차 수
TRAIN_EVAL_SIZE = 1_000  # train_sequence_accuracy 를 잴 학습 캡차 수
PREDICTION_GRID_SIZE = 24  # test_predictions.png 에 그릴 시험 캡차 수
MAX_ASPECT_CHANGE = 2.0  # --predict: 가로세로 비율이 학습 이미지와 이 배수 넘게 다르면 경고
PLATEAU_BLANK_FRACTION = 0.99  # 배치의 frame 이 이만큼 빈칸으로 예측되면 '빈칸만 내놓는' 평탄 구간
PIXEL_SCALE = 255.0  # uint8 → [0, 1]
# 학습 예산 (--epochs 0 일 때), 한 epoch = max(학습 세트, --min-epoch-images) 장:
OFFLINE_EPOCHS = 6  # 깨끗한 오프라인 캡차는 6만 장이면 95% 를 넘김
FOLDER_EPOCHS = 30  # 실제 캡차는 잡음 선·점으로 찍은 획·흐린 잉크: 6만 장에서 과소적합(학습 0.83),
#                    18바퀴(18만 장)는 시험 0.94~0.96, 30바퀴는 0.973~0.977 (시드 42·43·44, docstring)
TRIVIAL_MARGIN = 0.05  # 시험 시퀀스 정확도가 '늘 같은 라벨' 기준선보다 이만큼(5%p) 높지 않으면 경고


# %% [markdown]
# ## 1. 데이터
# 캡차 한 장 = (1, H, W) 회색조 이미지 + 정답 문자열. 문자열은 클래스 번호 목록으로 바꿉니다
# (빈칸이 0 이므로 글자는 1 부터). CTC 손실은 배치의 라벨을 한 줄로 이어 붙인 (S,) 텐서와
# 각 라벨의 길이 (B,) 를 받습니다: 길이가 달라도 채울(padding) 필요가 없습니다.

# %%
def encode_labels(labels: list[str], alphabet: str) -> tuple[torch.Tensor, torch.Tensor]:
    """문자열 B 개 → (이어 붙인 클래스 번호 (S,), 길이 (B,)). 글자 alphabet[i] → i + 1."""
    index = {char: i + 1 for i, char in enumerate(alphabet)}
    targets = torch.tensor([index[char] for label in labels for char in label], dtype=torch.long)
    lengths = torch.tensor([len(label) for label in labels], dtype=torch.long)
    return targets, lengths


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 1, H, W) → float (B, 1, H, W), [-1, 1]: 배경(밝음) = 1 쪽, 글자(어두움) = -1 쪽.

    실제 캡차 폴더는 오프라인 캡차와 다를 수 있습니다: 어두운(투명) 배경에 밝은 글자, 흐린 잉크.
    이미지마다 두 단계로 모두 같은 모양(밝은 배경, 또렷한 어두운 글자)으로 맞춥니다:
    1) 극성(polarity): 글자는 면적이 작으므로 중앙값(median) 픽셀 = 배경. 배경이 어두우면 뒤집음.
    2) 대비 늘이기(contrast stretch): 이미지의 최솟값 → 0, 최댓값 → 1.
    오프라인 캡차(밝은 배경, 진한 글자)에는 거의 아무것도 바꾸지 않습니다.
    """
    x = images.float().div(PIXEL_SCALE)                                  # (B, 1, H, W) ∈ [0, 1]
    background = x.flatten(1).median(dim=1).values.view(-1, 1, 1, 1)     # (B, 1, 1, 1)
    x = torch.where(background < 0.5, 1 - x, x)                          # 1) 배경을 밝게
    low, high = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
    x = (x - low) / (high - low).clamp_min(1 / PIXEL_SCALE)              # 2) [0, 1] 을 다 쓰게
    return x.sub(0.5).div(0.5)


def batches(count: int, batch_size: int, generator: torch.Generator | None = None, epoch_images: int = 0):
    """인덱스 배치를 차례로. generator 가 있으면 섞고, epoch_images 가 count 보다 크면 섞은 순서를
    이어 붙여 그만큼 채웁니다 (작은 실제 폴더: 증강이 매번 달라 같은 그림을 다시 보는 것이 아님).

    데이터가 텐서 하나에 다 들어가므로 DataLoader 대신 인덱스로 자릅니다 (2코어 CPU 에서 작업자
    프로세스는 오히려 느림). 섞는 순서는 seeded Generator 에서 나오므로 이어하기 때 되살아납니다.
    """
    if generator is None:
        order = torch.arange(count)
    else:
        rounds = max(1, math.ceil(epoch_images / count))
        order = torch.cat([torch.randperm(count, generator=generator) for _ in range(rounds)])
        order = order[:max(count, epoch_images)]
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def check_labels_fit(data: captcha.Captchas, time_steps: int) -> None:
    """모든 라벨이 모델의 시간 축에 들어가는지: 최악의 경우(글자가 모두 같음) 2·L − 1 frame 이 필요하고,
    여유를 두어 T ≥ 2·L + 1 을 요구합니다. 아니면 어떻게 고칠지 한 줄로."""
    longest = max(len(label) for label in data.train_labels + data.val_labels + data.test_labels)
    if time_steps < 2 * longest + 1:
        raise UserError(f"가장 긴 라벨이 {longest}글자라 시간 축이 {2 * longest + 1} frame 이상 필요한데 "
                        f"모델은 {time_steps} frame 만 냅니다. --image-width 를 {8 * longest + 4} 이상으로 "
                        "늘리세요.")


def batches_per_epoch(train_count: int, config: Config, max_batches: int | None) -> int:
    """epoch 당 학습 배치 수: 학습 세트가 min_epoch_images 보다 작으면 여러 바퀴 (batches() 와 같은 규칙)."""
    epoch_images = max(train_count, config.min_epoch_images)
    return min(max_batches or math.inf, math.ceil(epoch_images / config.batch_size))


def training_epochs(config: Config, data: captcha.Captchas) -> int:
    """epoch 수: --epochs N 이면 N, 0 이면 데이터에 따라 (오프라인 OFFLINE_EPOCHS, 실제 폴더 FOLDER_EPOCHS).

    실제 폴더 이름은 "captcha folder … real)", 오프라인은 "… (offline)" 로 끝남 (utils/data/captcha.py).
    """
    if config.smoke:
        return min(config.epochs or 3, 3)
    epochs = config.epochs or (OFFLINE_EPOCHS if data.name.endswith("(offline)") else FOLDER_EPOCHS)
    images = epochs * max(len(data.train_labels), config.min_epoch_images)
    print(f"학습 예산: {epochs} epoch × {images // epochs:,}장 = {images:,}장 (--epochs 로 바꿀 수 있음)")
    return epochs


def prepare_data(config: Config) -> tuple[captcha.Captchas, float]:
    """--data 정책대로 캡차 폴더를 읽거나 오프라인 캡차를 그립니다. (데이터, 걸린 초)."""
    started = time.time()
    sizes = SMOKE_SIZES if config.smoke else (config.train_size, config.val_size, config.test_size)
    data = captcha.load_captchas(config.data, config.data_dir, config.smoke, config.seed,
                                 val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                                 height=config.image_height, width=config.image_width, offline_sizes=sizes,
                                 length=config.captcha_length, alphabet=config.alphabet)
    seconds = time.time() - started
    print(f"[데이터] {data.name}: 학습 {len(data.train_labels)}, 검증 {len(data.val_labels)}, "
          f"시험 {len(data.test_labels)}장, 알파벳 {data.alphabet!r} ({seconds:.1f}초)")
    return data, seconds


# %% [markdown]
# ## 2. 모델: CRNN = CNN(잔차 블록) → 시간 축으로 펼치기 → 양방향 GRU → 선형층 → log-softmax
# CNN 은 세로로 네 번 절반(32 → 2), 가로로 두 번만 절반(128 → 32)으로 줄입니다. 남은 가로 칸 하나가
# 시간 한 걸음(frame)이고, 그 칸의 세로 특징을 모두 이어 붙인 C·H 값이 그 frame 의 특징 벡터입니다.
# 첫 합성곱부터 stride 2: 가장 큰 해상도의 층이 CPU 시간을 가장 많이 먹기 때문입니다
# (32x128 에서 잔차 블록 하나를 더 돌리면 전체가 두 배 느려짐, 측정값).
# 잔차 블록의 stride (2, 1) 이 "높이만 줄이고 너비는 지키기" 입니다.

# %%
class CRNN(nn.Module):
    def __init__(self, num_classes: int, image_height: int = 32, width: int = 32, hidden_size: int = 128,
                 dropout: float = 0.2):
        super().__init__()
        self.cnn = nn.Sequential(
            models.conv_bn_relu(1, width, stride=2),                    # (B, w, H/2, W/2)
            models.ResidualBlock(width, 2 * width, stride=2),           # (B, 2w, H/4, W/4): 가로는 여기까지만
            models.ResidualBlock(2 * width, 4 * width, stride=(2, 1)),  # (B, 4w, H/8, W/4)
            models.ResidualBlock(4 * width, 4 * width, stride=(2, 1)),  # (B, 4w, H/16, W/4)
        )
        feature_size = 4 * width * (image_height // 16)  # frame 하나의 특징 = 채널 × 남은 높이
        # 양방향(bidirectional): 글자 하나를 읽을 때 왼쪽·오른쪽 이웃 frame 을 모두 봄
        self.rnn = nn.GRU(feature_size, hidden_size, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 1, H, W) → log 확률 (T, B, K). F.ctc_loss 가 받는 (T, N, C) 순서 그대로."""
        features = self.cnn(images)                          # (B, C, H', T)
        features = features.permute(3, 0, 1, 2).flatten(2)   # (T, B, C, H') → (T, B, C·H')
        outputs, _ = self.rnn(features)                      # (T, B, 2·hidden)
        logits = self.classifier(self.dropout(outputs))      # (T, B, K)
        return logits.log_softmax(dim=-1)                    # CTC 는 log 확률을 받음


def build_model(num_classes: int, image_height: int, width: int, hidden_size: int, dropout: float) -> CRNN:
    """체크포인트의 model_args 만으로 같은 모델을 다시 만듭니다 (--resume, --predict)."""
    return CRNN(num_classes, image_height, width, hidden_size, dropout)


def time_steps(model: CRNN, image_height: int, image_width: int) -> int:
    """모델이 내는 frame 수 T 를 빈 입력 하나로 재어 봅니다 (계산식 W/4 를 믿지 않고 확인)."""
    model.eval()
    with torch.no_grad():
        return model(torch.zeros(1, 1, image_height, image_width)).shape[0]


# %% [markdown]
# ## 3. 학습: CTC 손실
# ### 왜 CTC 인가 — 강의의 작은 예를 경로를 모두 세어 계산하기
# frame 2개, 글자 {a} + 빈칸 "_". 두 frame 모두 p(a) = 0.4, p(_) = 0.1 (나머지 0.5 는 다른 글자).
# 라벨 "a" 로 줄어드는 경로: aa (반복 합치기), a_, _a (빈칸 지우기) →
# P("a") = 0.4·0.4 + 0.4·0.1 + 0.1·0.4 = 0.16 + 0.04 + 0.04 = 0.24,  CTC 손실 = −log 0.24.
# 실제 구현(F.ctc_loss)은 경로를 세지 않고 전방 알고리즘(동적 계획법)으로 같은 값을 O(T·L) 에 구합니다.

# %%
def collapse(path: str, blank: str = "_") -> str:
    """CTC 줄이기 함수 B: 1) 연달아 같은 기호를 하나로 합치고 2) 빈칸을 지웁니다.

    순서가 중요합니다: "oo" 는 "o" 가 되지만 "o_o" 는 빈칸이 사이를 막아 "oo" 로 남습니다.
    """
    merged = [symbol for i, symbol in enumerate(path) if i == 0 or symbol != path[i - 1]]
    return "".join(symbol for symbol in merged if symbol != blank)


def brute_force_ctc_probability(probs: torch.Tensor, label: str, symbols: str) -> float:
    """P(label | x) = 줄이면 label 이 되는 모든 경로의 확률 합. probs: (T, K), symbols[0] = 빈칸.

    K^T 개 경로를 모두 세므로 아주 작은 예에서만 씁니다 (설명용, 그리고 F.ctc_loss 검산용).
    """
    import itertools

    steps, classes = probs.shape
    total = 0.0
    for path in itertools.product(range(classes), repeat=steps):
        if collapse("".join(symbols[k] for k in path), blank=symbols[0]) == label:
            total += math.prod(float(probs[t, k]) for t, k in enumerate(path))
    return total


def ctc_worked_example() -> float:
    """강의의 예: 0.16 + 0.04 + 0.04 = 0.24 를 경로 세기로 구하고 exp(−F.ctc_loss) 와 맞춰 봅니다."""
    symbols = "_ab"  # 빈칸, 정답 글자 a, 나머지 확률을 받을 다른 글자 b
    probs = torch.tensor([[0.1, 0.4, 0.5],
                          [0.1, 0.4, 0.5]])  # (T=2, K=3): frame 마다 p(_)=0.1, p(a)=0.4, p(b)=0.5
    by_paths = brute_force_ctc_probability(probs, "a", symbols)
    loss = F.ctc_loss(probs.log().unsqueeze(1), torch.tensor([[1]]),  # (T, B=1, K), 라벨 "a" = [1]
                      input_lengths=torch.tensor([2]), target_lengths=torch.tensor([1]),
                      blank=BLANK, reduction="sum")
    assert math.isclose(by_paths, 0.24, abs_tol=1e-6)
    assert math.isclose(by_paths, math.exp(-loss.item()), rel_tol=1e-5), (by_paths, loss.item())
    print(f"[CTC 예] 경로 aa, a_, _a: 0.16 + 0.04 + 0.04 = {by_paths:.2f} = exp(−ctc_loss) "
          f"{math.exp(-loss.item()):.2f}")
    for path in ("dddooo_ggss", "d_oo_g_ss", "do_o_gs", "_dd_o_gggs_s"):  # 강의의 "dogs" 경로들
        print(f"[줄이기] {path:<13} → {collapse(path)}")
    return by_paths


def ctc_loss(log_probs: torch.Tensor, labels: list[str], alphabet: str) -> torch.Tensor:
    """배치의 CTC 손실 (라벨 길이로 나눈 뒤 배치 평균, F.ctc_loss 의 reduction="mean").

    log_probs : (T, B, K) log-softmax 출력
    input_lengths : 모든 캡차가 같은 너비라 모두 T
    zero_infinity : 라벨을 만들 수 없는 경로(T 가 너무 짧음)는 손실이 ∞ 가 되어 기울기를 망치므로 0 으로
    """
    targets, target_lengths = encode_labels(labels, alphabet)  # (S,), (B,)
    steps, batch = log_probs.shape[:2]
    input_lengths = torch.full((batch,), steps, dtype=torch.long)
    return F.ctc_loss(log_probs, targets.to(log_probs.device), input_lengths, target_lengths,
                      blank=BLANK, zero_infinity=True)


# ### 글자 이미지에 맞는 증강: 작은 아핀 떨림, 잡음, 대비 — 좌우·상하 뒤집기는 안 됨
# 뒤집으면 b 가 d 가 되고 글자 순서도 거꾸로 되어 라벨과 맞지 않습니다.
MAX_ROTATION_DEGREES = 4.0  # 원래 캡차도 글자마다 ±30° 돌아가 있으니 이미지 전체는 조금만
MAX_SHEAR = 0.15  # 기울임(shear): 손글씨처럼 눕는 정도
MAX_SHIFT = 0.04  # 이동: 너비·높이의 ±4%
MAX_SCALE = 0.06  # 크기: ±6%
NOISE_STD = 0.08  # 가우스 잡음 표준편차 (입력 범위 [-1, 1] 기준)
MAX_CONTRAST = 0.3  # 대비: ×(1 ± 0.3)


def augment(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) float → 같은 모양. 난수는 전역 torch 생성기에서 (체크포인트가 저장·복원).

    affine_grid 는 [-1, 1] 정규 좌표를 쓰는데 이미지가 4:1 로 길쭉해서, 픽셀 공간의 회전 R 을
    정규 좌표로 옮기면 D⁻¹·R·D (D = diag(W/2, H/2)) 가 됩니다. 그냥 R 을 쓰면 글자가 찌그러집니다.
    """
    batch, _, height, width = images.shape
    device = images.device
    uniform = lambda limit: (torch.rand(batch, device=device) * 2 - 1) * limit  # (B,) ∈ [-limit, limit]
    angle = uniform(math.radians(MAX_ROTATION_DEGREES))
    scale = 1 + uniform(MAX_SCALE)
    shear = uniform(MAX_SHEAR)
    aspect = height / width
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([
        torch.stack([cos, -sin * aspect + shear * aspect, uniform(2 * MAX_SHIFT)], dim=1),
        torch.stack([sin / aspect, cos, uniform(2 * MAX_SHIFT)], dim=1),
    ], dim=1)                                                          # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
    # 가장자리 값으로 채움(border): 밝은 배경이 이어져 검은 띠가 생기지 않음
    images = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = (images - mean) * (1 + uniform(MAX_CONTRAST)).view(-1, 1, 1, 1) + mean
    return images + torch.randn_like(images) * NOISE_STD


# ### 빈칸 평탄 구간(blank plateau) — 왜 생기고, 왜 조기 종료를 걸면 안 되나
# 초기화 직후 출력은 거의 고르게 퍼져 있습니다. CTC 의 모든 정렬에는 빈칸 frame 이 많으므로
# (T = 32 frame 에 글자 5개면 적어도 27개가 빈칸이나 반복), 손실을 가장 빨리 줄이는 길은
# "모든 frame 에 빈칸" 입니다. 그러면 손실은 글자당 3 남짓(글자를 고르게 찍을 때의 ln 19 ≈ 2.9 근처)에서
# 멈춥니다: 글자가 몇 개인지는 알아도 무엇인지는 아직 찍는 수준이라는 뜻입니다. 탐욕 디코딩은 빈 문자열만
# 내놓고 정확도는 0 입니다. CNN 특징이 글자를 가르기 시작하면 어느 순간 손실이 가파르게 떨어지고
# 정확도가 올라갑니다. 이 구간에서 "검증 정확도가 N epoch 동안 0" 이라고 조기 종료하면 배우기 직전에
# 멈추게 됩니다. 그래서 이 장은 조기 종료를 쓰지 않고 정해진 OneCycle 일정대로 학습합니다.
# learning_curve.png 의 왼쪽 그림이 이 구간을 배치 단위로 보여 줍니다 (이 장의 작은 CNN 은 첫 epoch
# 안에서 벗어나므로 epoch 단위 곡선으로는 보이지 않습니다).

def train_one_epoch(model, data: captcha.Captchas, optimizer, scheduler, device, epoch: int, config: Config,
                    generator: torch.Generator, max_batches: int | None = None,
                    trace: list | None = None) -> float:
    """한 epoch 학습, 평균 CTC 손실을 돌려줍니다.

    trace 를 주면 배치마다 (epoch, step, 손실, 빈칸으로 예측한 frame 비율)을 덧붙입니다: 빈칸 평탄
    구간은 보통 첫 epoch 안에서 끝나므로 epoch 단위 곡선으로는 보이지 않기 때문입니다.
    """
    model.train()  # 드롭아웃 켜기, BatchNorm 은 배치 통계 사용
    index_batches = list(batches(len(data.train_labels), config.batch_size, generator,
                                 config.min_epoch_images))[:max_batches]
    total, count = torch.zeros((), device=device), 0
    for step, index in enumerate(training.progress(index_batches, desc=f"epoch {epoch}")):
        images = to_model_input(data.train_images[index].to(device))  # (B, 1, H, W)
        if config.augment:
            images = augment(images)
        labels = [data.train_labels[i] for i in index.tolist()]
        log_probs = model(images)                                    # (T, B, K)
        loss = ctc_loss(log_probs, labels, data.alphabet)
        training.check_finite(loss, epoch, step)
        if trace is not None:
            blank = (log_probs.detach().argmax(-1) == BLANK).float().mean().item()
            trace.append({"epoch": epoch, "step": step, "loss": loss.item(), "blank_fraction": blank})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # GRU 의 기울기 폭주(exploding gradient)를 막는 흔한 안전장치
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
        optimizer.step()
        scheduler.step()  # OneCycle 은 배치마다 한 걸음
        total += loss.detach() * len(index)
        count += len(index)
    return (total / count).item()


def prepare_model(config: Config, data: captcha.Captchas, device, total_steps: int) -> tuple:
    """CRNN → 시간 축 확인 → AdamW + OneCycle. (model_args, model, optimizer, scheduler) 를 돌려줍니다.

    model_args 는 체크포인트에 들어가 --resume·--predict·시험 평가가 build_model(**model_args) 로
    같은 모델을 다시 만듭니다. total_steps: 학습 전체의 배치 수 (OneCycle 한 주기의 길이).
    """
    model_args = {"num_classes": len(data.alphabet) + 1, "image_height": config.image_height,
                  "width": config.width, "hidden_size": config.hidden_size, "dropout": config.dropout}
    model = build_model(**model_args).to(device)
    steps = time_steps(model, config.image_height, config.image_width)
    check_labels_fit(data, steps)
    parameters = sum(p.numel() for p in model.parameters())  # 파라미터 수 = 모든 가중치 텐서의 원소 수 합
    print(f"장치(device): {device} | 파라미터: {parameters:,}개 | 시간 축 T = {steps} frame")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, pct_start=0.15,
                                                    total_steps=total_steps)
    return model_args, model, optimizer, scheduler


# %% [markdown]
# ## 4. 평가: 디코딩, 시퀀스 정확도, 문자 오류율(CER)
# 탐욕 디코딩: frame 마다 가장 큰 기호를 고른 뒤 줄이기 함수 B. 반복을 먼저 합치고 빈칸을 나중에
# 지워야 합니다. 순서를 바꾸거나(빈칸 먼저 지우기) 모든 반복을 합치면 "2yggg" 의 ggg 가 g 하나로
# 줄어듭니다: 공개된 디코더들의 흔한 버그입니다. CTC 는 겹친 글자 사이에 빈칸 frame 을 두도록 배웁니다.

# %%
def greedy_decode(log_probs: torch.Tensor, alphabet: str) -> list[str]:
    """(T, B, K) → 문자열 B 개. frame 마다 argmax → 반복 합치기 → 빈칸 지우기."""
    best = log_probs.argmax(dim=-1).T.tolist()  # (B, T)
    texts = []
    for path in best:
        merged = [k for t, k in enumerate(path) if t == 0 or k != path[t - 1]]  # 1) 반복 합치기
        texts.append("".join(alphabet[k - 1] for k in merged if k != BLANK))  # 2) 빈칸 지우기
    return texts


def beam_search_decode(log_probs: torch.Tensor, alphabet: str, beam_width: int = 5,
                       prune: float = math.log(1e-3)) -> str:
    """CTC 접두사 빔 탐색(prefix beam search). log_probs: (T, K) 한 장.

    탐욕 디코딩은 가장 좋은 '경로' 하나를 고르지만, 우리가 원하는 것은 가장 확률 높은 '라벨' 입니다.
    같은 라벨로 줄어드는 여러 경로의 확률을 합치면 순위가 바뀔 수 있습니다. 접두사마다 (빈칸으로
    끝나는 확률, 글자로 끝나는 확률)을 따로 들고 가야 "aa" 와 "a" 를 구별할 수 있습니다.
    prune: 이 log 확률보다 작은 기호는 확장하지 않음 (속도).
    """
    beams = {(): (0.0, -math.inf)}  # 접두사 → (log P(빈칸으로 끝남), log P(글자로 끝남))
    for frame in log_probs.tolist():  # frame: K 개의 log 확률
        candidates = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (blank_end, char_end) in beams.items():
            total = _logaddexp(blank_end, char_end)
            entry = candidates[prefix]
            entry[0] = _logaddexp(entry[0], total + frame[BLANK])  # 빈칸: 접두사 그대로
            if prefix:  # 같은 글자가 빈칸 없이 이어짐: 합쳐져 접두사 그대로
                entry[1] = _logaddexp(entry[1], char_end + frame[prefix[-1]])
            for k in range(1, len(frame)):
                if frame[k] < prune:
                    continue
                extended = candidates[prefix + (k,)]
                # 마지막 글자와 같은 글자를 새로 붙이려면 사이에 빈칸이 있어야 함 (blank_end 만)
                source = blank_end if prefix and k == prefix[-1] else total
                extended[1] = _logaddexp(extended[1], source + frame[k])
        ranked = sorted(candidates.items(), key=lambda item: -_logaddexp(*item[1]))
        beams = {prefix: tuple(scores) for prefix, scores in ranked[:beam_width]}
    best = max(beams.items(), key=lambda item: _logaddexp(*item[1]))[0]
    return "".join(alphabet[k - 1] for k in best)


def _logaddexp(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) 를 넘침 없이."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high, low = max(a, b), min(a, b)
    return high + math.log1p(math.exp(low - high))


def edit_distance(reference: str, hypothesis: str) -> int:
    """레벤슈타인 편집 거리: 삽입·삭제·치환 한 번이 1. 동적 계획법, 한 줄씩."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_char in enumerate(reference, start=1):
        current = [i]
        for j, hyp_char in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1,  # 삭제
                               current[j - 1] + 1,  # 삽입
                               previous[j - 1] + (ref_char != hyp_char)))  # 치환(같으면 0)
        previous = current
    return previous[-1]


def character_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """CER = 편집 거리의 합 / 정답 글자 수의 합 (문장마다 평균 내지 않음: 긴 라벨이 더 무겁게)."""
    errors = sum(edit_distance(r, h) for r, h in zip(references, hypotheses))
    return errors / max(1, sum(len(r) for r in references))


@torch.no_grad()  # 평가는 기울기가 필요 없음: 메모리와 시간 절약
def evaluate(model, images: torch.Tensor, labels: list[str], alphabet: str, device, batch_size: int = 256,
             max_batches: int | None = None) -> dict:
    """CTC 손실, 시퀀스 정확도(글자가 모두 맞은 비율), CER, 빈칸 비율(평탄 구간을 보는 눈).

    model.eval(): 드롭아웃을 끄고 BatchNorm 이 학습 중 모은 평균·분산을 쓰게 합니다.
    """
    model.eval()
    loss_sum, blank_frames, frames, predictions, references = 0.0, 0, 0, [], []
    for index in list(batches(len(labels), batch_size))[:max_batches]:
        batch_labels = [labels[i] for i in index.tolist()]
        log_probs = model(to_model_input(images[index].to(device)))  # (T, B, K)
        loss_sum += ctc_loss(log_probs, batch_labels, alphabet).item() * len(index)
        blank_frames += int((log_probs.argmax(-1) == BLANK).sum())
        frames += log_probs.shape[0] * log_probs.shape[1]
        predictions += greedy_decode(log_probs, alphabet)
        references += batch_labels
    return {"loss": loss_sum / len(references),
            "sequence_accuracy": sum(p == r for p, r in zip(predictions, references)) / len(references),
            "cer": character_error_rate(references, predictions),
            "blank_fraction": blank_frames / frames}


@torch.no_grad()
def predict_texts(model, images: torch.Tensor, alphabet: str, device, beam_width: int = 1,
                  batch_size: int = 256) -> tuple[list[str], torch.Tensor]:
    """uint8 (N, 1, H, W) → (읽은 문자열 N 개, 확률 (N, T, K)). beam_width 1 이면 탐욕 디코딩."""
    model.eval()
    texts, probabilities = [], []
    for index in batches(len(images), batch_size):
        log_probs = model(to_model_input(images[index].to(device))).cpu()  # (T, B, K)
        if beam_width == 1:
            texts += greedy_decode(log_probs, alphabet)
        else:
            texts += [beam_search_decode(log_probs[:, b], alphabet, beam_width) for b in range(len(index))]
        probabilities.append(log_probs.exp().transpose(0, 1))  # (B, T, K)
    return texts, torch.cat(probabilities)


def evaluate_test_and_train(model, data: captcha.Captchas, device,
                            max_batches: int | None) -> tuple[dict, dict]:
    """best.pt 모델의 (시험 점수, 학습 세트 앞 TRAIN_EVAL_SIZE 장의 점수): 학습 ≫ 시험 이면 과적합."""
    test = evaluate(model, data.test_images, data.test_labels, data.alphabet, device, max_batches=max_batches)
    seen = slice(0, TRAIN_EVAL_SIZE)  # 학습 세트 앞쪽 일부: 과적합을 보는 데는 이만큼이면 충분
    train = evaluate(model, data.train_images[seen], data.train_labels[seen], data.alphabet, device,
                     max_batches=max_batches)
    print(f"[시험] 시퀀스 정확도 {test['sequence_accuracy']:.3f}, CER {test['cer']:.4f} "
          f"(학습 세트 {train['sequence_accuracy']:.3f})")
    if max_batches is None:  # 기준선: 학습 세트에 가장 흔한 라벨 하나만 늘 내놓는 '모델'의 시험 정확도
        most_common = max(set(data.train_labels), key=data.train_labels.count)
        baseline = data.test_labels.count(most_common) / len(data.test_labels)
        training.warn_if_trivial("시험 시퀀스 정확도", test["sequence_accuracy"], baseline, TRIVIAL_MARGIN,
                                 "학습이 빈칸 평탄 구간을 못 벗어났습니다: --min-epoch-images 나 --epochs 를 "
                                 "늘리거나 --image-height/--image-width 가 글자를 뭉개지 않는지 보세요.")
    return test, train


def confusion_table(references: list[str], hypotheses: list[str], alphabet: str) -> torch.Tensor:
    """글자별 혼동표 (A+1, A+1): 행 = 정답 글자, 열 = 읽은 글자, 0번 = 없음('-').

    편집 거리 표를 거꾸로 따라가 정렬(alignment)을 구합니다: 치환은 (정답, 읽음), 빠뜨린 글자는
    (정답, '-'), 더 읽은 글자는 ('-', 읽음). 대각선이 맞힌 글자입니다.
    """
    index = {char: i + 1 for i, char in enumerate(alphabet)}
    table = torch.zeros(len(alphabet) + 1, len(alphabet) + 1, dtype=torch.long)
    for ref, hyp in zip(references, hypotheses):
        cost = [[i + j if i == 0 or j == 0 else 0 for j in range(len(hyp) + 1)] for i in range(len(ref) + 1)]
        for i in range(1, len(ref) + 1):
            for j in range(1, len(hyp) + 1):
                cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1,
                                 cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
        i, j = len(ref), len(hyp)
        while i > 0 or j > 0:  # 뒤에서부터: 치환/일치 → 삭제 → 삽입 순으로 선호
            if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
                table[index.get(ref[i - 1], 0), index.get(hyp[j - 1], 0)] += 1
                i, j = i - 1, j - 1
            elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
                table[index.get(ref[i - 1], 0), 0] += 1
                i -= 1
            else:
                table[0, index.get(hyp[j - 1], 0)] += 1
                j -= 1
    return table


def has_doubled_character(text: str) -> bool:
    return any(a == b for a, b in zip(text, text[1:]))


# %% [markdown]
# ## 5. 시각화

# %%
def plot_learning_curve(rows: list[dict], trace: list[dict], steps_per_epoch: int, path: Path,
                        show: bool = False) -> Path:
    """왼쪽: 배치마다의 CTC 손실과 빈칸 비율 (평탄 구간은 회색). 오른쪽: epoch 마다의 손실과 검증 정확도.

    x 축은 둘 다 epoch 단위: 배치 k 는 (epoch − 1) + (k + 1) / 배치 수 에 그립니다.
    """
    fig, (step_ax, epoch_ax) = plt.subplots(1, 2, figsize=(12, 4.2))
    position = [row["epoch"] - 1 + (row["step"] + 1) / steps_per_epoch for row in trace]
    step_ax.plot(position, [row["loss"] for row in trace], lw=0.8, color="tab:blue",
                 label="train CTC loss (batch)")
    step_ax.set_yscale("log")
    step_ax.set_ylabel("CTC loss per character (log scale)")
    blank_ax = step_ax.twinx()
    blank_ax.plot(position, [row["blank_fraction"] for row in trace], lw=0.8, color="tab:orange",
                  label="frames predicted blank (batch)")
    blank_ax.set_ylim(0, 1.05)
    blank_ax.set_ylabel("fraction of frames predicted blank")
    plateau = [x for x, row in zip(position, trace) if row["blank_fraction"] >= PLATEAU_BLANK_FRACTION]
    if plateau:  # 모델이 빈칸만 내놓던 구간: 아직 한 글자도 읽지 못함
        step_ax.axvspan(min(plateau), max(plateau), color="grey", alpha=0.2, lw=0, label="blank plateau")
    lines = step_ax.get_legend_handles_labels()[0] + blank_ax.get_legend_handles_labels()[0]
    step_ax.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=8)
    step_ax.set_title("Within epochs: the blank plateau, then a steep drop")
    epochs = [row["epoch"] for row in rows]
    epoch_ax.plot(epochs, [row["train_loss"] for row in rows], marker="o", label="train CTC loss")
    epoch_ax.plot(epochs, [row["val_loss"] for row in rows], marker="o", label="val CTC loss")
    epoch_ax.set_yscale("log")
    epoch_ax.set_ylabel("CTC loss per character (log scale)")
    accuracy_ax = epoch_ax.twinx()
    accuracy_ax.plot(epochs, [row["val_sequence_accuracy"] for row in rows], marker="s", color="tab:green",
                     label="val sequence accuracy")
    accuracy_ax.set_ylim(0, 1.05)
    accuracy_ax.set_ylabel("sequence accuracy (exact match)")
    lines = epoch_ax.get_legend_handles_labels()[0] + accuracy_ax.get_legend_handles_labels()[0]
    epoch_ax.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=8)
    epoch_ax.set_title("Per epoch")
    for ax in (step_ax, epoch_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    return viz.save_figure(fig, path, show)


def plot_predictions(images: torch.Tensor, predictions: list[str], truths: list[str], path: Path,
                     show: bool = False, columns: int = 4) -> Path:
    """시험 캡차와 읽은 글자: 맞으면 초록, 틀리면 빨강 (괄호 안이 정답). 가로로 긴 이미지에 맞춘 격자."""
    rows = math.ceil(len(images) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.7 * columns, 1.05 * rows + 0.6), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(images):
            ax.imshow(images[index, 0].numpy(), cmap="gray", vmin=0, vmax=255)
            right = predictions[index] == truths[index]
            ax.set_title(predictions[index] if right else f"{predictions[index]} ({truths[index]})",
                         color="green" if right else "red", fontsize=9, family="monospace")
    fig.suptitle("Test captchas: read text (mistakes first, in red, truth in brackets)")
    return viz.save_figure(fig, path, show)


def plot_frame_probabilities(image: torch.Tensor, probabilities: torch.Tensor, alphabet: str, title: str,
                             path: Path, show: bool = False) -> Path:
    """캡차 한 장과 frame 마다의 확률 (K, T): CTC 가 각 글자를 어느 frame 에 두는지, 나머지는 빈칸.

    위 이미지의 가로를 frame 눈금에 맞춰(extent) 그려, frame t 가 이미지의 어느 세로줄인지 보이게 합니다.
    빈칸이 아닌 기호가 가장 큰 frame 에는 그 글자를 적습니다.
    """
    steps, classes = probabilities.shape
    symbols = ["blank", *alphabet]
    fig, (image_ax, prob_ax) = plt.subplots(2, 1, figsize=(9, 6.5), height_ratios=[1, 2.2], sharex=True)
    image_ax.imshow(image[0].numpy(), cmap="gray", aspect="auto", extent=(-0.5, steps - 0.5, 1, 0))
    image_ax.set_title(title)
    image_ax.set_yticks([])
    prob_ax.imshow(probabilities.T.numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1,
                             interpolation="nearest")  # (K, T)
    for frame, symbol in enumerate(probabilities.argmax(dim=-1).tolist()):
        if symbol != BLANK:
            prob_ax.text(frame, symbol, symbols[symbol], ha="center", va="center", color="black",
                         fontsize=8, fontweight="bold")
    prob_ax.set_yticks(range(classes), symbols, fontsize=7)
    prob_ax.set_xticks(range(0, steps, 2))
    prob_ax.set_xlabel(f"frame (time step; 1 frame = {image.shape[-1] // steps} pixel columns of the input)")
    prob_ax.set_ylabel("symbol")
    prob_ax.set_title("p(symbol | frame), dark 0 → yellow 1: characters are spikes, the rest is blank")
    return viz.save_figure(fig, path, show)


def save_figures(model, data: captcha.Captchas, history: training.History, trace: training.History,
                 steps_per_epoch: int, out_dir: Path, device, config: Config) -> None:
    """학습 곡선, 시험 예측(맞음 초록/틀림 빨강), frame 확률 지도, 글자 혼동표."""
    plot_learning_curve(history.rows, trace.rows, steps_per_epoch, out_dir / "learning_curve.png",
                        config.show)
    predictions, probabilities = predict_texts(model, data.test_images, data.alphabet, device)
    # 틀린 것을 먼저 (최대 격자의 1/3), 나머지는 맞은 것: 잘 학습되면 앞의 24장이 모두 맞아 빨강이 안 보임
    wrong = [i for i, (p, t) in enumerate(zip(predictions, data.test_labels)) if p != t]
    right = [i for i, (p, t) in enumerate(zip(predictions, data.test_labels)) if p == t]
    shown = (wrong[:PREDICTION_GRID_SIZE // 3] + right)[:PREDICTION_GRID_SIZE]
    plot_predictions(data.test_images[shown], [predictions[i] for i in shown],
                     [data.test_labels[i] for i in shown], out_dir / "test_predictions.png", config.show)
    # 같은 글자가 겹친 캡차가 있으면 그것을 골라 frame 지도를 그림 (빈칸이 사이를 가르는 모습)
    doubled = [i for i, t in enumerate(data.test_labels) if has_doubled_character(t)]
    pick = doubled[0] if doubled else 0
    plot_frame_probabilities(data.test_images[pick].float() / PIXEL_SCALE, probabilities[pick], data.alphabet,
                             f"truth {data.test_labels[pick]!r}, read {predictions[pick]!r}",
                             out_dir / "frame_probabilities.png", config.show)
    table = confusion_table(data.test_labels, predictions, data.alphabet)
    viz.plot_confusion_matrix(table, ["-", *data.alphabet], out_dir / "character_confusion.png", config.show,
                          title="Character confusion on test (row: truth, column: read, '-': none)")
    mistakes = table.clone()
    mistakes.fill_diagonal_(0)
    top = sorted(((int(mistakes[i, j]), i, j) for i in range(len(table)) for j in range(len(table))
                  if mistakes[i, j] > 0), reverse=True)[:5]
    names = ["-", *data.alphabet]
    if top:
        print("[혼동] 가장 자주 틀린 글자 (정답→읽음): "
              + ", ".join(f"{names[i]}→{names[j]} {n}회" for n, i, j in top))


# %% [markdown]
# ## 6. 추론: --predict captcha.png

# %%
def predict_file(config: Config, device) -> dict:
    """best.pt 를 먼저 읽고(없거나 망가졌으면 한 줄) 이미지를 확인한 뒤 글자를 읽어 출력·저장합니다."""
    import json

    out_dir = Path(config.out_dir)
    model, checkpoint = training.load_trained_model(out_dir / "best.pt", build_model, config, device,
                                                    purpose="predict")
    extra = checkpoint["extra"]
    alphabet, (height, width) = extra["alphabet"], extra["image_size"]
    path = Path(config.predict)
    if path.is_dir():
        raise UserError(f"--predict {path} 는 폴더입니다. 캡차 이미지 파일 하나를 주세요.")
    if not path.is_file():
        raise UserError(f"--predict 파일 {path} 이 없습니다.")
    loaded = captcha.read_gray(path, height, width)
    if loaded is None:
        raise UserError(f"{path} 를 이미지로 읽을 수 없습니다 (PNG, JPG, BMP 등을 쓰세요).")
    image, (original_height, original_width) = loaded
    ratio = (original_width / original_height) / (width / height)
    if not 1 / MAX_ASPECT_CHANGE <= ratio <= MAX_ASPECT_CHANGE:  # 학습 때와 모양이 아주 다른 그림
        print(f"[참고] {path.name} 은 {original_width}x{original_height} 로, 학습한 캡차({width}:{height} "
              "비율)와 모양이 많이 달라 결과를 믿기 어렵습니다.")
    images = torch.from_numpy(image).view(1, 1, height, width)  # (1, 1, H, W)
    beam_width = config.beam_width  # 디코딩 방법은 모델이 아니라 읽는 방법이라 지금 플래그를 씀
    (text,), probabilities = predict_texts(model, images, alphabet, device, beam_width=beam_width)
    confidence = float(probabilities[0].max(dim=-1).values.min())  # 가장 자신 없는 frame 의 최대 확률
    result = {"file": str(path), "text": text, "min_frame_confidence": round(confidence, 4),
              "alphabet": alphabet, "decoder": f"beam search (width {beam_width})"}
    outside = sorted(set(path.stem) - set(alphabet))
    if outside:  # 파일 이름을 정답으로 볼 수 없음: 어떤 글자가 알파벳 밖인지 밝힘
        print(f"[참고] 파일 이름 {path.stem!r} 의 글자 {', '.join(map(repr, outside))} 는 모델의 알파벳 "
              f"{alphabet!r} 에 없어 이름을 정답으로 쓰지 않습니다.")
    else:
        result["file_name_matches"] = text == path.stem
    print(f"{path.name}: {text}" + ("" if outside else f"  (파일 이름 {path.stem!r} 와 "
                                    f"{'같음' if text == path.stem else '다름'})"))
    (out_dir / "prediction.json").write_text(json.dumps(result, ensure_ascii=False, indent=2),
                                             encoding="utf-8")
    return result


# %% [markdown]
# ## 부록(실험): 빔 탐색 대 탐욕 디코딩, 겹친 글자

# %%
def study_decoders(model, data: captcha.Captchas, device, config: Config) -> dict:
    """같은 시험 캡차를 탐욕 디코딩과 빔 탐색으로 읽어 비교하고, 겹친 글자 라벨의 정확도를 따로 잽니다."""
    greedy, _ = predict_texts(model, data.test_images, data.alphabet, device, beam_width=1)
    beam, _ = predict_texts(model, data.test_images, data.alphabet, device, beam_width=config.beam_width)
    truth = data.test_labels
    doubled = [i for i, t in enumerate(truth) if has_doubled_character(t)]
    accuracy = lambda texts, idx: sum(texts[i] == truth[i] for i in idx) / max(1, len(idx))
    result = {"greedy_sequence_accuracy": accuracy(greedy, range(len(truth))),
              "beam_sequence_accuracy": accuracy(beam, range(len(truth))),
              "doubled_label_count": len(doubled),
              "doubled_sequence_accuracy": accuracy(greedy, doubled)}
    print(f"[디코딩] 탐욕 {result['greedy_sequence_accuracy']:.3f}, 빔({config.beam_width}) "
          f"{result['beam_sequence_accuracy']:.3f} | 겹친 글자 라벨 {len(doubled)}장의 정확도 "
          f"{result['doubled_sequence_accuracy']:.3f}")
    return result


# %% [markdown]
# ## 실행: main 은 목차
# best.pt 는 검증 CTC 손실이 가장 낮은 epoch 입니다. 정확도로 고르지 않는 이유: 실제 폴더의 검증 세트는
# 104장뿐이라 한 장이 1% 이고, 학습률이 높은 초반 epoch 가 운 좋게 100% 를 찍으면 덜 배운 모델이
# 뽑힙니다 (측정: 그렇게 고른 epoch 2 는 시험 0.923, 손실로 고른 epoch 5 는 0.962).
# 조기 종료(early stopping)도 없습니다: 빈칸 평탄 구간에서 검증 정확도 0 이 몇 epoch 이어질 수 있습니다.

# %%
def main(config: Config) -> dict:
    device = pick_device(config.device)
    out_dir = Path(config.out_dir)
    if config.predict:
        return predict_file(config, device)
    started = time.time()
    set_seed(config.seed)

    # 1. 데이터 (오프라인 캡차는 고정 시드로 한 번 그려 메모리에), 그리고 CTC 손 계산 예
    data, data_seconds = prepare_data(config)
    ctc_worked_example()

    # 2. 모델과 최적화기(optimizer): CRNN(model_args) → 시간 축 확인 → AdamW + OneCycle
    epochs = training_epochs(config, data)
    max_batches = 1 if config.smoke else None  # --smoke: epoch 마다 학습·평가 배치 하나
    steps_per_epoch = batches_per_epoch(len(data.train_labels), config, max_batches)
    model_args, model, optimizer, scheduler = prepare_model(config, data, device, epochs * steps_per_epoch)
    loader_generator = torch.Generator().manual_seed(config.seed)  # 섞기 순서: 체크포인트에 저장

    # 3. 학습 (best.pt = 검증 CTC 손실이 가장 낮은 epoch, 조기 종료 없음: 위 설명)
    extra = {"data": data.name, "alphabet": data.alphabet,  # 예측에 필요한 것: 글자 순서와 입력 크기
             "image_size": [config.image_height, config.image_width]}
    history = training.History(out_dir / "history.csv")
    trace = training.History(out_dir / "steps.csv", resume=config.resume)  # 배치마다의 손실 (평탄 구간 그림)
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    checkpoint = lambda epoch, best: training.make_checkpoint(
        config, model_args, state, epoch, best, extra=extra, generators=[loader_generator], history=history)
    # OneCycle 의 길이가 epochs 로 정해지므로 --epochs 를 바꿔 이어 하면 학습률 곡선이 달라짐: 허용 안 함
    start_epoch, best = training.resume_or_start(config, checkpoint, state, generators=[loader_generator],
                                                 history=history, best=math.inf)
    trace.truncate(start_epoch - 1)  # 이어하기: 저장된 epoch 뒤의 (중단된 epoch 의) 줄을 버림
    loop_started = time.time()
    try:
        for epoch in range(start_epoch, epochs + 1):
            train_loss = train_one_epoch(model, data, optimizer, scheduler, device, epoch, config,
                                         loader_generator, max_batches, trace.rows)
            trace.save()
            val = evaluate(model, data.val_images, data.val_labels, data.alphabet, device,
                           max_batches=max_batches)
            history.log(epoch=epoch, train_loss=train_loss, **{f"val_{k}": v for k, v in val.items()})
            if val["loss"] < best:  # 작을수록 좋음 (정확도가 아니라 손실로 고르는 이유: 위 설명)
                best = val["loss"]
                training.save_checkpoint(out_dir / "best.pt", checkpoint(epoch, best))
            training.save_checkpoint(out_dir / "last.pt", checkpoint(epoch, best))
    except KeyboardInterrupt:
        print("\n중단: --resume 을 붙여 다시 실행하면 마지막으로 끝난 epoch 다음부터 이어집니다")
        raise SystemExit(130) from None
    train_seconds = time.time() - loop_started
    model, _ = training.load_trained_model(out_dir / "best.pt", build_model, config, device, purpose="test")

    # 4. 평가 (best.pt 로: 시험 세트, 그리고 과적합을 볼 학습 세트 일부)
    test, train = evaluate_test_and_train(model, data, device, max_batches)

    # 5. 시각화, 부록
    save_figures(model, data, history, trace, steps_per_epoch, out_dir, device, config)
    decoders = study_decoders(model, data, device, config)
    return summarize(config, out_dir, device, model, data, test, train, decoders, history, started=started,
                     data_seconds=data_seconds, train_seconds=train_seconds,
                     images_trained=(epochs - start_epoch + 1) * steps_per_epoch * config.batch_size)


def summarize(config: Config, out_dir: Path, device, model, data: captcha.Captchas, test: dict, train: dict,
              decoders: dict, history: training.History, *, started: float, data_seconds: float,
              train_seconds: float, images_trained: int) -> dict:
    """metrics.json (지표, 파라미터 수, 걸린 시간, 설정)을 쓰고 지표 dict 를 돌려줍니다.

    지표 이름은 tests 와 benchmarks 가 읽는 약속입니다. images_trained: 이번 실행에서 학습한 이미지 수.
    """
    metrics = {"test_sequence_accuracy": test["sequence_accuracy"], "test_cer": test["cer"],
               "train_sequence_accuracy": train["sequence_accuracy"], "test_loss": test["loss"],
               "test_beam_sequence_accuracy": decoders["beam_sequence_accuracy"],
               "test_doubled_sequence_accuracy": decoders["doubled_sequence_accuracy"],
               "best_epoch": min(history.rows, key=lambda row: row["val_loss"])["epoch"]}
    write_run_record(out_dir, script=config.chapter + ".py", config=config, data=data.name, device=device,
                     seconds=time.time() - started, parameters=sum(p.numel() for p in model.parameters()),
                     metrics=metrics, headline="test_sequence_accuracy",
                     timing={"data_seconds": round(data_seconds, 2),
                             "train_images_per_second": round(images_trained / max(1e-9, train_seconds), 1)})
    return metrics


if __name__ == "__main__":
    run(main, Config)
